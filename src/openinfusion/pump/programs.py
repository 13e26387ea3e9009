"""Infusion programs and their plans (OI-PROG-1, OI-PROG-4, OI-PROG-5, OI-PROG-6, OI-PROG-7, OI-PROG-8).

Theory of operation. A program is what the clinician confirms; a *plan* is what the channel runs:
a tuple of :class:`Segment` objects, each at one constant rate, ending after its volume (or, for a WAIT
segment, after its duration; a segment with neither runs until stopped). Every program type here is a
frozen, keyword-only dataclass that validates itself when built, so an invalid program cannot exist,
and compiles to its plan with ``plan()``. Rates are checked against the mechanism's
:class:`RateLimits` (range and resolution grid); a rate a program *computes* (volume over time, dose,
ramp/taper) is rounded to the grid half to even first. Volumes are integer nanolitres, so a plan's
segment volumes add up to the programmed total exactly, whatever the rounding of rates.

Every program offers the :class:`Program` protocol: ``plan()``, ``planned_vtbi()`` (total planned
volume, None when unbounded), ``primary_rate()`` and ``titrated(change)``. Errors are
:class:`ProgramError` exceptions whose ``where`` is the field path (``program.rate``,
``program.steps[2].vtbi``, ``program.patient.weight``) and whose ``why`` is the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from fractions import Fraction
from typing import Final, Protocol

from openinfusion.errors import ConfigError, InputError, ProgramError
from openinfusion.pump.dosing import Concentration, DoseConversion, Patient, amount_to_volume, dose_to_rate
from openinfusion.pump.dosing import round_to_resolution as _round
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.units import US_PER_H, ZERO_RATE, ZERO_VOLUME, Duration, FlowRate, Quantity, Volume

MAX_STEPS: Final = 25  # steps of a multistep program; increments of one ramp/taper phase


@contextmanager
def located(outer: str) -> Iterator[None]:
    """Re-raise any :class:`InputError` inside the block with ``outer`` prefixed to its ``where``."""
    try:
        yield
    except InputError as err:
        raise err.at(outer) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimits:
    """The rates a channel can run: ``min_rate``..``max_rate`` in multiples of ``resolution`` (nL/h)."""

    min_rate: FlowRate
    max_rate: FlowRate
    resolution: FlowRate

    def __post_init__(self) -> None:
        if not 0 < self.min_rate.nl_per_h <= self.max_rate.nl_per_h:
            raise ConfigError("limits", "rates must satisfy 0 < min_rate <= max_rate")
        if self.resolution.nl_per_h <= 0 or self.min_rate.nl_per_h % self.resolution.nl_per_h:
            raise ConfigError("limits.resolution", "must be positive and divide min_rate")

    @classmethod
    def of(cls, mechanism: MechanismCalibration) -> RateLimits:
        """The limits of a calibrated mechanism."""
        return cls(min_rate=mechanism.min_rate, max_rate=mechanism.max_rate, resolution=mechanism.resolution)

    def check(self, rate: FlowRate, where: str) -> FlowRate:
        """Return ``rate`` if it is within min..max and on the resolution grid, else raise ProgramError."""
        if rate.nl_per_h <= 0:
            raise ProgramError(where, f"rate must be positive, got {rate}")
        if rate < self.min_rate:
            raise ProgramError(where, f"rate {rate} is below the pump's minimum {self.min_rate}")
        if rate > self.max_rate:
            raise ProgramError(where, f"rate {rate} is above the pump's maximum {self.max_rate}")
        if rate.nl_per_h % self.resolution.nl_per_h:
            raise ProgramError(where, f"rate {rate} is not a multiple of the pump's resolution {self.resolution}")
        return rate

    def volume_over(self, volume: Volume, duration: Duration, where: str) -> FlowRate:
        """The checked rate that delivers ``volume`` over ``duration``, rounded to the grid (ties to even)."""
        if duration.us <= 0:
            raise ProgramError(where, f"duration must be positive, got {duration}")
        return self.check(_round(Fraction(volume.nl * US_PER_H, duration.us), self.resolution), where)

    def paced(self, volume: Volume, pace: Duration | FlowRate, where: str) -> FlowRate:
        """The rate for ``volume`` given either a duration to deliver it over or a rate."""
        if isinstance(pace, Duration):
            return self.volume_over(volume, pace, where)
        return self.check(pace, where)


class SegmentKind(Enum):
    """What a plan segment is, for display, logging and the channel's end-of-segment behaviour."""

    PRIMARY = "primary"
    LOADING = "loading"
    BOLUS = "bolus"
    SECONDARY = "secondary"
    STEP = "step"
    RAMP = "ramp"
    INTERMITTENT_DOSE = "intermittent_dose"
    WAIT = "wait"
    BASAL = "basal"
    PCA_DEMAND = "pca_demand"


