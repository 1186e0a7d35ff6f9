# CyNodeAI developer entry points. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Install and start the dev environment: PostgreSQL, Podman socket, sandbox image, llama.cpp.
setup:
    scripts/bootstrap.sh

# Set up, then show the system working end to end.
demo: setup
    scripts/demo.sh

# Set up, then run lints and every test against the real components.
test *ARGS: setup
    scripts/run-tests.sh {{ARGS}}

# Only the multi-process end-to-end tests.
e2e: setup
    scripts/run-tests.sh -p cynode-e2e

# Latency of a trivial job through the node's worker API vs a raw `podman run --rm`; idle RSS of both agents.
bench-sandbox RUNS="30": setup
    scripts/bench-sandbox.sh {{RUNS}}

# Added latency of the worker API's inference route and of a sandbox's sidecar vs a direct model call.
bench-inference-proxy RUNS="50": setup
    scripts/bench-inference-proxy.sh {{RUNS}}

# Prompt-task latency end to end, and chat through the gateway (median/p95, time to first token),
# each against the same request sent straight to the model server (release, loopback).
bench-inference RUNS="20": setup
    scripts/bench-inference.sh {{RUNS}}

# Orchestrator benchmark: login and GET task req/s (wrk), dispatch jobs/s, idle RSS.
bench-orchestrator DURATION="10" JOBS="2000": setup
    scripts/bench-orchestrator.sh {{DURATION}} {{JOBS}}

# Authorization's cost: GET /v1/tasks/{id} req/s against a baseline revision (default: before
# teams), alternating rounds; also a viewer reading another member's task through a group binding.
bench-authz DURATION="10" ROUNDS="2" BASELINE="6e9c9e0": setup
    scripts/bench-authz.sh {{DURATION}} {{ROUNDS}} {{BASELINE}}

# MCP gateway benchmark: tools/call db.task.get (with its audit row) vs GET /v1/tasks/{id}.
bench-mcp DURATION="10": setup
    scripts/bench-mcp.sh {{DURATION}}

# Dispatcher benchmark: jobs/s with 1, 3 and 10 nodes and 10,000 queued jobs against a Rust worker
# double far faster than the orchestrator; claim latency (median/p95) and ns per placement.
bench-scheduler JOBS="10000" RUNS="1" NODES="1 3 10" CLAIMS="500": setup
    scripts/bench-scheduler.sh {{JOBS}} {{RUNS}} "{{NODES}}" {{CLAIMS}}

# Build the web console (console/dist, served by the user gateway at `/` when CONSOLE_DIR points there).
console:
    scripts/build-console.sh --force

# Only the browser tests of the web console (real Chromium against the real stack).
console-test: setup
    scripts/run-tests.sh -p cynode-e2e console

# The web console's speed in a real browser: gzip JS+CSS of the login and task list, time to
# interactive, and scrolling 1,000+ tasks, with the times asserted (no long task over 50 ms,
# interactive under 1 s); prints target/console-artifacts/metrics.json.
bench-console: setup
    CONSOLE_PERF_STRICT=1 scripts/run-tests.sh -p cynode-e2e console
    cat target/console-artifacts/metrics.json

fmt:
    cargo fmt --all

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
