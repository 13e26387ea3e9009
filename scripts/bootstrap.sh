#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install openinfusion with its dev tools,
# pinned by requirements/constraints.txt (versions tested on Python 3.11). Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.openinfusion-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (first run takes a minute)..."
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]" 2>&1 | grep -v -i warning || true
  .venv/bin/python -c "import openinfusion" 
  echo "$want" > "$stamp"
fi
# Browser tests (front panel): Debian's Chromium (never a tool's own download) and axe-core, pinned.
# A failure here is a warning: everything else still runs, and the browser tests say what is missing.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo "sudo -n")
  { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null 2>&1 \
    || { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq > /dev/null 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null 2>&1; }; } \
    || echo "warning: could not install chromium (apt-get); the browser tests will fail" >&2
fi
if [ ! -f .node/node_modules/axe-core/axe.min.js ]; then
  npm install --silent --no-audit --no-fund --prefix .node axe-core@4.14.1 > /dev/null 2>&1 \
    || echo "warning: could not install axe-core (npm); the browser tests will fail" >&2
fi
