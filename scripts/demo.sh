#!/usr/bin/env bash
# The demo: each real component answering, then the Phase 1 happy path with the real processes.
# An orchestrator and a node manager (which starts the worker API) run in the foreground of this
# script and are stopped when it ends; the user side is the real `cynork` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
set -a; . "$DEV_HOME/devenv.env"; set +a
DEMO="$DEV_HOME/demo"
BIN="$PWD/target/debug"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$'; printf ' %q' "$@"; printf '\033[0m\n'; "$@"; }

say "PostgreSQL"
psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c 'SELECT version()'

say "Podman REST API on $CYNODE_TEST_PODMAN_SOCKET"
curl -fsS --unix-socket "$CYNODE_TEST_PODMAN_SOCKET" http://d/v4.0.0/libpod/version |
  python3 -c 'import json,sys; v=json.load(sys.stdin); print("podman", v["Version"], "api", v["ApiVersion"])'

say "Inference: $CYNODE_TEST_INFERENCE_MODEL at $CYNODE_TEST_INFERENCE_URL"
curl -fsS "$CYNODE_TEST_INFERENCE_URL/v1/chat/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$CYNODE_TEST_INFERENCE_MODEL\",\"max_tokens\":40,\"messages\":[{\"role\":\"user\",\"content\":\"In one sentence, what is a sandbox?\"}]}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'

say "Building the binaries"
cargo build --quiet --bins

# Fresh state for every demo run: a new database, new random secrets (no default secrets exist).
rm -rf "$DEMO"; mkdir -p "$DEMO"; chmod 0700 "$DEMO"
(umask 077
 for secret in psk jwt-secret admin-password; do head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/$secret"; done
 db_url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/cynode_demo")))' "$CYNODE_TEST_DATABASE_URL")
 printf '%s' "$db_url" >"$DEMO/database-url")
PGOPTIONS=--client-min-messages=warning psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c 'DROP DATABASE IF EXISTS cynode_demo WITH (FORCE)' -c 'CREATE DATABASE cynode_demo'

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

say "Orchestrator (control plane :12082, user gateway :12080); secrets generated in $DEMO"
DATABASE_URL_FILE="$DEMO/database-url" JWT_SECRET_FILE="$DEMO/jwt-secret" \
NODE_REGISTRATION_PSK_FILE="$DEMO/psk" BOOTSTRAP_ADMIN_PASSWORD_FILE="$DEMO/admin-password" \
INFERENCE_MODEL="$CYNODE_TEST_INFERENCE_MODEL" ORCHESTRATOR_PUBLIC_URL=http://127.0.0.1:12082 \
CONTROL_PLANE_LISTEN_ADDR=127.0.0.1:12082 USER_GATEWAY_LISTEN_ADDR=127.0.0.1:12080 \
  "$BIN/cynode-orchestrator" all >"$DEMO/orchestrator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:12082/healthz 2>/dev/null && break; sleep 0.2; done
printf 'readyz before any node: '; curl -sS http://127.0.0.1:12082/readyz; echo

say "Node manager (registers, fetches config, starts the worker API on :12090, checks inference, acks)"
cat >"$DEMO/node.yaml" <<YAML
version: 1
orchestrator:
  url: http://127.0.0.1:12082
  registration_psk_file: $DEMO/psk
node:
  id: demo-node
  name: Demo node
worker_api:
  listen_host: 127.0.0.1
  listen_port: 12090
  public_base_url: http://127.0.0.1:12090
  binary: $BIN/cynode-worker-api
sandbox:
  podman_socket: $CYNODE_TEST_PODMAN_SOCKET
  default_image: $CYNODE_TEST_SANDBOX_IMAGE
inference:
  url: $CYNODE_TEST_INFERENCE_URL
storage:
  state_dir: $DEMO/node-state
YAML
"$BIN/cynode-node-manager" --config "$DEMO/node.yaml" >"$DEMO/node-manager.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -fsS -o /dev/null http://127.0.0.1:12082/readyz 2>/dev/null && break; sleep 0.2; done
printf 'readyz with the node ready: '; curl -sS http://127.0.0.1:12082/readyz; echo

say "cynork: the user's side"
export XDG_CONFIG_HOME="$DEMO/cynork-config" CYNORK_GATEWAY_URL=http://127.0.0.1:12080 PATH="$BIN:$PATH"
run cynork status
printf '\033[2m$ cynork auth login -u admin --password-stdin < admin-password\033[0m\n'
cynork auth login -u admin --password-stdin <"$DEMO/admin-password"
run cynork auth whoami
run cynork task create --name hello --wait \
  --command 'echo "hello from a sandbox on $(hostname)"' \
  --command 'grep CapEff /proc/self/status' \
  --command 'ls -ld /workspace; cat /etc/hostname >/workspace/proof.txt && echo wrote /workspace/proof.txt'
run cynork task logs hello
run cynork task list
run cynork auth logout

say "Done. Logs: $DEMO/orchestrator.log, $DEMO/node-manager.log"
