#!/usr/bin/env bash
# Benchmark of the MCP gateway (not a test): `tools/call db.task.get` through the whole pipeline
# (token, allowlist, schema, context, access rules, the tool, one audit row) against the same
# read through the REST API (`GET /v1/tasks/{id}`: access token, session check, the query), both
# on the same release orchestrator and database in this run. Latency with one connection, then
# throughput with 16. Loopback only, bounded loops.
# Usage: scripts/bench-mcp.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-mcp: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
command -v wrk >/dev/null || { echo "bench-mcp: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p cynode-orchestrator
BIN=target/release/cynode-orchestrator
WORK=$(mktemp -d)
PIDS=()
DB="cynode_bench_mcp_$$"
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
CP_PORT=$(free_port); GW_PORT=$(free_port); MCP_PORT=$(free_port)
GW="http://127.0.0.1:$GW_PORT"; MCP="http://127.0.0.1:$MCP_PORT/mcp"
PSK=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
ADMIN_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
JWT=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$ADMIN_PW" > "$WORK/admin"; printf '%s' "$PSK" > "$WORK/psk"; printf '%s' "$JWT" > "$WORK/jwt"
export DATABASE_URL="$DB_URL" JWT_SECRET_FILE="$WORK/jwt" NODE_REGISTRATION_PSK_FILE="$WORK/psk" \
  BOOTSTRAP_ADMIN_PASSWORD_FILE="$WORK/admin" CONTROL_PLANE_LISTEN_ADDR="127.0.0.1:$CP_PORT" \
  USER_GATEWAY_LISTEN_ADDR="127.0.0.1:$GW_PORT" MCP_LISTEN_ADDR="127.0.0.1:$MCP_PORT" \
  ORCHESTRATOR_PUBLIC_URL="http://127.0.0.1:$CP_PORT" RATE_LIMIT_PER_MINUTE=1000000000 \
  DATABASE_POOL_SIZE=32 PM_REQUIRED=false RUST_LOG=warn
"$BIN" all 2>"$WORK/orchestrator.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "$GW/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$GW/healthz" >/dev/null || { cat "$WORK/orchestrator.log" >&2; exit 1; }

ACCESS=$(curl -sf "$GW/v1/auth/login" -H 'content-type: application/json' -d "{\"handle\":\"admin\",\"password\":\"$ADMIN_PW\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
TASK=$(curl -sf "$GW/v1/tasks" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' -d '{"prompt":"echo bench","input_mode":"script"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
PM_TOKEN=$("$BIN" mcp-token --agent pm --ttl 1h)

BODY="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"db.task.get\",\"arguments\":{\"task_id\":\"$TASK\"},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientInfo\":{\"name\":\"bench\",\"version\":\"1\"},\"io.modelcontextprotocol/clientCapabilities\":{}}}}"
cat > "$WORK/mcp.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "db.task.get"
wrk.headers["Authorization"] = "Bearer $PM_TOKEN"
wrk.body = '$BODY'
LUA
# Both answer what the benchmark claims before anything is timed.
curl -sf "$MCP" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' -H 'mcp-name: db.task.get' \
  -H "authorization: Bearer $PM_TOKEN" -d "$BODY" | grep -q "\"status\":\"success\"" \
  || { echo "bench-mcp: tools/call db.task.get did not succeed" >&2; exit 1; }
curl -sf "$GW/v1/tasks/$TASK" -H "authorization: Bearer $ACCESS" | grep -q "\"$TASK\"" \
  || { echo "bench-mcp: GET /v1/tasks/{id} did not answer the task" >&2; exit 1; }

rps() { awk '/Requests\/sec/ {print $2}'; }
p() { awk -v q="$1%" '$1 == q {print $2}'; }
non2xx() { awk '/Non-2xx/ {print $NF}'; }
audited() { psql "$DB_URL" -qAtX -c "SELECT count(*) FROM mcp_tool_call_audit_log WHERE tool_name = 'db.task.get' AND status = 'success'"; }

declare -A R
for conns in 1 16; do
  threads=$(( conns == 1 ? 1 : 2 ))
  echo "== REST GET /v1/tasks/{id}: ${DURATION}s, $conns connection(s)" >&2
  OUT=$(wrk --latency -t"$threads" -c"$conns" -d"${DURATION}s" -H "Authorization: Bearer $ACCESS" "$GW/v1/tasks/$TASK")
  R[rest_rps_$conns]=$(rps <<<"$OUT"); R[rest_p50_$conns]=$(p 50 <<<"$OUT"); R[rest_p99_$conns]=$(p 99 <<<"$OUT"); R[rest_err_$conns]=$(non2xx <<<"$OUT")
  BEFORE=$(audited)
  echo "== MCP tools/call db.task.get: ${DURATION}s, $conns connection(s)" >&2
  OUT=$(wrk --latency -t"$threads" -c"$conns" -d"${DURATION}s" -s "$WORK/mcp.lua" "$MCP")
  R[mcp_rps_$conns]=$(rps <<<"$OUT"); R[mcp_p50_$conns]=$(p 50 <<<"$OUT"); R[mcp_p99_$conns]=$(p 99 <<<"$OUT"); R[mcp_err_$conns]=$(non2xx <<<"$OUT")
  R[mcp_requests_$conns]=$(awk '/requests in/ {print $1}' <<<"$OUT")
  R[mcp_audited_$conns]=$(( $(audited) - BEFORE ))
done
ratio() { python3 -c "print(f'{$1 / $2:.3g}')"; }
cat <<REPORT
MCP gateway benchmark (release build, loopback, $(nproc) cores, ${DURATION}s per run)
  1 connection (latency):
    REST GET /v1/tasks/{id}:  ${R[rest_rps_1]} req/s, p50 ${R[rest_p50_1]}, p99 ${R[rest_p99_1]} (non-2xx: ${R[rest_err_1]:-0})
    MCP  db.task.get:         ${R[mcp_rps_1]} req/s, p50 ${R[mcp_p50_1]}, p99 ${R[mcp_p99_1]} (non-2xx: ${R[mcp_err_1]:-0}) = $(ratio "${R[mcp_rps_1]}" "${R[rest_rps_1]}") x REST
  16 connections (throughput):
    REST GET /v1/tasks/{id}:  ${R[rest_rps_16]} req/s, p50 ${R[rest_p50_16]}, p99 ${R[rest_p99_16]} (non-2xx: ${R[rest_err_16]:-0})
    MCP  db.task.get:         ${R[mcp_rps_16]} req/s, p50 ${R[mcp_p50_16]}, p99 ${R[mcp_p99_16]} (non-2xx: ${R[mcp_err_16]:-0}) = $(ratio "${R[mcp_rps_16]}" "${R[rest_rps_16]}") x REST
  audit rows written by the MCP runs: ${R[mcp_audited_1]} + ${R[mcp_audited_16]} for ${R[mcp_requests_1]} + ${R[mcp_requests_16]} completed requests (wrk may count a few in flight at the end)
REPORT
