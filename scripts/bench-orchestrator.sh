#!/usr/bin/env bash
# Benchmark of the orchestrator (not a test): login req/s and GET /v1/tasks/{id} req/s under wrk,
# dispatch throughput to an instant worker double, and idle RSS. Loopback only, bounded loops.
# Usage: scripts/bench-orchestrator.sh [DURATION_SECONDS] [DISPATCH_JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
JOBS="${2:-2000}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p cynode-orchestrator
BIN=target/release/cynode-orchestrator
WORK=$(mktemp -d)
PIDS=()
DB="cynode_bench_$$"
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "CREATE DATABASE $DB"
DB_URL=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$CYNODE_TEST_DATABASE_URL" "$DB")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CP_PORT=$(free_port); GW_PORT=$(free_port); WORKER_PORT=$(free_port)
CP="http://127.0.0.1:$CP_PORT"; GW="http://127.0.0.1:$GW_PORT"
PSK=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
ADMIN_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
JWT=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$ADMIN_PW" > "$WORK/admin"; printf '%s' "$PSK" > "$WORK/psk"; printf '%s' "$JWT" > "$WORK/jwt"

# Instant worker double: answers every jobs:run at once with a completed RunJobResponse.
cat > "$WORK/worker.py" <<'PY'
import json, sys, datetime
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        body = json.dumps({"version": 1, "task_id": req["task_id"], "job_id": req["job_id"],
            "status": "completed", "exit_code": 0, "stdout": "ok\n", "stderr": "",
            "started_at": now, "ended_at": now, "truncated": {"stdout": False, "stderr": False}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class Server(ThreadingHTTPServer):
    # wrk drops its connections when it stops; that is not an error worth a traceback.
    def handle_error(self, request, client_address): pass
Server(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$WORK/worker.py" "$WORKER_PORT" & PIDS+=($!)

DATABASE_URL="$DB_URL" JWT_SECRET_FILE="$WORK/jwt" NODE_REGISTRATION_PSK_FILE="$WORK/psk" \
BOOTSTRAP_ADMIN_PASSWORD_FILE="$WORK/admin" CONTROL_PLANE_LISTEN_ADDR="127.0.0.1:$CP_PORT" \
USER_GATEWAY_LISTEN_ADDR="127.0.0.1:$GW_PORT" ORCHESTRATOR_PUBLIC_URL="$CP" \
RATE_LIMIT_PER_MINUTE=1000000000 DISPATCH_CONCURRENCY=16 DATABASE_POOL_SIZE=32 RUST_LOG=warn \
  "$BIN" all 2>"$WORK/orchestrator.log" & ORCH=$!; PIDS+=($ORCH)
for _ in $(seq 1 100); do curl -sf "$GW/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$GW/healthz" >/dev/null || { cat "$WORK/orchestrator.log" >&2; exit 1; }
sleep 2
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' "/proc/$ORCH/status"; }
RSS_START=$(rss)

# A dispatchable node pointing at the double.
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CAP="{\"version\":1,\"reported_at\":\"$NOW\",\"node\":{\"node_slug\":\"bench\"},\"platform\":{\"os\":\"linux\",\"arch\":\"amd64\"},\"compute\":{\"cpu_cores\":2,\"ram_mb\":4096},\"inference\":{\"supported\":true},\"worker_api\":{\"base_url\":\"http://127.0.0.1:$WORKER_PORT\"}}"
NODE_JWT=$(curl -sf "$CP/v1/nodes/register" -H 'content-type: application/json' -d "{\"psk\":\"$PSK\",\"capability\":$CAP}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["node_jwt"])')
VERSION=$(curl -sf "$CP/v1/nodes/config" -H "authorization: Bearer $NODE_JWT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config_version"])')
curl -sf "$CP/v1/nodes/config" -H "authorization: Bearer $NODE_JWT" -H 'content-type: application/json' \
  -d "{\"version\":1,\"node_slug\":\"bench\",\"config_version\":\"$VERSION\",\"ack_at\":\"$NOW\",\"status\":\"applied\"}"

cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"handle":"admin","password":"$ADMIN_PW"}'
LUA
rps() { awk '/Requests\/sec/ {print $2}'; }
non2xx() { awk '/Non-2xx/ {print $NF}'; }
echo "== login (Argon2id m=64MiB t=3 p=2), ${DURATION}s, 2 threads, 4 connections" >&2
LOGIN_OUT=$(wrk -t2 -c4 -d"${DURATION}s" -s "$WORK/login.lua" "$GW/v1/auth/login")
LOGIN_RPS=$(rps <<<"$LOGIN_OUT"); LOGIN_ERR=$(non2xx <<<"$LOGIN_OUT")

ACCESS=$(curl -sf "$GW/v1/auth/login" -H 'content-type: application/json' -d "{\"handle\":\"admin\",\"password\":\"$ADMIN_PW\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
TASK=$(curl -sf "$GW/v1/tasks" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' -d '{"prompt":"echo bench","input_mode":"script"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "== GET /v1/tasks/{id}, ${DURATION}s, 2 threads, 32 connections" >&2
GET_OUT=$(wrk -t2 -c32 -d"${DURATION}s" -H "Authorization: Bearer $ACCESS" "$GW/v1/tasks/$TASK")
GET_RPS=$(rps <<<"$GET_OUT"); GET_ERR=$(non2xx <<<"$GET_OUT")

# Baselines from this same run, so the figures read as ratios on a noisy machine: the HTTP stack
# alone (/healthz, no auth, no database) and the worker double's own capacity.
echo "== baseline: GET /healthz, ${DURATION}s, 2 threads, 32 connections" >&2
HEALTH_RPS=$(wrk -t2 -c32 -d"${DURATION}s" "$GW/healthz" | rps)
cat > "$WORK/job.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"version":1,"task_id":"00000000-0000-4000-8000-000000000000","job_id":"00000000-0000-4000-8000-000000000000","sandbox":{"command":["true"]}}'
LUA
echo "== baseline: the worker double alone, ${DURATION}s, 2 threads, 16 connections" >&2
WORKER_RPS=$(wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/job.lua" "http://127.0.0.1:$WORKER_PORT/v1/worker/jobs:run" | rps)

echo "== dispatch of $JOBS jobs to the instant worker" >&2
psql "$DB_URL" -qAtX <<SQL >/dev/null
WITH owner AS (SELECT id FROM users WHERE handle = 'admin'),
t AS (INSERT INTO tasks (id, created_by, task_name, prompt, input_mode, status)
      SELECT gen_random_uuid(), owner.id, 'bench-' || g, 'echo ' || g, 'script', 'queued'
      FROM owner, generate_series(1, $JOBS) g RETURNING id)
INSERT INTO jobs (id, task_id, status, payload)
SELECT gen_random_uuid(), t.id, 'queued', '{"image":"","command":["sh","-c","true"]}'::jsonb FROM t;
SQL
START=$(date +%s.%N)
psql "$DB_URL" -qAtX -c "SELECT pg_notify('cynode_jobs', '')" >/dev/null
LEFT=$JOBS
for _ in $(seq 1 6000); do
  LEFT=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM jobs WHERE task_id IN (SELECT id FROM tasks WHERE task_name LIKE 'bench-%') AND status <> 'completed'")
  [ "$LEFT" = 0 ] && break
  sleep 0.05
done
END=$(date +%s.%N)
[ "$LEFT" = 0 ] || { echo "bench: $LEFT jobs never completed" >&2; exit 1; }
DISPATCH_JPS=$(python3 -c "print(round($JOBS / ($END - $START), 1))")

sleep 5
RSS_IDLE=$(rss)
ratio() { python3 -c "print(f'{$1 / $2:.3g}')"; }
cat <<REPORT
orchestrator benchmark (release build, loopback, $(nproc) cores)
  baseline GET /healthz: $HEALTH_RPS req/s
  login:                 $LOGIN_RPS req/s = $(ratio "$LOGIN_RPS" "$HEALTH_RPS") x healthz (non-2xx: ${LOGIN_ERR:-0})
  GET /v1/tasks/{id}:    $GET_RPS req/s = $(ratio "$GET_RPS" "$HEALTH_RPS") x healthz (non-2xx: ${GET_ERR:-0})
  baseline worker alone: $WORKER_RPS req/s
  dispatch:              $DISPATCH_JPS jobs/s = $(ratio "$DISPATCH_JPS" "$WORKER_RPS") x the worker's capacity ($JOBS jobs, concurrency 16)
  RSS idle after start:  $RSS_START
  RSS idle after load:   $RSS_IDLE
REPORT
