#!/usr/bin/env bash
# Added latency of the node's two inference paths against a direct request to the model server,
# in one run: the worker API's authenticated route (what the orchestrator uses) and the pod's
# sidecar as a sandbox sees it (a client in the job pod's network namespace). The stack is real:
# orchestrator + node manager + worker API + the dev llama.cpp server; loopback only.
# Two request kinds: a short chat completion (max_tokens 1) and GET /v1/models, which costs the
# server almost nothing and so shows the proxies' own overhead.
# Usage: scripts/bench-inference-proxy.sh [RUNS] (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-50}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-inference-proxy: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
for tool in curl podman psql; do
  command -v "$tool" >/dev/null || { echo "bench-inference-proxy: $tool is not installed" >&2; exit 1; }
done

echo "== build (release)" >&2
cargo build --release --quiet -p cynode-orchestrator -p cynode-node-manager -p cynode-worker-api
cargo build --release --quiet -p cynode-e2e --bin cynode-bench-http
scripts/build-inference-proxy.sh release
BIN="$PWD/target/release"
STACK="$DEV_HOME/bench-inference-proxy"
. scripts/stack.sh
JOB_CURL=
cleanup() { [ -n "$JOB_CURL" ] && kill "$JOB_CURL" 2>/dev/null; stack_stop; }
trap cleanup EXIT
stack_prepare cynode_bench_inference
stack_start_orchestrator
stack_start_node

umask 077
stack_worker_auth_header "$STACK/auth.header"

# A sandbox that waits while we measure; its pod's network namespace is where the sidecar is.
JOB=$(cat /proc/sys/kernel/random/uuid)
curl -s -o /dev/null -H @"$STACK/auth.header" -H 'content-type: application/json' \
  --data-binary "{\"version\":1,\"task_id\":\"$JOB\",\"job_id\":\"$JOB\",\"sandbox\":{\"command\":[\"sleep\",\"250\"],\"use_inference\":true,\"timeout_seconds\":260}}" \
  http://127.0.0.1:12090/v1/worker/jobs:run &
JOB_CURL=$!
POD_PID=
for _ in $(seq 100); do
  infra=$(podman pod inspect "cynodeai-pod-$JOB" --format '{{.InfraContainerID}}' 2>/dev/null || true)
  [ -n "$infra" ] && POD_PID=$(podman inspect "$infra" --format '{{.State.Pid}}' 2>/dev/null || true)
  [ -n "$POD_PID" ] && [ "$POD_PID" != 0 ] && podman ps --filter "label=cynodeai.job_id=$JOB" --format '{{.Names}}' | grep -q "cynodeai-job-$JOB" && break
  POD_PID=; sleep 0.2
done
[ -n "$POD_PID" ] || { echo "bench-inference-proxy: the inference job's pod did not start; see $STACK/node-manager.log" >&2; exit 1; }

printf '{"model":"%s","messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"temperature":0}' \
  "$CYNODE_TEST_INFERENCE_MODEL" >"$STACK/chat.json"
BENCH="$BIN/cynode-bench-http"
echo "== chat completion, max_tokens 1 ($RUNS runs each, taking turns)"
"$BENCH" --runs "$RUNS" --body "$STACK/chat.json" \
  --target "direct=$CYNODE_TEST_INFERENCE_URL/v1/chat/completions" \
  --target "worker-api=http://127.0.0.1:12090/v1/worker/inference/v1/chat/completions,auth=$STACK/auth.header" \
  --target "sidecar=http://127.0.0.1:11434/v1/chat/completions,netns=$POD_PID"
echo "== GET /v1/models ($RUNS runs each, taking turns)"
"$BENCH" --runs "$RUNS" --method GET \
  --target "direct=$CYNODE_TEST_INFERENCE_URL/v1/models" \
  --target "worker-api=http://127.0.0.1:12090/v1/worker/inference/v1/models,auth=$STACK/auth.header" \
  --target "sidecar=http://127.0.0.1:11434/v1/models,netns=$POD_PID"
