#!/usr/bin/env bash
# Inference through the orchestrator against the same model called directly, in one run on
# loopback, release build (the ratios against the same-run baselines are the figures).
# Usage: scripts/bench-inference.sh [RUNS] (default 50).
#
# Sections: chat (OpenAI-compatible gateway). The prompt-task section goes below its own
# header; each section leaves the stack as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-50}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench-inference: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
for tool in curl psql python3; do
  command -v "$tool" >/dev/null || { echo "bench-inference: $tool is not installed" >&2; exit 1; }
done

echo "== build (release)" >&2
cargo build --release --quiet -p cynode-orchestrator -p cynode-node-manager -p cynode-worker-api
BIN="$PWD/target/release"
STACK="$DEV_HOME/bench-inference"
. scripts/stack.sh
trap stack_stop EXIT
stack_prepare cynode_bench_inference
stack_start_orchestrator
stack_start_node
GATEWAY=http://127.0.0.1:12080

# ---------------------------------------------------------------------------------------------
# chat: POST /v1/chat/completions through the user gateway (auth by API key, thread, redaction,
# audit, usage, node routing, the worker API) against the same request straight to the model
# server. Non-streaming: median and p95 of the whole call. Streaming: time to the first content
# token. Requests alternate between the two paths so that drift hits both alike.
# ---------------------------------------------------------------------------------------------
echo "== chat: gateway vs direct ($RUNS requests each)" >&2
umask 077
ACCESS=$(curl -fsS -H 'content-type: application/json' \
  --data-binary "{\"handle\":\"admin\",\"password\":\"$(cat "$STACK/admin-password")\"}" \
  "$GATEWAY/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
printf 'Authorization: Bearer %s\n' "$ACCESS" >"$STACK/access.header"
curl -fsS -H @"$STACK/access.header" -H 'content-type: application/json' \
  --data-binary '{"name":"bench-inference"}' "$GATEWAY/v1/users/me/api-keys" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"], end="")' >"$STACK/api-key"

python3 - "$RUNS" "$GATEWAY" "$CYNODE_TEST_INFERENCE_URL" "$CYNODE_TEST_INFERENCE_MODEL" "$STACK/api-key" <<'PY'
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
