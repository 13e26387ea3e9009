"""The slowest command of the breakage suite: every broken library, CSV folder and package of
``tests/druglib/test_breakage.py`` through every command that reads it, in one driver process, timed per command.
A benchmark, not a test: it reports, it does not assert (the suite asserts the 5 s limit).

Run: .venv/bin/python benchmarks/bench_breakage.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS / "druglib"), str(TESTS)]

import test_breakage as suite  # noqa: E402 - the suite's cases, from the tests folder


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="breakage-"))
    plan = []
    for i, (name, kind, build, _) in enumerate(suite.CASES):
        folder = root / f"case{i}"
        folder.mkdir()
        source = build(folder)
        for argv, out in suite._commands(kind, source, folder):
            plan.append({"case": name, "argv": argv, "output": None if out is None else str(out)})
        if kind != "package":
            plan.append({"case": name, "argv": ["library", "validate", str(source)], "output": None})
    (root / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(suite.DRIVER), str(root / "plan.json")], capture_output=True, text=True, check=True
    )
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    worst = max(rows, key=lambda r: r["seconds"])
    print(f"{len(suite.CASES)} broken inputs, {len(rows)} commands, exit codes {sorted({r['exit'] for r in rows})}")
    print(f"slowest: {worst['seconds']:.2f} s ({worst['case']}: {' '.join(worst['argv'][:2])})")


if __name__ == "__main__":
    main()
