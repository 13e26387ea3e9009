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
