#!/usr/bin/env bash
# Benchmark of authorization's cost (not a test): GET /v1/tasks/{id} req/s under wrk, with this
# tree's orchestrator (roles, groups and rules loaded with the session, decided per request)
# against a baseline revision built from git (default: the last commit before teams), in the
# same run on the same machine, alternating A/B rounds so that drift hits both. Also the
# shared-project read (a viewer through a group binding reading another member's task), the
# path teams add. Loopback only.
# Usage: scripts/bench-authz.sh [DURATION_SECONDS] [ROUNDS] [BASELINE_REV]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
ROUNDS="${2:-2}"
BASELINE_REV="${3:-6e9c9e0}"
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "bench: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

ROOT=$(pwd)
BASE_DIR="$ROOT/target/bench-baseline"
echo "== building this tree and the baseline $BASELINE_REV (release; the baseline is cached in $BASE_DIR)" >&2
cargo build --release -q -p cynode-orchestrator
NEW_BIN="$ROOT/target/release/cynode-orchestrator"
if [ ! -d "$BASE_DIR/src" ]; then
  git worktree add --detach "$BASE_DIR/src" "$BASELINE_REV" >/dev/null
else
  git -C "$BASE_DIR/src" checkout -q --detach "$BASELINE_REV"
fi
(cd "$BASE_DIR/src" && CARGO_TARGET_DIR="$BASE_DIR/target" cargo build --release -q -p cynode-orchestrator)
BASE_BIN="$BASE_DIR/target/release/cynode-orchestrator"

WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DBS[@]}"; do
    psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ADMIN_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$ADMIN_PW" > "$WORK/admin"
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/psk"
head -c 32 /dev/urandom | base64 | tr -d '/+=' > "$WORK/jwt"

# Starts BIN on a fresh database; sets GW and ORCH.
start() {
  local bin=$1 db="cynode_bench_authz_$$_${#DBS[@]}"
  psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "CREATE DATABASE $db"; DBS+=("$db")
  local url; url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$CYNODE_TEST_DATABASE_URL" "$db")
  local cp_port gw_port; cp_port=$(free_port); gw_port=$(free_port)
  GW="http://127.0.0.1:$gw_port"
  DATABASE_URL="$url" JWT_SECRET_FILE="$WORK/jwt" NODE_REGISTRATION_PSK_FILE="$WORK/psk" \
  BOOTSTRAP_ADMIN_PASSWORD_FILE="$WORK/admin" CONTROL_PLANE_LISTEN_ADDR="127.0.0.1:$cp_port" \
  USER_GATEWAY_LISTEN_ADDR="127.0.0.1:$gw_port" ORCHESTRATOR_PUBLIC_URL="http://127.0.0.1:$cp_port" \
  RATE_LIMIT_PER_MINUTE=1000000000 DATABASE_POOL_SIZE=32 RUST_LOG=warn \
    "$bin" all 2>>"$WORK/orchestrator.log" & ORCH=$!; PIDS+=("$ORCH")
  for _ in $(seq 1 200); do curl -sf "$GW/healthz" >/dev/null && return 0; sleep 0.1; done
  cat "$WORK/orchestrator.log" >&2; exit 1
}
stop() { kill "$ORCH"; wait "$ORCH" 2>/dev/null || true; }
login() {
  curl -sf "$GW/v1/auth/login" -H 'content-type: application/json' -d "{\"handle\":\"$1\",\"password\":\"$2\"}" | json '["access_token"]'
}
rps() { awk '/Requests\/sec/ {print $2}'; }
errors() { awk '/Non-2xx/ {n=$NF} END {print n+0}'; }
measure() {  # TOKEN URL -> "rps non2xx"
  local out; out=$(wrk -t2 -c32 -d"${DURATION}s" -H "Authorization: Bearer $1" "$2")
  echo "$(rps <<<"$out") $(errors <<<"$out")"
}

