#!/usr/bin/env bash
# Benchmark of the dispatcher (not a test): dispatch throughput with 1, 3 and 10 nodes and a
# queue of 10,000 jobs, against `cynode-worker-double` (Rust, answers at once, one port per
# node), whose own capacity is measured first so the figures are the orchestrator's; then the
# latency of one claim (`jobs::claim`) with a short and a 10,000-job queue, and of one
# `scheduler::place` call, by `cynode-bench-claim`. Loopback only, bounded loops, a throwaway
# database per run.
# Usage: scripts/bench-scheduler.sh [JOBS] [RUNS] [NODE_COUNTS] [CLAIMS]
#   JOBS jobs queued per run (10000), RUNS repetitions of each node count (1),
#   NODE_COUNTS e.g. "1 3 10" (the default), CLAIMS timed claims per run (500).
#   BENCH_DISPATCH_CONCURRENCY sets the orchestrator's DISPATCH_CONCURRENCY (64).
#   BENCH_CLAIM_BATCHES: DISPATCH_CLAIM_BATCH values to run, in turn ("1 16": one job per
#   claiming transaction, the baseline, against the default).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-10000}"
RUNS="${2:-1}"
NODE_COUNTS="${3:-1 3 10}"
CLAIMS="${4:-500}"
CONCURRENCY="${BENCH_DISPATCH_CONCURRENCY:-64}"
BATCHES="${BENCH_CLAIM_BATCHES:-1 16}"
POOL=$((CONCURRENCY + 8))
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

echo "== release build" >&2
cargo build --release -q -p cynode-orchestrator -p cynode-e2e --features cynode-e2e/bench-orchestrator \
  --bin cynode-orchestrator --bin cynode-worker-double --bin cynode-bench-claim
TARGET="${CARGO_TARGET_DIR:-target}/release"
ORCH_BIN="$TARGET/cynode-orchestrator"; DOUBLE_BIN="$TARGET/cynode-worker-double"; CLAIM_BIN="$TARGET/cynode-bench-claim"