_ZERO_RATE_KINDS: Final = frozenset({SegmentKind.WAIT, SegmentKind.BASAL})


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One constant-rate piece of a plan.

    Ends after ``volume`` (infusing segments) or after ``duration`` (WAIT segments, or an infusing
    segment bounded by time), never both; with neither it runs until stopped. ``rate`` is 0 only for
    WAIT (always) and BASAL (a PCA with no basal infusion), and a zero-rate segment has no volume.
    """

    kind: SegmentKind
    rate: FlowRate
    volume: Volume | None = None
    duration: Duration | None = None
    label: str

    def __post_init__(self) -> None:
        if not self.label:
            raise ProgramError("segment.label", "must not be empty")
        where = f"segment[{self.label}]"
        if self.rate.nl_per_h < 0 or (self.rate.nl_per_h == 0 and self.kind not in _ZERO_RATE_KINDS):
            raise ProgramError(f"{where}.rate", f"must be positive for a {self.kind.value} segment")
        if self.kind is SegmentKind.WAIT and (self.rate.nl_per_h or self.duration is None):
            raise ProgramError(where, "a wait segment has rate 0 and a duration")
        if self.volume is not None and self.duration is not None:
            raise ProgramError(where, "a segment ends after its volume or after its duration, not both")
        if self.volume is not None and (self.volume.nl <= 0 or self.rate.nl_per_h == 0):
            raise ProgramError(f"{where}.volume", "must be positive, at a positive rate")
        if self.duration is not None and self.duration.us <= 0:
            raise ProgramError(f"{where}.duration", "must be positive")

    def planned_duration(self) -> Duration | None:
        """How long the segment runs if delivery is never interrupted (volume segments: rounded up, us)."""
        if self.volume is not None:
            return self.rate.time_for(self.volume)
        return self.duration


def plan_volume(plan: tuple[Segment, ...]) -> Volume | None:
    """Total volume of a plan (nL, exact), or None if an infusing segment runs until stopped."""
    total = 0
    for segment in plan:
        if segment.volume is not None:
            total += segment.volume.nl
        elif segment.duration is not None:
            total += segment.rate.volume_in(segment.duration).nl  # 0 for WAIT
        elif segment.rate.nl_per_h > 0:
            return None
    return Volume(total)


@dataclass(frozen=True, slots=True)
class Titration:
    """A pending change to a running program: a new rate (mL/h) or a new dose (e.g. ug/kg/min)."""

    new: FlowRate | Quantity

    def __post_init__(self) -> None:
        positive = self.new.nl_per_h > 0 if isinstance(self.new, FlowRate) else self.new.value > 0
        if not positive:
            raise ProgramError("titration.new", f"must be positive, got {self.new}")


class Program(Protocol):
    """What the channel needs from any program."""

    def plan(self) -> tuple[Segment, ...]:
        """The segments to run, in order."""
        ...

    def planned_vtbi(self) -> Volume | None:
        """Total volume the program is programmed to infuse (nL); None when it runs until stopped."""
        ...

    def primary_rate(self) -> FlowRate:
        """The program's main rate, as displayed (maintenance, plateau, basal, ...)."""
        ...

    def titrated(self, change: Titration) -> Program:
        """The program with ``change`` applied (validated), or ProgramError if not titratable."""
        ...


def _check_vtbi(vtbi: Volume | None, where: str) -> None:
    """A VTBI is absent (run until stopped) or positive."""
    if vtbi is not None and vtbi.nl <= 0:
        raise ProgramError(where, f"VTBI must be positive, got {vtbi}")


def _new_rate(change: Titration, what: str) -> FlowRate:
    """The new rate of a rate-titrated program; a dose change is refused."""
    if not isinstance(change.new, FlowRate):
        raise ProgramError("titration.new", f"a {what} program is titrated by rate (mL/h), not by dose")
    return change.new


