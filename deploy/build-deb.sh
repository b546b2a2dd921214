#!/usr/bin/env bash
# Builds the seguard .deb with cargo-deb, installs it into a throwaway Debian root with dpkg
# (maintainer scripts included, run chrooted there by dpkg), and checks what landed: the binary
# runs and checks the installed config, the units verify, the account and state directory exist,
# the configs are conffiles readable by group seguard only.
#
#   deploy/build-deb.sh            # reuses target/release/seguard when it is up to date
#
# The throwaway root is a copy of a minimal Debian bookworm made once with debootstrap from
# Debian's default mirror and cached in target/deploy/bookworm-minbase (set SEGUARD_DEB_BASE to move it).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the install test chroots into a throwaway root" >&2
    exit 1
fi
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null

# One release build, reused: cargo does nothing when target/release/seguard is fresh.
cargo build --release --locked --bin seguard
deb="$(cargo deb --no-build 2>/dev/null | tail -n 1)"
[ -f "$deb" ] || { echo "cargo deb produced no package" >&2; exit 1; }
echo "built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
echo "conffiles:"; dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles

base="${SEGUARD_DEB_BASE:-$repo/target/deploy/bookworm-minbase}"
if [ ! -x "$base/bin/sh" ]; then
    rm -rf "$base"
    debootstrap --variant=minbase bookworm "$base"
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
cp -a "$base/." "$root/"

# --force-depends: the minimal root lacks nothing the binary links to (libc, libgcc), but
# $auto may name packages it does not hold; dpkg -i checks the rest.
dpkg --root="$root" --force-depends -i "$deb"

fail=0
expect() { if ! eval "$1"; then echo "FAILED: $2" >&2; fail=1; else echo "ok: $2"; fi; }
expect '[ -x "$root/usr/bin/seguard" ]' "/usr/bin/seguard installed"
expect '[ -f "$root/lib/systemd/system/seguard-gateway.service" ]' "seguard-gateway.service in /lib/systemd/system"
expect '[ -f "$root/lib/systemd/system/seguard-central.service" ]' "seguard-central.service in /lib/systemd/system"
for f in site.toml central.toml gateway.env central.env profiles/pressure-transmitter.toml; do
    expect '[ -f "$root/etc/seguard/'$f'" ]' "/etc/seguard/$f"
done
expect 'chroot "$root" getent passwd seguard >/dev/null' "user seguard created by postinst"
expect '[ "$(chroot "$root" stat -c %U:%G:%a /var/lib/seguard)" = seguard:seguard:750 ]' "/var/lib/seguard seguard:seguard 0750"
expect '[ "$(chroot "$root" stat -c %U:%G:%a /etc/seguard/central.toml)" = root:seguard:640 ]' "central.toml root:seguard 0640"
expect 'grep -qx /etc/seguard/site.toml "$root/var/lib/dpkg/info/seguard.conffiles"' "site.toml is a conffile"
expect 'chroot "$root" /usr/bin/seguard --version' "seguard --version in the root"
expect 'chroot --userspec=seguard:seguard "$root" /usr/bin/seguard check /etc/seguard/site.toml' "user seguard checks the installed site.toml"
expect 'SEGUARD_UNITS_DIR="$root/lib/systemd/system" "$repo/deploy/verify-units.sh"' "installed units pass systemd-analyze verify"

# Removal and purge run the other maintainer scripts.
dpkg --root="$root" --purge seguard >/dev/null
expect '[ ! -e "$root/usr/bin/seguard" ] && [ ! -e "$root/var/lib/seguard" ]' "purge removes the binary and the state"
exit "$fail"