WORK=$(mktemp -d)
ORCH=""; DOUBLE=""; DB=""
stop() { # pid: SIGTERM, then wait for it (bounded), SIGKILL if it is still there
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
drop_db() {
  [ -n "$DB" ] || return 0
  psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  DB=""
}
cleanup() {
  stop "$ORCH"; stop "$DOUBLE"
  drop_db
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_port() { # port: until something accepts on it (5 s at most)
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
PSK=$(secret); ADMIN_PW=$(secret); JWT="$(secret)$(secret)"
printf '%s' "$ADMIN_PW" > "$WORK/admin"; printf '%s' "$PSK" > "$WORK/psk"; printf '%s' "$JWT" > "$WORK/jwt"
chmod 600 "$WORK"/*

# The double's own capacity: one port, one token, wrk on the same 2 cores.
echo "== the worker double alone: 10s, 2 threads, 32 connections" >&2
PORT=$(free_port); TOKEN="tok-$(secret)"
echo "127.0.0.1:$PORT $TOKEN" > "$WORK/double-alone"
"$DOUBLE_BIN" --nodes "$WORK/double-alone" 2>"$WORK/double-alone.log" & DOUBLE=$!
wait_port "$PORT"
cat > "$WORK/job.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"version":1,"task_id":"00000000-0000-4000-8000-000000000000","job_id":"00000000-0000-4000-8000-000000000000","sandbox":{"image":"","command":["sh","-c","true"]}}'
LUA
DOUBLE_OUT=$(wrk -t2 -c32 -d10s -s "$WORK/job.lua" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/worker/jobs:run")
DOUBLE_RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$DOUBLE_OUT")
DOUBLE_ERR=$(awk '/Non-2xx/ {print $NF}' <<<"$DOUBLE_OUT")
stop "$DOUBLE"; DOUBLE=""

# JOBS sandbox jobs, one per task, inserted in one transaction as the gateway would leave them.
enqueue() { # db_url count batch
  psql "$1" -qAtX -v ON_ERROR_STOP=1 <<SQL >/dev/null
WITH owner AS (SELECT id FROM users WHERE handle = 'admin'),
t AS (INSERT INTO tasks (id, created_by, task_name, prompt, input_mode, status)
      SELECT gen_random_uuid(), owner.id, 'bench-$3-' || g, 'true', 'script', 'queued'
      FROM owner, generate_series(1, $2) g RETURNING id)
INSERT INTO jobs (id, task_id, status, payload)
SELECT gen_random_uuid(), t.id, 'queued', '{"image":"","command":["sh","-c","true"]}'::jsonb FROM t;
SQL
}

RESULTS=()
CLAIM_RESULTS=()
for RUN in $(seq 1 "$RUNS"); do
 for NODES in $NODE_COUNTS; do
  for BATCH in $BATCHES; do
    echo "== $NODES node(s), claim batch $BATCH, run $RUN: $JOBS jobs" >&2
    DB="cynode_bench_sched_$$_${NODES}_${BATCH}_$RUN"
    psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "CREATE DATABASE $DB"
    DB_URL=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$CYNODE_TEST_DATABASE_URL" "$DB")
    CP_PORT=$(free_port); GW_PORT=$(free_port); CP="http://127.0.0.1:$CP_PORT"
    # The orchestrator's settings, shared with cynode-bench-claim. Nodes stay fresh for an hour
    # so that the claim benchmark, run after the orchestrator stopped, still finds them ready.
    ORCH_ENV=(DATABASE_URL="$DB_URL" JWT_SECRET_FILE="$WORK/jwt" NODE_REGISTRATION_PSK_FILE="$WORK/psk"
      BOOTSTRAP_ADMIN_PASSWORD_FILE="$WORK/admin" CONTROL_PLANE_LISTEN_ADDR="127.0.0.1:$CP_PORT"
      USER_GATEWAY_LISTEN_ADDR="127.0.0.1:$GW_PORT" ORCHESTRATOR_PUBLIC_URL="$CP"
      DISPATCH_CONCURRENCY="$CONCURRENCY" DISPATCH_CLAIM_BATCH="$BATCH" DATABASE_POOL_SIZE="$POOL" NODE_STALE_AFTER=1h
      PM_REQUIRED=false RUST_LOG=warn)
    env "${ORCH_ENV[@]}" "$ORCH_BIN" all 2>"$WORK/orchestrator.log" & ORCH=$!
    for _ in $(seq 1 100); do curl -sf "$CP/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf "$CP/healthz" >/dev/null || { cat "$WORK/orchestrator.log" >&2; exit 1; }

    # Nodes as the node manager brings them up: register (PSK + capability report), fetch the
    # configuration, start the worker API with the delivered token, ack `applied`.
    : > "$WORK/nodes"
    SLUGS=(); JWTS=(); VERSIONS=()
    for i in $(seq 1 "$NODES"); do
      SLUG="bench-$i"; WPORT=$(free_port); NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
      CAP="{\"version\":1,\"reported_at\":\"$NOW\",\"node\":{\"node_slug\":\"$SLUG\",\"labels\":[]},\"platform\":{\"os\":\"linux\",\"arch\":\"amd64\"},\"compute\":{\"cpu_cores\":2,\"ram_mb\":4096},\"gpu\":{\"present\":false,\"devices\":[]},\"inference\":{\"supported\":false},\"worker_api\":{\"base_url\":\"http://127.0.0.1:$WPORT\"}}"
      NODE_JWT=$(curl -sf "$CP/v1/nodes/register" -H 'content-type: application/json' -d "{\"psk\":\"$PSK\",\"capability\":$CAP}" | json 'd["auth"]["node_jwt"]')
      CONFIG=$(curl -sf "$CP/v1/nodes/config" -H "authorization: Bearer $NODE_JWT")
      echo "127.0.0.1:$WPORT $(json 'd["worker_api"]["orchestrator_bearer_token"]' <<<"$CONFIG")" >> "$WORK/nodes"
      SLUGS+=("$SLUG"); JWTS+=("$NODE_JWT"); VERSIONS+=("$(json 'd["config_version"]' <<<"$CONFIG")")
    done
    "$DOUBLE_BIN" --nodes "$WORK/nodes" 2>"$WORK/double.log" & DOUBLE=$!
    while read -r ADDR _; do wait_port "${ADDR##*:}"; done < "$WORK/nodes"
    for i in "${!SLUGS[@]}"; do
      NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
      curl -sf "$CP/v1/nodes/config" -H "authorization: Bearer ${JWTS[$i]}" -H 'content-type: application/json' \
        -d "{\"version\":1,\"node_slug\":\"${SLUGS[$i]}\",\"config_version\":\"${VERSIONS[$i]}\",\"ack_at\":\"$NOW\",\"status\":\"applied\"}"
    done
    READY=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM nodes WHERE config_ack_status = 'applied'")
    [ "$READY" = "$NODES" ] || { echo "bench: $READY of $NODES nodes acked" >&2; exit 1; }

    enqueue "$DB_URL" "$JOBS" dispatch
    CPU0=$(cpu_ticks "$ORCH")
    T0=$(psql "$DB_URL" -qAtX -c "SELECT extract(epoch FROM clock_timestamp()), pg_notify('cynode_jobs', '')" | cut -d'|' -f1)
    LEFT=$JOBS
    for _ in $(seq 1 3000); do # 10 minutes at most
      read -r LEFT BAD < <(psql "$DB_URL" -qAtX -F' ' -c "SELECT count(*) FILTER (WHERE status <> 'completed'), count(*) FILTER (WHERE status IN ('failed', 'canceled')) FROM jobs")
      [ "$LEFT" = 0 ] && break
      [ "$BAD" = 0 ] || { echo "bench: $BAD jobs failed" >&2; tail -20 "$WORK/orchestrator.log" >&2; exit 1; }
      sleep 0.2
    done
    [ "$LEFT" = 0 ] || { echo "bench: $LEFT jobs never completed" >&2; tail -20 "$WORK/orchestrator.log" >&2; exit 1; }
    # From the NOTIFY to the last recorded result, by the database's clock; and the gaps between
    # consecutive claims (started_at is the claiming transaction's time).
    read -r JPS GAP_MED GAP_P95 ATTEMPTS < <(psql "$DB_URL" -qAtX -F' ' <<SQL
WITH s AS (SELECT started_at - lag(started_at) OVER (ORDER BY started_at) AS gap FROM jobs)
SELECT round(($JOBS / extract(epoch FROM (SELECT max(ended_at) FROM jobs) - to_timestamp($T0)))::numeric, 1),
       round((1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY gap)))::numeric, 2),
       round((1000 * extract(epoch FROM percentile_cont(0.95) WITHIN GROUP (ORDER BY gap)))::numeric, 2),
       (SELECT sum(attempts) FROM jobs)
FROM s WHERE gap IS NOT NULL
SQL
    )
    PER_NODE=$(psql "$DB_URL" -qAtX -c "SELECT string_agg(n.node_slug || '=' || c, ' ' ORDER BY n.node_slug) FROM (SELECT node_id, count(*) c FROM jobs GROUP BY node_id) j JOIN nodes n ON n.id = j.node_id")
    CPU_MS=$(python3 -c "print(round(($(cpu_ticks "$ORCH") - $CPU0) * 1000 / $(getconf CLK_TCK) / $JOBS, 3))")
    RSS=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$ORCH/status")
    HWM=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$ORCH/status")
    RESULTS+=("$(printf '%2s node(s), batch %2s, run %s: %7s jobs/s  claim gap median %s ms p95 %s ms  orchestrator CPU %s ms/job  attempts %s  RSS %s (peak %s)  load %s  per node: %s' \
      "$NODES" "$BATCH" "$RUN" "$JPS" "$GAP_MED" "$GAP_P95" "$CPU_MS" "$ATTEMPTS" "$RSS" "$HWM" "$(cut -d' ' -f1 /proc/loadavg)" "$PER_NODE")")
    echo "   ${RESULTS[-1]}" >&2

    # Claim latency on this database, the orchestrator stopped: a short queue, then JOBS queued.
    stop "$ORCH"; ORCH=""
    enqueue "$DB_URL" 100 short
    SHORT=$(env "${ORCH_ENV[@]}" "$CLAIM_BIN" --placements 0 --claims 50 --warmup 5)
    enqueue "$DB_URL" "$JOBS" long
    LONG=$(env "${ORCH_ENV[@]}" "$CLAIM_BIN" --placements 0 --claims "$CLAIMS")
    # The same once PostgreSQL's statistics know the queue is long (autovacuum would get there
    # within a minute or so): the window of due jobs is then read from the index, not sorted.
    psql "$DB_URL" -qAtX -c "ANALYZE jobs"
    ANALYZED=$(env "${ORCH_ENV[@]}" "$CLAIM_BIN" --placements 0 --claims "$CLAIMS")
    CLAIM_RESULTS+=("$NODES node(s), batch $BATCH, run $RUN: $SHORT" "$NODES node(s), batch $BATCH, run $RUN: $LONG"
      "$NODES node(s), batch $BATCH, run $RUN, after ANALYZE: $ANALYZED")
    printf '   %s\n' "${CLAIM_RESULTS[@]: -3}" >&2
    stop "$DOUBLE"; DOUBLE=""
    REFUSED=$(awk '{s += $NF} END {print s + 0}' < <(grep -o 'refused [0-9]*' "$WORK/double.log" || true))
    [ "$REFUSED" = 0 ] || { echo "bench: the double refused $REFUSED requests" >&2; cat "$WORK/double.log" >&2; exit 1; }
    drop_db
  done
 done
done

PLACE=$("$CLAIM_BIN" --claims 0 --nodes 10)
cat <<REPORT
scheduler benchmark (release build, loopback, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))
  worker double alone (1 port, wrk -t2 -c32): $DOUBLE_RPS req/s (non-2xx: ${DOUBLE_ERR:-0})
  dispatch of $JOBS queued jobs, DISPATCH_CONCURRENCY=$CONCURRENCY, DATABASE_POOL_SIZE=$POOL
  (jobs/s from the NOTIFY to the last result; claim gap: time between consecutive claims;
  CPU: the orchestrator's user + system time over the run; load: 1-minute load average after it):
$(printf '    %s\n' "${RESULTS[@]}")
  jobs::claim alone, orchestrator stopped, claimed jobs recorded completed between claims, 5
  untimed claims first; right after the jobs were inserted, then after ANALYZE jobs:
$(printf '    %s\n' "${CLAIM_RESULTS[@]}")
  scheduler::place:
$(sed 's/^/    /' <<<"$PLACE")
REPORT
