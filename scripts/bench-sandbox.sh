#!/usr/bin/env bash
# Latency of a trivial sandbox job through cynode-worker-api next to a raw `podman run --rm` of
# the same image with the same lockdown, in the same run; plus the worker API's idle RSS.
# Loopback only, a fixed number of runs. Usage: scripts/bench-sandbox.sh [RUNS] (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-30}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-sandbox: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
for tool in hyperfine curl podman python3; do
  command -v "$tool" >/dev/null || { echo "bench-sandbox: $tool is not installed" >&2; exit 1; }
done

echo "== build (release)" >&2
cargo build --release --quiet -p cynode-worker-api
BIN=target/release/cynode-worker-api

WORK=$(mktemp -d)
WORKER_PID=""
cleanup() {
  if [ -n "$WORKER_PID" ]; then kill "$WORKER_PID" 2>/dev/null || true; wait "$WORKER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
# The token stays out of every argv: the worker reads it from stdin, curl from a header file.
umask 077
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$WORK/auth.header"
python3 - "$WORK/job.json" <<'PY'
import json, sys, uuid
job = {"version": 1, "task_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()),
       "sandbox": {"command": ["true"], "network_policy": "none"}}
open(sys.argv[1], "w").write(json.dumps(job))
PY

mkfifo "$WORK/token"
"$BIN" --bearer-token-stdin --listen "127.0.0.1:$PORT" \
  --podman-socket "$CYNODE_TEST_PODMAN_SOCKET" --mount-root "$WORK/mounts" \
  --default-image "$CYNODE_TEST_SANDBOX_IMAGE" < "$WORK/token" 2> "$WORK/worker.log" &
WORKER_PID=$!
printf '%s\n' "$TOKEN" > "$WORK/token"

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "bench-sandbox: worker API not ready" >&2; cat "$WORK/worker.log" >&2; exit 1; }
sleep 1
IDLE_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$WORKER_PID/status")

# One check that the job really runs before timing it.
curl -sf -H @"$WORK/auth.header" -H 'content-type: application/json' --data-binary @"$WORK/job.json" \
  "http://127.0.0.1:$PORT/v1/worker/jobs:run" | grep -q '"status":"completed"' \
  || { echo "bench-sandbox: the trivial job did not complete" >&2; cat "$WORK/worker.log" >&2; exit 1; }

echo "== hyperfine ($RUNS runs each)" >&2
hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$WORK/bench.json" \
  -n worker-api "curl -sf -o /dev/null -H @$WORK/auth.header -H 'content-type: application/json' --data-binary @$WORK/job.json http://127.0.0.1:$PORT/v1/worker/jobs:run" \
  -n podman-run "podman run --rm --network none --cap-drop ALL --security-opt no-new-privileges --read-only $CYNODE_TEST_SANDBOX_IMAGE true" >&2
BUSY_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$WORKER_PID/status")

python3 - "$WORK/bench.json" "$IDLE_RSS_KB" "$BUSY_RSS_KB" <<'PY'
import json, statistics, sys
results = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def p95(times):
    return times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
rows = {name: (statistics.median(t) * 1000, p95(t) * 1000) for name, t in results.items()}
print(f"{'':12} {'median ms':>10} {'p95 ms':>10}")
for name, (med, p) in rows.items():
    print(f"{name:12} {med:10.1f} {p:10.1f}")
wa, raw = rows["worker-api"], rows["podman-run"]
print(f"ratio worker-api / podman run: median {wa[0] / raw[0]:.2f}x, p95 {wa[1] / raw[1]:.2f}x")
print(f"worker-api RSS: idle {int(sys.argv[2]) / 1024:.1f} MiB, after the runs {int(sys.argv[3]) / 1024:.1f} MiB")
PY
