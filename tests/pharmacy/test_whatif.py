"""What-if replay (issue 5, item 7): logged checks replayed against a candidate whose limits we move."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cqi import CHILD, NOREPI, REASON, PicuPump
from typer.testing import CliRunner

from druglib_helpers import sample_library
from openinfusion.cli import pharmacy
from openinfusion.druglib.model import Library
from openinfusion.druglib.validate import load_library
from openinfusion.druglib.yamlio import dump_yaml
from openinfusion.errors import DoseLimitError, InputError
from openinfusion.pharmacy import cqi, whatif
from openinfusion.pharmacy.report import whatif_html, whatif_tables
from openinfusion.pharmacy.whatif import Change
from openinfusion.pump.ders import Verdict
from openinfusion.pump.eventlog import EventLog, encode_duration, encode_quantity, encode_rate, encode_volume
from openinfusion.pump.library import request_for
from openinfusion.units import Duration, FlowRate, Quantity, Volume

runner = CliRunner()


@functools.cache
def logged() -> tuple[str, cqi.CqiData]:
    """A PICU pump's log with three norepinephrine programs: 0.08 (ok), 0.2 (soft, overridden), 3 (hard)."""
    b = PicuPump()
    b.program(0, "0.08")
    with pytest.raises(DoseLimitError):
        b.program(1, "0.2")
    b.program(1, "0.2", REASON)
    b.pump.clear(1)
    with pytest.raises(DoseLimitError):
        b.program(1, "3")
    text = b.pump.log.to_jsonl()
    return text, cqi.analyse([cqi.PumpLog("pump.jsonl", EventLog.from_jsonl(text))])


def variant(edit: Callable[[dict[str, Any]], None]) -> Library:
    """The example library with ``edit`` applied to its data (validated like any library)."""
    data = sample_library().to_data()
    edit(data)
    return load_library(data, "variant")


def picu_norepinephrine(data: dict[str, Any]) -> dict[str, Any]:
    drug = next(d for d in data["drugs"] if d["id"] == "norepinephrine")
    entry: dict[str, Any] = next(e for e in drug["care_areas"] if e["area"] == "PICU")
    return entry


