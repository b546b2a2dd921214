#!/usr/bin/env bash
# Runs the benchmarks in release mode, each SEGUARD_BENCH_RUNS times (default 2: the machine is
# shared and noisy, so BENCHMARKS.md reports medians over runs), then measures the release
# binary with and without the embedded broker, stripped and not.
#
#   benches/run-all.sh                  # every bench in benches/*.rs, then the sizes
#   benches/run-all.sh alarm startup    # only these; `size` names the binary sizes
#
# Every bench starts its own servers (mosquitto, VictoriaMetrics) on loopback ports in temp
# dirs; tests/run installs the Debian packages that provide them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
runs=${SEGUARD_BENCH_RUNS:-2}

if (($#)); then
  names=("$@")
else
  names=()
  for f in benches/*.rs; do names+=("$(basename "$f" .rs)"); done
  names+=(size)
fi

# Binary size of `seguard` in release, with the default features (embedded broker) and without.
sizes() {
  local out
  out=$(mktemp -d)
  cargo build -q --release --bin seguard
  cp target/release/seguard "$out/with-broker"
  cargo build -q --release --no-default-features --bin seguard
  cp target/release/seguard "$out/without-broker"
  # Leave the default build in place for the benches.
  cargo build -q --release --bin seguard
  echo "| build | release (MiB) | release, stripped (MiB) | target (MiB) |"
  echo "|---|---|---|---|"
  for build in with-broker without-broker; do
    strip -o "$out/$build.stripped" "$out/$build"
    local target=15
    [ "$build" = with-broker ] && target=25
    printf '| %s | %.1f | %.1f | %s |\n' "$build" \
      "$(stat -c %s "$out/$build" | awk '{print $1 / 1048576}')" \
      "$(stat -c %s "$out/$build.stripped" | awk '{print $1 / 1048576}')" "$target"
  done
  rm -r "$out"
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $(uname -sr); $(rustc --version)"
cargo build --release --benches
for name in "${names[@]}"; do
  if [ "$name" = size ]; then
    echo "== binary size ($(date -u +%H:%M:%S) UTC)"
    sizes
    continue
  fi
  for run in $(seq "$runs"); do
    echo "== $name, run $run of $runs ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    cargo bench -q --bench "$name"
  done
done
