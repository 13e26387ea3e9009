"""Faults injected into the firmware under test, where a real fault would be (sim-only hooks).

:mod:`openinfusion.sim.faults` breaks the virtual *hardware*; this module breaks the *pump core's own*
delivery side, as a software defect or a corrupted memory would: the delivery controller's time base
(a runaway), its target (a jump), the motor driver's stop (keeps stepping), the controller's copy of the
calibration, and the dose -> rate conversion. The pump core never imports this module (STYLE.md §2: test
hooks live outside the production interface); each hook reaches into the objects a
:class:`~openinfusion.pump.pump.Pump` was built with, from outside, and only the delivery side's. The
safety monitor's own inputs (its calibration copy, its confirmed values, its sensor reads) are never
touched, which is what ``openinfusion verify monitor`` demonstrates.

Every fault is a frozen dataclass with safe defaults (after LoopKit's ``MockPumpManagerState``) and
takes effect from ``start`` (pump time) on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

from openinfusion.pump import programs
from openinfusion.pump.channel import Channel
from openinfusion.pump.delivery import DeliveryController, Move, SegmentTracker
from openinfusion.pump.dosing import DoseConversion, dose_to_rate
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.sim.motor import VirtualMotor
from openinfusion.sim.params import require
from openinfusion.units import Duration, FlowRate, Instant, Volume


@dataclass(frozen=True, slots=True)
class Runaway:
    """The controller's time base runs ``factor`` times fast from ``start``: it delivers ``factor`` x the rate."""

    factor: Fraction = Fraction(12, 10)
    start: Instant = Instant(0)

    def __post_init__(self) -> None:
        require(self.factor > 1, "fault.factor", "a runaway is faster than programmed (factor > 1)")


@dataclass(frozen=True, slots=True)
class TargetJump:
    """At ``start`` the controller's target jumps ahead by ``volume`` (a corrupted segment base)."""

    volume: Volume = Volume.ml(1)
    start: Instant = Instant(0)


@dataclass(frozen=True, slots=True)
class CorruptCalibration:
    """From ``start`` the controller's calibration table reads ``scale`` x the true volume per step."""

    scale: Fraction = Fraction(8, 10)
    start: Instant = Instant(0)


def corrupted(calibration: MechanismCalibration, scale: Fraction) -> MechanismCalibration:
    """``calibration`` with every cumulative volume scaled by ``scale`` (rounded down)."""
    return replace(calibration, cumulative_nl=tuple(int(v * scale) for v in calibration.cumulative_nl))


class FaultyController(DeliveryController):
    """The channel's controller with a fault in its targets; everything else is the real controller."""

    def __init__(self, base: DeliveryController, clock: Callable[[], Instant], fault: Runaway | TargetJump) -> None:
        super().__init__(base.cal, base.max_carry)
        self.origin_steps = base.origin_steps
        self._clock = clock
        self._fault = fault
        self._anchor: dict[int, Duration] = {}  # elapsed of each segment when the fault first saw it

    def plan(self, steps_now: int, tracker: SegmentTracker, interval: Duration) -> Move:
        if self._clock() < self._fault.start:
            return super().plan(steps_now, tracker, interval)
        e0 = self._anchor.setdefault(id(tracker), tracker.elapsed)
        match self._fault:
            case Runaway(factor=k):
                elapsed = e0.us + (tracker.elapsed.us - e0.us) * k + interval.us * (k - 1)
                wrong = replace(tracker, elapsed=Duration(int(elapsed)))
            case TargetJump(volume=v):
                wrong = replace(tracker, base=tracker.base + v)
        return super().plan(steps_now, wrong, interval)


def inject_controller(channel: Channel, clock: Callable[[], Instant], fault: Runaway | TargetJump) -> None:
    """Replace ``channel``'s delivery controller by one with ``fault``."""
    channel.controller = FaultyController(channel.controller, clock, fault)


def inject_calibration(channel: Channel, scale: Fraction) -> None:
    """Corrupt the controller's copy of the calibration now (the monitor's copy is its own)."""
    bad = corrupted(channel.cal, scale)
    channel.cal = bad
    origin = channel.controller.origin_steps
    channel.controller = DeliveryController(bad, channel.controller.max_carry)
    channel.controller.origin_steps = origin


def ignore_stop(motor: VirtualMotor) -> None:
    """The motor driver stops obeying ``stop``: a move in progress keeps stepping (only the latch halts it)."""
    motor.ignores_stop = True


@contextlib.contextmanager
def dose_conversion_off_by(factor: int) -> Iterator[None]:
    """Within the block, the programs' dose -> rate conversion returns ``factor`` x the right rate."""

    def wrong(dose: object, conc: object, patient: object, resolution: FlowRate, where: str = "dose") -> DoseConversion:
        right = dose_to_rate(dose, conc, patient, resolution, where)  # type: ignore[arg-type]
        return replace(right, rate=FlowRate(right.rate.nl_per_h * factor))

    names = vars(programs)  # the name DoseProgram.conversion looks up at call time
    saved = names["dose_to_rate"]
    names["dose_to_rate"] = wrong
    try:
        yield
    finally:
        names["dose_to_rate"] = saved
