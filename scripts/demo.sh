#!/usr/bin/env bash
# The demo: shows each real component of the dev environment answering.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
set -a; . "$DEV_HOME/devenv.env"; set +a

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "PostgreSQL"
psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c 'SELECT version()'

say "Podman REST API on $CYNODE_TEST_PODMAN_SOCKET"
curl -fsS --unix-socket "$CYNODE_TEST_PODMAN_SOCKET" http://d/v4.0.0/libpod/version |
  python3 -c 'import json,sys; v=json.load(sys.stdin); print("podman", v["Version"], "api", v["ApiVersion"])'

say "A sandbox container ($CYNODE_TEST_SANDBOX_IMAGE): no network, no capabilities"
podman run --rm --network none --cap-drop ALL --security-opt no-new-privileges --read-only \
  "$CYNODE_TEST_SANDBOX_IMAGE" sh -c 'echo "hello from $(uname -m) sandbox"; grep CapEff /proc/self/status; ip addr 2>/dev/null | grep -c inet | sed "s/^/network addresses: /"'

say "Inference: $CYNODE_TEST_INFERENCE_MODEL at $CYNODE_TEST_INFERENCE_URL"
curl -fsS "$CYNODE_TEST_INFERENCE_URL/v1/chat/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$CYNODE_TEST_INFERENCE_MODEL\",\"max_tokens\":40,\"messages\":[{\"role\":\"user\",\"content\":\"In one sentence, what is a sandbox?\"}]}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'
