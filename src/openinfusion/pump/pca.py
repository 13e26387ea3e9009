"""Patient-controlled analgesia: the program, the dose ledger and the demand decision (OI-PCA-1).

Theory of operation. A :class:`PcaProgram` runs a BASAL segment (rate 0 when there is no basal
infusion), optionally after a loading dose. When the patient presses the button the channel asks
:func:`decide_demand`, a pure function of the program, the :class:`PcaLedger` and the time, whether to
give the demand dose. The ledger is an immutable record: each ``with_...`` call returns a new ledger.

Rules, checked in this order (the first that applies is the reason given):

1. NOT_INFUSING: the channel is not running the PCA program.
2. INHIBITED: the pump is paused or an alarm inhibits delivery (UMN-GPCA-REQ-25 (1), (2)).
3. LOCKOUT: less than ``lockout`` has passed since the end of the last demand dose given, its end
   being its start plus its delivery time at ``demand_rate``. This follows UMN-GPCA-REQ-25 (3) and
   IHE PCD's definition of PCA lockout time (LOINC 76314-4: "from the completion of one patient dose
   to when the next dose request may be granted"); a request while a demand dose is still running
   (REQ-25 (5)) falls in it too. These denials are the "frequent requests" of UMN-GPCA-REQ-26.
4. LIMIT_1H / LIMIT_4H: the amount already recorded in the last hour (four hours), plus the whole
   demand dose, would exceed the limit. Basal, loading, demand and clinician doses all count
   (OI-PCA-1). A demand that would exceed a limit is denied outright, never given in part: a partial
   dose is a dose the patient did not ask for, and commercial PCA pumps deny rather than trim
   (Smiths CADD manual, "Hourly Limit"; Open PCA R5.2.0(5),
   ``shared/reference/open-pca-requirements.md`` §3.1).

Windows are half-open, ``(now - window, now]``: a dose recorded exactly one hour ago no longer
counts toward the 1-hour limit. Basal is reported by the channel as delivered volume at a time
(``with_volume``) and counted at that time in full, which over-counts near a window's start, never
under-counts; basal delivered since the last report is not yet counted, so the channel should report
basal before asking for a decision. The ledger keeps dose entries for the longest window (4 h) and
the demand log in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum
from fractions import Fraction
from itertools import pairwise
from typing import Final

from openinfusion.errors import ProgramError, UnitError
from openinfusion.pump.dosing import (
    Concentration,
    DoseBasis,
    DoseConversion,
    Patient,
    amount_to_volume,
    dose_to_rate,
    unit_form,
    volume_to_amount,
)
from openinfusion.pump.programs import RateLimits, Segment, SegmentKind, Titration, located
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Instant, Quantity, Volume

ONE_HOUR: Final = Duration.h(1)
FOUR_HOURS: Final = Duration.h(4)
RETENTION: Final = FOUR_HOURS  # the longest window a limit is checked over


@dataclass(frozen=True, slots=True, kw_only=True)
class PcaProgram:
    """A PCA prescription.

    ``demand_dose``, ``loading``, ``limit_1h`` and ``limit_4h`` are absolute amounts (mg, ug...) of the
    concentration's drug; ``basal`` an amount per time (mg/h), or None for no basal infusion. Demand
    and loading doses run at ``demand_rate``. Built only if consistent: demand dose within each limit,
    1-hour limit within the 4-hour limit, and the basal alone, over each window, leaving room for at
    least one demand dose.
    """

    concentration: Concentration
    demand_dose: Quantity
    lockout: Duration
    basal: Quantity | None = None
    loading: Quantity | None = None
    limit_1h: Quantity | None = None
    limit_4h: Quantity | None = None
    demand_rate: FlowRate
    limits: RateLimits

    def __post_init__(self) -> None:
        with located("program"):
            for name in ("demand_dose", "loading", "limit_1h", "limit_4h"):
                self._check_amount(name)
            self.limits.check(self.demand_rate, "demand_rate")
            self.demand_volume()
            self.loading_segment()
        basal = self.basal_conversion()
        if basal is not None and self.demand_rate.nl_per_h + basal.rate.nl_per_h > self.limits.max_rate.nl_per_h:
            raise ProgramError(
                "program.demand_rate",
                f"{self.demand_rate} plus the {basal.rate} basal is above the maximum {self.limits.max_rate}",
            )
        if self.lockout.us <= 0:
            raise ProgramError("program.lockout", f"must be positive, got {self.lockout}")
        if self.limit_1h is not None and self.limit_4h is not None and self.limit_1h > self.limit_4h:
            raise ProgramError("program.limit_1h", f"{self.limit_1h} is above the 4-hour limit {self.limit_4h}")
        for name, limit, window in (("limit_1h", self.limit_1h, ONE_HOUR), ("limit_4h", self.limit_4h, FOUR_HOURS)):
            if limit is None:
                continue
            basal_amount = self._basal_over(basal, window)
            if basal_amount + self.demand_dose > limit:
                raise ProgramError(
                    f"program.{name}",
                    f"{limit} leaves no room for a {self.demand_dose} demand dose"
                    + (f" after {basal_amount} of basal" if basal_amount.value else ""),
                )

    def _check_amount(self, name: str) -> None:
        q: Quantity | None = getattr(self, name)
        if q is None:
            return
        dimension, basis = unit_form(q.unit, name, per_time=False)
        if basis is not DoseBasis.ABSOLUTE or dimension != self.concentration.amount_dimension:
            raise UnitError(name, f"{q.unit.code!r} is not an amount of the drug in {self.concentration.amount.unit}")
        if q.value <= 0:
            raise ProgramError(name, f"must be positive, got {q}")

    def _basal_over(self, basal: DoseConversion | None, window: Duration) -> Quantity:
        if basal is None:
            return Quantity(Fraction(0), self.demand_dose.unit)
        return volume_to_amount(basal.rate.volume_in(window), self.concentration)

    def basal_conversion(self) -> DoseConversion | None:
        """The basal dose (amount/time) as a checked rate with the actual basal dose; None without basal."""
        if self.basal is None:
            return None
        with located("program"):
            if unit_form(self.basal.unit, "basal", per_time=True)[1] is not DoseBasis.ABSOLUTE:
                raise UnitError("basal", f"PCA basal is an amount per time (e.g. mg/h), got {self.basal.unit}")
            conversion = dose_to_rate(self.basal, self.concentration, Patient(), self.limits.resolution, "basal")
            self.limits.check(conversion.rate, "basal")
        return conversion

    def demand_volume(self) -> Volume:
        """Volume of one demand dose (nearest nL)."""
        return amount_to_volume(self.demand_dose, self.concentration, Patient(), "demand_dose")

    def demand_segment(self) -> Segment:
        """The segment the channel runs for a demand that was given: at ``demand_rate`` in addition to the
        basal, for the demand's time at ``demand_rate`` (OPENPCA-R5-2-0-2: open-pca-requirements.md R5.2.0(2));
        the two rates together are checked against the pump's maximum when the program is built. Its volume is
        the demand dose plus the basal that runs alongside it."""
        basal = self.primary_rate()
        volume = self.demand_volume() + basal.volume_in(self.demand_time())
        rate = FlowRate(self.demand_rate.nl_per_h + basal.nl_per_h)
        return Segment(kind=SegmentKind.PCA_DEMAND, rate=rate, volume=volume, label="PCA demand")

    def clinician_segment(self, volume: Volume, rate: FlowRate) -> Segment:
        """A clinician (square) bolus of ``volume`` asked at ``rate``: it runs at ``min(rate + basal, Fmax)``
        (OPENPCA-R5-3-0-2: open-pca-requirements.md R5.3.0(2)) until ``volume`` is in on top of the basal that
        runs alongside it; at Fmax the bolus takes longer, never less than its volume."""
        basal = self.primary_rate()
        total = FlowRate(min(rate.nl_per_h + basal.nl_per_h, self.limits.max_rate.nl_per_h))
        over = FlowRate(total.nl_per_h - basal.nl_per_h).time_for(volume)
        return Segment(kind=SegmentKind.BOLUS, rate=total, volume=total.volume_in(over), label="bolus")

    def basal_share(self, segment: Segment, grown: Volume) -> Volume:
        """Of ``grown`` delivered in a demand ``segment``, the basal that ran alongside the demand (rounded down).

        The demand dose itself is counted when it is given; its basal part is counted as it is delivered, so the
        dose limits count every source (OPENPCA-R5-2-0-5).
        """
        if segment.kind is not SegmentKind.PCA_DEMAND or segment.rate.nl_per_h == 0:
            return Volume(0)
        return Volume(grown.nl * self.primary_rate().nl_per_h // segment.rate.nl_per_h)

    def time_to_limit(self, ledger: PcaLedger, now: Instant, rate: FlowRate) -> Duration | None:
        """How long delivery at ``rate`` may go on before a dose limit is reached, counting nothing out of its window
        (so never late); None without limits or at rate 0. The channel wakes then to apply the cap."""
        if rate.nl_per_h <= 0:
            return None
        times = []
        for limit, window in ((self.limit_1h, ONE_HOUR), (self.limit_4h, FOUR_HOURS)):
            if limit is not None:
                room = limit - ledger.amount_in(window, now)
                room_nl = amount_to_volume(room, self.concentration, Patient(), "limit").nl if room.value > 0 else 0
                times.append(rate.time_for(Volume(room_nl)))
        return min(times, default=None)

    def limit_reached(self, ledger: PcaLedger, now: Instant, fraction: Fraction = Fraction(1)) -> str | None:
        """Which dose limit the drug counted in its window has reached (at ``fraction`` of it), or None."""
        for name, limit, window in (("1-hour", self.limit_1h, ONE_HOUR), ("4-hour", self.limit_4h, FOUR_HOURS)):
            if limit is None:
                continue
            given = ledger.amount_in(window, now)
            if given.value >= limit.to(given.unit, name).value * fraction:
                return f"{name} limit {limit}: {given} given"
        return None

    def demand_time(self) -> Duration:
        """How long one demand dose takes at ``demand_rate`` (rounded up)."""
        return self.demand_rate.time_for(self.demand_volume())

    def loading_segment(self) -> Segment | None:
        """The loading dose at ``demand_rate``, or None."""
        if self.loading is None:
            return None
        volume = amount_to_volume(self.loading, self.concentration, Patient(), "loading")
        return Segment(kind=SegmentKind.LOADING, rate=self.demand_rate, volume=volume, label="loading dose")

    def plan(self) -> tuple[Segment, ...]:
        """Optional LOADING, then BASAL until stopped (rate 0 when there is no basal)."""
        loading = self.loading_segment()
        basal = self.basal_conversion()
        segment = Segment(kind=SegmentKind.BASAL, rate=ZERO_RATE if basal is None else basal.rate, label="basal")
        return (segment,) if loading is None else (loading, segment)

    def planned_vtbi(self) -> Volume | None:
        """A PCA runs until stopped."""
        return None

    def primary_rate(self) -> FlowRate:
        """The basal rate (0 without basal)."""
        basal = self.basal_conversion()
        return ZERO_RATE if basal is None else basal.rate

    def titrated(self, change: Titration) -> PcaProgram:
        """A new basal dose (amount/time); the loading dose is not repeated."""
        if not isinstance(change.new, Quantity):
            raise ProgramError("titration.new", "a PCA basal is titrated by dose (e.g. mg/h), not by rate")
        return replace(self, basal=change.new, loading=None)


class DoseKind(Enum):
    """What a ledger entry was given as."""

    BASAL = "basal"
    DEMAND = "demand"
    LOADING = "loading"
    CLINICIAN = "clinician"


class DenyReason(Enum):
    """Why a demand was not given."""

    LOCKOUT = "lockout"
    LIMIT_1H = "limit_1h"
    LIMIT_4H = "limit_4h"
    INHIBITED = "inhibited"
    NOT_INFUSING = "not_infusing"


@dataclass(frozen=True, slots=True)
class DoseEntry:
    """``amount`` of drug counted as given at ``at``."""

    at: Instant
    amount: Quantity
    kind: DoseKind


@dataclass(frozen=True, slots=True)
class DemandDecision:
    """The answer to a demand: given (``amount`` is the demand dose) or denied (``reason``, ``amount`` 0)."""

    given: bool
    reason: DenyReason | None
    amount: Quantity

    def __post_init__(self) -> None:
        if self.given != (self.reason is None) or self.given != (self.amount.value > 0) or self.amount.value < 0:
            raise ProgramError("demand", "a demand is given with a positive amount, or denied with a reason")


@dataclass(frozen=True, slots=True)
class DemandRecord:
    """One patient request as logged: when, whether given, why not, and the amount given."""

    at: Instant
    given: bool
    reason: DenyReason | None
    amount: Quantity


@dataclass(frozen=True, slots=True)
class PcaLedger:
    """Doses counted toward the PCA limits (the last :data:`RETENTION`) and the full demand log.

    Amounts are kept in the concentration's amount unit. Entries are in time order; recording an
    earlier time than the latest is refused.
    """

    concentration: Concentration
    doses: tuple[DoseEntry, ...] = ()
    demands: tuple[DemandRecord, ...] = ()

    def __post_init__(self) -> None:
        for name, times in (("doses", [e.at for e in self.doses]), ("demands", [r.at for r in self.demands])):
            if any(b < a for a, b in pairwise(times)):
                raise ProgramError(f"ledger.{name}", "entries must be in time order")
        if any(e.amount.unit != self.concentration.amount.unit for e in self.doses):
            raise UnitError("ledger.doses", f"amounts must be in {self.concentration.amount.unit}")

    @classmethod
    def for_program(cls, program: PcaProgram) -> PcaLedger:
        """An empty ledger for ``program``'s drug."""
        return cls(program.concentration)

    def latest(self) -> Instant | None:
        """The time of the last entry or demand recorded, if any."""
        times = [r.at for r in self.demands[-1:]] + [e.at for e in self.doses[-1:]]
        return max(times, default=None)

    def _check_time(self, at: Instant) -> None:
        latest = self.latest()
        if latest is not None and at < latest:
            raise ProgramError("ledger.at", f"{at} is before the latest entry {latest}")

    def _kept(self, now: Instant) -> tuple[DoseEntry, ...]:
        return tuple(e for e in self.doses if now.since(e.at) < RETENTION)

    def with_dose(self, at: Instant, amount: Quantity, kind: DoseKind) -> PcaLedger:
        """Record ``amount`` (any unit of the drug's amount dimension) as given at ``at``."""
        self._check_time(at)
        if amount.value < 0:
            raise ProgramError("ledger.amount", f"must not be negative, got {amount}")
        entry = DoseEntry(at, amount.to(self.concentration.amount.unit, "ledger.amount"), kind)
        return replace(self, doses=(*self._kept(at), entry))

    def with_volume(self, at: Instant, volume: Volume, kind: DoseKind = DoseKind.BASAL) -> PcaLedger:
        """Record delivered ``volume`` (e.g. basal since the last report) as its amount of drug at ``at``."""
        if volume.nl < 0:
            raise ProgramError("ledger.volume", f"must not be negative, got {volume}")
        return self.with_dose(at, volume_to_amount(volume, self.concentration), kind)

    def with_demand(self, at: Instant, decision: DemandDecision) -> PcaLedger:
        """Log a request and its decision; a given demand's dose is counted at ``at``."""
        self._check_time(at)
        record = DemandRecord(at, decision.given, decision.reason, decision.amount)
        ledger = self.with_dose(at, decision.amount, DoseKind.DEMAND) if decision.given else self
        return replace(ledger, demands=(*ledger.demands, record))

    def amount_in(self, window: Duration, now: Instant) -> Quantity:
        """Total recorded in ``(now - window, now]``, exact, in the concentration's amount unit."""
        if not Duration(0) < window <= RETENTION:
            raise ProgramError("window", f"must be positive and at most {RETENTION}, got {window}")
        total = sum((e.amount.value for e in self.doses if Duration(0) <= now.since(e.at) < window), Fraction(0))
        return Quantity(total, self.concentration.amount.unit)

    def last_given(self) -> DemandRecord | None:
        """The last demand that was given, if any."""
        return next((r for r in reversed(self.demands) if r.given), None)


