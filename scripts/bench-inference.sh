#!/usr/bin/env bash
# Inference benchmarks, one run, loopback only, on the real stack (release orchestrator + node
# manager + worker API + the dev llama.cpp server). Each section measures against a baseline
# taken in the same run and prints ratios. More sections (chat) are appended below the marker.
# Usage: scripts/bench-inference.sh [RUNS] (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-inference: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "bench-inference: $tool is not installed" >&2; exit 1; }
done

echo "== build (release)" >&2
cargo build --release --quiet -p cynode-orchestrator -p cynode-node-manager -p cynode-worker-api
scripts/build-inference-proxy.sh release
BIN="$PWD/target/release"
MAX_TOKENS=64
export PM_MAX_TOKENS=$MAX_TOKENS
STACK="$DEV_HOME/bench-inference-$$"
# stack.sh uses fixed ports: refuse to measure someone else's stack.
if ss -ltn 2>/dev/null | grep -qE '127\.0\.0\.1:(12080|12082|12090) |\*:(12080|12082|12090) '; then
  echo "bench-inference: ports 12080/12082/12090 are in use by another stack; stop it first" >&2
  exit 1
fi
. scripts/stack.sh
trap 'stack_stop; rm -rf "$STACK"' EXIT
stack_prepare cynode_bench_inference_pm
stack_start_orchestrator
stack_start_node
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:12080/readyz)" = 200 ] && break
  sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:12080/readyz)" = 200 ] \
  || { echo "bench-inference: not ready: $(curl -s http://127.0.0.1:12080/readyz)" >&2; exit 1; }
GW=http://127.0.0.1:12080
TOKEN=$(curl -sf "$GW/v1/auth/login" -H 'content-type: application/json' \
  --data "$(jq -n --arg p "$(cat "$STACK/admin-password")" '{handle:"admin",password:$p}')" | jq -r .access_token)
now_ms() { date +%s%3N; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# ---- section: prompt task vs direct model call ----------------------------------------------
PROMPT="Tell me what model you are"
echo "== prompt task end to end vs a direct model call (same prompt, max_tokens $MAX_TOKENS, $RUNS runs each, taking turns)"
: >"$STACK/direct.ms"; : >"$STACK/task.ms"
for _ in $(seq "$RUNS"); do
  t0=$(now_ms)
  curl -sf "$CYNODE_TEST_INFERENCE_URL/v1/chat/completions" -H 'content-type: application/json' \
    --data "$(jq -n --arg m "$CYNODE_TEST_INFERENCE_MODEL" --arg p "$PROMPT" --argjson n "$MAX_TOKENS" \
      '{model:$m,messages:[{role:"user",content:$p}],max_tokens:$n,temperature:0}')" >/dev/null
  echo $(( $(now_ms) - t0 )) >>"$STACK/direct.ms"
  t0=$(now_ms)
  id=$(curl -sf "$GW/v1/tasks" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    --data "$(jq -n --arg p "$PROMPT" '{prompt:$p}')" | jq -r .id)
  while :; do
    status=$(curl -sf "$GW/v1/tasks/$id" -H "authorization: Bearer $TOKEN" | jq -r .status)
    case "$status" in completed|failed|canceled) break ;; esac
    sleep 0.01
  done
  echo $(( $(now_ms) - t0 )) >>"$STACK/task.ms"
  [ "$status" = completed ] || echo "  (task $id ended $status)"
done
direct=$(median <"$STACK/direct.ms"); task=$(median <"$STACK/task.ms")
printf '  direct model call   median %6s ms\n' "$direct"
printf '  prompt task (e2e)   median %6s ms   ratio %.2fx\n' "$task" "$(python3 -c "print($task/max($direct,1))")"
echo "  (the prompt task: PM_MAX_TOKENS=$PM_MAX_TOKENS, a system brief and a JSON-schema grammar; polling adds up to ~10 ms)"

# ---- more sections go below this line --------------------------------------------------------