def _not_titratable(what: str) -> ProgramError:
    """The error for a program type that cannot be titrated while running."""
    return ProgramError("titration", f"a {what} program cannot be titrated; stop it and program a new one")


# --- programs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuousProgram:
    """A constant rate, for ``vtbi`` or (None) until stopped."""

    rate: FlowRate
    vtbi: Volume | None
    limits: RateLimits

    def __post_init__(self) -> None:
        self.limits.check(self.rate, "program.rate")
        _check_vtbi(self.vtbi, "program.vtbi")

    def plan(self) -> tuple[Segment, ...]:
        return (Segment(kind=SegmentKind.PRIMARY, rate=self.rate, volume=self.vtbi, label="primary"),)

    def planned_vtbi(self) -> Volume | None:
        return self.vtbi

    def primary_rate(self) -> FlowRate:
        return self.rate

    def titrated(self, change: Titration) -> ContinuousProgram:
        """Same VTBI at the new rate (the channel keeps count of the volume already delivered)."""
        return replace(self, rate=_new_rate(change, "continuous"))


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeOverTimeProgram:
    """``vtbi`` over ``duration``: the rate is ``vtbi / duration`` rounded to the resolution (ties to even).

    The plan delivers ``vtbi`` exactly; the run time differs from ``duration`` by the rate rounding.
    """

    vtbi: Volume
    duration: Duration
    limits: RateLimits

    def __post_init__(self) -> None:
        _check_vtbi(self.vtbi, "program.vtbi")
        self.primary_rate()

    def plan(self) -> tuple[Segment, ...]:
        return (Segment(kind=SegmentKind.PRIMARY, rate=self.primary_rate(), volume=self.vtbi, label="primary"),)

    def planned_vtbi(self) -> Volume:
        return self.vtbi

    def primary_rate(self) -> FlowRate:
        return self.limits.volume_over(self.vtbi, self.duration, "program.duration")

    def titrated(self, change: Titration) -> VolumeOverTimeProgram:
        raise _not_titratable("volume-over-time")


