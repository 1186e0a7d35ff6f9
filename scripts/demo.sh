#!/usr/bin/env bash
# The demo: each real component answering, then the Phase 1 happy path with the real processes.
# An orchestrator and a node manager (which starts the worker API) run in the foreground of this
# script and are stopped when it ends; the user side is the real `cynork` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
set -a; . "$DEV_HOME/devenv.env"; set +a
DEMO="$DEV_HOME/demo"
BIN="$PWD/target/debug"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Echoes the command as one would type it (quoting only what needs it), then runs it.
run() {
  local arg line='$'
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@-]+$ ]]; then line+=" $arg"; else line+=" ${arg@Q}"; fi
  done
  printf '\033[2m%s\033[0m\n' "$line"
  "$@"
}

say "PostgreSQL"
psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c 'SELECT version()'

say "Podman REST API on $CYNODE_TEST_PODMAN_SOCKET"
curl -fsS --unix-socket "$CYNODE_TEST_PODMAN_SOCKET" http://d/v4.0.0/libpod/version |
  python3 -c 'import json,sys; v=json.load(sys.stdin); print("podman", v["Version"], "api", v["ApiVersion"])'

say "Inference: $CYNODE_TEST_INFERENCE_MODEL at $CYNODE_TEST_INFERENCE_URL"
curl -fsS "$CYNODE_TEST_INFERENCE_URL/v1/chat/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$CYNODE_TEST_INFERENCE_MODEL\",\"max_tokens\":40,\"messages\":[{\"role\":\"user\",\"content\":\"In one sentence, what is a sandbox?\"}]}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'

say "Building the binaries and the web console"
cargo build --quiet --bins
scripts/build-inference-proxy.sh
scripts/build-console.sh

STACK="$DEMO"
. scripts/stack.sh
trap stack_stop EXIT
stack_prepare cynode_demo

say "Orchestrator (control plane :12082, user gateway :12080); secrets generated in $DEMO"
stack_start_orchestrator
printf 'readyz before any node: '; curl -sS http://127.0.0.1:12082/readyz; echo

say "Node manager (registers, fetches config, starts the worker API on :12090, checks inference, acks)"
stack_start_node
printf 'readyz with the node ready: '; curl -sS http://127.0.0.1:12082/readyz; echo

say "cynork: the user's side"
export XDG_CONFIG_HOME="$DEMO/cynork-config" CYNORK_GATEWAY_URL=http://127.0.0.1:12080 PATH="$BIN:$PATH"
run cynork status
printf '\033[2m$ cynork auth login -u admin --password-stdin < admin-password\033[0m\n'
cynork auth login -u admin --password-stdin <"$DEMO/admin-password"
run cynork auth whoami
run cynork task create --name hello --wait \
  --command 'echo "hello from a sandbox on $(hostname)"' \
  --command 'grep CapEff /proc/self/status' \
  --command 'ls -ld /workspace; cat /etc/hostname >/workspace/proof.txt && echo wrote /workspace/proof.txt'
run cynork task logs hello

say "Locked down: container root is an unprivileged host uid, no new user namespaces, limits in the result"
run cynork task create --name lockdown --wait \
  --command 'echo "uid_map: $(cat /proc/self/uid_map)"' \
  --command 'unshare -U true 2>/dev/null && echo "unshare -U: allowed" || echo "unshare -U: refused"'
printf '\033[2m$ cynork -o json task result lockdown  # .jobs[0].result.limits\033[0m\n'
cynork -o json task result lockdown |
  python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["jobs"][0]["result"]["limits"]))'

say "Inference from a sandbox: a pod with loopback only, the node's model through its sidecar"
cat >"$DEMO/ask-model.sh" <<'SH'
echo "interfaces: $(ls /sys/class/net)   OLLAMA_BASE_URL=$OLLAMA_BASE_URL"
body='{"model":"MODEL","max_tokens":30,"messages":[{"role":"user","content":"In one sentence, what is a sandbox?"}]}'
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "${#body}" "$body" |
  nc 127.0.0.1 11434 | sed -n 's/.*"content":"\([^"]*\)".*/the model says: \1/p'
SH
sed -i "s/MODEL/$CYNODE_TEST_INFERENCE_MODEL/" "$DEMO/ask-model.sh"
run cynork task create --name ask-model --wait --use-inference --script "$DEMO/ask-model.sh"

say "A prompt task: the Project Manager model (the node's model) answers it; nothing runs as shell"
run cynork task create --name ask --wait 'Tell me what model you are'
run cynork task steps ask
run cynork task list
run cynork auth logout

say "MCP: a sandbox agent calls tools through its node; it holds no token, and every call is audited"
cynork auth login -u admin --password-stdin <"$DEMO/admin-password" >/dev/null
{ cat scripts/mcp-shell-client.sh; cat <<'SH'; } >"$DEMO/mcp-agent.sh"
ids="\"task_id\":\"$CYNODE_TASK_ID\",\"job_id\":\"$CYNODE_JOB_ID\""
echo "tokens in my environment: $(env | grep -cE 'eyJ[A-Za-z0-9_-]+[.]eyJ')"
mcp memory.add "{$ids,\"key\":\"plan\",\"content\":\"count the files\"}" | grep -o '"structuredContent":{[^}]*}'
mcp memory.retrieve "{$ids,\"key\":\"plan\"}" | grep -o '"content":"[^"]*"' | tail -1
mcp db.task.get "{\"task_id\":\"$CYNODE_TASK_ID\"}" | grep -o '"error":{[^}]*}'
mcp artifact.put "{\"task_id\":\"$CYNODE_TASK_ID\",\"path\":\"notes/plan.txt\",\"content_type\":\"text/plain\",\"content_bytes_base64\":\"$(echo 'count the files' | base64)\"}" | grep -o '"size_bytes":[0-9]*'
SH
run cynork task create --name mcp-agent --wait --use-mcp --script "$DEMO/mcp-agent.sh"
run cynork task logs mcp-agent
run cynork task artifacts list mcp-agent
run cynork audit mcp -l 4

