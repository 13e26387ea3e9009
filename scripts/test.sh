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
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider --junitxml=out/junit.xml "$@"
echo "== traceability (hazard -> control -> requirement -> code -> test; each safety requirement's linked test kills a mutant of its linked code)"
# One strict run: a broken link or a safety requirement whose linked tests kill no mutant of its linked code fails it.
# Mutants missing from safety/mutation-cache.json run within --budget (default 480 s); what the budget leaves is a
# warning, never counted verified (docs/traceability.md).
.venv/bin/openinfusion trace --out out/trace
echo "== assurance case"; .venv/bin/openinfusion assurance --out out/assurance --junit out/junit.xml
