#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install openinfusion with its dev tools,
# pinned by requirements/constraints.txt (versions tested on Python 3.11). Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Graphviz renders the assurance case's GSN diagrams (openinfusion assurance); skipped where apt is absent.
if ! command -v dot >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq graphviz || (apt-get update -qq && apt-get install -y -qq graphviz)) >/dev/null 2>&1 || true
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.openinfusion-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (first run takes a minute)..."
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]" 2>&1 | grep -v -i warning || true
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[interop]" 2>&1 | grep -v -i warning || true
  .venv/bin/python -c "import openinfusion" 
  echo "$want" > "$stamp"
fi
# The independent HL7 peers of the interop tests (node-hl7-server/-client, pinned by package-lock.json).
peers=tests/interop/peers
installed="$peers/node_modules/.package-lock.json"
if command -v npm >/dev/null && { [ ! -f "$installed" ] || [ "$peers/package-lock.json" -nt "$installed" ]; }; then
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# Browser tests (central station): Debian's Chromium, never a browser download by Playwright; axe-core from npm.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "warning: could not install chromium"
fi
if [ ! -x /usr/sbin/mosquitto ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto) >/dev/null 2>&1 || echo "warning: could not install mosquitto"
fi
if [ ! -f .node/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null; then
  npm install --silent --no-audit --no-fund --prefix .node axe-core@4.14.1 >/dev/null 2>&1 || echo "warning: could not install axe-core"
fi
