"""The safety monitor's own model of a confirmed infusion (OI-SAFE-4).

Theory of operation
-------------------
The monitor compiles what the clinician confirmed (:mod:`openinfusion.pump.confirmed`) into its own
*phases*: a rate and what ends it (a volume, a running time, or nothing). It does this with its own
arithmetic, not with the program, plan or dose-conversion code the controller uses, so one fault
there cannot shape both what is delivered and what the monitor expects: it converts doses through
the units algebra, rounds rates to the mechanism's resolution (half to even) from its own copy of
the calibration, and splits ramp/taper and intermittent programs itself.

At run time phases form a stack of frames: the program at the bottom; a secondary, a clinician bolus
or a PCA demand on top of what it interrupts. Net forward motion the monitor measures is attributed
to the top phase (withdrawal by a back-off is taken back from it), a time-bound phase (the wait
between intermittent doses) runs on running time, and a frame whose phases are done is popped. When
the program's own phases are done, KVO follows (if confirmed) or nothing. A bolus is deducted from the
frame it interrupts (it comes from the same container); on a PCA program it runs *on top of* the basal
at ``min(bolus rate + basal, Fmax)`` until its volume is in on top of the basal (OPENPCA-R5-3-0-2), and
elsewhere instead of the rate it interrupts. A confirmed titration changes the rate of the
titratable phases of the topmost program frame. A PCA demand the patient pressed outside the lockout
adds an *allowance* (extra volume at up to the demand rate), not an expectation: the controller may
still deny it on its own limits.

Two PCA rules only ever *lower* what is expected. A PCA bolus (clinician bolus, demand, loading) that
delivery stops is not resumed on Start: the monitor drops its rest itself when delivery runs again
(OPENPCA-R6-5-0-3). While the channel reports the PCA dose limit reached (OPENPCA-R5-2-0-5), the
PCA boluses are halted and the program is capped at the confirmed KVO rate (:meth:`Expectation.
restrict_to_kvo`, decision record 0030): the cap can only reduce the allowance, never raise it. The monitor
also counts the drug it measured itself against the confirmed dose limits (:class:`DoseWindow`) and caps at
KVO on its own once they are exceeded, so a delivery side that never reports the limit is still stopped.

Everything here is exact integers (nL, nL/h, us) or fractions; nothing reads hardware or time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction
from typing import Final

from openinfusion.errors import ProgramError
from openinfusion.pump.confirmed import (
    AtDose,
    AtRate,
    ConfirmedBolus,
    ConfirmedProgram,
    ConfirmedTitration,
    Drug,
    Intermittent,
    OverTime,
    Part,
    Pca,
    RampTaper,
)
from openinfusion.units import DIMENSIONS, ML, ML_PER_H, NL_PER_ML, US_PER_H, Duration, FlowRate, Quantity, Volume


class Kind(Enum):
    """What a phase is (decides titration and which container it draws on)."""

    MAIN = "main"  # titratable maintenance / primary rate
    FIXED = "fixed"  # steps, ramp, loading, intermittent doses
    WAIT = "wait"  # between intermittent doses (KVO rate or nothing)
    BOLUS = "bolus"
    LOADING = "loading"  # a PCA loading dose (dropped like a bolus on Stop/Start and at the dose limit)
    KVO = "kvo"
    END = "end"  # nothing more is authorised


@dataclass(slots=True)
class Phase:
    """``rate`` (nL/h) until ``volume`` nL (None: unbounded) or ``time`` us (None: not time-bound) is used up."""

    kind: Kind
    rate: int
    volume: int | None = None
    time: int | None = None
    size: int | None = None  # the volume it started with (a back-off never gives back more)

    def __post_init__(self) -> None:
        if self.size is None:
            self.size = self.volume


@dataclass(slots=True)
class Frame:
    """The phases still to run of one confirmed object, and the drug a dose titration converts with."""

    phases: list[Phase]
    drug: Drug | None = None
    program: bool = True  # a program (titratable), not a bolus or demand


class Grid:
    """Rounding to the mechanism's resolution and conversions, the monitor's own (exact until rounded)."""

    def __init__(self, resolution: FlowRate, max_rate: FlowRate) -> None:
        self.step = resolution.nl_per_h
        self.max_rate = max_rate.nl_per_h  # the mechanism's Fmax (nL/h), from the monitor's own calibration

    def rate(self, exact_nl_h: Fraction) -> int:
        """Nearest multiple of the resolution, ties to even."""
        return round(exact_nl_h / self.step) * self.step

    def dose_rate(self, dose: Quantity, drug: Drug) -> int:
        """nL/h of ``drug`` that gives ``dose`` (amount[/kg|/m2]/time), rounded to the grid."""
        exact = (_absolute(dose, drug) / (drug.amount / drug.volume)).to(ML_PER_H, "monitor.dose")
        return self.rate(exact.value * NL_PER_ML)

    @staticmethod
    def amount_volume(amount: Quantity, drug: Drug) -> int:
        """nL of ``drug`` holding ``amount`` (amount[/kg|/m2]), nearest nL, ties to even."""
        exact = (_absolute(amount, drug) / (drug.amount / drug.volume)).to(ML, "monitor.amount")
        return round(exact.value * NL_PER_ML)

    def paced(self, volume_nl: int, pace: Duration | FlowRate) -> int:
        if isinstance(pace, FlowRate):
            return pace.nl_per_h
        return self.rate(Fraction(volume_nl * US_PER_H, pace.us))


def _absolute(q: Quantity, drug: Drug) -> Quantity:
    """``q`` times the patient's weight or BSA if it is per kg or per m2."""
    exps = dict(zip(DIMENSIONS, q.unit.dim, strict=True))
    for name, measure in (("body_mass", drug.weight), ("body_surface", drug.bsa)):
        if exps[name]:
            if measure is None:
                raise ProgramError("monitor.patient", f"{q.unit.code} needs the patient's {name.replace('_', ' ')}")
            q = q * measure
    return q


