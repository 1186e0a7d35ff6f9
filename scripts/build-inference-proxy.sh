#!/usr/bin/env bash
# Builds the inference sidecar `cynode-inference-proxy` statically linked for the host and puts
# it next to the other binaries (target/<profile>/), where the worker API looks for it.
#
# Static because the worker mounts it read-only into a container of whatever sandbox image the
# node uses (busybox here): it must need no libc from the image. std only, so this takes seconds.
# Usage: scripts/build-inference-proxy.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-debug}"
case "$profile" in
  debug) flags=() ;;
  release) flags=(--release) ;;
  *) echo "build-inference-proxy: unknown profile '$profile' (debug or release)" >&2; exit 2 ;;
esac
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-target}"
# With an explicit --target, RUSTFLAGS reach only this crate's target artifacts.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet -p cynode-inference-proxy \
  --features sidecar --target "$host" "${flags[@]}"
mkdir -p "$target_dir/$profile"
install -m 0755 "$target_dir/$host/$profile/cynode-inference-proxy" "$target_dir/$profile/cynode-inference-proxy"
