#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify` and prints their exposure score.
# verify needs the ExecStart binaries to exist, so it runs against a throwaway root holding the
# units, a stub /usr/bin/seguard, /bin/kill and a copy of the system's own unit files; any
# warning (an unknown key, a typo in a section) fails the check, not only a non-zero exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y systemd >/dev/null
    else
        echo "systemd-analyze is missing: apt-get install systemd" >&2
        exit 1
    fi
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/seguard"
chmod +x "$root/usr/bin/seguard"
cp /bin/kill "$root/bin/kill"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
units=(seguard-gateway.service seguard-central.service)
for unit in "${units[@]}"; do
    cp "${SEGUARD_UNITS_DIR:-$here/systemd}/$unit" "$root/etc/systemd/system/"
done

out="$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1)" || {
    echo "$out" >&2
    echo "systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify printed warnings" >&2
    exit 1
fi
echo "systemd-analyze verify: ${units[*]}: ok"

for unit in "${units[@]}"; do
    systemd-analyze security --offline=yes "${SEGUARD_UNITS_DIR:-$here/systemd}/$unit" 2>/dev/null | tail -n 1
done