def compile_program(program: ConfirmedProgram, grid: Grid) -> tuple[list[Phase], Drug | None]:
    """The phases of a confirmed program, and the drug its dose titrations convert with."""
    phases: list[Phase] = []
    drug: Drug | None = None
    for part in program.parts:
        phases += _part(part, grid, program.kvo)
        if isinstance(part, AtDose | Pca):
            drug = part.drug
    return phases, drug


def _part(part: Part, grid: Grid, kvo: FlowRate) -> list[Phase]:
    match part:
        case AtRate():
            return [Phase(Kind.MAIN if part.titratable else Kind.FIXED, part.rate.nl_per_h, _nl(part.volume))]
        case OverTime():
            return [Phase(Kind.FIXED, grid.rate(Fraction(part.volume.nl * US_PER_H, part.duration.us)), part.volume.nl)]
        case AtDose():
            return _at_dose(part, grid)
        case RampTaper():
            return _ramp_taper(part, grid)
        case Intermittent():
            return _intermittent(part, kvo)
        case Pca():
            phases = []
            if part.loading is not None:
                loading = grid.amount_volume(part.loading, part.drug)
                phases.append(Phase(Kind.LOADING, part.demand_rate.nl_per_h, loading))
            basal = 0 if part.basal is None else grid.dose_rate(part.basal, part.drug)
            return [*phases, Phase(Kind.MAIN, basal)]


def _at_dose(part: AtDose, grid: Grid) -> list[Phase]:
    """Optional loading (its amount converted, at its pace), then maintenance to the rest of the VTBI."""
    phases, loaded = [], 0
    if part.loading is not None and part.loading_pace is not None:
        loaded = grid.amount_volume(part.loading, part.drug)
        phases.append(Phase(Kind.FIXED, grid.paced(loaded, part.loading_pace), loaded))
    rest = None if part.vtbi is None else part.vtbi.nl - loaded
    return [*phases, Phase(Kind.MAIN, grid.dose_rate(part.dose, part.drug), rest)]


def _nl(v: Volume | None) -> int | None:
    return None if v is None else v.nl


