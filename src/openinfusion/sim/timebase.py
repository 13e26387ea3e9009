"""The one time base of a run's outputs, and the clock a person reads it in (decision 0036).

Tools read **pump time**: integer microseconds since power-on, ``t_us``, as the event log keeps it
(``events.jsonl``, ``summary.json``, ``series.parquet``). Scenario time 0 is pump time
:data:`~openinfusion.sim.run.START` (1 s, after the power-on self-test), given in ``summary.json`` as
``start_us``. People read **clock time**: the wall clock when the scenario gives ``start`` (in that
time's UTC offset), otherwise hh:mm:ss from the scenario's start. Both are computed from ``t_us`` here
and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from openinfusion.sim.run import START
from openinfusion.sim.scenario import Scenario
from openinfusion.sim.screen import clock
from openinfusion.units import Duration, Instant


@dataclass(frozen=True, slots=True)
class TimeBase:
    """How a run's pump instants read: ``start`` is the wall clock at scenario time 0 (aware), or None.

    ``span`` is the scenario's duration: a wall clock that crosses midnight shows dates.
    """

    start: dt.datetime | None = None
    span: Duration = Duration(0)

    @classmethod
    def of(cls, scenario: Scenario) -> TimeBase:
        return cls(scenario.start, Duration.of(scenario.duration))

    @property
    def heading(self) -> str:
        """What the time column means, for a table's title."""
        if self.start is None:
            return "hh:mm:ss from the start"
        return f"clock time, UTC{self.start.strftime('%z')[:3]}:{self.start.strftime('%z')[3:]}"

    def wall(self, t: Instant) -> dt.datetime | None:
        """The wall-clock time of pump instant ``t`` (None without a start)."""
        return None if self.start is None else self.start + dt.timedelta(microseconds=t.us - START.us)

    def __call__(self, t: Instant) -> str:
        """Pump instant ``t`` as a person reads it (times before the start read as the start)."""
        t = Instant(max(t.us, START.us))
        wall = self.wall(t)
        if wall is None:
            return clock(Duration(t.us - START.us))
        assert self.start is not None
        end = self.start + dt.timedelta(microseconds=self.span.us)
        return wall.strftime("%H:%M:%S" if end.date() == self.start.date() else "%Y-%m-%d %H:%M:%S")

    def at_s(self, t_s: float) -> str:
        """Scenario time ``t_s`` (seconds from the start) as a person reads it."""
        return self(pump_instant(t_s))


def pump_instant(t_s: float) -> Instant:
    """Scenario seconds -> the pump instant (exact for any run shorter than ~285 years)."""
    return Instant(START.us + round(t_s * 1e6))
