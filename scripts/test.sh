#!/usr/bin/env bash
# The whole test suite: set up, lint (ruff), type-check (mypy --strict), tests (pytest), traceability.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "== mypy --strict"; .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports --no-cache
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@"
echo "== traceability"; .venv/bin/openinfusion trace --out out/trace
