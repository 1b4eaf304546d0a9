#!/usr/bin/env bash
# Make the pinned virtualenvs the bug clients run in (idempotent: a venv whose pinned
# distribution already has the pinned version is left alone).
#
#   examples/bugs/setup.sh            # all venvs
#
# The pika clients run in the project's own venv (.venv: pika 1.4.4, pinned in pyproject.toml);
# the pitfalls they reproduce are in every pika 1.x. The kombu and aio-pika bugs are version
# bugs, so each version gets its own venv beside this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"

make_venv() {  # make_venv DIR DIST VERSION
  local dir="$here/$1" dist="$2" version="$3"
  if [[ -x "$dir/bin/python" ]] \
     && [[ "$("$dir/bin/python" -c "import importlib.metadata as m; print(m.version('$dist'))" 2>/dev/null)" == "$version" ]]; then
    echo "setup: $1 has $dist==$version"
    return
  fi
  echo "setup: creating $1 with $dist==$version"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet "$dist==$version"
  "$dir/bin/python" -c "import importlib.metadata as m; print('setup: $1:', '$dist', m.version('$dist'))"
}

make_venv .venv-kombu54 kombu 5.4.2       # confirm_publish without a confirm deadline (5.5.0 added confirm_timeout)
make_venv .venv-kombu55 kombu 5.5.0       # the release that added Producer.publish(confirm_timeout=)
make_venv .venv-aiopika943 aio-pika 9.4.3 # RobustChannel keeps queues in a WeakSet (aio-pika #594)
make_venv .venv-aiopika955 aio-pika 9.5.5 # a plain set since PR #666
