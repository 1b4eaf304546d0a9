#!/usr/bin/env bash
# One command from a fresh Debian machine to a result. Idempotent: run it as often as you like.
#
#   bash scripts/bootstrap.sh demo      install everything, run the comparison matrix, write the report
#   bash scripts/bootstrap.sh test      install everything, run the test suite (what CI runs)
#   bash scripts/bootstrap.sh install   install only
#   bash scripts/bootstrap.sh bench     install everything, run the benchmarks (not part of CI)
#
# System packages (Debian): rabbitmq-server (the real broker; we run it as our own node, never the
# system service), iptables (kernel faults, used only as root inside our own network namespaces),
# python3-venv. Python packages go into ./.venv from pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*  (run as root or install sudo)"; exit 2; fi
}

install_system() {
  local need=()
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
  command -v iptables >/dev/null 2>&1 || need+=(iptables)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
  # headless Chromium: the report's real-browser test (skipped with a reason if absent)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  [ ${#need[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${need[*]} and this is not a Debian-like system: install them with your package manager"; exit 2
  fi
  log "installing Debian packages: ${need[*]}"
  # The package would start the system-wide rabbitmq-server (and epmd on all interfaces) where
  # systemd or init scripts run. We only ever run our own loopback node, so forbid service
  # starts for the duration of the install (Debian's policy-rc.d mechanism), if nobody set one.
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
    made=1; trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT   # removed even if apt fails
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ $made = 1 ]; then as_root rm -f "$policy"; trap - EXIT; fi
}

install_python() {
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
  local stamp="$VENV/.rabbit-chaos-installed" want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing the Python package and its dependencies into .venv"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

# Node.js for the example client in another language (examples/node-amqplib): Debian's nodejs and
# npm if `node` is missing, then `npm ci` from its lock file, skipped while node_modules matches
# the lock. An npm failure is reported, not fatal: only the Node example's tests need it, and
# they skip with the reason.
install_node() {
  local dir="$ROOT/examples/node-amqplib"
  [ -f "$dir/package-lock.json" ] || return 0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { log "node/npm missing and no apt-get: install Node.js >= 18"; return 0; }
    log "installing Debian packages: nodejs npm"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  local stamp="$dir/node_modules/.rabbit-chaos-lock" want
  want=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "installing the Node example's packages (npm ci in examples/node-amqplib)"
  if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "$want" > "$stamp"
  else
    log "npm ci failed in examples/node-amqplib: the Node example's tests will be skipped"
  fi
}

install_all() { install_system; install_python; install_node; }

cmd=${1:-demo}; shift || true
case "$cmd" in
  install) install_all ;;
  test)
    install_all
    log "lint: ruff, mypy"
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy" harness
    # unit + report + proxy + integration; soaks and benchmarks are not part of this
    "$VENV/bin/python" -m pytest -m "not slow" -q --ignore=scenarios "$@"
    # the scenario files, for the best-practice strategy of every library (one broker per xdist
    # worker); CHAOS_SHARD=K/N runs a deterministic 1/N of them (a CI matrix of N jobs)
    log "scenarios: one best-practice strategy per library"
    exec "$VENV/bin/python" -m pytest scenarios/ -q -n 2 -p no:cacheprovider \
      --chaos-clients pika-best,pika-async-best,kombu-best,aio-pika-best,aioamqp-best \
      ${CHAOS_SHARD:+--chaos-shard "$CHAOS_SHARD"} ;;
  demo)
    install_all
    # the demo shows a comparison: its baselines fail by design, so a failed cell is no error here
    exec "$VENV/bin/rabbit-chaos" matrix --no-fail-exit "$@" ;;
  bench)
    install_all
    exec "$VENV/bin/rabbit-chaos" bench all "$@" ;;
  *) log "unknown command '$cmd': use demo | test | install | bench"; exit 2 ;;
esac
