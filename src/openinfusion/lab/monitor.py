"""``verify monitor``: the safety monitor catches single faults of the delivery side, and nothing else.

Each fault case runs the pump core on the virtual bench (:class:`~openinfusion.lab.rig.Rig`: open outlet,
KVO off, a program with no VTBI) and injects one fault where a real one would be
(:mod:`openinfusion.sim.firmware_faults`): the controller's time base (a runaway at 1.2x or 2x, from
15 min, 4 h or 12 h), its target (a jump of 1 mL), the motor driver (it keeps stepping after a pause),
the controller's calibration (scaled 0.8, at run time, or differing from the monitor's copy at power-on)
and the dose -> rate conversion (10x). Required for every case (issue 13): caught; time from the fault
to the trip at most 60 s; excess volume at most max(0.1 mL, 1 min of the programmed rate). The excess
is what the mechanism displaced from the fault's start until it stopped, beyond what the confirmed
program called for in that time (the simulator's truth, not the pump's own counters).

Normal-delivery cases run 24 h (a 50 mL syringe: until 90 % of it is delivered) at 0.1, 1, 25 and 999 mL/h
on the LVP and the syringe, and pass only with no monitor trip (no false trip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Final

import numpy as np

from openinfusion.lab.rig import Rig, Setup
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.pump.programs import DoseProgram, KvoSettings, RateLimits
from openinfusion.pump.pump import Phase, Pump, PumpConfig
from openinfusion.sim.driver import Driver
from openinfusion.sim.firmware_faults import (
    Runaway,
    TargetJump,
    corrupted,
    dose_conversion_off_by,
    ignore_stop,
    inject_calibration,
    inject_controller,
)
from openinfusion.sim.params import SyringeSize, VirtualPumpConfig
from openinfusion.sim.run import START, WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Quantity, format_decimal

SCHEMA: Final = "openinfusion.lab.monitor/1"
MAX_TRIP: Final = Duration.s(60)
MIN_BUDGET_ML: Final = 0.1
WATCH: Final = Duration.min(10)  # how long after the fault a case waits for the trip
SETTLE: Final = Duration.s(10)  # after the trip, until the mechanism has stopped
NORMAL_HOURS: Final = 24
MONITOR_ALARMS: Final = frozenset(
    {AlarmCode.DELIVERY_ACCURACY, AlarmCode.MOTION_MISMATCH, AlarmCode.REVERSE_DELIVERY, AlarmCode.SYSTEM_FAULT}
)
LVP: Final = Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(100))
SYRINGE: Final = Setup(mechanism=MechanismKind.SYRINGE, rate=FlowRate.ml_h(25), syringe=SyringeSize.ML50)


class FaultKind(Enum):
    """Where the fault is injected."""

    RUNAWAY = "controller runaway"
    TARGET_JUMP = "controller target jump"
    STEPS_WHILE_PAUSED = "driver keeps stepping while paused"
    CALIBRATION = "controller calibration corrupted at run time"
    CALIBRATION_AT_POST = "controller calibration differs from the monitor's at power-on"
    DOSE_CONVERSION = "dose -> rate conversion 10x"


@dataclass(frozen=True, slots=True)
class FaultCase:
    """One fault: its kind and size, the bench it runs on, and when it starts (bench time)."""

    kind: FaultKind
    setup: Setup
    start: Duration
    factor: Fraction = Fraction(1)

    @property
    def label(self) -> str:
        size = f" {format_decimal(self.factor, 2)}x" if self.kind is FaultKind.RUNAWAY else ""
        return f"{self.kind.value}{size} at {self.start}, {self.setup.label}"

    @property
    def key(self) -> str:
        size = format_decimal(self.factor, 2).replace(".", "p")
        return f"{self.kind.name.lower()}-{size}-{self.start.us // 1_000_000}s-{self.setup.key}"


def _cases() -> Iterator[FaultCase]:
    # A 50 mL syringe at 25 mL/h is empty after 2 h: its late faults start at 90 min instead of 4 h and 12 h.
    for setup, starts in (
        (LVP, (Duration.min(15), Duration.h(4), Duration.h(12))),
        (SYRINGE, (Duration.min(15), Duration.min(90))),
    ):
        for factor in (Fraction(12, 10), Fraction(2)):
            for start in starts:
                yield FaultCase(FaultKind.RUNAWAY, setup, start, factor)
        yield FaultCase(FaultKind.TARGET_JUMP, setup, starts[-1])
        yield FaultCase(FaultKind.STEPS_WHILE_PAUSED, setup, starts[0])
        yield FaultCase(FaultKind.CALIBRATION, setup, starts[-1], Fraction(8, 10))
        yield FaultCase(FaultKind.DOSE_CONVERSION, setup, Duration(0), Fraction(10))
    yield FaultCase(FaultKind.CALIBRATION_AT_POST, LVP, Duration(0), Fraction(8, 10))


CASES: Final = tuple(_cases())
NORMAL: Final = tuple(
    Setup(mechanism=kind, rate=FlowRate.ml_h(rate), syringe=SyringeSize.ML50)
    for kind in (MechanismKind.PERISTALTIC, MechanismKind.SYRINGE)
    for rate in ("0.1", "1", "25", "999")
)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What happened in one fault case."""

    case: FaultCase
    caught: bool
    alarm: str | None
    check: str | None  # the monitor check (SM-n) or self-test item that caught it
    time_to_trip_s: float | None
    excess_ml: float
    budget_ml: float

    @property
    def passes(self) -> bool:
        trip_ok = self.time_to_trip_s is not None and self.time_to_trip_s <= MAX_TRIP.us / 1e6
        return self.caught and trip_ok and self.excess_ml <= self.budget_ml

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case.key, "fault": self.case.kind.value, "label": self.case.label,
            "mechanism": self.case.setup.pump_label, "rate_ml_h": float(self.case.setup.rate.in_ml_h),
            "starts_s": self.case.start.us / 1e6, "caught": self.caught, "alarm": self.alarm, "check": self.check,
            "time_to_trip_s": None if self.time_to_trip_s is None else round(self.time_to_trip_s, 3),
            "excess_ml": round(self.excess_ml, 4), "budget_ml": round(self.budget_ml, 4), "passes": self.passes,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class NormalResult:
    """A normal-delivery run: how long it ran and the monitor trips it had (there must be none)."""

    setup: Setup
    hours: float
    trips: tuple[str, ...]
    displaced_ml: float

    @property
    def passes(self) -> bool:
        return not self.trips

    def to_json(self) -> dict[str, Any]:
        return {
            "configuration": self.setup.label, "hours": round(self.hours, 3), "false_trips": list(self.trips),
            "displaced_ml": round(self.displaced_ml, 3), "passes": self.passes,
        }  # fmt: skip