def decide_demand(
    program: PcaProgram, ledger: PcaLedger, now: Instant, *, inhibited: bool, infusing: bool
) -> DemandDecision:
    """Decide a patient demand at ``now`` (rules in the module docstring; OI-PCA-1, UMN-GPCA-REQ-25).

    Pure: the caller records the decision with ``ledger.with_demand(now, decision)``.
    """
    if ledger.concentration != program.concentration:
        raise ProgramError("ledger.concentration", "the ledger is for another concentration than the program")
    latest = ledger.latest()
    if latest is not None and now < latest:
        raise ProgramError("now", f"{now} is before the ledger's latest entry {latest}")
    denied = _deny_reason(program, ledger, now, inhibited=inhibited, infusing=infusing)
    if denied is not None:
        return DemandDecision(False, denied, Quantity(Fraction(0), program.demand_dose.unit))
    return DemandDecision(True, None, program.demand_dose)


def _deny_reason(
    program: PcaProgram, ledger: PcaLedger, now: Instant, *, inhibited: bool, infusing: bool
) -> DenyReason | None:
    if not infusing:
        return DenyReason.NOT_INFUSING
    if inhibited:
        return DenyReason.INHIBITED
    last = ledger.last_given()
    if last is not None and now < last.at + program.demand_time() + program.lockout:
        return DenyReason.LOCKOUT
    checks = ((program.limit_1h, ONE_HOUR, DenyReason.LIMIT_1H), (program.limit_4h, FOUR_HOURS, DenyReason.LIMIT_4H))
    for limit, window, reason in checks:
        if limit is not None and ledger.amount_in(window, now) + program.demand_dose > limit:
            return reason
    return None


def frequent_requests(log: Iterable[DemandRecord], now: Instant, window: Duration) -> int:
    """Requests denied for lockout in ``(now - window, now]``: the count behind the "Frequent Bolus
    Requests" notification (UMN-GPCA-REQ-26)."""
    return sum(1 for r in log if r.reason is DenyReason.LOCKOUT and Duration(0) <= now.since(r.at) < window)
