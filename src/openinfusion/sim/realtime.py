"""Real-time pacing of a simulation, for the front panel and training (STYLE.md §3, SimPy's ``rt.py``).

The same engine (:class:`~openinfusion.sim.run.Simulation`) runs underneath; this wrapper only decides
how far it may go: simulated time advances as ``speed`` times the monotonic clock it is given, from the
moment of construction. The pump core never reads the wall clock; only this module does, through the
``clock`` callable (``time.monotonic`` by default, a fake in tests).

Scenario events due before the target are applied in order (``Simulation.step``); events injected
live (an instructor's occlusion) join the same queue at the present instant, so they are applied and
logged exactly as a scripted event would be. Per-sample series are not kept (a session may run for
hours): the panel reads the pump's state and event log, not the physics' series.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from openinfusion.errors import ConfigError
from openinfusion.sim.run import START, Simulation
from openinfusion.sim.scenario import TimelineEvent
from openinfusion.units import Duration, Instant

MAX_SPEED: Final = 600.0  # 10 min of pump time per second: fast enough for training, cheap enough to keep up


class Realtime:
    """Paces ``sim`` at ``speed`` x the ``clock`` (seconds, monotonic); ``frozen`` holds time still."""

    def __init__(self, sim: Simulation, speed: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sim = sim
        self.clock = clock
        sim.driver.on_service = None  # no per-service series for the report: a live session keeps only the log
        for i in range(len(sim.pump.channels)):
            sim.world.channel(i).record = False
        self._speed = _checked(speed)
        sim.driver.run_until(START)  # the power-on self-test, before the clock starts
        self._base_wall = clock()
        self._base_us = sim.world.now.us
        self.frozen = False
        self._injected = 0

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def elapsed(self) -> Duration:
        """Scenario time since time 0 (one second after power-on)."""
        return Duration(max(0, self.sim.world.now.us - START.us))

    def target(self) -> Instant:
        """The simulated instant the clock says it is now (never beyond the scenario's end)."""
        if self.frozen:
            return self.sim.world.now
        wall = self.clock() - self._base_wall
        us = self._base_us + int(wall * self._speed * 1e6)
        return Instant(min(max(us, self.sim.world.now.us), self.sim.end.us))

    def sync(self) -> Instant:
        """Run the simulation up to :meth:`target`, applying every scenario event due on the way."""
        target = self.target()
        sim = self.sim
        while self._next_due() <= target.us:  # target <= end, so each step applies the event at the head
            sim.step()
        sim.driver.run_until(target)
        sim.world.drain_series()  # the battery series is kept by the world regardless; drop it
        return sim.world.now

    def _next_due(self) -> int:
        queue = self.sim._queue  # the engine's heap; read-only here
        return queue[0].t_us if queue else self.sim.end.us + 1

    def set_speed(self, speed: float) -> None:
        """Change the pace from now on (time so far is kept)."""
        self.sync()
        self._speed = _checked(speed)
        self._rebase()

    def freeze(self, frozen: bool) -> None:
        """Hold simulated time still (an instructor's pause) or let it run again."""
        self.sync()
        self.frozen = frozen
        self._rebase()

    def _rebase(self) -> None:
        self._base_wall = self.clock()
        self._base_us = self.sim.world.now.us

    def inject(self, event: TimelineEvent) -> None:
        """Apply ``event`` (an occlusion, air, a door, mains...) now, as the scenario engine applies its own."""
        self.sync()
        self._injected += 1
        self.sim._push(self.sim.world.now, event, f"injected[{self._injected}]")  # the engine's own queue
        self.sync()
        self.sim.driver.service()


def _checked(speed: float) -> float:
    if not 0 < speed <= MAX_SPEED:
        raise ConfigError("speed", f"must be above 0 and at most {MAX_SPEED:g}, got {speed!r}")
    return float(speed)
