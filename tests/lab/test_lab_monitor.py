"""``verify monitor``: fault cases on the bench, their outputs, and the requirement each case holds."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from openinfusion.lab import monitor, report
from openinfusion.units import Duration


@pytest.mark.req("OI-SAFE-4", "OI-SAFE-5", "UMN-GPCA-REQ-19")
def test_fault_cases_are_caught_within_their_budget_and_written(tmp_path: Path) -> None:
    cases = (
        monitor.FaultCase(monitor.FaultKind.RUNAWAY, monitor.SYRINGE, Duration.min(15), Fraction(2)),
        monitor.FaultCase(monitor.FaultKind.STEPS_WHILE_PAUSED, monitor.LVP, Duration.min(15)),
        monitor.FaultCase(monitor.FaultKind.DOSE_CONVERSION, monitor.SYRINGE, Duration(0), Fraction(10)),
    )
    results = [monitor.run_case(case, 1) for case in cases]
    assert all(r.passes for r in results), [r.to_json() for r in results]
    assert [r.check for r in results] == ["SM-2", "SM-4", "SM-2"]
    json_path, page, png = report.write_monitor(tmp_path, results, [], 1, "cmd", figures=tmp_path / "fig")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["schema"] == monitor.SCHEMA and len(data["cases"]) == 3
    assert data["cases"][1]["alarm"] == "motion_mismatch" and data["cases"][1]["time_to_trip_s"] <= 1.0
    assert "Safety monitor under injected faults" in page.read_text(encoding="utf-8") and png.is_file()


def test_the_case_list_covers_every_fault_the_issue_names() -> None:
    kinds = {c.kind for c in monitor.CASES}
    assert kinds == set(monitor.FaultKind)
    lvp_runaways = {
        (c.factor, c.start) for c in monitor.CASES if c.kind is monitor.FaultKind.RUNAWAY and c.setup is monitor.LVP
    }
    starts = {Duration.min(15), Duration.h(4), Duration.h(12)}
    assert lvp_runaways == {(f, s) for f in (Fraction(12, 10), Fraction(2)) for s in starts}
    assert {(s.mechanism, s.rate.in_ml_h) for s in monitor.NORMAL} == {
        (m, Fraction(r)) for m in {s.mechanism for s in monitor.NORMAL} for r in ("0.1", "1", "25", "999")
    }
