"""Verification outputs and the ``verify`` commands: deterministic files, a readable page, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli.lab import app
from openinfusion.lab import report
from openinfusion.lab.accuracy import AccuracyResult, run_accuracy
from openinfusion.lab.rig import Setup
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.units import FlowRate


@pytest.fixture(scope="module")
def lvp_25() -> AccuracyResult:
    return run_accuracy(Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(25)), seed=1)


def test_the_trumpet_outputs_are_the_same_bytes_every_time(lvp_25: AccuracyResult, tmp_path: Path) -> None:
    first = report.write_trumpet(tmp_path / "a", [lvp_25], 1, "openinfusion verify trumpet", tmp_path / "fa")
    second = report.write_trumpet(tmp_path / "b", [lvp_25], 1, "openinfusion verify trumpet", tmp_path / "fb")
    assert [p.name for p in first] == ["trumpet.json", "report.html", "trumpet-lvp-25.png"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_the_trumpet_json_holds_the_method_and_every_window(lvp_25: AccuracyResult, tmp_path: Path) -> None:
    (path, page, *_) = report.write_trumpet(tmp_path, [lvp_25], 7, "cmd")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == "openinfusion.lab.trumpet/1" and data["seed"] == 7
    assert data["method"]["windows_min"] == [2.0, 5.0, 11.0, 19.0, 31.0]
    (row,) = data["results"]
    assert [w["window_min"] for w in row["trumpet"]] == [2.0, 5.0, 11.0, 19.0, 31.0]
    assert len(row["startup_curve"]["flow_ml_h"]) == 240  # 2 h of 0.5-min intervals
    assert row["published_limit_percent"] == 5.0
    html = page.read_text(encoding="utf-8")
    assert "Not for clinical use" in html and html.count("<svg") == 1 and "Infusomat" in html


def test_a_negative_seed_is_one_line_and_exit_code_1() -> None:
    result = CliRunner().invoke(app, ["verify", "trumpet", "--seed", "-1", "--out", "unused"])
    assert result.exit_code == 1
    assert "--seed: must be a non-negative integer" in result.output
    assert "Traceback" not in result.output


SIX = ("lvp-1-high", "lvp-1-low", "lvp-25-high", "lvp-25-low", "syringe50-1-high", "syringe50-1-low")


def test_verify_occlusion_refuses_an_unknown_configuration(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["verify", "occlusion", "--out", str(tmp_path), "--only", "lvp-2-high"])
    assert result.exit_code == 1 and "no configuration lvp-2-high" in result.output


def test_verify_occlusion_writes_its_json_page_and_figures(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["verify", "occlusion", "--out", str(tmp_path / "out"), "--seed", "1", "--figures", str(tmp_path / "fig")]
        + [arg for key in SIX for arg in ("--only", key)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "occlusion.json").read_text(encoding="utf-8"))
    assert data["schema"] == "openinfusion.lab.occlusion/1"
    assert {(r["configuration"], r["sensitivity"]) for r in data["results"]} == {
        (pump, s) for pump in ("LVP 1 mL/h", "LVP 25 mL/h", "syringe 50/60 mL 1 mL/h") for s in ("high", "low")
    }
    assert len(list((tmp_path / "fig").glob("occlusion-*.png"))) == 6
    assert "ECRI" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