# One round: today's owner read on BIN; with the new binary also the shared-project read.
round() {
  local bin=$1 label=$2
  start "$bin"
  local admin task
  admin=$(login admin "$ADMIN_PW")
  task=$(curl -sf "$GW/v1/tasks" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"prompt":"echo bench","input_mode":"script"}' | json '["id"]')
  read -r r e < <(measure "$admin" "$GW/v1/tasks/$task")
  echo "$label owner $r $e" >> "$WORK/results"
  if [ "$label" = new ]; then
    local pw="bench-password-$RANDOM$RANDOM" h='-H' a="authorization: Bearer $admin" c='content-type: application/json'
    for u in alice bob; do curl -sf "$GW/v1/users" $h "$a" $h "$c" -d "{\"handle\":\"$u\",\"password\":\"$pw\"}" >/dev/null; done
    curl -sf "$GW/v1/groups" $h "$a" $h "$c" -d '{"slug":"ml"}' >/dev/null
    curl -sf "$GW/v1/groups/ml/members" $h "$a" $h "$c" -d '{"user":"alice"}' >/dev/null
    curl -sf "$GW/v1/groups" $h "$a" $h "$c" -d '{"slug":"readers"}' >/dev/null
    curl -sf "$GW/v1/groups/readers/members" $h "$a" $h "$c" -d '{"user":"bob"}' >/dev/null
    curl -sf "$GW/v1/projects" $h "$a" $h "$c" -d '{"slug":"vision","display_name":"Vision"}' >/dev/null
    curl -sf "$GW/v1/role-bindings" $h "$a" $h "$c" -d '{"role":"member","subject_type":"group","subject":"ml","scope_type":"project","scope_id":"vision"}' >/dev/null
    curl -sf "$GW/v1/role-bindings" $h "$a" $h "$c" -d '{"role":"viewer","subject_type":"group","subject":"readers","scope_type":"project","scope_id":"vision"}' >/dev/null
    local alice bob project shared
    alice=$(login alice "$pw"); bob=$(login bob "$pw")
    project=$(curl -sf "$GW/v1/projects/vision" $h "authorization: Bearer $alice" | json '["id"]')
    shared=$(curl -sf "$GW/v1/tasks" $h "authorization: Bearer $alice" $h "$c" \
      -d "{\"prompt\":\"echo shared\",\"input_mode\":\"script\",\"project_id\":\"$project\"}" | json '["id"]')
    read -r r e < <(measure "$bob" "$GW/v1/tasks/$shared")
    echo "$label shared $r $e" >> "$WORK/results"
  fi
  stop
}

for i in $(seq 1 "$ROUNDS"); do
  echo "== round $i/$ROUNDS: baseline, then this tree (${DURATION}s each, 2 threads, 32 connections)" >&2
  round "$BASE_BIN" baseline
  round "$NEW_BIN" new
done

python3 - "$WORK/results" "$BASELINE_REV" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
def med(label, case):
    xs = [float(r[2]) for r in rows if r[0] == label and r[1] == case]
    return statistics.median(xs) if xs else float("nan"), xs
errs = sum(int(r[3]) for r in rows)
base, bx = med("baseline", "owner")
new, nx = med("new", "owner")
shared, sx = med("new", "shared")
print(f"GET /v1/tasks/{{id}} req/s, median of rounds (each: {', '.join(f'{x:.0f}' for x in bx)} / {', '.join(f'{x:.0f}' for x in nx)})")
print(f"  baseline {sys.argv[2]} (owner, no RBAC):      {base:9.0f}")
print(f"  this tree, owner (system admin):            {new:9.0f}   ratio {new/base:.2f}")
print(f"  this tree, viewer via binding, shared task: {shared:9.0f}   ratio {shared/base:.2f}")
print(f"  non-2xx answers in all runs: {errs}")
if errs:
    sys.exit("bench: some requests failed; the figures are not comparable")
PY
