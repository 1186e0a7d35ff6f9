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
for tool in curl podman python3 psql; do
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

echo "== $RUNS rounds, the three commands in turn (order rotated each round)" >&2
python3 - "$RUNS" "$NODE_PID" "$WORKER_PID" \
  "$STACK/job.sh" \
  "podman run --rm $LOCKDOWN $CYNODE_TEST_SANDBOX_IMAGE true" \
  "podman run --rm $LOCKDOWN $LIMITS $CYNODE_TEST_SANDBOX_IMAGE true" \
  "$NODE_IDLE" "$WORKER_IDLE" <<'PY'
import shlex, statistics, subprocess, sys, time
runs, node_pid, worker_pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
commands = dict(zip(["worker-api", "podman-run", "podman-run-limited"], sys.argv[4:7]))
times = {name: [] for name in commands}
names = list(commands)
# Rounds rather than blocks: each round runs all three back to back, so a drift in the
# machine's speed hits them alike and the ratios are taken round by round.
for round_no in range(-3, runs):  # three warm-up rounds
    order = names[round_no % 3:] + names[:round_no % 3]
    for name in order:
        start = time.perf_counter()
        subprocess.run(shlex.split(commands[name]), check=True, stdout=subprocess.DEVNULL)
        if round_no >= 0:
            times[name].append(time.perf_counter() - start)
def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
print(f"{'':18} {'median ms':>10} {'p95 ms':>10}")
for name in names:
    print(f"{name:18} {statistics.median(times[name]) * 1000:10.1f} {p95(times[name]) * 1000:10.1f}")
def ratio(a, b):
    per_round = [x / y for x, y in zip(times[a], times[b])]
    return f"median {statistics.median(per_round):.2f}x, p95 {p95(per_round):.2f}x"
print(f"ratio worker-api / podman run (round by round): {ratio('worker-api', 'podman-run')}")
print(f"ratio worker-api / podman run with the same limits: {ratio('worker-api', 'podman-run-limited')}")
print(f"cost of the limits (podman run with / without): {ratio('podman-run-limited', 'podman-run')}")
rss = lambda pid: next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
mib = lambda k: int(k) / 1024
print(f"node-manager RSS: idle {mib(sys.argv[7]):.1f} MiB, after the runs {mib(rss(node_pid)):.1f} MiB")
print(f"worker-api RSS:   idle {mib(sys.argv[8]):.1f} MiB, after the runs {mib(rss(worker_pid)):.1f} MiB")
PY
