#!/usr/bin/env bash
# Builds the web console into console/dist (what the user gateway serves in the demo and the
# browser tests) when a source file is newer than the last build, after `npm ci` when its
# lockfile changed since the last install. Used by the bootstrap, scripts/run-tests.sh and
# `just console`; `--force` builds in any case.
set -euo pipefail
cd "$(dirname "$0")/../console"
stamp=node_modules/.cynode-lock-sha
sha=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sha" ]; then
  npm ci --no-audit --no-fund --ignore-scripts >&2
  printf '%s\n' "$sha" >"$stamp"
fi
if [ "${1:-}" != --force ] && [ -f dist/index.html ] &&
  [ -z "$(find . -path ./node_modules -prune -o -path ./dist -prune -o -type f -newer dist/index.html -print -quit)" ]; then
  echo "console: dist is up to date" >&2
  exit 0
fi
npm run build --silent >&2
