#!/usr/bin/env bash
# Cross-builds seguard for aarch64 (64-bit ARM gateways) with the rustup target and Debian's
# cross gcc as linker, then runs the binary under qemu-user: `seguard --version` and
# `seguard check` on the example site.
#   deploy/cross-aarch64.sh
# Output: target/aarch64-unknown-linux-gnu/release/seguard
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
target=aarch64-unknown-linux-gnu

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "please install: ${need[*]}" >&2
        exit 1
    fi
fi
qemu="$(command -v qemu-aarch64 || command -v qemu-aarch64-static)"

# The linker for the target, and the C compiler for crates that build C (ring, for rustls).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo build --release --locked --target "$target" --bin seguard

bin="target/$target/release/seguard"
file "$bin" 2>/dev/null || true
echo "size: $(du -h "$bin" | cut -f1)"
"$qemu" -L /usr/aarch64-linux-gnu "$bin" --version
"$qemu" -L /usr/aarch64-linux-gnu "$bin" check firmware-configs/site-example.toml
echo "aarch64 binary runs under $(basename "$qemu")"
