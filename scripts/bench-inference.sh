#!/usr/bin/env bash
# Inference benchmarks, one run, loopback only, on the real stack (release orchestrator + node
# manager + worker API + the dev llama.cpp server). Each section measures against a baseline
# taken in the same run and prints ratios. Sections: prompt task, chat.
# Usage: scripts/bench-inference.sh [RUNS] (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-20}"
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

# ---- section: chat through the gateway vs direct ---------------------------------------------
# POST /v1/chat/completions through the user gateway (API key auth, thread, redaction, audit,
# usage, node routing, the worker API) against the same request straight to the model server.
# Non-streaming: median and p95 of the whole call. Streaming: time to the first content token.
# Requests alternate between the two paths so that drift hits both alike.
echo "== chat: gateway vs direct ($RUNS requests each)"
umask 077
curl -fsS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  --data-binary '{"name":"bench-inference"}' "$GW/v1/users/me/api-keys" | jq -j .key >"$STACK/api-key"
python3 - "$RUNS" "$GW" "$CYNODE_TEST_INFERENCE_URL" "$CYNODE_TEST_INFERENCE_MODEL" "$STACK/api-key" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse

runs, gateway, direct, model = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
key = open(sys.argv[5]).read().strip()
body = json.dumps({"model": model, "max_tokens": 16, "temperature": 0, "seed": 1,
                   "messages": [{"role": "user", "content": "Count from one to five."}]})
stream_body = json.dumps({**json.loads(body), "stream": True})

class Path:
    """The standard library's client, a new loopback connection per request on both paths
    (llama.cpp's server closes kept-alive connections after a few requests)."""
    def __init__(self, url, headers):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.headers = {"content-type": "application/json", "connection": "close", **headers}
    def post(self, payload):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        conn.request("POST", "/v1/chat/completions", body=payload, headers=self.headers)
        r = conn.getresponse()
        assert r.status == 200, (r.status, r.read())
        return r

paths = {"gateway": Path(gateway, {"authorization": f"Bearer {key}"}), "direct": Path(direct, {})}

def whole(path):
    t = time.perf_counter()
    answer = json.loads(path.post(body).read())
    elapsed = time.perf_counter() - t
    assert answer["choices"][0]["message"]["content"] is not None
    return elapsed

def first_token(path):
    t = time.perf_counter()
    r = path.post(stream_body)
    first = None
    while line := r.readline():
        if first is None and line.startswith(b"data: {"):
            chunk = json.loads(line[6:])
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                first = time.perf_counter() - t
    assert first is not None, "no content token"
    return first

def measure(fn):
    times = {name: [] for name in paths}
    for name, client in paths.items():  # warm-up: connections, prompt cache
        for _ in range(3):
            fn(client)
    for _ in range(runs):
        for name, client in paths.items():
            times[name].append(fn(client) * 1000)
    return times

def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]

for title, fn in (("non-streaming, whole call", whole), ("streaming, time to first token", first_token)):
    times = measure(fn)
    g, d = times["gateway"], times["direct"]
    gm, dm, gp, dp = statistics.median(g), statistics.median(d), p95(g), p95(d)
    print(f"chat {title}:")
    print(f"  {'':8} {'median ms':>10} {'p95 ms':>10}")
    print(f"  {'gateway':8} {gm:10.2f} {gp:10.2f}")
    print(f"  {'direct':8} {dm:10.2f} {dp:10.2f}")
    print(f"  gateway added: median {gm - dm:+.2f} ms ({gm / dm:.3f}x), p95 {gp - dp:+.2f} ms ({gp / dp:.3f}x)")
PY
