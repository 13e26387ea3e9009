"""``openinfusion train`` and ``panel`` refuse bad input with one line (servers run in test_panel_browser)."""

from __future__ import annotations

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
