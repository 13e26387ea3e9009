#!/usr/bin/env bash
# The main job: set up, then run the whole system on this machine with no setup: the hospital server
# (SQLite, in-process pump link), a virtual ward of 6 pumps with scripted nurses at 10x speed, and the
# central station URL with one-time passwords. Runs until Ctrl-C; `bash scripts/demo.sh --for 60s` stops
# by itself (CI). The single-pump scenario demo is `openinfusion demo --out out/demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/openinfusion ward --pumps 6 --speed 10 "$@"
