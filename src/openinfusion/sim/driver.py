"""The driver: runs a pump core on a virtual pump, as firmware's main loop and interrupts would.

The core is serviced when the instant it asked for arrives, or earlier when the virtual hardware
raises an interrupt (an armed pressure threshold crossed, a bubble, the door, mains): the physics
integrates in blocks up to the next due instant and stops early at the first interrupt. Between
services nothing in the core runs, which is what makes a day of infusion cost milliseconds.

While the virtual pump has no power (switched off, or browned out on an exhausted battery) the firmware
does not run: only the physics advances. When power returns the firmware boots afresh: ``boot`` builds
the new core (what survives a power cycle is what the pump keeps in non-volatile memory) and it is powered
on, self-test first (without ``boot`` the firmware stays off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from openinfusion.pump.pump import Pump
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Instant

NEVER: Final = Instant(1 << 62)
_TICK: Final[frozenset[int]] = frozenset()  # a timer woke the core and no device interrupted


class Driver:
    """Advances ``world`` and services ``pump`` (powering it on at construction).

    The pump's safety monitor asks for a check at least every second (its own cadence); those ticks are
    served inside the physics' blocks (:meth:`VirtualPump.advance` with this driver as its ticker), so a
    day of infusion still integrates in a few large blocks.
    """

    def __init__(
        self,
        world: VirtualPump,
        pump: Pump,
        on_service: Callable[[], None] | None = None,
        boot: Callable[[Pump], Pump] | None = None,
    ) -> None:
        self.world = world
        self.pump = pump
        self.on_service = on_service
        self.boot = boot
        self.due = pump.power_on()
        self.on_power: Callable[[], None] | None = None  # told when the firmware stops or boots (an instrument)
        self.services = 0
        self._running = True  # the firmware runs (the pump has power)
        self.ticks = 0

    @property
    def now(self) -> Instant:
        return self.world.now

    def service(self, interrupted: frozenset[int] | None = None) -> None:
        """Service the core now (after a scenario action, a timer, or the interrupts of ``interrupted``);
        nothing runs while the pump has no power, and the core boots afresh when power has returned."""
        if not self._follow_power():
            return
        self.due = self.pump.service(interrupted)
        self.services += 1
        if self.on_service is not None:
            self.on_service()

    def run_until(self, t: Instant) -> None:
        """Integrate and service until the virtual clock reaches ``t``."""
        while self.world.now < t:
            if not self._follow_power():
                self.world.advance(t)  # physics only: the firmware is off (stops early at an interrupt)
                continue
            target = min(max(self.pump.next_full_due, self.due), t)
            reached = self.world.advance(target, self)
            if reached < target:  # an interrupt: the channels whose devices raised it, or all if pump-wide
                channels = [w.channel for w in self.world.last_wakes]
                self.service(None if None in channels else frozenset(c for c in channels if c is not None))
            elif reached >= self.due:
                self.service(frozenset())  # a timer: the channels whose time has come

    def _follow_power(self) -> bool:
        """True if the firmware runs now. When power goes, the core gets its power-fail interrupt once; when it
        has come back, the core boots afresh."""
        if not self.world.powered:
            if self._running:
                self._running = False
                self.pump.power_fail(key=not self.world.switched_on)
                if self.on_power is not None:
                    self.on_power()
            return False
        if not self._running:
            if self.boot is None:
                return False  # nothing to boot: the firmware stays off
            self._running = True
            self.pump = self.boot(self.pump)
            self.due = self.pump.power_on()
        return True

    # --- the ticker of VirtualPump.advance -------------------------------------------------------------

    def tick_due_us(self) -> int:
        """When the next monitor-only tick is due, us of true time (a due that is also a full service ends the
        block instead)."""
        due = self.due.us
        return due if due < self.pump.next_full_due.us else NEVER.us

    def tick(self) -> bool:
        """A timer tick inside a block: the pump's monitor-only service; True if it needs a full one now."""
        self.due = self.pump.service(_TICK)
        self.ticks += 1
        return self.pump.next_full_due.us <= self.world.now.us
