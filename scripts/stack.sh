# Sourced by demo.sh and bench-sandbox.sh: a local CyNodeAI stack on loopback, as in production
# but in the foreground of the calling script. Needs the devenv.env variables, $BIN (a directory
# with the built binaries) and $STACK (a directory for its secrets, config, state and logs).
# Fixed ports: gateway 12080, control plane 12082, worker API 12090; metrics (loopback) of the
# orchestrator 12085, the node manager 12095 and the worker API 12096.

STACK_PIDS=()

# Fresh random secrets and a fresh database named $1: no default secret exists anywhere.
stack_prepare() {
  local db=$1
  rm -rf "$STACK"; mkdir -p "$STACK"; chmod 0700 "$STACK"
  (umask 077
   for secret in psk jwt-secret admin-password; do head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STACK/$secret"; done
   python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])), end="")' \
     "$CYNODE_TEST_DATABASE_URL" "$db" >"$STACK/database-url")
  PGOPTIONS=--client-min-messages=warning psql "$CYNODE_TEST_DATABASE_URL" -qAtX \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
}

# Runs the orchestrator binary with ARGS and the stack's settings and secrets, replacing the
# shell it runs in: call it only in a subshell (`&`, `$(...)`), so that `$!` is its pid.
stack_orchestrator() {
  DATABASE_URL_FILE="$STACK/database-url" JWT_SECRET_FILE="$STACK/jwt-secret" \
  NODE_REGISTRATION_PSK_FILE="$STACK/psk" BOOTSTRAP_ADMIN_PASSWORD_FILE="$STACK/admin-password" \
  INFERENCE_MODEL="$CYNODE_TEST_INFERENCE_MODEL" ORCHESTRATOR_PUBLIC_URL=http://127.0.0.1:12082 \
  CONTROL_PLANE_LISTEN_ADDR=127.0.0.1:12082 USER_GATEWAY_LISTEN_ADDR=127.0.0.1:12080 \
  METRICS_LISTEN_ADDR=127.0.0.1:12085 TELEMETRY_PULL_INTERVAL=2s \
  CONSOLE_DIR="${CONSOLE_DIR:-$PWD/console/dist}" \
    exec "$BIN/cynode-orchestrator" "$@"
}

# Writes `Authorization: Bearer <the node's worker token>` to FILE (0600), so that requests to
# the worker API are authorised exactly as dispatches are; the token stays out of argv.
stack_worker_auth_header() {
  (umask 077; printf 'Authorization: Bearer %s\n' "$(stack_orchestrator worker-token --node local-node 2>>"$STACK/orchestrator.log")" >"$1")
}

stack_start_orchestrator() {
  stack_orchestrator all >"$STACK/orchestrator.log" 2>&1 &
  ORCHESTRATOR_PID=$!
  STACK_PIDS+=("$ORCHESTRATOR_PID")
  local _
  for _ in $(seq 150); do curl -fsS -o /dev/null http://127.0.0.1:12082/healthz 2>/dev/null && return; sleep 0.2; done
  echo "the orchestrator did not start; see $STACK/orchestrator.log" >&2; return 1
}

# A node using the dev environment's llama-server as its existing inference. Returns once the
# orchestrator is ready, i.e. the node acked its config as applied.
stack_start_node() {
  cat >"$STACK/node.yaml" <<YAML
version: 1
orchestrator:
  url: http://127.0.0.1:12082
  registration_psk_file: $STACK/psk
node:
  id: local-node
  name: Local node
  labels: [demo, ssd]
worker_api:
  listen_host: 127.0.0.1
  listen_port: 12090
  public_base_url: http://127.0.0.1:12090
  binary: $BIN/cynode-worker-api
sandbox:
  podman_socket: $CYNODE_TEST_PODMAN_SOCKET
  default_image: $CYNODE_TEST_SANDBOX_IMAGE
  max_concurrency: 4
inference:
  url: $CYNODE_TEST_INFERENCE_URL
storage:
  state_dir: $STACK/node-state
metrics:
  listen: 127.0.0.1:12095
  worker_listen: 127.0.0.1:12096
YAML
  "$BIN/cynode-node-manager" --config "$STACK/node.yaml" >"$STACK/node-manager.log" 2>&1 &
  NODE_PID=$!
  STACK_PIDS+=("$NODE_PID")
  local _
  for _ in $(seq 300); do curl -fsS -o /dev/null http://127.0.0.1:12082/readyz 2>/dev/null && return; sleep 0.2; done
  echo "the node did not become ready; see $STACK/node-manager.log" >&2; return 1
}

stack_stop() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STACK_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STACK_PIDS=()
}
