"""The front panel driven in a browser (Playwright, Debian's Chromium) as a nurse would: clicks and keys.

Each test programs the real core through the page and checks what the pump then does. Every page is
checked with axe-core: no serious or critical accessibility violation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openinfusion.cli import app
from openinfusion.sim.scenario import PumpSpec, load_scenario
from openinfusion.web.panel.app import create_app
from openinfusion.web.panel.session import PanelSession
from openinfusion.web.training.app import training_app
from openinfusion.web.training.exercise import load_exercise

from browserkit import axe_violations, shot

BEDSIDE = Path("examples/panel/bedside.yaml")
pytestmark = pytest.mark.browser


def bedside(serve: Any) -> tuple[Any, PanelSession]:
    scenario, _ = load_scenario(BEDSIDE)
    session = PanelSession(scenario, str(BEDSIDE), speed=1.0)
    return serve(create_app(session)), session


def widget(page: Any, wid: str, channel: int | None = 0, arg: str | None = None) -> Any:
    key = f"{wid}:{'null' if channel is None else channel}:{arg or ''}"
    return page.locator(f'[data-key="{key}"]')


def keys(page: Any, text: str) -> None:
    """Type on the computer keyboard (100 ms apart: a nurse's pace, well outside the key debounce)."""
    page.keyboard.type(text, delay=100)
    page.keyboard.press("Enter")


def choose(page: Any, option: str) -> None:
    widget(page, "choose", 0, option).click()


def program_dose(page: Any, drug: str, conc: str, dose: str, *, weight: str | None = None) -> None:
    widget(page, "program").click()
    choose(page, drug)
    choose(page, conc)
    if weight is not None:
        page.get_by_text("Patient weight (kg)").first.wait_for()
        keys(page, weight)
    page.get_by_text(re.compile(r"^Dose \(")).first.wait_for()
    keys(page, dose)
    page.get_by_text("Volume to be infused (mL)").first.wait_for()
    for k in "250":  # the VTBI by clicks on the on-screen keypad
        widget(page, f"key_{k}").click()
    widget(page, "key_enter").click()
    page.get_by_text("Review and confirm").wait_for()
    assert "Volume to be infused" in page.locator(".screen").inner_text()  # the review lists every answer
    no_axe_violations(page)
    widget(page, "confirm").click()


def no_axe_violations(page: Any) -> None:
    assert axe_violations(page) == []


def test_weight_based_infusion_programmed_by_clicks_and_keys(serve: Any, page: Any) -> None:
    server, session = bedside(serve)
    page.goto(server.url)
    no_axe_violations(page)
    program_dose(page, "dopamine", "400 mg/250 mL", "5", weight="70")
    widget(page, "start").click()
    card = page.locator('article[data-channel="0"]')
    card.locator('[data-status="infusing"]').wait_for()
    # 5 ug/kg/min x 70 kg = 350 ug/min = 21 mg/h of 1.6 mg/mL: 13.125 -> 13.1 mL/h (pump resolution 0.1)
    assert "13.1 mL/h" in card.inner_text()
    assert "5 ug/kg/min" in card.inner_text()
    shot(page, "panel")
    no_axe_violations(page)
    ch = session.pump.channels[0]
    assert ch.selection is not None and ch.selection.drug == "dopamine"
    assert ch.patient is not None and ch.patient.weight is not None and ch.patient.weight.value == 70


@pytest.mark.req("OI-DERS-3")
def test_soft_limit_override_with_reason(serve: Any, page: Any) -> None:
    server, session = bedside(serve)
    page.goto(server.url)
    program_dose(page, "norepinephrine", "16 mg/500 mL", "90")
    page.get_by_text("Soft limit: check the order").wait_for()
    assert "80 ug/min" in page.locator("[role=alert]").first.inner_text()
    no_axe_violations(page)
    widget(page, "override", 0, "Dose verified with prescriber's order").click()
    widget(page, "start").click()
    page.locator('[data-status="infusing"]').wait_for()
    overrides = [e for e in session.pump.log.events() if e.kind.value == "ders_override"]
    assert [e.data["reason"] for e in overrides] == ["Dose verified with prescriber's order"]


@pytest.mark.req("OI-DERS-3")
def test_hard_limit_blocks_and_the_dose_is_changed(serve: Any, page: Any) -> None:
    server, session = bedside(serve)
    page.goto(server.url)
    program_dose(page, "dopamine", "400 mg/250 mL", "50", weight="70")
    page.get_by_text("HARD LIMIT: cannot be given").wait_for()
    shot(page, "panel-hard-limit")
    assert widget(page, "override", 0, "Emergency").count() == 0  # no way round a hard limit
    no_axe_violations(page)
    assert session.pump.channels[0].state.value == "programming"
    widget(page, "change").click()
    page.get_by_text(re.compile(r"^Dose \(")).first.wait_for()
    keys(page, "5")
    for k in "250":
        widget(page, f"key_{k}").click()
    widget(page, "key_enter").click()
    widget(page, "confirm").click()
    widget(page, "start").click()
    page.locator('[data-status="infusing"]').wait_for()
    blocked = [e for e in session.pump.log.events() if e.kind.value == "ders_check" and e.data["outcome"] == "blocked"]
    assert len(blocked) == 1


@pytest.mark.req("OI-UI-1")
def test_digit_beyond_resolution_refused_on_screen(serve: Any, page: Any) -> None:
    server, _ = bedside(serve)
    page.goto(server.url)
    widget(page, "program").click()
    choose(page, "maintenance-fluid")
    page.get_by_text("Rate (mL/h)").first.wait_for()
    page.keyboard.type("4.85", delay=100)
    page.get_by_text("0.1 mL/h is the finest step").wait_for()
    assert page.locator('[data-display="0"]').inner_text().strip() == "4.8"


def test_occlusion_alarm_answered_and_exercise_scored(serve: Any, page: Any) -> None:
    path = Path("examples/exercises/occlusion_downstream.yaml")
    exercise = load_exercise(path)
    session = PanelSession(exercise.situation, str(path), speed=20.0)
    server = serve(training_app(exercise, session))
    page.goto(server.url)
    page.get_by_text("Exercise: Downstream occlusion on norepinephrine").wait_for()
    bar = page.locator("#alarmbar.high")
    bar.wait_for(timeout=30_000)
    assert "HIGH: Downstream occlusion" in bar.inner_text()
    assert bar.evaluate("e => getComputedStyle(e).animationName") == "flash-high"
    shot(page, "panel-exercise-alarm")
    no_axe_violations(page)
    widget(page, "audio_pause", None).click()
    page.get_by_text("Audio paused").first.wait_for()
    page.locator("#alarmbar >> text=latched").wait_for(timeout=30_000)  # the kink is fixed at 100 s
    widget(page, "reset_alarm").click()
    widget(page, "resume").click()
    page.locator('[data-status="infusing"]').wait_for()
    page.goto(f"{server.url}/debrief")
    page.get_by_text(re.compile(r"^Score 4\d of 40")).wait_for()
    text = page.inner_text("body")
    assert "Downstream occlusion" in text and "(HIGH)" in text
    shot(page, "debrief")
    no_axe_violations(page)
    page.goto(f"{server.url}/instructor")
    page.get_by_role("button", name="Downstream occlusion", exact=True).wait_for()
    no_axe_violations(page)


def test_instructor_injects_an_event_live(serve: Any, page: Any) -> None:
    path = Path("examples/exercises/titration_norepinephrine.yaml")
    exercise = load_exercise(path)
    session = PanelSession(exercise.situation, str(path), speed=1.0)
    server = serve(training_app(exercise, session))
    page.goto(f"{server.url}/instructor")
    page.get_by_role("button", name="Open the door").click()
    page.get_by_text(re.compile("Done at")).wait_for()
    codes = [a.code.value for a in session.pump.alarms.active()]
    assert "door_open" in codes


def test_pca_by_the_patient_button_and_the_simulation_report_is_accessible(
    serve: Any, page: Any, tmp_path: Path
) -> None:
    scenario, _ = load_scenario(BEDSIDE)
    scenario = scenario.model_copy(update={"pump": PumpSpec(care_area="MED-SURG")})
    session = PanelSession(scenario, str(BEDSIDE), speed=1.0)
    server = serve(create_app(session))
    page.goto(server.url)
    widget(page, "pca").click()
    choose(page, "morphine/pca")
    choose(page, "1 mg/1 mL")
    for value in ("1", "8", "20"):  # demand dose (mg), lockout (min), 4-hour limit (mg)
        page.locator('[data-display="0"]').wait_for()
        keys(page, value)
    widget(page, "confirm").click()
    widget(page, "start").click()
    widget(page, "pca_demand").click()
    widget(page, "pca_demand").click()  # within the lockout: denied, and counted
    page.get_by_text(re.compile(r"1 given / 1 denied of 2")).wait_for()
    no_axe_violations(page)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0
    page.goto((tmp_path / "report.html").as_uri())
    no_axe_violations(page)


def test_a_bad_injection_is_refused_with_its_reason(serve: Any, page: Any) -> None:
    path = Path("examples/exercises/air_in_line.yaml")
    exercise = load_exercise(path)
    server = serve(training_app(exercise, PanelSession(exercise.situation, str(path), speed=1.0)))
    bad = page.request.post(f"{server.url}/api/inject", data={"do": "air", "channel": 1, "volume": "lots"})
    assert bad.status == 400 and "volume" in bad.json()["detail"]
    missing = page.request.post(f"{server.url}/api/inject", data={"do": "door", "channel": 3, "closed": False})
    assert missing.status == 400 and "channel" in missing.json()["detail"]
    ok = page.request.post(f"{server.url}/api/inject", data={"do": "door", "channel": 1, "closed": False})
    assert ok.status == 200
