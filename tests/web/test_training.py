"""Exercises load and score from what the trainee did on the real core (fake clock: no waiting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openinfusion.errors import ScenarioError
from openinfusion.pump.eventlog import EventKind
from openinfusion.web.panel.session import PanelSession
from openinfusion.web.training.exercise import load_exercise
from openinfusion.web.training.scoring import narrative, score

EXERCISES = sorted(Path("examples/exercises").glob("*.yaml"))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(name: str) -> tuple[PanelSession, Clock]:
    path = Path("examples/exercises") / name
    ex = load_exercise(path)
    clock = Clock()
    return PanelSession(ex.situation, str(path), ex.speed, clock), clock


def test_at_least_ten_exercises_start_and_raise_the_alarms_they_score() -> None:
    """Each exercise starts, and every alarm its rubric waits for happens within 10 minutes untouched."""
    assert len(EXERCISES) >= 10
    for path in EXERCISES:
        ex = load_exercise(path)
        clock = Clock()
        session = PanelSession(ex.situation, str(path), ex.speed, clock)
        assert session.state()["phase"] == "running", path
        clock.t = 600.0 / ex.speed
        session.state()
        raised = {e.data.get("code") for e in session.pump.log.events() if e.kind is EventKind.ALARM_RAISED}
        awaited = {e.after.alarm.value for e in ex.expected if e.after.alarm is not None}
        assert awaited <= raised, (path.name, awaited - raised)


def test_occlusion_answered_in_time_scores_full_marks() -> None:
    path = Path("examples/exercises/occlusion_downstream.yaml")
    ex = load_exercise(path)
    session, clock = run(path.name)
    clock.t = 120.0  # the line kinks at 40 s; the pressure takes a while to build at 37.5 mL/h
    state = session.state()
    assert state["alarms"][0]["code"] == "occlusion_downstream" and state["alarms"][0]["priority"] == "high"
    assert state["channels"][0]["state"] == "alarm"
    session.press("audio_pause")
    clock.t = 200.0  # the kink is straightened at 100 s
    session.press("resume", 0)  # refused: the latched alarm is reset first
    session.press("reset_alarm", 0)
    session.press("resume", 0)
    assert session.state()["channels"][0]["state"] == "infusing"
    result = score(ex, session)
    assert [e["points"] for e in result["expected"]] == [10, 10, 20]
    assert result["score"] == 40 - 1 and not result["mistakes"]  # 4 presses, par 3
    story = [f"{r['time']} {r['text']}" for r in narrative(session)]
    assert any("Downstream occlusion" in s and "(HIGH)" in s for s in story), story


def test_no_response_scores_nothing_and_mistake_costs() -> None:
    path = Path("examples/exercises/occlusion_downstream.yaml")
    ex = load_exercise(path)
    session, clock = run(path.name)
    clock.t = 600.0
    session.press("reset_alarm", 0)  # far too late to earn its points
    session.press("clear", 0)
    result = score(ex, session)
    assert result["score"] == 0 and [m["id"] for m in result["mistakes"]] == ["cleared"]
    assert [e["done"] is None for e in result["expected"]] == [True, False, True]


def test_bad_exercise_reports_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: openinfusion.exercise/1\ntitle: x\nobjectives: []\nbriefing: b\nkeystroke_par: 0\n")
    with pytest.raises(ScenarioError) as err:
        load_exercise(bad)
    text = str(err.value)
    for field in ("objectives", "situation", "expected", "keystroke_par"):
        assert field in text


def test_insulin_exercise_debrief_shows_the_dose_confirmed_and_the_hard_limit_blocks_the_tenfold_error() -> None:
    path = Path("examples/exercises/insulin_decimal.yaml")
    ex = load_exercise(path)
    session, _ = run(path.name)
    ms = 0

    def press(widget: str, arg: str | None = None) -> bool:
        nonlocal ms
        ms += 300
        session.press(widget, 0, arg, ms)
        return session.presses[-1].ok

    def number(text: str) -> None:
        for key in text:
            press(f"key_{key}")
        press("key_enter")

    press("program"), press("choose", "insulin-regular"), press("choose", "100 [iU]/100 mL")
    number("50")  # the trailing-zero misreading of "5.0": above the 30 units/h hard limit, as the rubric says
    number("250")
    assert not press("confirm")
    assert not press("override", "Emergency")  # no way round a hard limit
    assert press("change")
    number("5")
    number("250")
    assert press("confirm") and press("start")
    story = [r["text"] for r in narrative(session)]
    assert any("HARD LIMIT" in s and "50 [iU]/h" in s for s in story), story
    assert any(s.startswith("Program confirmed: 5 [iU]/h = 5 mL/h") for s in story), story
    result = score(ex, session)
    assert [e["points"] for e in result["expected"]] == [20, 10] and not result["mistakes"]


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_each_briefing_tells_the_situation_the_exercise_runs(path: Path) -> None:
    """The patient's weight and every running program's drug and dose or rate, as the briefing states them."""
    ex = load_exercise(path)
    briefing = " ".join(ex.briefing.split()).replace("mcg", "ug").replace("units", "[iU]")
    weight = ex.situation.patient.weight
    assert weight is None or f"{weight.value} kg" in briefing, (path.name, weight)
    for ch in ex.situation.channels:
        program = ch.program
        if program is None:
            continue
        chosen = program.from_library
        assert chosen is not None and chosen.drug.replace("-", " ") in briefing, (path.name, chosen)
        shown = getattr(program, "dose", None) or getattr(program, "rate", None)
        if shown is not None:
            assert f"{shown.value} {shown.unit}" in briefing, (path.name, str(shown))
