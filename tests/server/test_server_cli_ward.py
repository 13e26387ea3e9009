"""The README's first command: the whole system on one machine, bounded with --for."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hospitalkit import ROOT
from openinfusion.cli import app
from openinfusion.server.broker import free_port


def test_the_whole_system_runs_and_stops_by_itself(tmp_path: Path) -> None:
    args = ["ward", "--pumps", "2", "--speed", "30", "--for", "4s", "--port", str(free_port())]
    args += ["--data", str(tmp_path / "ward"), "--library", str(ROOT / "examples/library/example-library.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "central station: http://127.0.0.1:" in result.output
    for role in ("nurse", "pharmacist", "biomed", "admin"):
        assert role in result.output
    last = result.output.strip().splitlines()[-1]
    logged, stored = [int(w) for w in last.replace(",", "").split() if w.isdigit()][-2:]
    assert logged == stored > 0


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ward", "--for", "soon", "--data", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert "--for" in result.output and "Traceback" not in result.output
    remote = CliRunner().invoke(app, ["ward", "--server", "http://h:8000", "--data", str(tmp_path / "w")])
    assert remote.exit_code == 1 and "--mqtt" in remote.output
