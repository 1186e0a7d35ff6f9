#!/usr/bin/env bash
# Latency of a trivial sandbox job through the node's worker API next to a raw `podman run --rm`
# of the same image with the same lockdown, in the same run (the ratio is the figure), and the
# idle RSS of both host agents. The node is the real stack: orchestrator + node manager, which
# starts the worker API. Loopback only, a fixed number of runs.
# Usage: scripts/bench-sandbox.sh [RUNS] (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-30}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-sandbox: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
for tool in hyperfine curl podman python3 psql; do
  command -v "$tool" >/dev/null || { echo "bench-sandbox: $tool is not installed" >&2; exit 1; }
done

echo "== build (release)" >&2
cargo build --release --quiet -p cynode-orchestrator -p cynode-node-manager -p cynode-worker-api
BIN="$PWD/target/release"
STACK="$DEV_HOME/bench-sandbox"
. scripts/stack.sh
trap stack_stop EXIT
stack_prepare cynode_bench_sandbox
stack_start_orchestrator
stack_start_node
WORKER_PID=$(pgrep -P "$NODE_PID" -f cynode-worker-api)

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
sleep 2
NODE_IDLE=$(rss_kib "$NODE_PID"); WORKER_IDLE=$(rss_kib "$WORKER_PID")

# The orchestrator's per-node token, so requests are authorised exactly as dispatches are. It
# stays out of argv: curl reads it from a header file.
umask 077
stack_worker_auth_header "$STACK/auth.header"
# Every request is a new job: a repeated job_id would get the stored result, not a run.
cat >"$STACK/job.sh" <<SH
#!/bin/sh
u=\$(cat /proc/sys/kernel/random/uuid)
exec curl -sf -o /dev/null -H @$STACK/auth.header -H 'content-type: application/json' \\
  --data-binary "{\"version\":1,\"task_id\":\"\$u\",\"job_id\":\"\$u\",\"sandbox\":{\"command\":[\"true\"]}}" \\
  http://127.0.0.1:12090/v1/worker/jobs:run
SH
chmod 0700 "$STACK/job.sh"
"$STACK/job.sh" || { echo "bench-sandbox: the trivial job was refused; see $STACK/node-manager.log" >&2; exit 1; }

# The raw baseline twice: with the lockdown of Phase 1, and with the worker's limits as well
# (a user namespace of its own; its defaults: memory without extra swap, one CPU, pids, /tmp size, log cap, and its seccomp
# profile from the node's mount root), so that the limits' own cost shows as a ratio.
LOCKDOWN="--network none --cap-drop ALL --security-opt no-new-privileges --read-only"
SECCOMP="$STACK/node-state/sandbox_mounts/.sandbox-seccomp.json"
[ -f "$SECCOMP" ] || { echo "bench-sandbox: the worker wrote no seccomp profile at $SECCOMP" >&2; exit 1; }
LIMITS="--userns auto --memory 2g --memory-swap 2g --cpus 1 --pids-limit 512 --tmpfs /tmp:rw,size=256m --log-opt max-size=32mb --security-opt seccomp=$SECCOMP"

echo "== hyperfine ($RUNS runs each)" >&2
hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$STACK/bench.json" \
  -n worker-api "$STACK/job.sh" \
  -n podman-run "podman run --rm $LOCKDOWN $CYNODE_TEST_SANDBOX_IMAGE true" \
  -n podman-run-limited "podman run --rm $LOCKDOWN $LIMITS $CYNODE_TEST_SANDBOX_IMAGE true" >&2
NODE_BUSY=$(rss_kib "$NODE_PID"); WORKER_BUSY=$(rss_kib "$WORKER_PID")

python3 - "$STACK/bench.json" "$NODE_IDLE" "$NODE_BUSY" "$WORKER_IDLE" "$WORKER_BUSY" <<'PY'
import json, statistics, sys
results = {r["command"]: sorted(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def p95(times):
    return times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
rows = {name: (statistics.median(t) * 1000, p95(t) * 1000) for name, t in results.items()}
print(f"{'':12} {'median ms':>10} {'p95 ms':>10}")
for name, (med, p) in rows.items():
    print(f"{name:12} {med:10.1f} {p:10.1f}")
wa, raw, limited = rows["worker-api"], rows["podman-run"], rows["podman-run-limited"]
print(f"ratio worker-api / podman run: median {wa[0] / raw[0]:.2f}x, p95 {wa[1] / raw[1]:.2f}x")
print(f"ratio worker-api / podman run with the same limits: median {wa[0] / limited[0]:.2f}x, p95 {wa[1] / limited[1]:.2f}x")
print(f"cost of the limits (podman run with / without): median {limited[0] / raw[0]:.2f}x, p95 {limited[1] / raw[1]:.2f}x")
mib = lambda k: int(k) / 1024
print(f"node-manager RSS: idle {mib(sys.argv[2]):.1f} MiB, after the runs {mib(sys.argv[3]):.1f} MiB")
print(f"worker-api RSS:   idle {mib(sys.argv[4]):.1f} MiB, after the runs {mib(sys.argv[5]):.1f} MiB")
PY
