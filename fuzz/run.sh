#!/usr/bin/env bash
# Builds every fuzz target and runs each one for SECONDS (default 60), one after the other, on
# the committed seeds in corpus/<target>/ (config_parse also on firmware-configs/ and the config
# fixtures in tests/). What the fuzzer adds goes to generated/<target>/
# (ignored by git, kept between runs); a crashing input goes to artifacts/<target>/.
# Prints a table: target, runs, seconds, crashes. Exits 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
targets=(mqtt_mapping modbus_decode line_protocol config_parse central_intake)
# No sanitizer: seguard forbids unsafe code, and the run is then several times faster.
# Debug assertions and overflow checks on: an overflow is a finding too.
flags=(--sanitizer none --debug-assertions)

cargo +nightly fuzz build "${flags[@]}"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
printf '%-16s %12s %8s %8s\n' target runs seconds crashes > "$logs/table"
failed=0
for target in "${targets[@]}"; do
    mkdir -p "generated/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    started=$(date +%s)
    # JSON tokens (NUL escapes among them) help the targets that read JSON payloads. The config
    # target also starts from the repository's own configs and config fixtures, read in place
    # (libFuzzer writes only into the first directory, generated/).
    extra=()
    seeds=("corpus/$target")
    case "$target" in
        mqtt_mapping | central_intake) extra=(-dict=dict/json.dict) ;;
        config_parse) seeds+=(../firmware-configs ../tests/fixtures/config) ;;
    esac
    status=0
    cargo +nightly fuzz run "${flags[@]}" "$target" "generated/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${extra[@]}" \
        > "$logs/$target.log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - started ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n 1)
    if [ -z "$runs" ]; then
        runs=$(grep -o '^#[0-9]*' "$logs/$target.log" | tail -n 1 | tr -d '#')
    fi
    crashes=$(( $(find "artifacts/$target" -type f | wc -l) - before ))
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        echo "== $target failed (exit $status); the end of its log:" >&2
        tail -n 40 "$logs/$target.log" >&2
    fi
    printf '%-16s %12s %8s %8s\n' "$target" "${runs:-?}" "$elapsed" "$crashes" >> "$logs/table"
done
cat "$logs/table"
exit "$failed"
