"""The panel's model on the real core, without a browser: pacing, flows, limits, titration, PCA, bolus.

A fake monotonic clock drives the real-time wrapper, so pump time is exactly what each test sets.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from openinfusion.errors import ConfigError
from openinfusion.pump.eventlog import EventKind
from openinfusion.sim.realtime import Realtime
from openinfusion.sim.run import START, Simulation
from openinfusion.sim.scenario import AirEvent, PumpSpec, load_scenario
from openinfusion.units import Quantity
from openinfusion.web.panel.session import PanelSession
from openinfusion.web.panel.widgets import WIDGETS

BEDSIDE = Path("examples/panel/bedside.yaml")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def session(area: str = "ADULT-ICU") -> tuple[PanelSession, Clock]:
    scenario, _ = load_scenario(BEDSIDE)
    scenario = scenario.model_copy(update={"pump": PumpSpec(care_area=area)})
    clock = Clock()
    return PanelSession(scenario, str(BEDSIDE), clock=clock), clock


class Keys:
    def __init__(self, s: PanelSession) -> None:
        self.s, self.ms = s, 0

    def __call__(self, widget: str, arg: str | None = None, channel: int | None = 0) -> bool:
        self.ms += 300
        self.s.press(widget, channel, arg, self.ms)
        return self.s.presses[-1].ok

    def number(self, text: str) -> None:
        for k in text:
            self(f"key_{k}")
        self("key_enter")


def test_realtime_paces_by_the_clock_and_speed_and_freezes() -> None:
    scenario, _ = load_scenario(BEDSIDE)
    clock = Clock()
    rt = Realtime(Simulation(scenario, str(BEDSIDE)), speed=1.0, clock=clock)
    assert rt.sim.world.now == START  # the self-test has run; time 0 of the scenario
    clock.t += 2.5
    rt.sync()
    assert rt.elapsed.us == 2_500_000
    rt.set_speed(60)
    clock.t += 1
    rt.sync()
    assert rt.elapsed.us == 62_500_000
    rt.freeze(True)
    clock.t += 100
    rt.sync()
    assert rt.elapsed.us == 62_500_000
    rt.freeze(False)
    clock.t += 0.5
    rt.sync()
    assert rt.elapsed.us == 92_500_000
    with pytest.raises(ConfigError, match="speed"):
        rt.set_speed(0)


def test_injected_event_goes_through_the_scenario_engine() -> None:
    s, clock = session()
    k = Keys(s)
    k("program"), k("choose", "maintenance-fluid"), k.number("100"), k.number("500"), k("confirm"), k("start")
    clock.t += 5
    s.rt.inject(AirEvent(at=Quantity.of(0, "s"), channel=1, do="air", volume=Quantity.of("0.4", "mL")))
    clock.t += 30
    codes = [a["code"] for a in s.state()["alarms"]]
    assert "air_in_line" in codes


@pytest.mark.req("OI-UI-1", "OI-PROG-9")
def test_titration_flags_tenfold_then_waits_for_confirmation() -> None:
    s, clock = session()
    k = Keys(s)
    k("program"), k("choose", "norepinephrine"), k("choose", "4 mg/250 mL"), k.number("10"), k.number("250")
    k("confirm"), k("start")
    ch = s.pump.channels[0]
    assert ch.rate().in_ml_h * 2 == 75  # 10 ug/min of 16 ug/mL = 37.5 mL/h
    k("titrate")
    k.number("100")  # 10x the running dose: flagged, not taken
    assert "10x" in s.state()["screens"]["0"]["message"]
    for _ in range(3):
        k("key_back")
    k.number("15")
    k("confirm")
    assert s.state()["screens"]["0"]["kind"] == "titration"
    assert ch.rate().in_ml_h * 2 == 75  # still 37.5 mL/h until confirmed (OI-PROG-9)
    k("confirm_titration")
    assert ch.rate().in_ml_h * 4 == 225  # 15 ug/min = 56.25 mL/h
    clock.t += 1


def test_soft_limit_needs_a_listed_reason_and_hard_limit_offers_none() -> None:
    s, _ = session()
    k = Keys(s)
    k("program"), k("choose", "norepinephrine"), k("choose", "16 mg/500 mL"), k.number("90"), k.number("500")
    assert not k("confirm")
    alert = s.state()["screens"]["0"]["alert"]
    assert alert["kind"] == "soft" and "Dose verified with prescriber's order" in alert["reasons"]
    assert not k("override", "Because I say so")  # not in the library's list: the pump refuses it
    assert k("override", "Dose verified with prescriber's order")
    assert s.pump.channels[0].state.value == "ready"
    s2, _ = session()
    k2 = Keys(s2)
    k2("program"), k2("choose", "dopamine"), k2("choose", "400 mg/250 mL"), k2.number("70"), k2.number("50")
    k2.number("250")
    assert not k2("confirm")
    alert = s2.state()["screens"]["0"]["alert"]
    assert alert["kind"] == "hard" and alert["reasons"] == [] and "hard maximum 30 ug/kg/min" in alert["why"]
    assert not k2("override", "Emergency")
    k2("cancel")
    kinds = [e.kind for e in s2.pump.log.events()]
    assert EventKind.DERS_CANCEL in kinds  # an error caught


@pytest.mark.req("OI-PCA-1")
def test_pca_with_the_patient_button_and_lockout() -> None:
    s, clock = session("MED-SURG")
    k = Keys(s)
    k("pca"), k("choose", "morphine/pca"), k("choose", "1 mg/1 mL"), k.number("1"), k.number("8"), k.number("20")
    assert k("confirm") and k("start")
    clock.t += 60
    k("pca_demand")
    clock.t += 60
    k("pca_demand")  # within the 8-minute lockout: denied
    pca = s.state()["channels"][0]["pca"]
    assert (pca["demands"], pca["given"], pca["denied"]) == (2, 1, 1)
    assert pca["total_demands"] == "1 mg"


def test_bolus_and_secondary_from_the_library() -> None:
    s, clock = session("MED-SURG")
    k = Keys(s)
    k("program"), k("choose", "heparin"), k("choose", "25000 [iU]/500 mL"), k.number("1000"), k.number("500")
    assert k("confirm") and k("start")
    clock.t += 10
    assert k("bolus")
    k.number("2000"), k.number("5")
    assert k("confirm"), s.message
    assert any(e.kind is EventKind.BOLUS_STARTED for e in s.pump.log.events())
    s2, _ = session("MED-SURG")
    k2 = Keys(s2)
    k2("program"), k2("choose", "maintenance-fluid"), k2.number("75"), k2.number("1000"), k2("confirm"), k2("start")
    k2("secondary"), k2("choose", "cefazolin"), k2("choose", "2 g/100 mL"), k2.number("200"), k2.number("100")
    assert k2("confirm")
    assert s2.state()["channels"][0]["status"] == "Secondary"


def test_every_declared_widget_is_handled() -> None:
    """Each widget of the table reaches a handler: a press is answered, never an unknown-action crash."""
    s, _ = session()
    for w in WIDGETS:
        s.press(w.id, None if w.scope == "pump" else 0)
        assert "unknown widget" not in s.presses[-1].detail


def test_the_panel_clock_and_presses_use_the_pump_time_base() -> None:
    """Presses carry pump time (as the event log); the clock reads wall-clock time when the situation has a start."""
    s, clock = session()
    clock.t += 90
    s.press("program", 0)
    assert s.presses[-1].t_us == START.us + 90_000_000 == s.pump.log.events()[-1].t.us
    assert s.state()["time"] == "00:01:30"
    scenario, _ = load_scenario(BEDSIDE)
    started = scenario.model_copy(update={"start": dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)})
    fake = Clock()
    at_eight = PanelSession(started, str(BEDSIDE), clock=fake)
    fake.t += 90
    assert at_eight.state()["time"] == "2026-12-06 08:01:30"  # the 24 h situation crosses midnight: dated
