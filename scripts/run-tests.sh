#!/usr/bin/env bash
# Runs lints and every test against the real components described in devenv.env.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "run-tests: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a

echo "== lint (at ${SECONDS} s)" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The sidecar's binary target builds only with its feature (see agents/inference-proxy).
cargo clippy -p cynode-inference-proxy --features sidecar --all-targets --quiet -- -D warnings
# Nix cannot build here (no binary cache); at least every module and the flake must parse.
git ls-files '*.nix' | while read -r f; do nix-instantiate --parse "$f" >/dev/null; done

echo "== build (at ${SECONDS} s)" >&2
# Integration tests start the real binaries of other crates; build them all first.
cargo build --workspace --bins --quiet
# The inference sidecar, statically linked, next to the other binaries.
scripts/build-inference-proxy.sh

# The web console the browser tests load (console.rs serves console/dist), rebuilt when any of
# its sources is newer than the last build: a stale bundle would test yesterday's console.
scripts/build-console.sh
[ -d e2e/browser/node_modules ] || (cd e2e/browser && npm ci --no-audit --no-fund --ignore-scripts)

echo "== test (at ${SECONDS} s)" >&2
# Each test that needs a database makes its own (`cynode_t_*`), most of them as copies of a
# migrated template (`cynode_tmpl_*`) the first such test makes. Drop what earlier runs left,
# templates included, so this run migrates a template of today's schema. A drop can fail while
# autovacuum works on that database (its worker is the superuser's, which FORCE may not end):
# such a leftover is only disk space, so it is reported and left to the next run.
psql "$CYNODE_TEST_DATABASE_URL" -qAtX \
  -c "SELECT datname FROM pg_database WHERE datname LIKE 'cynode\_t\_%' OR datname LIKE 'cynode\_tmpl\_%'" |
  while read -r db; do
    psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" 2>/dev/null ||
      echo "run-tests: left database $db for the next run (busy)" >&2
  done

# The tests share one PostgreSQL: sample its connections while they run, and fail the run if
# they came within reach of its limit (a runner that opens too many makes other tests fail at
# random, so this is checked, not hoped).
peak_file=$(mktemp)
max_connections=$(psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "SHOW max_connections")
(
  peak=0
  while :; do
    n=$(psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'" 2>/dev/null || echo 0)
    if [ "$n" -gt "$peak" ]; then peak=$n; echo "$peak" >"$peak_file"; fi
    sleep 0.5
  done
) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true; rm -f "$peak_file"' EXIT

# Keep going on failure: the summary below must still be printed.
set +e
# No `--workspace`: the root manifest is a virtual workspace, so every member runs by default,
# while `-p <crate>` from the arguments (`just e2e`) narrows it (with `--workspace` it did not).
cargo nextest run --no-fail-fast "$@" 2>&1 | tee "$DEV_HOME/last-test.log"
status=${PIPESTATUS[0]}
set -e
kill "$sampler" 2>/dev/null || true
peak=$(cat "$peak_file" 2>/dev/null || echo 0)
# Leave a fifth of the connections for the orchestrators' own pools to grow into and for
# superuser sessions: a peak above that is a suite that can exhaust PostgreSQL under load.
limit=$((max_connections * 4 / 5))
echo "== peak PostgreSQL client connections during the tests: $peak of $max_connections (limit $limit)" >&2
if [ "${peak:-0}" -gt "$limit" ]; then
  echo "run-tests: the tests held $peak connections at once, more than $limit: bound a runner's concurrency or pool sizes" >&2
  status=1
fi
echo "== done in ${SECONDS} s" >&2
# One closing line over nextest's and cucumber's results: "summary: N passed, N failed".
# Scenarios are counted on their own; each area's runner is also one of nextest's tests.
awk '
  / tests? run: / {
    for (i = 1; i < NF; i++) {
      n = $i; gsub(/[^0-9]/, "", n)
      if ($(i + 1) ~ /^passed/) tp += n
      if ($(i + 1) ~ /^failed/) tf += n
      if ($(i + 1) ~ /^timed/) tf += n
    }
  }
  /^ *[0-9]+ scenarios? \(/ {
    for (i = 1; i < NF; i++) {
      n = $i; gsub(/[^0-9]/, "", n)
      if ($(i + 1) ~ /^passed/) sp += n
      if ($(i + 1) ~ /^failed/) sf += n
    }
  }
  END {
    printf "== %d tests and %d cucumber scenarios passed\n", tp, sp
    printf "summary: %d passed, %d failed\n", tp + sp, tf + sf
  }' "$DEV_HOME/last-test.log"
exit "$status"
