"""``openinfusion train`` and ``panel`` refuse bad input with one line (servers run in test_panel_browser)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from openinfusion.cli import app


def test_unknown_exercise_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["train", "no_such_exercise", "--no-browser"])
    assert result.exit_code == 1
    assert "no such exercise file or name; the exercises are:" in result.stderr
    assert "occlusion_downstream" in result.stderr and "Traceback" not in result.output


def test_channel_count_is_bounded() -> None:
    result = CliRunner().invoke(app, ["panel", "--channels", "5", "--no-browser"])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_server_needs_its_broker_and_the_pump_credentials(tmp_path: Path) -> None:
    alone = CliRunner().invoke(app, ["panel", "--no-browser", "--server", "http://127.0.0.1:8000"])
    assert alone.exit_code == 1 and "--mqtt" in alone.stderr and "Traceback" not in alone.output
    certs = tmp_path / "certs"
    certs.mkdir()
    remote = ["panel", "--no-browser", "--server", "http://h:8000", "--mqtt", "mqtts://h:8883", "--certs", str(certs)]
    empty = CliRunner().invoke(app, remote)
    assert empty.exit_code == 1 and "--pump-id" in empty.stderr and "holds the keys of none" in empty.stderr
    bad_id = CliRunner().invoke(app, [*remote, "--pump-id", "../etc"])
    assert bad_id.exit_code == 1 and "--pump-id" in bad_id.stderr
    missing = CliRunner().invoke(app, [*remote, "--pump-id", "panel-1"])
    assert missing.exit_code == 1 and "panel-1.pem" in missing.stderr and "commission" in missing.stderr
