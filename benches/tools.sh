#!/usr/bin/env bash
# Installs the proxy bench's outside tools into caches outside the clone, once:
#   - wrk, the load generator, from the distribution (apt);
#   - wasmtime-cli at exactly the wasmtime version in Cargo.lock, so that
#     `wasmtime serve` (the runtime's own ceiling) runs the same engine as Skiff.
# Idempotent: each step is skipped when its tool is already there.
# Prints the two tool paths on its last two lines ("wrk=..." and "wasmtime=...").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${SKIFF_TOOLS_DIR:-$HOME/.cache/skiff-tools}"

version="$(awk '/^name = "wasmtime"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.lock")"
if [ -z "$version" ]; then
    echo "tools.sh: no wasmtime version found in $root/Cargo.lock" >&2
    exit 1
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "tools.sh: installing wrk (apt)" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get install -y wrk >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y wrk >&2; }
fi

wasmtime="$tools/bin/wasmtime"
if ! { [ -x "$wasmtime" ] && "$wasmtime" --version | grep -q "^wasmtime $version\b"; }; then
    echo "tools.sh: installing wasmtime-cli $version into $tools (takes a while)" >&2
    # Not into the bench's own target directory (cargo bench sets it): cargo
    # install then builds in a temporary one and removes it.
    env -u CARGO_TARGET_DIR cargo install wasmtime-cli --version "$version" --locked --root "$tools" >&2
fi

echo "wrk=$(command -v wrk)"
echo "wasmtime=$wasmtime"