def _ramp_taper(p: RampTaper, grid: Grid) -> list[Phase]:
    """Steps at k/(n+1) of the ideal plateau for equal shares of each ramp's time, then the plateau."""
    plateau_ideal = Fraction(p.volume.nl * 2 * US_PER_H, 2 * p.duration.us - p.ramp_up.us - p.ramp_down.us)
    n = p.increments

    def ramp(length: int, levels: list[int]) -> list[Phase]:
        out = []
        for k, level in enumerate(levels, start=1):
            rate = grid.rate(plateau_ideal * level / (n + 1))
            share = length * k // n - length * (k - 1) // n
            out.append(Phase(Kind.FIXED, rate, rate * share // US_PER_H))
        return out if length else []

    ups = ramp(p.ramp_up.us, list(range(1, n + 1)))
    downs = ramp(p.ramp_down.us, list(range(n, 0, -1)))
    rest = p.volume.nl - sum(ph.volume or 0 for ph in ups + downs)
    plateau_us = p.duration.us - p.ramp_up.us - p.ramp_down.us
    return [*ups, Phase(Kind.FIXED, grid.rate(Fraction(rest * US_PER_H, plateau_us)), rest), *downs]


def _intermittent(p: Intermittent, kvo: FlowRate) -> list[Phase]:
    dose_us = -(-p.dose_volume.nl * US_PER_H // p.rate.nl_per_h)  # rounded up, as the dose takes
    wait_rate = min(kvo.nl_per_h, p.rate.nl_per_h)
    phases: list[Phase] = []
    for i in range(p.doses):
        if i:
            phases.append(Phase(Kind.WAIT, wait_rate, None, p.interval.us - dose_us))
        phases.append(Phase(Kind.FIXED, p.rate.nl_per_h, p.dose_volume.nl))
    return phases


BUCKET_US: Final = 10 * 1_000_000  # the monitor's dose count keeps measured motion in 10 s buckets


class DoseWindow:
    """The monitor's own count of the PCA drug it measured (net nL) against the confirmed dose limits over one and
    four hours, every source counted (OPENPCA-R5-2-0-5), independent of the channel's ledger.

    Motion is counted at the start of the bucket its measuring interval began in, so it leaves a window no later
    than it was delivered: the count under-counts by at most one bucket, and the channel's ledger (which counts a
    demand in full when granted and the rest when measured) always reaches a limit first. Running totals per
    window: O(1) per check.
    """

    def __init__(self, limits: list[tuple[int, int]], margin: int) -> None:
        self.windows = [(window_us, limit_nl + margin, deque[tuple[int, int]]()) for window_us, limit_nl in limits]
        self.totals = [0] * len(limits)

    def add(self, since_us: int, nl: int) -> None:
        """Count ``nl`` measured since ``since_us`` (us of pump time)."""
        start = since_us - since_us % BUCKET_US
        for i, (_, _, buckets) in enumerate(self.windows):
            if buckets and buckets[-1][0] == start:
                buckets[-1] = (start, buckets[-1][1] + nl)
            else:
                buckets.append((start, nl))
            self.totals[i] += nl

    def exceeded(self, now_us: int) -> bool:
        """True while the drug counted in ``(now - window, now]`` is above a limit (plus the margin) in any window."""
        over = False
        for i, (window_us, ceiling, buckets) in enumerate(self.windows):
            while buckets and now_us - buckets[0][0] >= window_us:
                self.totals[i] -= buckets.popleft()[1]
            over = over or self.totals[i] > ceiling
        return over


def dose_window(program: ConfirmedProgram, grid: Grid, margin: int) -> DoseWindow | None:
    """The monitor's dose count for a PCA program with dose limits (its own conversion of them), else None."""
    pca = next((p for p in program.parts if isinstance(p, Pca)), None)
    if pca is None:
        return None
    pairs = ((US_PER_H, pca.limit_1h), (4 * US_PER_H, pca.limit_4h))
    limits = [(window, grid.amount_volume(limit, pca.drug)) for window, limit in pairs if limit is not None]
    return DoseWindow(limits, margin) if limits else None


@dataclass(slots=True)
class Expectation:
    """The monitor's running model of one channel's confirmed delivery (OI-SAFE-4); ``ceiling_nl`` is the volume
    it confirmed (:meth:`_raise_ceiling`)."""

    grid: Grid
    done_within: int = 0  # a volume-bound phase is done within this many nL of its end (one step's volume)
    near: int = 50_000  # within this many nL of a phase's end, the next phase's rate is allowed (and expected) too
    frames: list[Frame] = field(default_factory=list)
    kvo: int = 0  # nL/h after the program's own phases (0: nothing)
    allowance_nl: int = 0  # PCA demand volume still allowed on top of the phases
    allowance_rate: int = 0  # nL/h the allowance may be used at
    ceiling_nl: int | None = None  # confirmed volume: program, secondaries, boluses, demands (None: unbounded)
    pca: bool = False  # the confirmed program is a PCA (boluses on top of the basal, dropped on Stop/Start)
    capped: bool = False  # the channel reports the PCA dose limit: nothing above KVO (OPENPCA-R5-2-0-5)
    dose_margin: int = 20_000  # nL the monitor's own dose count may pass a limit by (measurement, rounding)
    doses: DoseWindow | None = None  # the monitor's own count against the confirmed PCA dose limits
    over_limit: bool = False  # that count is above a limit: nothing above KVO, whatever the channel says

    def confirm(self, program: ConfirmedProgram) -> None:
        """A new program: its phases, its KVO, its volume ceiling."""
        phases, drug = compile_program(program, self.grid)
        last = [ph.rate for ph in phases if ph.kind is not Kind.WAIT]
        self.frames = [Frame(phases, drug)]
        self.kvo = min(program.kvo.nl_per_h, last[-1]) if last else 0
        self.allowance_nl = self.allowance_rate = 0
        self.pca = any(isinstance(part, Pca) for part in program.parts)
        self.capped = self.over_limit = False
        self.doses = dose_window(program, self.grid, self.dose_margin)
        bounded = all(ph.volume is not None or ph.time is not None for ph in phases)
        self.ceiling_nl = sum(ph.volume or 0 for ph in phases) if bounded else None

    def push_secondary(self, program: ConfirmedProgram) -> None:
        phases, drug = compile_program(program, self.grid)
        self.frames.append(Frame(phases, drug))
        self._raise_ceiling(sum(ph.volume or 0 for ph in phases))

    def bolus_volume(self, bolus: ConfirmedBolus) -> int:
        """The bolus's volume (nL): the amount asked for, converted by the monitor, or the volume confirmed."""
        if bolus.amount is not None and bolus.drug is not None:
            return self.grid.amount_volume(bolus.amount, bolus.drug)
        return bolus.volume.nl

    def push_bolus(self, bolus: ConfirmedBolus) -> None:
        """A bolus runs now, from the container of what it interrupts (deducted from it): instead of what it
        interrupts, or on a PCA program on top of the basal (:meth:`_on_basal`, OPENPCA-R5-3-0-2)."""
        volume = self.bolus_volume(bolus)
        if self.frames:
            left = volume
            for ph in self.frames[-1].phases:
                if ph.volume is None or left == 0:
                    continue
                take = min(left, ph.volume)
                ph.volume -= take
                left -= take
        rate, total = self._on_basal(bolus.rate.nl_per_h, volume) if self.pca else (bolus.rate.nl_per_h, volume)
        self.frames.append(Frame([Phase(Kind.BOLUS, rate, total)], program=False))

    def _on_basal(self, rate: int, volume: int) -> tuple[int, int]:
        """A PCA clinician bolus of ``volume`` nL asked at ``rate`` nL/h: it runs at ``min(rate + basal, Fmax)``
        for as long as ``volume`` takes at what is left above the basal (rounded up), so it expects that time's
        volume at the combined rate (OPENPCA-R5-3-0-2: open-pca-requirements.md R5.3.0(2)). The basal is the
        confirmed (or titrated) one of the program frame, the Fmax the monitor's own calibration's."""
        basal = next((ph.rate for f in self.frames if f.program for ph in f.phases if ph.kind is Kind.MAIN), 0)
        total = min(rate + basal, self.grid.max_rate)
        over_us = -(-volume * US_PER_H // (total - basal))
        return total, total * over_us // US_PER_H

    def drop_pca_boluses(self) -> None:
        """The PCA boluses (clinician, demand, loading) running now end: a dropped rest is not expected
        (OPENPCA-R6-5-0-3 on Stop/Start, OPENPCA-R5-2-0-5 at the dose limit). Only ever lowers the expectation."""
        if not self.pca:
            return
        while self.frames and not self.frames[-1].program:
            self.frames.pop()
        if self.frames and self.frames[-1].phases[0].kind is Kind.LOADING:
            self.frames[-1].phases.pop(0)
        self.allowance_nl = 0

    def restrict_to_kvo(self, capped: bool) -> None:
        """The channel reports the PCA dose limit reached (``capped``) or room again: while capped the PCA
        boluses are halted and nothing above the confirmed KVO rate is allowed or expected (OPENPCA-R5-2-0-5).
        Ignored on a program that is not a PCA; it can lower the confirmed profile, never raise it."""
        if not self.pca:
            return
        if capped:
            self.drop_pca_boluses()
        self.capped = capped

    def count_dose(self, since_us: int, now_us: int, moved_nl: int) -> None:
        """Count ``moved_nl`` measured over ``(since_us, now_us]`` against the confirmed PCA dose limits; above one,
        the PCA boluses end and nothing above KVO is allowed (OPENPCA-R5-2-0-5), with no word from the channel."""
        if self.doses is None:
            return
        if moved_nl:
            self.doses.add(since_us, moved_nl)
        over = self.doses.exceeded(now_us)
        if over and not self.over_limit:
            self.drop_pca_boluses()
        self.over_limit = over

    def allow_demand(self, volume_nl: int, rate: FlowRate) -> None:
        """A PCA demand the monitor allows: up to ``volume_nl`` more, at up to ``rate`` on top of the phases (the
        basal, OPENPCA-R5-2-0-2); none at the dose limit (OPENPCA-R5-2-0-5)."""
        if self.capped or self.over_limit:
            return
        self.allowance_nl = volume_nl
        self.allowance_rate = rate.nl_per_h
        self._raise_ceiling(volume_nl)

    def titration_rate(self, titration: ConfirmedTitration) -> tuple[Frame, int] | None:
        """The program frame a titration applies to and its new rate (nL/h); None without a program frame."""
        frame = next((f for f in reversed(self.frames) if f.program), None)
        if frame is None:
            return None
        if titration.rate is not None:
            return frame, titration.rate.nl_per_h
        if titration.dose is not None and frame.drug is not None:
            return frame, self.grid.dose_rate(titration.dose, frame.drug)
        raise ProgramError("monitor.titration", "a titration needs a rate, or a dose of a dose-based program")

    def titrate(self, titration: ConfirmedTitration) -> None:
        """The titratable phases of the topmost program frame run at the titration's rate."""
        found = self.titration_rate(titration)
        if found is None:
            return
        frame, rate = found
        frame.phases = [replace(ph, rate=rate) if ph.kind is Kind.MAIN else ph for ph in frame.phases]

    def _raise_ceiling(self, volume_nl: int) -> None:
        """A confirmed bolus, secondary or demand adds its volume to a bounded ceiling (UMN-GPCA-REQ-20)."""
        if self.ceiling_nl is not None:
            self.ceiling_nl += volume_nl

    def current(self) -> Phase:
        """The phase running now (KVO or END once everything confirmed is done)."""
        if self.frames:  # the common case first: the top frame's phase runs on (what _pop_done would leave)
            phases = self.frames[-1].phases
            if phases and not _finished(phases[0], self.done_within):
                return phases[0]
        self._pop_done()
        if self.frames:
            return self.frames[-1].phases[0]
        return Phase(Kind.KVO, self.kvo) if self.kvo else Phase(Kind.END, 0)

    def span(self) -> tuple[int, int]:
        """The lowest and highest rate (nL/h) delivery may run at now: the current phase's, and near its end
        (or when it is time-bound) also the next one's; the controller ends segments within a step or two
        of the monitor, and those small differences add up over a plan."""
        phase = self.current()
        if phase.volume is None or phase.volume > self.near:
            lo, hi = phase.rate, phase.rate
        else:
            following = self._following()
            lo, hi = min(phase.rate, following), max(phase.rate, following)
        return (min(lo, self.kvo), min(hi, self.kvo)) if self.capped or self.over_limit else (lo, hi)

    def _following(self) -> int:
        top = self.frames[-1]
        if len(top.phases) > 1:
            return top.phases[1].rate
        below = self.frames[-2].phases if len(self.frames) > 1 else []
        return below[0].rate if below else self.kvo

    def done(self) -> bool:
        """True once every confirmed phase is done (KVO or nothing runs)."""
        self._pop_done()
        return not self.frames

    def _pop_done(self) -> None:
        while self.frames:
            top = self.frames[-1]
            while top.phases and _finished(top.phases[0], self.done_within):
                top.phases.pop(0)
            if top.phases:
                return
            self.frames.pop()

    def advance(self, moved_nl: int, running_us: int) -> None:
        """Attribute ``moved_nl`` of net motion and ``running_us`` of running time to the phases, in order."""
        phase = self.current()
        if phase.time is not None:
            used = min(phase.time, running_us)
            phase.time -= used
            running_us -= used
        if moved_nl < 0:
            if phase.volume is not None and phase.size is not None:  # a back-off takes volume back from the phase
                phase.volume = min(phase.volume - moved_nl, phase.size)
            return
        while moved_nl > 0 and self.frames:
            phase = self.current()
            if phase.volume is None:
                return
            take = min(moved_nl, phase.volume)
            phase.volume -= take
            moved_nl -= take

    def use_allowance(self, running_us: int) -> int:
        """The PCA allowance usable over ``running_us`` of running time (nL), taken from what is left."""
        if not self.allowance_nl:
            return 0
        usable = min(self.allowance_nl, self.allowance_rate * running_us // US_PER_H)
        self.allowance_nl -= usable
        return usable


def _finished(ph: Phase, within: int) -> bool:
    if ph.time is not None:
        return ph.time <= 0
    return ph.volume is not None and ph.volume <= within