say "Preferences: scopes fold system < user < project < task into what a task runs with"
run cynork prefs set --scope-type system --key output.summary_style --value '"long"' --reason demo
run cynork prefs set --scope-type user --key output.summary_style --value '"concise"'
MCP_TASK=$(cynork -o json task get mcp-agent | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
run cynork prefs effective --task-id "$MCP_TASK"
cynork auth logout >/dev/null

say "Chat: the OpenAI-compatible gateway with a personal API key (what Open WebUI or the openai package use)"
cynork auth login -u admin --password-stdin <"$DEMO/admin-password" >/dev/null
CHAT_KEY=$(cynork -o json apikey create --name demo-chat 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
cynork auth logout >/dev/null
printf '\033[2m$ curl -s :12080/v1/models -H "Authorization: Bearer $CHAT_KEY"\033[0m\n'
curl -sS http://127.0.0.1:12080/v1/models -H "Authorization: Bearer $CHAT_KEY"; echo
export CYNORK_API_KEY="$CHAT_KEY"
run cynork chat --model "$CYNODE_TEST_INFERENCE_MODEL" -m 'Say hello in five words.'
unset CHAT_KEY CYNORK_API_KEY

say "Teams: users, a group, a shared project and roles, one authorization check, an audit"
cynork auth login -u admin --password-stdin <"$DEMO/admin-password" >/dev/null
TEAM_PW="team-demo-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
for who in alice bob carol; do
  printf '\033[2m$ cynork user create %s --password-stdin\033[0m\n' "$who"
  printf '%s\n' "$TEAM_PW" | cynork user create "$who" --password-stdin
done
run cynork group create ml --display-name "Machine learning"
run cynork group add ml alice
run cynork project create --slug vision --title "Computer vision"
run cynork project rbac grant vision --role member --group ml
run cynork project rbac grant vision --role viewer --user bob
run cynork project rbac list vision
# Each user has their own cynork config (and session).
as_user() { local who=$1; shift; XDG_CONFIG_HOME="$DEMO/cynork-$who" "$@"; }
for who in alice bob carol; do
  printf '%s\n' "$TEAM_PW" | as_user "$who" cynork auth login -u "$who" --password-stdin >/dev/null
done
printf '\033[2m# alice (member through ml):\033[0m\n'
as_user alice run cynork project set vision
as_user alice run cynork task create --name detect --wait --command 'echo "alice ran this in vision"'
DETECT=$(as_user alice cynork -o json task get detect | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
printf '\033[2m# bob (viewer) sees it, with its creator, and may not cancel it:\033[0m\n'
as_user bob run cynork task list --limit 3
as_user bob run cynork task cancel "$DETECT" -y || echo "(refused: exit $?)"
printf '\033[2m# carol (no role in vision) is told it does not exist:\033[0m\n'
as_user carol run cynork task get "$DETECT" || echo "(exit $?)"
printf '\033[2m# the admin disables bob: his session stops at once\033[0m\n'
run cynork user disable bob
as_user bob run cynork task list || echo "(exit $?)"
run cynork audit list -l 6
cynork auth logout >/dev/null

say "Operating nodes (admin): placement by requirements, drain, telemetry, metrics"
cynork auth login -u admin --password-stdin <"$DEMO/admin-password" >/dev/null
run cynork node list
run cynork task create --name needs-gpu --require-gpu --command 'echo never runs here'
sleep 1
run cynork task get needs-gpu
run cynork task cancel needs-gpu -y
run cynork node drain local-node --deadline 600
run cynork task create --name after-drain --command 'echo ran once the node was back'
sleep 1
run cynork task get after-drain
run cynork node undrain local-node
run cynork task result after-drain --wait
printf '\033[2m$ cynork -o json node get local-node  # .telemetry.stats (pulled from the node)\033[0m\n'
cynork -o json node get local-node |
  python3 -c 'import json,sys; t=json.load(sys.stdin).get("telemetry"); print(json.dumps(t and t["stats"]))'
for port in 12085 12095 12096; do
  printf '\033[2m$ curl -s 127.0.0.1:%s/metrics | grep ...\033[0m\n' "$port"
  curl -fsS "http://127.0.0.1:$port/metrics" |
    grep -E '^cynode_(jobs|nodes|node_healthy|node_capability_reports_total|worker_sandboxes_running|worker_sandbox_run_seconds_count)' | head -8
done
cynork auth logout >/dev/null

say "Usage per day (what the console's API keys page shows)"
cynork auth login -u admin --password-stdin <"$DEMO/admin-password" >/dev/null
run cynork usage

say "The web console: served by the user gateway at /, same origin as the API"
printf '\033[2m$ curl -sI http://127.0.0.1:12080/tasks | grep -i ...\033[0m\n'
curl -fsSI http://127.0.0.1:12080/tasks | grep -iE '^(HTTP|content-type|content-security-policy|x-frame-options)'
cynork auth logout >/dev/null

say "Done. Logs: $DEMO/orchestrator.log, $DEMO/node-manager.log"
printf '\nWeb console: \033[1mhttp://127.0.0.1:12080/\033[0m  user \033[1madmin\033[0m  password \033[1m%s\033[0m (also in %s)\n' \
  "$(cat "$DEMO/admin-password")" "$DEMO/admin-password"
# At a terminal the stack stays up for the console until Enter; in CI and pipes it stops now.
if [[ -t 0 ]]; then
  read -r -p "Press Enter to stop the stack. " _
fi
