#!/bin/sh
# Prints the module import picture of src/ (or of DIR/src, another checkout): the layers, what
# each module uses (with the number of paths), circles, and the edges against the flow with
# their reasons. tests/imports.rs reads every crate:: and super:: path outside test code; run
# `cargo test --test imports` to check the rule.
cd "$(dirname "$0")/.." || exit 1
if [ -n "$1" ]; then
  IMPORT_PICTURE_SRC="$(cd "$1" && pwd)/src"
  export IMPORT_PICTURE_SRC
fi
IMPORT_PICTURE=1 cargo test --quiet --test imports dependencies_run_one_way -- --nocapture 2>&1 \
  | awk '/^Modules by layer/ { on = 1 } on && /^$/ { exit } on { print }'
