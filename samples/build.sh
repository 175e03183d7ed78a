#!/usr/bin/env bash
# Builds every sample guest component from source for wasm32-wasip2 into
# $SKIFF_SAMPLES_TARGET_DIR/wasm32-wasip2/release/<name>.wasm (default:
# ~/.cache/skiff-samples-target, kept apart from the host build's cache; the
# tests and `skiff up --demo` look there too).
# Extra arguments go to cargo, e.g. `samples/build.sh -p hello`.
# Prints the path of each component it built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${SKIFF_SAMPLES_TARGET_DIR:-$HOME/.cache/skiff-samples-target}"

# A fresh machine has the toolchain but not always the target that
# rust-toolchain.toml names (rustup adds it only when it installs the toolchain).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

cargo build --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" "$@"

out="$CARGO_TARGET_DIR/wasm32-wasip2/release"
for name in hello echo counter crasher spinner hog pi ticker fetch settings kv; do
    if [[ -f "$out/$name.wasm" ]]; then
        echo "$out/$name.wasm"
    fi
done
