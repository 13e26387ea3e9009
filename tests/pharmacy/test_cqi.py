"""Pharmacy CQI analytics (issue 5, item 6) on real pump logs with counts known from the script that made them."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from druglib_helpers import TRUSTED, release, sample_library
from openinfusion.cli import pharmacy
from openinfusion.druglib.model import Library
from openinfusion.errors import DoseLimitError, InputError
from openinfusion.pharmacy import cqi
from openinfusion.pharmacy.report import CqiReport, cqi_html, cqi_tables, pct
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, EventLog
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.programs import ContinuousProgram, DoseProgram, KvoSettings, RateLimits, Titration
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import ChannelConfig, VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume

NOREPI = LibrarySelection(area="PICU", drug="norepinephrine", concentration="8 mg/500 mL")
CHILD = Patient(weight=Quantity.of(20, "kg"))
REASON = "Dose verified with prescriber's order"
runner = CliRunner()


class PicuPump:
    """A two-channel pump in the PICU with a library installed: the real core on virtual hardware."""

    def __init__(self, library: Library | None = None) -> None:
        config = VirtualPumpConfig(
            channels=(ChannelConfig(),) * 2, watchdog_window=WATCHDOG_WINDOW, record_series=False
        )
        self.world = VirtualPump(config, np.random.default_rng(2))
        package = release(library or sample_library())
        kvo = ChannelSettings(kvo=KvoSettings(enabled=True, rate=FlowRate.ml_h(1)))
        self.pump = Pump(
            self.world.hardware, self.world.calibrations, PumpConfig(channels=(kvo, kvo), care_area="PICU"),
            trusted_keys=TRUSTED, library_package=package,
        )  # fmt: skip
        self.driver = Driver(self.world, self.pump)
        self.limits = RateLimits.of(self.world.calibrations[0])
        self.run(Duration.s(1))

    def run(self, d: Duration) -> None:
        self.driver.service()
        self.driver.run_until(self.world.now + d)

    def norepi(self, ug_kg_min: str) -> DoseProgram:
        conc = Concentration(Quantity.of(8, "mg"), Quantity.of(500, "mL"))
        dose = Quantity.of(ug_kg_min, "ug/kg/min")
        return DoseProgram(dose=dose, concentration=conc, patient=CHILD, limits=self.limits)

    def program(self, channel: int, ug_kg_min: str, reason: str | None = None) -> None:
        self.pump.program(channel, self.norepi(ug_kg_min), selection=NOREPI, patient=CHILD, override_reason=reason)


def shift(b: PicuPump) -> None:
    """A scripted shift; the comments give the counts the tests expect (4 infusions, 4 alerts, 2 overrides)."""
    p = b.pump
    p.program(0, b.norepi("0.08"), selection=NOREPI, patient=CHILD)  # infusion 1: library, within limits
    p.start(0)
    b.run(Duration.min(1))
    dose = Titration(Quantity.of("0.15", "ug/kg/min"))
    with pytest.raises(DoseLimitError):
        p.titrate(0, dose)  # alert 1: soft (dose above soft max 0.1)
    p.titrate(0, dose, override_reason="Titration per protocol")  # ... overridden (override 1)
    p.confirm_titration(0)
    with pytest.raises(DoseLimitError):
        b.program(1, "3")  # alert 2: hard (above hard max 2): a 10-fold slip
    p.cancel_programming(1)  # ... cancelled: averted
    with pytest.raises(DoseLimitError):
        b.program(1, "0.2")  # alert 3: soft
    with pytest.raises(DoseLimitError):
        b.program(1, "0.2", "because")  # the same request again (a reason not in the list): not a new alert
    b.program(1, "0.2", REASON)  # ... overridden (override 2); infusion 2: library
    p.start(1)
    b.run(Duration.min(1))
    p.pause(1)
    p.clear(1)
    with pytest.raises(DoseLimitError):
        b.program(1, "0.5")  # alert 4: soft
    b.program(1, "0.09")  # ... reprogrammed within limits: averted; infusion 3: library
    p.clear(1)
    basic = ContinuousProgram(rate=FlowRate.ml_h(10), vtbi=Volume.ml(100), limits=b.limits)
    p.program(1, basic, basic_reason="Drug not in library")  # infusion 4: basic


@functools.cache
def shift_log() -> str:
    b = PicuPump()
    shift(b)
    return b.pump.log.to_jsonl()


@pytest.fixture
def data(tmp_path: Path) -> cqi.CqiData:
    (tmp_path / "pump-01.jsonl").write_text(shift_log(), encoding="utf-8")
    return cqi.analyse(cqi.read_logs(tmp_path))


@pytest.mark.req("OI-DERS-3", "OI-LOG-1")
def test_counts_of_a_scripted_shift(data: cqi.CqiData) -> None:
    c = cqi.summarise(data).counts
    assert (c.infusions, c.library, c.basic, c.unknown) == (4, 3, 1, 0)
    assert c.compliance == pytest.approx(0.75)
    assert (c.alerts, c.soft, c.hard) == (4, 3, 1)
    assert c.alerts_per_100 == 100
    assert (c.overrides, c.overridden, c.averted, c.switched_to_basic) == (2, 2, 2, 0)
    resolutions = Counter(a.resolution for a in data.alerts)
    assert resolutions == {
        cqi.Resolution.OVERRIDDEN: 2, cqi.Resolution.CANCELLED: 1, cqi.Resolution.REPROGRAMMED: 1,
    }  # fmt: skip
    assert [a.check.action for a in data.alerts] == ["titration", "program", "program", "program"]
    assert [a.reason for a in data.alerts if a.resolution is cqi.Resolution.OVERRIDDEN] == [
        "Titration per protocol", REASON,
    ]  # fmt: skip


@pytest.mark.req("OI-DERS-3")
def test_groupings_of_a_scripted_shift(data: cqi.CqiData) -> None:
    assert list(cqi.by_area(data)) == ["PICU"]  # the basic infusion takes the area of the pump's library checks
    assert cqi.by_day(data)["pump day 1"].infusions == 4  # no time origin in the log: the pump's own days
    (row,) = cqi.by_entry(data)
    assert (row.label, row.checks, row.infusions, row.alerts, row.soft, row.hard) == (
        "norepinephrine, PICU", 6, 3, 4, 3, 1,
    )  # fmt: skip
    assert (row.overrides, row.averted) == (2, 2)
    assert dict(row.limits) == {"dose above soft max": 3, "dose above hard max": 1}
    assert cqi.overrides_by_reason(data) == ((REASON, 1), ("Titration per protocol", 1))
    assert cqi.overrides_by_limit(data) == (("dose above soft max", 2),)
    assert cqi.overrides_by_action(data) == (("program", 1), ("titration", 1))
    assert cqi.basic_reasons(data) == (("Drug not in library", 1),)
    assert len(data.checks) == 9 and len(data.repeats) == 3  # 9 checks logged: 6 requests, 3 answers to alerts


@pytest.mark.req("OI-DERS-5")
def test_every_check_names_the_library_it_ran_against(data: cqi.CqiData) -> None:
    lib = sample_library()
    assert {c.library.version for c in data.checks if c.library} == {lib.info.version}
    assert all(c.library is not None and len(c.library.hash) == 64 for c in data.checks)
    (use,) = cqi.library_use(data)
    assert use.checks == len(data.checks) and use.library == data.checks[0].library


@pytest.mark.req("OI-DERS-5")
def test_report_writes_html_and_csv_with_the_same_numbers(tmp_path: Path, data: cqi.CqiData) -> None:
    report = CqiReport.of(data)
    page = cqi_html(report, "pump-01.jsonl")
    assert "75.0 %" in page and "<svg" in page and "Library compliance below the ISMP 95 % target in: PICU" in page
    tables = cqi_tables(report)
    _, rows = tables["summary.csv"]
    summary = {row[0]: row[1] for row in rows}
    assert (summary["infusions"], summary["alerts"], summary["compliance_percent"]) == (4, 4, "75.0")
    assert len(tables["alerts.csv"][1]) == 4 and len(tables["overrides.csv"][1]) == 2
    assert cqi_html(CqiReport.of(data), "pump-01.jsonl") == page  # the same logs, the same bytes


def test_percentages_round_half_even_with_one_decimal() -> None:
    from fractions import Fraction

    assert [pct(Fraction(3, 4)), pct(Fraction(1, 3)), pct(Fraction(1, 2000)), pct(None)] == [
        "75.0 %", "33.3 %", "0.0 %", "-",
    ]  # fmt: skip


# --- bad input (OI-IN-1) ---------------------------------------------------------------------------


@pytest.mark.req("OI-IN-1")
def test_a_broken_log_names_its_file_and_line(tmp_path: Path) -> None:
    lines = shift_log().splitlines()
    lines[3] = lines[3].replace('"seq":3', '"seq":7')
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        cqi.read_logs(tmp_path)
    assert err.value.where == f"{tmp_path / 'bad.jsonl'}: line 4"


@pytest.mark.req("OI-IN-1")
def test_a_ders_event_without_its_context_is_refused_with_the_field(tmp_path: Path) -> None:
    log = EventLog(pump_id="p1")
    log.append(Instant(0), EventKind.DERS_CHECK, 0, action="program", verdict="ok")
    path = tmp_path / "p1.jsonl"
    path.write_text(log.to_jsonl(), encoding="utf-8")
    with pytest.raises(InputError) as err:
        cqi.analyse(cqi.read_logs(path))
    assert err.value.where == f"{path}: line 2" and err.value.why.startswith("data.selection:")
    override = EventLog()
    override.append(Instant(0), EventKind.DERS_OVERRIDE, 0, reason="Emergency", findings=[])
    path.write_text(override.to_jsonl(), encoding="utf-8")
    with pytest.raises(InputError, match="without the DERS check"):
        cqi.analyse(cqi.read_logs(path))


@pytest.mark.req("OI-IN-1")
def test_cli_report_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    empty = runner.invoke(pharmacy.app, ["report", str(tmp_path), "--out", str(tmp_path / "out")])
    assert empty.exit_code == 1 and "Traceback" not in empty.output
    assert empty.stderr.strip().count("\n") == 0 and "no event logs" in empty.stderr
    (tmp_path / "a.jsonl").write_text("{not json}\n", encoding="utf-8")
    broken = runner.invoke(pharmacy.app, ["report", str(tmp_path), "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.output)["where"].endswith("a.jsonl: line 1")


@pytest.mark.req("OI-DERS-5")
def test_cli_report_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "pump-01.jsonl").write_text(shift_log(), encoding="utf-8")
    result = runner.invoke(pharmacy.app, ["report", str(tmp_path / "logs"), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["infusions"], summary["alerts"], summary["compliance_percent"]) == (4, 4, "75.0")
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"report.html", "summary.csv", "alerts.csv"}


# --- properties of the walk over any log -------------------------------------------------------------

# One step of a clinician at one channel: a check with its verdict and whether it proceeded (with the request
# id it carries), an override of the check just before, a cancel, a confirmation, a basic program, a clear.
STEP = st.sampled_from(["ok", "soft", "soft+", "hard", "override", "cancel", "confirm", "basic", "clear"])


def synthetic_log(steps: list[tuple[int, str, int]]) -> EventLog:
    """A log with the events the pump writes for these steps (data shaped as the pump logs it)."""
    log = EventLog(pump_id="synthetic")
    last: dict[int, str] = {}
    for i, (channel, step, request) in enumerate(steps):
        t = Instant(i * 1_000_000)
        if step in {"ok", "soft", "soft+", "hard"}:
            verdict = step.rstrip("+")
            proceeded = step in {"ok", "soft+"}
            outcome = "proceed" if proceeded else ("blocked" if verdict == "hard" else "needs_override")
            log.append(
                t, EventKind.DERS_CHECK, channel, action="program", library=None,
                selection={"area": "A", "drug": f"d{request % 3}", "therapy": None, "concentration": None},
                values={"rate": {"value": str(request), "unit": "mL/h"}}, findings=[], verdict=verdict,
                outcome=outcome, after_alert=False,
            )  # fmt: skip
            last[channel] = outcome
            if step == "soft+":
                log.append(t, EventKind.DERS_OVERRIDE, channel, reason="Emergency", findings=[])
        elif step == "cancel":
            log.append(t, EventKind.DERS_CANCEL, channel)
        elif step == "confirm":
            log.append(t, EventKind.PROGRAM_CONFIRMED, channel, program=None)
        elif step == "basic":
            log.append(t, EventKind.BASIC_INFUSION, channel, action="program", library=None, reason="r")
        elif step == "clear":
            log.append(t, EventKind.PROGRAM_CLEARED, channel)
    return log


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), STEP, st.integers(1, 4)), max_size=40))
def test_every_alert_gets_one_resolution_and_infusions_are_the_confirmations(
    steps: list[tuple[int, str, int]],
) -> None:
    log = synthetic_log(steps)
    data = cqi.analyse([cqi.PumpLog("synthetic.jsonl", log)])
    c = cqi.summarise(data).counts
    confirmations = sum(1 for _, step, _ in steps if step == "confirm")
    assert c.infusions == confirmations == c.library + c.basic + c.unknown
    assert c.alerts == sum(cqi.summarise(data).resolutions.values())
    assert c.overrides == sum(1 for _, step, _ in steps if step == "soft+")
    assert c.alerts <= sum(1 for _, step, _ in steps if step in {"soft", "soft+", "hard"})
    halves = [[s for s in steps if s[0] == ch] for ch in (0, 1)]  # channels are independent of each other
    split = [
        cqi.summarise(cqi.analyse([cqi.PumpLog(f"{i}.jsonl", synthetic_log(h))])).counts for i, h in enumerate(halves)
    ]
    assert (c.alerts, c.averted, c.overridden) == (
        sum(x.alerts for x in split), sum(x.averted for x in split), sum(x.overridden for x in split),
    )  # fmt: skip


R = cqi.Resolution


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("soft", 1), ("ok", 2)], [R.REPROGRAMMED]),
        ([("soft", 1), ("soft+", 1)], [R.OVERRIDDEN]),
        ([("soft+", 1)], [R.OVERRIDDEN]),
        ([("hard", 1), ("cancel", 0)], [R.CANCELLED]),
        ([("hard", 1), ("hard", 1), ("hard", 1)], [R.OPEN]),
        ([("soft", 1), ("soft", 2), ("ok", 3)], [R.ALERTED_AGAIN, R.REPROGRAMMED]),
        ([("hard", 1), ("basic", 0)], [R.SWITCHED_TO_BASIC]),
        ([("soft", 1), ("clear", 0)], [R.DROPPED]),
    ],
)
def test_what_followed_an_alert(steps: list[tuple[str, int]], expected: list[cqi.Resolution]) -> None:
    log = synthetic_log([(0, step, request) for step, request in steps])
    assert [a.resolution for a in cqi.analyse([cqi.PumpLog("s.jsonl", log)]).alerts] == expected


def test_a_pump_that_never_used_the_library_has_no_known_care_area() -> None:
    log = synthetic_log([(0, "basic", 1), (0, "confirm", 1), (1, "confirm", 1)])
    infusions = cqi.analyse([cqi.PumpLog("s.jsonl", log)]).infusions
    assert [(i.mode, i.area) for i in infusions] == [
        (cqi.Mode.BASIC, cqi.UNKNOWN_AREA), (cqi.Mode.UNKNOWN, cqi.UNKNOWN_AREA),
    ]  # fmt: skip
    assert cqi.summarise(cqi.analyse([cqi.PumpLog("s.jsonl", log)])).counts.compliance == 0
