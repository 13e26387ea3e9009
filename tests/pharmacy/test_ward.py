"""The ward-week generator (issue 5, item 10): real pump logs, deterministic, with a plausible CQI mix."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openinfusion.cli import pharmacy
from openinfusion.druglib.model import Library
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import InputError, ScenarioError
from openinfusion.pharmacy import cqi, ward
from openinfusion.pump.ders import DersIndex, Verdict
from openinfusion.pump.eventlog import EventLog
from openinfusion.pump.library import request_for
from openinfusion.pump.programs import RateLimits
from openinfusion.units import FlowRate

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "library" / "example-library.yaml"
LIMITS = RateLimits(min_rate=FlowRate.ml_h("0.1"), max_rate=FlowRate.ml_h(1200), resolution=FlowRate.ml_h("0.01"))
runner = CliRunner()


@functools.cache
def library() -> Library:
    return read_yaml(SAMPLE).require()


@functools.cache
def busy_day() -> tuple[tuple[str, str], ...]:
    """Four pumps (adult ICU, med-surg, PICU, NICU) for one busy day: the mix a week has, in seconds."""
    return ward.generate(library(), ward.WardWeek(pumps=4, days=1, seed=7, infusions_per_day=30))


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize(
    ("change", "where"),
    [({"pumps": 0}, "pumps"), ({"days": 0}, "days"), ({"seed": -1}, "seed"), ({"time_origin": "monday"}, "time_origin"),
     ({"time_origin": "2026-03-02T07:00:00"}, "time_origin"), ({"infusions_per_day": 0.0}, "infusions_per_day")],
)  # fmt: skip
def test_bad_ward_settings_are_refused_with_the_field(change: dict[str, object], where: str) -> None:
    with pytest.raises(ScenarioError) as err:
        ward.WardWeek(**change)  # type: ignore[arg-type]
    assert err.value.where == where


def _verdict(index: DersIndex, recipe: ward.Recipe, value: object, seed: int) -> Verdict | None:
    rng = np.random.default_rng(seed)
    area = next(a for a in library().care_areas if a.id == recipe.selection.area)
    patient = ward.patient_for(rng, area)
    try:
        program = recipe.program(value, LIMITS, patient, rng)  # type: ignore[arg-type]
    except InputError:
        return None  # the pump could not run it: the nurse does not enter it
    return index.check(request_for(recipe.selection, program, patient, index)).verdict


@pytest.mark.req("OI-DERS-3")
def test_usual_orders_pass_and_orders_beyond_a_soft_limit_alert_soft() -> None:
    """The generator's claims about the values it enters, checked by the pump's own DERS check."""
    index = DersIndex.build(library())
    usual: Counter[Verdict | None] = Counter()
    beyond: Counter[Verdict | None] = Counter()
    for recipes in ward.recipes(library()).values():
        for recipe in recipes:
            for seed in range(4):
                rng = np.random.default_rng(seed)
                usual[_verdict(index, recipe, recipe.usual(rng), seed)] += 1
                value = recipe.beyond_soft(rng)
                if value is not None:
                    beyond[_verdict(index, recipe, value, seed)] += 1
    assert set(usual) <= {Verdict.OK, None} and usual[Verdict.OK] >= 0.9 * sum(usual.values())
    assert set(beyond) <= {Verdict.SOFT, None} and beyond[Verdict.SOFT] >= 0.9 * sum(beyond.values())


@pytest.mark.req("OI-LOG-1")
def test_a_pumps_log_depends_only_on_the_seed_and_its_place(tmp_path: Path) -> None:
    """Pump 1 of a one-pump ward run in a worker process is pump 1 of the four-pump ward run in this one."""
    args = ["--library", str(SAMPLE), "--out", str(tmp_path), "--pumps", "1", "--days", "1", "--seed", "7"]
    result = runner.invoke(pharmacy.ward_app, [*args, "--infusions-per-day", "30", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert [name for name, _ in busy_day()] == [f"pump-0{i}.jsonl" for i in range(1, 5)]
    assert (tmp_path / "pump-01.jsonl").read_text(encoding="utf-8") == busy_day()[0][1]


@pytest.mark.req("OI-DERS-5", "OI-LOG-1")
def test_logs_are_real_pump_logs_with_time_origin_and_library_identity() -> None:
    lib = library()
    for name, text in busy_day():
        log = EventLog.from_jsonl(text, name)  # validates schema, sequence and times
        assert log.header["time_origin"] == ward.DEFAULT_ORIGIN
        header_library = log.header["library"]
        assert isinstance(header_library, dict | type(log.header)) and header_library["version"] == lib.info.version


@pytest.mark.req("OI-DERS-3", "OI-DERS-4")
def test_a_busy_day_has_a_plausible_cqi_mix() -> None:
    logs = [cqi.PumpLog(name, EventLog.from_jsonl(text, name)) for name, text in busy_day()]
    data = cqi.analyse(logs)
    c = cqi.summarise(data).counts
    assert c.infusions >= 100
    assert c.compliance is not None and 0.8 < c.compliance < 1  # some basic infusions, mostly the library
    assert c.alerts_per_100 is not None and 2 <= c.alerts_per_100 <= 20  # published: 3.9 to 15.9 (module doc)
    resolutions = Counter(a.resolution for a in data.alerts)
    assert resolutions[cqi.Resolution.OVERRIDDEN] >= 1 and c.overrides >= 1
    assert resolutions[cqi.Resolution.CANCELLED] >= 1  # programming errors caught and cancelled
    assert c.averted >= 2
    assert {ch.action for ch in data.checks} >= {"program", "titration"}  # titrations are checked again
    assert all(i.basic_reason for i in data.infusions if i.mode is cqi.Mode.BASIC)
    areas = ward.assign_areas(library(), 4)
    for log, area in zip(logs, areas, strict=True):
        assert {ch.area for ch in data.checks if ch.at.source == log.source} == {area}
    assert not any(i.area == cqi.UNKNOWN_AREA for i in data.infusions)