def _trips(events: tuple[LoggedEvent, ...]) -> list[LoggedEvent]:
    return [
        e for e in events
        if e.kind is EventKind.ALARM_RAISED and e.data.get("code") in {c.value for c in MONITOR_ALARMS}
    ]  # fmt: skip


def _displaced_ml(rig: Rig) -> float:
    return rig.world.channel(0).truth().displaced_ml


def _dose_program(rig: Rig, rate: FlowRate) -> DoseProgram:
    """A dose program (mg/h of 1 mg/mL) whose right rate is ``rate``."""
    dose = Quantity.of(rate.in_ml_h, "mg/h")
    conc = Concentration(Quantity.of(1, "mg"), Quantity.of(1, "mL"))
    return DoseProgram(
        dose=dose, concentration=conc, patient=Patient(), limits=RateLimits.of(rig.world.calibrations[0])
    )


def run_case(case: FaultCase, seed: int) -> CaseResult:
    """Run one fault case on a fresh bench."""
    rate_ml_h = float(case.setup.rate.in_ml_h)
    budget = max(MIN_BUDGET_ML, rate_ml_h / 60)
    if case.kind is FaultKind.CALIBRATION_AT_POST:
        return _at_post(case, seed, budget)
    rig = Rig(case.setup, seed)
    if case.kind is FaultKind.DOSE_CONVERSION:  # the program is built and confirmed with the faulty conversion
        rig.driver.run_until(START)
        with dose_conversion_off_by(int(case.factor)):
            rig.pump.program(0, _dose_program(rig, case.setup.rate))
            rig.pump.start(0)
        rig.driver.service()
    else:
        rig.start()
    rig.run_until(case.start)
    fault_at = rig.world.now
    before_ml = _displaced_ml(rig)
    expected_rate = rate_ml_h
    channel, clock = rig.pump.channels[0], rig.world.hardware.clock.now
    match case.kind:
        case FaultKind.RUNAWAY:
            inject_controller(channel, clock, Runaway(case.factor, fault_at))
        case FaultKind.TARGET_JUMP:
            inject_controller(channel, clock, TargetJump(start=fault_at))
        case FaultKind.CALIBRATION:
            inject_calibration(channel, case.factor)
        case FaultKind.STEPS_WHILE_PAUSED:
            ignore_stop(rig.world.channel(0).motor)
            rig.pump.pause(0)
            expected_rate = 0.0
    rig.driver.service()  # the faulty code acts from the fault's start: at once, not at the next planned move
    seen = len(rig.events())
    end = case.start + WATCH
    while rig.elapsed < end and not _trips(rig.events()[seen:]):
        rig.run_until(min(end, rig.elapsed + Duration.s(1)))
    trips = _trips(rig.events()[seen:])
    if not trips:
        excess = _displaced_ml(rig) - before_ml - _due(expected_rate, rig.world.now.since(fault_at))
        return CaseResult(case, False, None, None, None, excess, budget)
    first = trips[0]
    rig.run_until(rig.elapsed + SETTLE)
    tripped = first.t.since(fault_at)
    excess = _displaced_ml(rig) - before_ml - _due(expected_rate, tripped)
    check = str(first.data.get("detail", "")).partition(":")[0]
    return CaseResult(case, True, str(first.data["code"]), check, tripped.us / 1e6, excess, budget)