@dataclass(frozen=True, slots=True)
class LoadingDose:
    """A loading dose delivered before maintenance: an amount (``mg`` or ``mg/kg``...) over a duration or at a rate."""

    amount: Quantity
    pace: Duration | FlowRate

    def __post_init__(self) -> None:
        if self.amount.value <= 0:
            raise ProgramError("loading.amount", f"must be positive, got {self.amount}")
        positive = self.pace.us > 0 if isinstance(self.pace, Duration) else self.pace.nl_per_h > 0
        if not positive:
            raise ProgramError("loading.pace", f"duration or rate must be positive, got {self.pace}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseProgram:
    """A dose-based infusion: rate from :func:`~openinfusion.pump.dosing.dose_to_rate` (OI-PROG-2, OI-PROG-3).

    An optional loading dose comes first, from the same container, at its own rate or over its own
    duration (OI-PROG-4); ``vtbi`` (if given) is the total for loading plus maintenance, so it must
    exceed the loading volume.
    """

    dose: Quantity
    concentration: Concentration
    patient: Patient
    vtbi: Volume | None = None
    loading: LoadingDose | None = None
    limits: RateLimits

    def __post_init__(self) -> None:
        _check_vtbi(self.vtbi, "program.vtbi")
        self.plan()

    def conversion(self) -> DoseConversion:
        """The maintenance dose converted to a checked rate, with the actual dose delivered."""
        with located("program"):
            conversion = dose_to_rate(self.dose, self.concentration, self.patient, self.limits.resolution)
            self.limits.check(conversion.rate, "dose")
        return conversion

    def plan(self) -> tuple[Segment, ...]:
        """LOADING (volume to the nearest nL, ties to even) if there is a loading dose, then maintenance."""
        rate = self.conversion().rate
        segments: list[Segment] = []
        loaded = ZERO_VOLUME
        if self.loading is not None:
            with located("program"):
                loaded = amount_to_volume(self.loading.amount, self.concentration, self.patient, "loading.amount")
                loading_rate = self.limits.paced(loaded, self.loading.pace, "loading.pace")
            segments.append(Segment(kind=SegmentKind.LOADING, rate=loading_rate, volume=loaded, label="loading dose"))
        maintenance = None
        if self.vtbi is not None:
            if self.vtbi <= loaded:
                raise ProgramError("program.vtbi", f"{self.vtbi} does not exceed the loading dose's {loaded}")
            maintenance = self.vtbi - loaded
        segments.append(Segment(kind=SegmentKind.PRIMARY, rate=rate, volume=maintenance, label="maintenance"))
        return tuple(segments)

    def planned_vtbi(self) -> Volume | None:
        return self.vtbi

    def primary_rate(self) -> FlowRate:
        return self.conversion().rate

    def titrated(self, change: Titration) -> DoseProgram:
        """The new maintenance dose; the loading dose belonged to the start and is not repeated."""
        if not isinstance(change.new, Quantity):
            raise ProgramError("titration.new", "a dose program is titrated by dose, not by rate")
        return replace(self, dose=change.new, loading=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecondaryProgram:
    """A piggyback infusion: runs its VTBI, then the channel resumes the primary (OI-PROG-5)."""

    rate: FlowRate
    vtbi: Volume
    limits: RateLimits

    def __post_init__(self) -> None:
        self.limits.check(self.rate, "program.rate")
        _check_vtbi(self.vtbi, "program.vtbi")

    def plan(self) -> tuple[Segment, ...]:
        return (Segment(kind=SegmentKind.SECONDARY, rate=self.rate, volume=self.vtbi, label="secondary"),)

    def plan_over(self, primary_rest: tuple[Segment, ...]) -> tuple[Segment, ...]:
        """The secondary, then the rest of the interrupted primary plan unchanged (its rates as programmed)."""
        if any(s.kind is SegmentKind.SECONDARY for s in primary_rest):
            raise ProgramError("program", "a secondary cannot interrupt another secondary")
        return self.plan() + primary_rest

    def planned_vtbi(self) -> Volume:
        return self.vtbi

    def primary_rate(self) -> FlowRate:
        return self.rate

    def titrated(self, change: Titration) -> SecondaryProgram:
        return replace(self, rate=_new_rate(change, "secondary"))


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a multistep program: ``vtbi`` at ``rate`` (checked by :class:`MultistepProgram`)."""

    rate: FlowRate
    vtbi: Volume


@dataclass(frozen=True, slots=True, kw_only=True)
class MultistepProgram:
    """1 to 25 steps run in order, each its volume at its rate (OI-PROG-6)."""

    steps: tuple[Step, ...]
    limits: RateLimits

    def __post_init__(self) -> None:
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise ProgramError("program.steps", f"needs 1 to {MAX_STEPS} steps, got {len(self.steps)}")
        for i, step in enumerate(self.steps):
            self.limits.check(step.rate, f"program.steps[{i}].rate")
            if step.vtbi.nl <= 0:
                raise ProgramError(f"program.steps[{i}].vtbi", f"VTBI must be positive, got {step.vtbi}")

    def plan(self) -> tuple[Segment, ...]:
        n = len(self.steps)
        return tuple(
            Segment(kind=SegmentKind.STEP, rate=s.rate, volume=s.vtbi, label=f"step {i}/{n}")
            for i, s in enumerate(self.steps, 1)
        )

    def planned_vtbi(self) -> Volume:
        return Volume(sum(s.vtbi.nl for s in self.steps))

    def primary_rate(self) -> FlowRate:
        """The first step's rate."""
        return self.steps[0].rate

    def titrated(self, change: Titration) -> MultistepProgram:
        raise _not_titratable("multistep")


@dataclass(frozen=True, slots=True, kw_only=True)
class RampTaperProgram:
    """Cyclic TPN: ``total_volume`` over ``total_duration``, stepping up, holding a plateau, stepping down.

    The ramp-up is ``increments`` equal-time steps over ``ramp_up`` at rates ``P*k/(n+1)``
    (k = 1..n), the taper mirrors it over ``ramp_down`` (either phase may be zero length), where ``P``
    is the ideal plateau ``total_volume / (total_duration - (ramp_up + ramp_down)/2)``. Step rates are
    rounded to the grid and step volumes are whole nanolitres (rounded down); the plateau takes the
    rest of the volume, so the plan totals ``total_volume`` exactly, at the rate that delivers it in the
    remaining time (rounded to the grid). Every rate, the plateau's included, is checked against the
    limits.
    """

    total_volume: Volume
    total_duration: Duration
    ramp_up: Duration
    ramp_down: Duration
    increments: int
    limits: RateLimits

    def __post_init__(self) -> None:
        _check_vtbi(self.total_volume, "program.total_volume")
        if self.total_duration.us <= 0:
            raise ProgramError("program.total_duration", "must be positive")
        for name, phase in (("ramp_up", self.ramp_up), ("ramp_down", self.ramp_down)):
            if phase.us < 0:
                raise ProgramError(f"program.{name}", "must not be negative")
        if self.ramp_up + self.ramp_down >= self.total_duration:
            raise ProgramError("program.total_duration", "must be longer than ramp_up + ramp_down (leave a plateau)")
        if not 1 <= self.increments <= MAX_STEPS:
            raise ProgramError("program.increments", f"must be 1 to {MAX_STEPS}, got {self.increments}")
        self.plan()

    def _ideal_plateau_nl_h(self) -> Fraction:
        hours = Fraction(2 * self.total_duration.us - self.ramp_up.us - self.ramp_down.us, 2 * US_PER_H)
        return self.total_volume.nl / hours

    def _phase(self, length: Duration, rising: bool) -> tuple[Segment, ...]:
        if length.us == 0:
            return ()
        n, name = self.increments, ("ramp_up" if rising else "ramp_down")
        ideal = self._ideal_plateau_nl_h()
        segments = []
        for k in range(1, n + 1):
            level = k if rising else n + 1 - k
            rate = _round(ideal * level / (n + 1), self.limits.resolution)
            # a step below the minimum rate means too many increments; above the maximum, too much volume
            self.limits.check(rate, "program.increments" if rate < self.limits.min_rate else "program.total_volume")
            step_us = length.us * k // n - length.us * (k - 1) // n  # integer split summing to length
            volume = rate.volume_in(Duration(step_us))
            if volume.nl <= 0:
                raise ProgramError(f"program.{name}", f"step {k}/{n} is too short to deliver any volume")
            label = f"ramp up {k}/{n}" if rising else f"taper {k}/{n}"
            segments.append(Segment(kind=SegmentKind.RAMP, rate=rate, volume=volume, label=label))
        return tuple(segments)

    def plan(self) -> tuple[Segment, ...]:
        ups, downs = self._phase(self.ramp_up, True), self._phase(self.ramp_down, False)
        plateau_nl = self.total_volume.nl - sum(s.volume.nl for s in ups + downs if s.volume is not None)
        if plateau_nl <= 0:
            raise ProgramError("program.total_volume", "too small for the ramp and taper steps")
        plateau_rate = self.limits.volume_over(
            Volume(plateau_nl), self.total_duration - self.ramp_up - self.ramp_down, "program.total_volume"
        )
        plateau = Segment(kind=SegmentKind.PRIMARY, rate=plateau_rate, volume=Volume(plateau_nl), label="plateau")
        return (*ups, plateau, *downs)

    def planned_vtbi(self) -> Volume:
        return self.total_volume

    def primary_rate(self) -> FlowRate:
        """The plateau rate."""
        return next(s.rate for s in self.plan() if s.kind is SegmentKind.PRIMARY)

    def titrated(self, change: Titration) -> RampTaperProgram:
        raise _not_titratable("ramp/taper")


@dataclass(frozen=True, slots=True, kw_only=True)
class IntermittentProgram:
    """``doses`` doses of ``dose_volume`` at ``rate``, starting ``interval`` apart (OI-PROG-6).

    Doses are separated by WAIT segments of ``interval`` minus the dose's infusion time, so that in an
    uninterrupted run dose ``i`` starts at ``(i - 1) * interval``. What runs during a wait (nothing or
    KVO) is the channel's KVO setting.
    """

    dose_volume: Volume
    rate: FlowRate
    interval: Duration
    doses: int
    limits: RateLimits

    def __post_init__(self) -> None:
        _check_vtbi(self.dose_volume, "program.dose_volume")
        self.limits.check(self.rate, "program.rate")
        if self.doses < 1:
            raise ProgramError("program.doses", f"must be at least 1, got {self.doses}")
        if self.interval <= self.dose_time():
            raise ProgramError("program.interval", f"must exceed the dose's infusion time {self.dose_time()}")

    def dose_time(self) -> Duration:
        """Time to infuse one dose (rounded up to the microsecond)."""
        return self.rate.time_for(self.dose_volume)

    def plan(self) -> tuple[Segment, ...]:
        n, wait = self.doses, self.interval - self.dose_time()
        segments: list[Segment] = []
        for i in range(1, n + 1):
            if i > 1:
                segments.append(
                    Segment(kind=SegmentKind.WAIT, rate=ZERO_RATE, duration=wait, label=f"wait {i - 1}/{n - 1}")
                )
            segments.append(
                Segment(
                    kind=SegmentKind.INTERMITTENT_DOSE, rate=self.rate, volume=self.dose_volume, label=f"dose {i}/{n}"
                )
            )
        return tuple(segments)

    def planned_vtbi(self) -> Volume:
        return Volume(self.dose_volume.nl * self.doses)

    def primary_rate(self) -> FlowRate:
        return self.rate

    def titrated(self, change: Titration) -> IntermittentProgram:
        raise _not_titratable("intermittent")


# --- requests and settings around a running program ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Bolus:
    """A clinician bolus from a running infusion: ``volume`` at ``rate`` (OI-PROG-4).

    ``amount`` is the dose asked for when the bolus was requested as an amount (for the record).
    Build it with :meth:`request`; check it with :meth:`check_against` before starting it.
    """

    volume: Volume
    rate: FlowRate
    limits: RateLimits
    amount: Quantity | None = None

    def __post_init__(self) -> None:
        if self.volume.nl <= 0:
            raise ProgramError("bolus.volume", f"must be positive, got {self.volume}")
        self.limits.check(self.rate, "bolus.rate")

    @classmethod
    def request(
        cls,
        size: Volume | Quantity,
        pace: Duration | FlowRate,
        limits: RateLimits,
        *,
        concentration: Concentration | None = None,
        patient: Patient | None = None,
    ) -> Bolus:
        """A bolus of a volume, or of an amount (``mg``, ``[iU]/kg``...) of ``concentration``, over a
        duration or at a rate. Rates from a duration are rounded to the grid (ties to even)."""
        amount = None
        if isinstance(size, Quantity):
            if concentration is None:
                raise ProgramError("bolus.amount", "a bolus given as an amount needs the concentration")
            amount = size
            with located("bolus"):
                volume = amount_to_volume(size, concentration, patient if patient is not None else Patient(), "amount")
        else:
            volume = size
        if volume.nl <= 0:
            raise ProgramError("bolus.volume", f"must be positive, got {volume}")
        rate = limits.paced(volume, pace, "bolus.pace")
        return cls(volume=volume, rate=rate, limits=limits, amount=amount)

    def check_against(self, remaining: Volume) -> None:
        """Refuse a bolus larger than the volume remaining to be infused (OI-PROG-4)."""
        if self.volume > remaining:
            raise ProgramError("bolus.volume", f"{self.volume} is more than the {remaining} remaining to be infused")

    def segment(self) -> Segment:
        return Segment(kind=SegmentKind.BOLUS, rate=self.rate, volume=self.volume, label="bolus")


@dataclass(frozen=True, slots=True, kw_only=True)
class KvoSettings:
    """Keep-vein-open after VTBI: ``rate`` when ``enabled``, else the channel stops (OI-PROG-7)."""

    enabled: bool
    rate: FlowRate

    def __post_init__(self) -> None:
        if self.rate.nl_per_h < 0 or (self.enabled and self.rate.nl_per_h == 0):
            raise ProgramError("kvo.rate", f"must be positive when KVO is enabled, got {self.rate}")


def kvo_rate_for(program: Program, kvo: KvoSettings) -> FlowRate:
    """The rate after ``program``'s VTBI completes: 0 if KVO is off, else the KVO rate capped at the
    rate of the plan's last infusing segment, so it is never above the programmed rate (OI-PROG-7)."""
    if not kvo.enabled:
        return ZERO_RATE
    last = next(s.rate for s in reversed(program.plan()) if s.kind is not SegmentKind.WAIT)
    return min(kvo.rate, last)


@dataclass(frozen=True, slots=True)
class NearEndSettings:
    """Alert ``lead`` before the VTBI (or container) runs out (OI-PROG-8).

    Commercial pumps offer 1 to 240 min (Medfusion 3500, ``shared/reference/standards-and-safety.md`` §3).
    """

    lead: Duration

    def __post_init__(self) -> None:
        if not Duration.min(1) <= self.lead <= Duration.min(240):
            raise ProgramError("near_end.lead", f"must be 1 to 240 min, got {self.lead}")

    def due(self, time_left: Duration) -> bool:
        """True once the time left to run (at the current rate) is at most ``lead``."""
        return time_left <= self.lead
