#!/usr/bin/env bash
# Runs lints and every test against the real components described in devenv.env.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
[ -f "$DEV_HOME/devenv.env" ] || { echo "run-tests: $DEV_HOME/devenv.env is missing: run scripts/bootstrap.sh" >&2; exit 1; }
set -a; . "$DEV_HOME/devenv.env"; set +a

# Each integration test makes its own database; drop what earlier runs left behind. A drop can
# fail while autovacuum works on that database (its worker is the superuser's, which FORCE may
# not end): such a leftover is only disk space, so it is reported and left to the next run.
psql "$CYNODE_TEST_DATABASE_URL" -qAtX \
  -c "SELECT datname FROM pg_database WHERE datname LIKE 'cynode\_t\_%'" |
  while read -r db; do
    psql "$CYNODE_TEST_DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" 2>/dev/null ||
      echo "run-tests: left database $db for the next run (busy)" >&2
  done

echo "== lint" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The sidecar's binary target builds only with its feature (see agents/inference-proxy).
cargo clippy -p cynode-inference-proxy --features sidecar --all-targets --quiet -- -D warnings
# Nix cannot build here (no binary cache); at least every module and the flake must parse.
git ls-files '*.nix' | while read -r f; do nix-instantiate --parse "$f" >/dev/null; done

echo "== build" >&2
# Integration tests start the real binaries of other crates; build them all first.
cargo build --workspace --bins --quiet
# The inference sidecar, statically linked, next to the other binaries.
scripts/build-inference-proxy.sh

echo "== test" >&2
# Keep going on failure: the summary below must still be printed.
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$DEV_HOME/last-test.log"
status=${PIPESTATUS[0]}
set -e
# One closing line over libtest and cucumber results: "summary: N passed, N failed".
awk '
  /^test result: / || /^[0-9]+ scenarios? \(/ {
    scenario = ($2 ~ /^scenarios?$/)
    for (i = 1; i < NF; i++) {
      n = $i; gsub(/[^0-9]/, "", n)
      if ($(i + 1) ~ /^passed/) { if (scenario) sp += n; else tp += n }
      if ($(i + 1) ~ /^failed/) { if (scenario) sf += n; else tf += n }
    }
  }
  END {
    printf "== %d tests and %d cucumber scenarios passed\n", tp, sp
    printf "summary: %d passed, %d failed\n", tp + sp, tf + sf
  }' "$DEV_HOME/last-test.log"
exit "$status"
