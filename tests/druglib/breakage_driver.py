"""Runs the breakage suite's commands in one process (one interpreter start for all of them).

Usage: ``python breakage_driver.py PLAN.json``. The plan is a list of ``{"case", "argv", "output", "stdin"}``;
for each command this prints one JSON line ``{"case", "argv", "exit", "stderr", "seconds", "written"}`` as
soon as it has run, so that the test, reading the lines, can tell which command hangs (its watchdog).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from openinfusion.cli import app


def main(plan_path: str) -> None:
    runner = CliRunner()
    for step in json.loads(Path(plan_path).read_text(encoding="utf-8")):
        start = time.perf_counter()
        result = runner.invoke(app, step["argv"], input=step.get("stdin"), catch_exceptions=True)
        seconds = time.perf_counter() - start
        crash = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            crash = f"{type(result.exception).__name__}: {result.exception}"
        line = {
            "case": step["case"],
            "argv": step["argv"],
            "exit": result.exit_code,
            "stderr": result.stderr,
            "crash": crash,
            "seconds": seconds,
            "written": step["output"] is not None and Path(step["output"]).exists(),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
