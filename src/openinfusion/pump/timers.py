"""The clinical timers of one channel: callback reminders, unconfirmed titration, near end.

Theory of operation
-------------------
Each timer is a row of :data:`TIMER_ALARMS`: the alarm it raises, and from a :class:`TimerView`
whether it is present (``True``), absent (``False``, its condition is cleared) or undecided (``None``).
:func:`timer_due` gives the pump times at which a timer will next change, so the channel asks for
attention exactly then and never polls. Time is pump time, passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.delivery import MIN_MOVE
from openinfusion.pump.programs import NearEndSettings
from openinfusion.units import Duration, FlowRate, Instant


@dataclass(slots=True)
class Timers:
    """When the channel entered its state, when a titration began to wait, whether near end was announced."""

    state_since: Instant
    titration_since: Instant | None = None
    near_end_raised: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerView:
    """What the timer rows look at, at one instant."""

    now: Instant
    timers: Timers
    waiting: bool  # PROGRAMMING or READY: a program is being entered or waits for start
    paused: bool
    infusing: bool
    left: Duration | None  # infusing time until the plan ends (None: unbounded)
    rate: FlowRate
    callback: Duration
    titration_timeout: Duration
    near_end: NearEndSettings

    def elapsed(self) -> Duration:
        return self.now.since(self.timers.state_since)


@dataclass(frozen=True, slots=True)
class TimerAlarm:
    """One row: the alarm, when it is present (None: leave it), and its detail."""

    code: AlarmCode
    condition: str
    present: Callable[[TimerView], bool | None]
    detail: Callable[[TimerView], str]


def _titration_overdue(v: TimerView) -> bool | None:
    since = v.timers.titration_since
    return True if since is not None and v.now.since(since) >= v.titration_timeout else None


def _near_end(v: TimerView) -> bool | None:
    due = v.infusing and v.left is not None and v.near_end.due(v.left) and not v.timers.near_end_raised
    return True if due else None  # stays until the VTBI completes or the program is cleared


#: Clinical timers and the alarms they raise (OI-ALM-9, OI-ALM-10, OI-ALM-11), in order.
TIMER_ALARMS: Final[tuple[TimerAlarm, ...]] = (
    TimerAlarm(
        AlarmCode.CALLBACK_PROGRAMMING, "a program left unattended in programming or ready for the callback time",
        lambda v: v.waiting and v.elapsed() >= v.callback, lambda v: "left unattended",
    ),
    TimerAlarm(
        AlarmCode.CALLBACK_PAUSED, "paused for the callback time",
        lambda v: v.paused and v.elapsed() >= v.callback, lambda v: "paused",
    ),
    TimerAlarm(
        AlarmCode.UNCONFIRMED_TITRATION, "a titration waits for confirmation longer than its timeout",
        _titration_overdue, lambda v: f"still infusing at {v.rate}",
    ),
    TimerAlarm(
        AlarmCode.NEAR_END, "the plan ends within the near-end lead time",
        _near_end, lambda v: f"{v.left} left",
    ),
)  # fmt: skip


def timer_due(v: TimerView) -> list[Instant]:
    """Future pump times at which a timer row may change (a timer already due has raised its alarm)."""
    t = v.timers
    at = [t.state_since + v.callback] if v.waiting or v.paused else []
    if t.titration_since is not None:
        at.append(t.titration_since + v.titration_timeout)
    due = [when for when in at if when > v.now]
    if v.infusing and v.left is not None and not t.near_end_raised:
        due.append(v.now + max(v.left - v.near_end.lead, MIN_MOVE))
    return due