def dose_limits(**bounds: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        picu_norepinephrine(data)["limits"]["dose"].update(bounds)

    return edit


def changes(candidate: Library) -> list[Change]:
    return [case.change for case in whatif.replay(candidate, logged()[1]).cases]


@pytest.mark.req("OI-DERS-5")
def test_a_logged_request_decodes_to_the_request_the_pump_checked() -> None:
    b = PicuPump()
    program = b.norepi("0.0835")  # 6.2625 mL/h exactly, programmed at 6.26 mL/h: the rate is not round
    b.pump.program(0, program, selection=NOREPI, patient=CHILD)
    (check,) = cqi.analyse([cqi.PumpLog("p.jsonl", b.pump.log)]).checks
    assert b.pump.library.active is not None
    assert whatif.decode_request(check) == request_for(NOREPI, program, CHILD, b.pump.library.active.index)


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_pump_values_survive_the_log_exactly(nl_per_h: int, nl: int, us: int) -> None:
    assert whatif.decode_value("rate", encode_rate(FlowRate(nl_per_h)), "rate") == FlowRate(nl_per_h)
    assert whatif.decode_value("vtbi", encode_volume(Volume(nl)), "vtbi") == Volume(nl)
    assert whatif.decode_value("interval", encode_duration(Duration(us)), "interval") == Duration(us)


@given(st.fractions(min_value=0, max_value=10**6).filter(lambda f: f.denominator < 10**6))
def test_doses_survive_the_log_exactly(value: Fraction) -> None:
    dose = Quantity(value, Quantity.of(1, "ug/kg/min").unit)
    assert whatif.decode_value("dose", encode_quantity(dose), "dose") == dose


@pytest.mark.req("OI-IN-1")
def test_a_value_no_pump_could_log_is_refused() -> None:
    with pytest.raises(InputError, match="not a whole number of nL/h"):
        whatif.decode_value("rate", {"value": "0.0000001", "unit": "mL/h"}, "values.rate")
    with pytest.raises(InputError, match="unknown DERS value"):
        whatif.decode_value("speed", {"value": "1", "unit": "mL/h"}, "values.speed")
    with pytest.raises(InputError, match="cannot convert"):
        whatif.decode_value("vtbi", {"value": "1", "unit": "mg"}, "values.vtbi")


@pytest.mark.req("OI-DERS-3", "OI-DERS-5")
def test_replay_against_the_logged_library_reproduces_every_verdict() -> None:
    result = whatif.replay(sample_library(), logged()[1])
    assert [c.old for c in result.cases] == [Verdict.OK, Verdict.SOFT, Verdict.HARD]  # the override is not replayed
    assert {c.change for c in result.cases} == {Change.UNCHANGED}
    assert len(result.same_library) == 3 and result.inconsistent == ()


@pytest.mark.req("OI-DERS-3")
def test_tightened_limits_newly_alert_and_block() -> None:
    tighter = variant(dose_limits(soft_max="0.07 ug/kg/min", hard_max="0.15 ug/kg/min"))
    assert changes(tighter) == [Change.NEWLY_ALERTING, Change.NEWLY_BLOCKED, Change.UNCHANGED]
    result = whatif.replay(tighter, logged()[1])
    assert "above the hard maximum 0.15 ug/kg/min" in result.cases[1].why
    assert result.by_area()["PICU"][Change.NEWLY_BLOCKED] == 1
    assert result.by_drug()["norepinephrine"][Change.NEWLY_ALERTING] == 1
    assert [c.change for c in result.changed()] == [Change.NEWLY_BLOCKED, Change.NEWLY_ALERTING]


@pytest.mark.req("OI-DERS-3")
def test_loosened_limits_no_longer_alert_or_block() -> None:
    looser = variant(dose_limits(soft_max="0.3 ug/kg/min", hard_max="4 ug/kg/min"))
    assert changes(looser) == [Change.UNCHANGED, Change.NO_LONGER_ALERTING, Change.NO_LONGER_BLOCKED]


def test_removed_entry_and_removed_concentration() -> None:
    def remove_entry(data: dict[str, Any]) -> None:
        drug = next(d for d in data["drugs"] if d["id"] == "norepinephrine")
        drug["care_areas"] = [e for e in drug["care_areas"] if e["area"] != "PICU"]

    def other_bag(data: dict[str, Any]) -> None:
        picu_norepinephrine(data)["concentrations"] = [{"amount": "4 mg", "volume": "250 mL"}]

    assert changes(variant(remove_entry)) == [Change.NOT_IN_LIBRARY] * 3
    result = whatif.replay(variant(other_bag), logged()[1])
    assert [c.change for c in result.cases] == [Change.REFUSED] * 3
    assert "not a standard concentration" in result.cases[0].why


def test_whatif_report_lists_the_changed_cases() -> None:
    result = whatif.replay(variant(dose_limits(soft_max="0.07 ug/kg/min", hard_max="0.15 ug/kg/min")), logged()[1])
    page = whatif_html(result, "pump.jsonl")
    assert "newly blocked (hard limit)" in page and "<svg" in page and "pump.jsonl:" in page
    header, rows = whatif_tables(result)["cases.csv"]
    assert len(rows) == 3 and header[6] == "change"


@pytest.mark.req("OI-IN-1")
def test_cli_whatif(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "pump.jsonl").write_text(logged()[0], encoding="utf-8")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(dump_yaml(variant(dose_limits(soft_max="0.3 ug/kg/min", hard_max="4 ug/kg/min"))))
    args = ["whatif", str(candidate), str(tmp_path / "logs"), "--out", str(tmp_path / "out"), "--json"]
    result = runner.invoke(pharmacy.app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["no_longer_alerting"], summary["no_longer_blocked"], summary["replayed"]) == (1, 1, 3)
    assert (tmp_path / "out" / "cases.csv").is_file()
    missing = runner.invoke(pharmacy.app, ["whatif", str(tmp_path / "none.yaml"), str(tmp_path / "logs")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert len(missing.stderr.strip().splitlines()) == 1 and "none.yaml" in missing.stderr