def _due(rate_ml_h: float, d: Duration) -> float:
    return rate_ml_h * d.us / 3.6e9


def _at_post(case: FaultCase, seed: int, budget: float) -> CaseResult:
    """The controller's calibration differs from the monitor's own copy: POST must refuse to run."""
    config = VirtualPumpConfig(channels=(case.setup.channel_config(),), watchdog_window=WATCHDOG_WINDOW)
    world = VirtualPump(config, np.random.default_rng(seed))
    settings = ChannelSettings(kvo=KvoSettings(enabled=False, rate=ZERO_RATE))
    bad = tuple(corrupted(c, case.factor) for c in world.calibrations)
    pump = Pump(world.hardware, bad, PumpConfig(channels=(settings,)), monitor_calibrations=world.calibrations)
    driver = Driver(world, pump)
    driver.run_until(START)
    failed = [
        e for e in pump.log.events()
        if e.kind is EventKind.ALARM_RAISED and e.data.get("code") == AlarmCode.SELF_TEST_FAILED.value
    ]  # fmt: skip
    caught = pump.phase is Phase.OUT_OF_SERVICE and bool(failed)
    failures = (e.data["item"] for e in pump.log.events() if e.kind is EventKind.SELF_TEST and not e.data["passed"])
    item = next(failures, None)
    return CaseResult(case, caught, AlarmCode.SELF_TEST_FAILED.value if caught else None,
                      None if item is None else str(item), 0.0 if caught else None, 0.0, budget)  # fmt: skip


def run_normal(setup: Setup, seed: int, progress: Callable[[float], None] | None = None) -> NormalResult:
    """Normal delivery for 24 h (a syringe: until 90 % of its capacity); every monitor trip is a false one."""
    rig = Rig(setup, seed)
    hours = Fraction(NORMAL_HOURS)
    capacity = rig.world.calibrations[0].container
    if capacity is not None:
        hours = min(hours, Fraction(capacity.nl * 9, 10) / setup.rate.nl_per_h)
    rig.start()
    span = Duration(int(hours * 3_600_000_000))
    rig.run_until(span, None if progress is None else (lambda t: progress(t.us / span.us)))
    trips = tuple(f"{e.data.get('code')} at {e.t}: {e.data.get('detail', '')}" for e in _trips(rig.events()))
    return NormalResult(setup, float(hours), trips, _displaced_ml(rig))


def method_json() -> dict[str, Any]:
    return {
        "max_time_to_trip_s": MAX_TRIP.us / 1e6, "min_budget_ml": MIN_BUDGET_ML,
        "budget": "max(0.1 mL, 1 min of the programmed rate)", "normal_hours": NORMAL_HOURS,
        "excess": "mechanism displacement from the fault's start to standstill, less the confirmed program's",
    }  # fmt: skip
