"""Score an exercise and tell its story: from the pump's event log and the panel's record of presses.

The score follows the exercise's rubric: each expected action met within its time limit earns its
points (the response time is reported either way); each mistake made costs its penalty; keystrokes
above the par cost a point each (at most 10). Errors caught are the limit alerts after which the
trainee changed or cancelled the program (DERS_CANCEL in the log) rather than overriding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from openinfusion.pump.eventlog import EventKind
from openinfusion.sim.run import START
from openinfusion.sim.screen import LABELS, clock
from openinfusion.sim.story import TOLD, sentence
from openinfusion.units import Duration, Instant
from openinfusion.web.panel.session import PanelSession, Press
from openinfusion.web.training.exercise import Exercise, Expected

KEYSTROKE_PENALTY_CAP: Final = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    """One expected action: when its clock started, when (if) the trainee did it, and the points earned."""

    expected: Expected
    trigger_us: int | None  # None: the trigger never happened
    done_us: int | None
    points: int

    @property
    def response(self) -> str | None:
        if self.trigger_us is None or self.done_us is None:
            return None
        return clock(Duration(self.done_us - self.trigger_us))


def _trigger(session: PanelSession, exp: Expected) -> int | None:
    """When the clock of an expected action starts, in pump time (us since power-on, as the log and presses)."""
    if exp.after.at is not None:
        return START.us + Duration.of(exp.after.at).us
    code = exp.after.alarm.value if exp.after.alarm is not None else None
    for e in session.pump.log.events():
        raised = e.kind is EventKind.ALARM_RAISED and e.data.get("code") == code
        if raised and (exp.channel is None or e.channel in (exp.channel - 1, None)):
            return e.t.us
    return None


def _matches(p: Press, do: str, channel: int | None, arg: str | None) -> bool:
    return p.ok and p.widget == do and (channel is None or p.channel == channel - 1) and (arg is None or p.arg == arg)


def score(exercise: Exercise, session: PanelSession) -> dict[str, Any]:
    """The debrief's numbers: each expected action, mistakes, errors caught, keystrokes, and the score."""
    outcomes = []
    for exp in exercise.expected:
        start = _trigger(session, exp)
        done = None
        if start is not None:
            after = (p for p in session.presses if p.t_us >= start)
            done = next((p.t_us for p in after if _matches(p, exp.do, exp.channel, exp.arg)), None)
        met = start is not None and done is not None and done - start <= Duration.of(exp.within).us
        outcomes.append(Outcome(exp, start, done, exp.points if met else 0))
    made = [m for m in exercise.mistakes if any(_matches(p, m.do, None, m.arg) for p in session.presses)]
    caught = sum(1 for e in session.pump.log.events() if e.kind is EventKind.DERS_CANCEL)
    keys = len(session.presses)
    extra = min(max(0, keys - exercise.keystroke_par), KEYSTROKE_PENALTY_CAP)
    possible = sum(e.points for e in exercise.expected)
    total = max(0, sum(o.points for o in outcomes) - sum(m.penalty for m in made) - extra)
    return {
        "expected": [
            {
                "id": o.expected.id,
                "text": o.expected.text,
                "do": o.expected.do,
                "within": str(o.expected.within),
                "triggered": None if o.trigger_us is None else session.time(Instant(o.trigger_us)),
                "done": None if o.done_us is None else session.time(Instant(o.done_us)),
                "response": o.response,
                "points": o.points,
                "of": o.expected.points,
            }
            for o in outcomes
        ],
        "mistakes": [{"id": m.id, "text": m.text, "penalty": m.penalty} for m in made],
        "errors_caught": caught,
        "keystrokes": keys,
        "keystroke_par": exercise.keystroke_par,
        "keystroke_penalty": extra,
        "score": total,
        "possible": possible,
        "percent": round(100 * total / possible) if possible else 0,
    }


def narrative(session: PanelSession) -> list[dict[str, str]]:
    """The timeline in clock time (sim/timebase.py): the pump's events and the trainee's presses, in time order."""
    rows: list[tuple[int, int, dict[str, str]]] = []
    for e in session.pump.log.events():
        if e.kind not in TOLD or e.kind is EventKind.RATE_CHANGED:
            continue
        text = sentence(e)
        if text is None:
            continue
        where = "pump" if e.channel is None else f"channel {LABELS[e.channel]}"
        rows.append((e.t.us, 0, {"time": session.time(e.t), "who": where, "text": text}))
    for p in session.presses:
        if p.widget.startswith("key_") or p.widget == "choose":
            continue
        what = p.widget.replace("_", " ") + (f" ({p.arg})" if p.arg else "")
        where = "" if p.channel is None else f" on channel {LABELS[p.channel]}"
        result = "" if p.ok else f": refused, {p.detail}"
        pressed = {"time": session.time(Instant(p.t_us)), "who": "nurse", "text": f"Pressed {what}{where}{result}"}
        rows.append((p.t_us, 1, pressed))
    return [r for _, _, r in sorted(rows, key=lambda r: (r[0], r[1]))]
