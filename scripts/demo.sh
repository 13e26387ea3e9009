#!/usr/bin/env bash
# The main job: set up, then run the demo on virtual hardware and print where its outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/openinfusion demo --out out/demo "$@"
