"""The ward week: virtual pumps in a library's care areas, programmed by simulated nurses (issue 5, item 10).

Theory of operation
-------------------
Each pump is the real core (:class:`~openinfusion.pump.pump.Pump`) on virtual hardware, run by the
:class:`~openinfusion.sim.driver.Driver`, with the library compiled, signed and installed as a hospital would
(a key made for the run only), so its event log is a real pump log: the input the pharmacy analytics
(:mod:`openinfusion.pharmacy.cqi`) and the what-if replay (:mod:`openinfusion.pharmacy.whatif`) are built for.

A pump stays in one care area. Infusions arrive as a Poisson process (``infusions_per_day`` per pump). For each
one a simulated nurse picks a library entry of the care area (common drugs more often, :data:`COMMON`), a patient
(weight and BSA inside the care area's soft limits), and a value to enter (a dose, a rate, a duration or a PCA
demand dose) inside the entry's soft limits; or, now and then, one just beyond a soft limit, or a programming
slip (a 10-fold or a mg/ug 1000-fold error). The pump checks it; on an alert the nurse overrides with a reason
from the library's list, re-enters the intended value, cancels, or (rarely) switches to a basic infusion. Some
infusions are basic from the start (with a reason, where the care area allows it), some drips are titrated
(checked again: OI-DERS-4) and some get a bolus. An infusion runs a few minutes and is cleared: what matters
here is the programming, not the hours of delivery.

Every number is drawn from one seeded ``numpy.random.Generator``: :meth:`Generator.spawn` gives each pump its
own stream, so the logs do not depend on how many worker processes ran them (``generate(..., workers=N)``).
The behaviour probabilities are assumptions marked [U]; the resulting rates are of the order published for
real pumps (alerts per 100 infusions 3.9 to 15.9 and library compliance 46 % to 97 %,
``shared/reference/market-and-peers.md`` §4 [E8] and §1.3 [X11]); ``docs/pharmacy-analytics.md`` shows them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Final

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.druglib.model import (
    Basis,
    Bounds,
    CareArea,
    Drug,
    DrugKind,
    Entry,
    Library,
    LimitField,
    Mode,
    shape_of,
)
from openinfusion.druglib.model import Concentration as LibraryConcentration
from openinfusion.druglib.package import simulation_release
from openinfusion.errors import DoseLimitError, InputError, ProgramError, ScenarioError, TransitionRefusedError
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, EventLog, LibraryIdentity
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import (
    Bolus,
    ContinuousProgram,
    DoseProgram,
    KvoSettings,
    Program,
    RateLimits,
    Titration,
    VolumeOverTimeProgram,
)
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.sensing.occlusion import Sensitivity
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import DIMENSIONS, Duration, FlowRate, Instant, Quantity, Unit, Volume, unit

DEFAULT_ORIGIN: Final = "2026-03-02T07:00:00+00:00"  # a Monday, start of the day shift
MAX_PUMPS: Final = 64
MAX_DAYS: Final = 28
_KVO: Final = KvoSettings(enabled=True, rate=FlowRate.ml_h(1))
_ML_H = unit("mL/h")
_MIN = unit("min")
_KG = unit("kg")
_M2 = unit("m2")

# Drugs programmed about four times as often as the others [U]: maintenance fluids, the common antibiotics,
# anticoagulation, insulin, sedation and vasopressors, potassium and magnesium, oxytocin (a typical US ward's mix).
COMMON: Final = frozenset({
    "maintenance-fluid", "cefazolin", "vancomycin", "piperacillin-tazobactam", "ceftriaxone", "heparin",
    "insulin-regular", "propofol", "norepinephrine", "fentanyl", "dexmedetomidine", "potassium-chloride",
    "magnesium-sulfate", "oxytocin", "morphine", "hydromorphone", "acetaminophen", "ondansetron",
})  # fmt: skip

# Behaviour per infusion and per alert [U]; tuned so the week lands near published CQI figures (module docstring).
P_BEYOND_SOFT: Final = 0.05  # the order itself is just beyond a soft limit
P_SLIP: Final = 0.02  # a programming slip: 10-fold, 0.1-fold or mg/ug 1000-fold
P_TITRATE: Final = 0.35  # a running dose or rate drip is titrated
P_BOLUS: Final = 0.25  # a clinician bolus where the entry limits boluses
P_BASIC: Final[dict[str, float]] = {"ANESTHESIA": 0.18, "ONCOLOGY": 0.10, "LD": 0.07, "MED-SURG": 0.07}
P_BASIC_DEFAULT: Final = 0.04
BASIC_REASONS: Final = (
    ("Drug not in library", 5.0),
    ("Maintenance fluid", 3.0),
    ("Blood product", 2.0),
    ("Emergency: no time to select", 1.0),
)
SLIP_FACTORS: Final = ((Fraction(10), 0.5), (Fraction(1, 10), 0.2), (Fraction(1000), 0.15), (Fraction(1, 1000), 0.15))


@dataclass(frozen=True, slots=True, kw_only=True)
class WardWeek:
    """What to simulate: how many pumps, for how many days, from which seed, how busy, from what wall-clock time."""

    pumps: int = 8
    days: int = 7
    seed: int = 1
    infusions_per_day: float = 16.0  # programs per pump per day, mean [U]
    time_origin: str = DEFAULT_ORIGIN  # wall-clock time of power-on, written into each log's header

    def __post_init__(self) -> None:
        _require(1 <= self.pumps <= MAX_PUMPS, "pumps", f"must be 1 to {MAX_PUMPS}, got {self.pumps}")
        _require(1 <= self.days <= MAX_DAYS, "days", f"must be 1 to {MAX_DAYS}, got {self.days}")
        _require(self.seed >= 0, "seed", f"must be a non-negative integer, got {self.seed}")
        _require(0 < self.infusions_per_day <= 200, "infusions_per_day", "must be above 0 and at most 200")
        try:
            origin = datetime.datetime.fromisoformat(self.time_origin)
        except ValueError:
            raise ScenarioError("time_origin", f"not an ISO 8601 date-time: {self.time_origin!r}") from None
        _require(origin.tzinfo is not None, "time_origin", "needs a UTC offset")


def _require(ok: bool, where: str, why: str) -> None:
    if not ok:
        raise ScenarioError(where, why)


# --- what a nurse can program from a library entry -------------------------------------------------------


class Kind(Enum):
    """How an entry is programmed, and so which value the nurse enters."""

    DOSE = "dose"  # a continuous dose (ug/kg/min, [iU]/h ...) from a standard concentration
    RATE = "rate"  # a rate-only entry (fluids, mL/h)
    TIMED = "timed"  # an intermittent dose: the bag over a duration
    PCA = "pca"  # a PCA prescription: the demand dose entered


_DEFAULT_RANGE: Final = {Kind.RATE: (20.0, 150.0), Kind.TIMED: (30.0, 60.0)}  # mL/h, min [U]
_DEFAULT_UNIT: Final = {Kind.RATE: _ML_H, Kind.TIMED: _MIN}  # of an entry without limits of the entered value


@dataclass(frozen=True, slots=True)
class Recipe:
    """A library entry as a nurse programs it: the selection, the value entered and its limits, the bag."""

    selection: LibrarySelection
    kind: Kind
    unit: Unit  # of the value entered
    bounds: Bounds | None  # the entry's limits of that value
    concentration: Concentration | None  # DOSE and PCA
    bag: Volume | None  # VTBI of RATE and TIMED programs, and of DOSE programs from a bag
    weight: float  # relative frequency
    entry: Entry
    floor: Fraction | None = None  # a hard minimum the care area adds (TIMED: the bag at the area's maximum rate)
    ceiling: Fraction | None = None  # a hard maximum the care area adds (RATE: the area's maximum rate)

    def program(self, value: Fraction, limits: RateLimits, patient: Patient, rng: np.random.Generator) -> Program:
        """The program with ``value`` entered (ProgramError if the pump cannot run it)."""
        match self.kind:
            case Kind.DOSE:
                assert self.concentration is not None
                return DoseProgram(
                    dose=Quantity(value, self.unit),
                    concentration=self.concentration,
                    patient=patient,
                    vtbi=self.bag,
                    limits=limits,
                )
            case Kind.RATE:
                return ContinuousProgram(rate=FlowRate.of(Quantity(value, self.unit)), vtbi=self.bag, limits=limits)
            case Kind.TIMED:
                return VolumeOverTimeProgram(
                    vtbi=self.dose_volume(patient, rng), duration=Duration.of(Quantity(value, self.unit)), limits=limits
                )
            case Kind.PCA:
                assert self.concentration is not None
                return self._pca(value, limits, rng)

    def dose_volume(self, patient: Patient, rng: np.random.Generator) -> Volume:
        """What a TIMED program infuses: the bag, or for a dose per kg or m2 the part of the bag that holds a usual
        dose for ``patient`` (a child gets a share of the bag, not all of it), to 0.1 mL."""
        assert self.bag is not None
        bounds = self.entry.limit(LimitField.DOSE)
        shape = None if bounds is None else shape_of(bounds.unit)
        bag = next((c for c in self.entry.concentrations if c.key == self.selection.concentration), None)
        if bounds is None or shape is None or shape.basis is Basis.NONE or bag is None or bag.per_volume is None:
            return self.bag
        per = patient.weight if shape.basis is Basis.WEIGHT else patient.bsa
        assert per is not None  # patient_for gives both
        dose = Quantity(usual_value(rng, bounds, (1.0, 10.0)), bounds.unit) * per
        ml = round((dose / bag.per_volume).in_("mL"), 1)
        return min(self.bag, Volume.of(Quantity(max(ml, Fraction(1, 10)), unit("mL"))))

    def _pca(self, value: Fraction, limits: RateLimits, rng: np.random.Generator) -> PcaProgram:
        assert self.concentration is not None
        demand = Quantity(value, self.unit)
        lockout = usual_value(rng, self.entry.limit(LimitField.PCA_LOCKOUT), (6.0, 10.0), digits=1)
        lockout_unit = _unit_of(self.entry.limit(LimitField.PCA_LOCKOUT), _MIN)
        return PcaProgram(
            concentration=self.concentration,
            demand_dose=demand,
            lockout=Duration.of(Quantity(lockout, lockout_unit)),
            limit_1h=_cap(self.entry.limit(LimitField.PCA_LIMIT_1H), demand),
            limit_4h=_cap(self.entry.limit(LimitField.PCA_LIMIT_4H), demand),
            demand_rate=FlowRate.ml_h(60),
            limits=limits,
        )

    def usual(self, rng: np.random.Generator) -> Fraction:
        """A usual value of the entered quantity, inside the soft limits (see :func:`usual_value`)."""
        return self.typed(usual_value(rng, self.bounds, _DEFAULT_RANGE.get(self.kind, (1.0, 10.0))))

    def typed(self, value: Fraction) -> Fraction:
        """``value`` as the pump takes it: rates on the 0.01 mL/h grid."""
        return Fraction(round(value * 100), 100) if self.kind is Kind.RATE and self.unit == _ML_H else value

    def beyond_soft(self, rng: np.random.Generator) -> Fraction | None:
        """A value just beyond a soft limit and inside every hard one (an unusual but intended order), or None.

        Only a meaningful soft minimum counts: one below a twentieth of the soft maximum is a token ("no lower
        limit", drug-library-examples.md §9.2), and nobody orders below it on purpose.
        """
        b = self.bounds
        if b is None:
            return None
        soft_lo = None if b.soft_min is None else b.soft_min.value
        soft_hi = None if b.soft_max is None else b.soft_max.value
        hard_lo = _tightest(max, b.hard_min, self.floor)
        hard_hi = _tightest(min, b.hard_max, self.ceiling)
        sides: list[tuple[Fraction, Fraction | None, bool]] = []  # (soft limit, hard limit, upper side)
        if soft_hi is not None and (hard_hi is None or hard_hi > soft_hi):
            sides.append((soft_hi, hard_hi, True))
        meaningful = soft_lo is not None and soft_lo > 0 and (soft_hi is None or 20 * soft_lo >= soft_hi)
        if soft_lo is not None and meaningful and (hard_lo is None or hard_lo < soft_lo):
            sides.append((soft_lo, hard_lo, False))
        if not sides:
            return None
        soft, hard, upper = sides[0] if len(sides) == 1 or rng.random() < 0.75 else sides[1]
        x = float(soft) * (rng.uniform(1.05, 1.35) if upper else rng.uniform(0.5, 0.9))
        if hard is not None:  # at most 80 % of the way from the soft limit to the hard one
            bound = float(soft + (hard - soft) * Fraction(4, 5))
            x = min(x, bound) if upper else max(x, bound)
        value = self.typed(_nice(x, 3))
        beyond = value > soft if upper else 0 < value < soft
        inside = hard is None or (value < hard if upper else value > hard)
        return value if beyond and inside else None

    @property
    def bolus(self) -> Bounds | None:
        """The bolus-dose limits, when a bolus of this entry can be checked (its rate limit, if any, in mL/h)."""
        dose = self.entry.limit(LimitField.BOLUS_DOSE)
        rate = self.entry.limit(LimitField.BOLUS_RATE)
        if self.kind is not Kind.DOSE or dose is None or (rate is not None and rate.unit.dim != _ML_H.dim):
            return None
        return dose


def _tightest(
    pick: Callable[[list[Fraction]], Fraction], limit: Quantity | None, extra: Fraction | None
) -> Fraction | None:
    """The tighter of an entry's hard limit and a care area's (``pick`` is min or max), or None."""
    values = [v for v in (None if limit is None else limit.value, extra) if v is not None]
    return pick(values) if values else None


def _unit_of(bounds: Bounds | None, default: Unit) -> Unit:
    return default if bounds is None else bounds.unit


def _cap(bounds: Bounds | None, demand: Quantity) -> Quantity | None:
    """A PCA dose limit just inside the entry's soft maximum (in the demand dose's unit), or none."""
    top = None if bounds is None else (bounds.soft_max or bounds.hard_max)
    if top is None:
        return None
    return Quantity(Fraction(4, 5) * top.in_(demand.unit), demand.unit)


def recipes(library: Library) -> dict[str, tuple[Recipe, ...]]:
    """The entries a nurse can program, per care area (entries the simulation cannot program are left out)."""
    areas = {a.id: a for a in library.care_areas}
    found: dict[str, list[Recipe]] = {a: [] for a in areas}
    for drug, entry in library.entries():
        recipe = _recipe(drug, entry)
        if recipe is not None:
            found[entry.area].append(_capped(recipe, areas[entry.area]))
    return {area: tuple(rs) for area, rs in found.items() if rs}


def _capped(recipe: Recipe, area: CareArea) -> Recipe:
    """``recipe`` with the hard limit its care area adds: the maximum rate, or the shortest duration for the bag."""
    if recipe.kind is Kind.RATE:
        return replace(recipe, ceiling=area.max_rate.in_(recipe.unit))
    if recipe.kind is Kind.TIMED and recipe.bag is not None:
        shortest = Quantity(recipe.bag.in_ml / area.max_rate.in_(_ML_H), unit("h"))
        return replace(recipe, floor=shortest.in_(recipe.unit))
    return recipe


def _recipe(drug: Drug, entry: Entry) -> Recipe | None:
    """How a nurse programs ``entry``; None for what is not simulated (custom concentrations only, doses without
    limits, the library's own basic-infusion entry: the pump's basic mode is used instead)."""
    if drug.kind is DrugKind.BASIC:
        return None
    weight = 4.0 if drug.id in COMMON or drug.kind is DrugKind.FLUID else 1.0
    first = entry.concentrations[0] if entry.concentrations else None
    bagged = next((c for c in entry.concentrations if c.volume is not None), None)

    def make(
        kind: Kind, bounds: Bounds | None, key: str | None, conc: Concentration | None, bag: Volume | None
    ) -> Recipe:
        selection = LibrarySelection(area=entry.area, drug=drug.id, therapy=entry.therapy, concentration=key)
        entered_in = bounds.unit if bounds is not None else _DEFAULT_UNIT[kind]
        return Recipe(selection, kind, entered_in, bounds, conc, bag, weight, entry)

    if entry.mode is Mode.CONTINUOUS and entry.rate_only:
        bag = _bag(None if first is None else first.volume, Volume.ml(1000 if drug.kind is DrugKind.FLUID else 250))
        return make(Kind.RATE, entry.limit(LimitField.RATE), None if first is None else first.key, None, bag)
    if entry.mode is Mode.INTERMITTENT:
        # a bag (else an amount alone, its volume entered at the pump) that holds a usual dose
        ordered = sorted(entry.concentrations, key=lambda c: c.volume is None)
        chosen = next((c for c in ordered if _usual_amount(entry, c)), bagged or first)
        if chosen is None:
            return None
        bag = _bag(chosen.volume, Volume.ml(100))
        return make(Kind.TIMED, entry.limit(LimitField.DURATION), chosen.key, None, bag)
    kind = Kind.PCA if entry.mode is Mode.PCA else Kind.DOSE
    limit = entry.limit(LimitField.PCA_DEMAND_DOSE if kind is Kind.PCA else LimitField.DOSE)
    if bagged is None or bagged.volume is None or limit is None:
        return None
    conc = Concentration(bagged.amount, bagged.volume)
    return make(kind, limit, bagged.key, conc, _bag(bagged.volume, None) if kind is Kind.DOSE else None)


def _usual_amount(entry: Entry, conc: LibraryConcentration) -> bool:
    """Whether the whole of ``conc`` is a dose within the entry's soft dose limits (always, for a dose per kg or
    m2: :meth:`Recipe.dose_volume` gives the patient's share of the bag)."""
    bounds = entry.limit(LimitField.DOSE)
    if bounds is None or conc.amount.unit.dim != bounds.unit.dim:
        return True
    lo, hi = _span(bounds, (0.0, float("inf")))
    return lo <= float(conc.amount.in_(bounds.unit)) <= hi


def _bag(volume: Quantity | None, default: Volume | None) -> Volume | None:
    """A bag's volume as the VTBI; small syringes (< 20 mL) run until stopped."""
    if volume is None:
        return default
    bag = Volume.of(volume)
    return bag if bag >= Volume.ml(20) else default


# --- values a nurse enters ----------------------------------------------------------------------------


def _nice(x: float, digits: int = 2) -> Fraction:
    """``x`` as a person would type it: ``digits`` significant digits, exactly."""
    return Fraction(Decimal(f"{x:.{digits}g}"))


def _span(bounds: Bounds | None, default: tuple[float, float]) -> tuple[float, float]:
    """The range of usual values: the soft limits (else hard), or ``default`` where none is set."""
    if bounds is None:
        return default
    lo_q, hi_q = bounds.soft_min or bounds.hard_min, bounds.soft_max or bounds.hard_max
    lo = float(lo_q.value) if lo_q is not None else None
    hi = float(hi_q.value) if hi_q is not None else None
    if lo is not None and lo <= 0:
        lo = None
    if lo is None and hi is None:
        return default
    if lo is None:
        assert hi is not None
        return hi / 8, hi
    return (lo, hi) if hi is not None else (lo, lo * 4)


def usual_value(
    rng: np.random.Generator, bounds: Bounds | None, default: tuple[float, float], digits: int = 2
) -> Fraction:
    """A usual value, as typed: log-uniform over the lower middle of the usual range [U].

    Soft maxima bracket the protocol's maximum (drug-library-examples.md §9.2), so orders sit below them; a
    range wider than 20-fold has a token minimum ("0.0001 mg/h": no lower limit), so it starts at a twentieth.
    """
    lo, hi = _span(bounds, default)
    lo = max(lo, hi / 20)
    return _nice(lo * (hi / lo) ** rng.uniform(0.1, 0.6), digits)


def _slip(rng: np.random.Generator, value: Fraction, kind: Kind, entered_in: Unit) -> Fraction:
    """A programming slip: 10-fold or 0.1-fold, or (for a drug mass or activity) mg/ug confused, 1000-fold."""
    exps = dict(zip(DIMENSIONS, entered_in.dim, strict=True))
    by_amount = kind in {Kind.DOSE, Kind.PCA} and bool(exps["drug_mass"] or exps["activity"])
    factors = [(f, p) for f, p in SLIP_FACTORS if by_amount or f in {Fraction(10), Fraction(1, 10)}]
    total = sum(p for _, p in factors)
    pick = int(rng.choice(len(factors), p=[p / total for _, p in factors]))
    return value * factors[pick][0]


def patient_for(rng: np.random.Generator, area: CareArea) -> Patient:
    """A patient in the lower part of the care area's soft weight (and BSA) limits [U]."""

    def measure(bounds: Bounds | None, default: tuple[float, float], unit_: Unit) -> Quantity:
        lo, hi = _span(bounds, default)
        value = Quantity(
            _nice(lo * 1.1 + rng.uniform(0.0, 0.45) * (hi - lo), 3), unit_ if bounds is None else bounds.unit
        )
        return value.to(unit_)

    bsa = measure(area.bsa, (1.4, 2.4), _M2) if area.bsa is not None else None
    return Patient(weight=measure(area.weight, (45.0, 120.0), _KG), bsa=bsa)


def _weighted(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    total = sum(w for _, w in options)
    return options[int(rng.choice(len(options), p=[w / total for _, w in options]))][0]


def _reason_weights(reasons: Sequence[str], titration: bool) -> list[tuple[str, float]]:
    """Override reasons as nurses pick them [U]: the prescriber's order most, the protocol for titrations."""

    def weight(reason: str) -> float:
        low = reason.casefold()
        if "titrat" in low:
            return 8.0 if titration else 1.0
        if "order" in low or "prescriber" in low:
            return 5.0
        if "patient" in low or "weight" in low:
            return 2.0
        return 0.5 if "emergenc" in low else 1.0

    return [(r, weight(r)) for r in reasons]


# --- one pump's week ---------------------------------------------------------------------------------------


class Plan(Enum):
    """What the nurse is about to enter."""

    USUAL = "usual"
    BEYOND_SOFT = "beyond_soft"
    SLIP = "slip"


@dataclass(frozen=True, slots=True)
class Job:
    """One pump's week, as a picklable job for a worker process.

    The pump gets the signed ``package`` and verifies it as a real pump does; the nurse reads ``library``.
    """

    index: int
    area: str
    days: int
    infusions_per_day: float
    library: Library
    package: bytes
    public_keys: tuple[bytes, ...]
    rng: np.random.Generator


class _Nurse:
    """Programs one single-channel pump in one care area, from the library entries of that area."""

    def __init__(self, job: Job) -> None:
        keys = tuple(Ed25519PublicKey.from_public_bytes(k) for k in job.public_keys)
        self.job = job
        self.area = next(a for a in job.library.care_areas if a.id == job.area)
        self.recipes = recipes(job.library)[job.area]
        self.reasons = job.library.override_reasons
        world_rng, self.rng = job.rng.spawn(2)
        self.world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW, record_series=False), world_rng)
        settings = ChannelSettings(kvo=_KVO, sensitivity=Sensitivity[self.area.occlusion.name])
        config = PumpConfig(pump_id=pump_id(job.index), channels=(settings,), care_area=job.area)
        self.pump = Pump(self.world.hardware, self.world.calibrations, config, keys, job.package)
        self.driver = Driver(self.world, self.pump)
        self.limits = RateLimits.of(self.world.calibrations[0])

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass (the nurse reading, typing, walking away)."""
        self.driver.service()
        self.driver.run_until(self.world.now + Duration.s(_nice(seconds, 3)))

    def run(self) -> EventLog:
        end = Instant(Duration.h(24 * self.job.days).us)
        mean_gap_s = 86_400 / self.job.infusions_per_day
        self.wait(1)
        while True:
            next_at = self.world.now + Duration.s(_nice(self.rng.exponential(mean_gap_s), 4))
            if next_at >= end:
                break
            self.driver.run_until(next_at)
            self.infusion()
        self.driver.run_until(end)
        return self.pump.log

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # --- programming -------------------------------------------------------------------------------------

    def infusion(self) -> None:
        """One infusion: basic, or from a library entry (usual value, beyond a soft limit, or a slip)."""
        patient = patient_for(self.rng, self.area)
        if self.area.basic_infusion and self.chance(P_BASIC.get(self.area.id, P_BASIC_DEFAULT)):
            if self.basic():
                self.deliver(None, None, patient)
            return
        weights = np.array([r.weight for r in self.recipes])
        recipe = self.recipes[int(self.rng.choice(len(self.recipes), p=weights / weights.sum()))]
        intended = recipe.usual(self.rng)
        plan, entered = self.plan(recipe, intended)
        program = self.build(recipe, entered, patient)
        if program is None:  # a slip the pump cannot even take (beyond its own rate range): the usual value
            plan, entered = Plan.USUAL, intended
            program = self.build(recipe, intended, patient)
        if program is not None and self.enter(recipe, patient, plan, program, intended):
            self.deliver(recipe, entered, patient)

    def plan(self, recipe: Recipe, intended: Fraction) -> tuple[Plan, Fraction]:
        draw = self.rng.random()
        if draw < P_SLIP:
            return Plan.SLIP, _slip(self.rng, intended, recipe.kind, recipe.unit)
        if draw < P_SLIP + P_BEYOND_SOFT:
            beyond = recipe.beyond_soft(self.rng)
            if beyond is not None:
                return Plan.BEYOND_SOFT, beyond
        return Plan.USUAL, intended

    def build(self, recipe: Recipe, value: Fraction, patient: Patient) -> Program | None:
        try:
            return recipe.program(value, self.limits, patient, self.rng)
        except InputError:
            return None

    def verdict(self) -> str:
        """The verdict on the pump's screen: the last DERS check's."""
        last = next(e for e in reversed(self.pump.log.events()) if e.kind is EventKind.DERS_CHECK)
        return str(last.data["verdict"])

    def enter(self, recipe: Recipe, patient: Patient, plan: Plan, program: Program, intended: Fraction) -> bool:
        """Enter ``program`` from ``recipe``; on an alert, react as a nurse would. True if it was confirmed."""

        def attempt(reason: str | None) -> None:
            self.pump.program(0, program, selection=recipe.selection, patient=patient, override_reason=reason)

        self.wait(self.rng.uniform(20, 90))
        try:
            attempt(None)
            return True
        except DoseLimitError:
            pass
        except (ProgramError, TransitionRefusedError):
            self.abandon()
            return False
        self.wait(self.rng.uniform(10, 60))
        soft = self.verdict() == "soft"
        if plan is Plan.SLIP:
            options = [("reprogram", 0.6), ("cancel", 0.3), ("basic", 0.05), ("override", 0.05 if soft else 0.0)]
        elif plan is Plan.BEYOND_SOFT and soft:
            options = [("override", 0.75), ("reprogram", 0.15), ("cancel", 0.1)]
        else:  # an alert the nurse did not expect (a weight, a VTBI): mostly confirmed
            options = [("override", 0.8), ("cancel", 0.2)] if soft else [("cancel", 1.0)]
        choice = _weighted(self.rng, options)
        if choice == "override":
            return self.confirmed(lambda: attempt(_weighted(self.rng, _reason_weights(self.reasons, titration=False))))
        if choice == "reprogram":
            corrected = self.build(recipe, intended, patient)
            if corrected is not None:
                return self.enter(recipe, patient, Plan.USUAL, corrected, intended)
        if choice == "basic" and self.area.basic_infusion:
            return self.basic()
        self.abandon()
        return False

    def confirmed(self, action: Callable[[], None]) -> bool:
        """Run a clinician action; a refusal abandons the programming. True if the pump took it."""
        try:
            action()
            return True
        except (DoseLimitError, ProgramError, TransitionRefusedError):
            self.abandon()
            return False

    def abandon(self) -> None:
        if self.pump.channels[0].state is ChannelState.PROGRAMMING:
            self.pump.cancel_programming(0)

    def basic(self) -> bool:
        """A basic (no-library) infusion at a usual rate, with a reason."""
        rate = FlowRate.ml_h(_nice(self.rng.uniform(20, 150)))
        program = ContinuousProgram(rate=rate, vtbi=Volume.ml(500), limits=self.limits)
        reason = _weighted(self.rng, BASIC_REASONS)
        return self.confirmed(lambda: self.pump.program(0, program, basic_reason=reason))

    # --- while it runs -----------------------------------------------------------------------------------

    def deliver(self, recipe: Recipe | None, value: Fraction | None, patient: Patient) -> None:
        """Start, run a few minutes (titrating or giving a bolus now and then), stop and clear."""
        if not self.confirmed(lambda: self.pump.start(0)):
            self.stop()
            return
        self.wait(self.rng.uniform(60, 240))
        if recipe is not None and value is not None:
            if recipe.kind in {Kind.DOSE, Kind.RATE} and self.chance(P_TITRATE):
                self.titrate(recipe, value)
                self.wait(self.rng.uniform(30, 120))
            bounds = recipe.bolus
            if bounds is not None and self.chance(P_BOLUS):
                self.give_bolus(recipe, bounds, patient)
                self.wait(self.rng.uniform(30, 120))
        self.stop()

    def titrate(self, recipe: Recipe, value: Fraction) -> None:
        """A new dose or rate; after an alert a slip is mostly corrected and a soft alert mostly confirmed with a
        reason (80 % each [U]); otherwise the change is dropped."""
        lo, hi = _span(recipe.bounds, _DEFAULT_RANGE.get(recipe.kind, (1.0, 10.0)))
        intended = _nice(min(max(float(value) * self.rng.uniform(0.7, 1.5), lo * 1.02), hi * 0.98))
        plan, entered = self.plan(recipe, intended)

        def attempt(v: Fraction, reason: str | None = None) -> None:
            q = Quantity(v, recipe.unit)
            self.pump.titrate(0, Titration(FlowRate.of(q) if recipe.kind is Kind.RATE else q), override_reason=reason)
            self.pump.confirm_titration(0)

        self.wait(self.rng.uniform(10, 40))
        try:
            attempt(entered)
            return
        except DoseLimitError:
            pass
        except (ProgramError, TransitionRefusedError):
            return
        self.wait(self.rng.uniform(10, 40))
        if plan is Plan.SLIP:
            if self.chance(0.8):
                self.confirmed(lambda: attempt(intended))
        elif self.verdict() == "soft" and self.chance(0.8):
            self.confirmed(lambda: attempt(entered, _weighted(self.rng, _reason_weights(self.reasons, titration=True))))
        # otherwise the change is dropped and the running program continues

    def give_bolus(self, recipe: Recipe, bounds: Bounds, patient: Patient) -> None:
        """A clinician bolus of a usual amount; a soft alert is mostly confirmed with a reason."""
        amount = Quantity(usual_value(self.rng, bounds, (1.0, 5.0)), bounds.unit)
        pace = Duration.min(int(self.rng.integers(2, 6)))
        try:
            bolus = Bolus.request(amount, pace, self.limits, concentration=recipe.concentration, patient=patient)
        except InputError:
            return
        self.wait(self.rng.uniform(10, 40))
        try:
            self.pump.bolus(0, bolus)
            return
        except DoseLimitError:
            pass
        except (ProgramError, TransitionRefusedError):
            return
        if self.verdict() == "soft" and self.chance(0.7):
            reason = _weighted(self.rng, _reason_weights(self.reasons, titration=False))
            self.confirmed(lambda: self.pump.bolus(0, bolus, override_reason=reason))

    def stop(self) -> None:
        """Stop and clear the channel, whatever state the infusion ended in."""
        self.wait(self.rng.uniform(5, 30))
        channel = self.pump.channels[0]
        try:
            if channel.state is ChannelState.INFUSING:
                self.pump.pause(0)
        except TransitionRefusedError:
            pass
        if channel.state is ChannelState.ALARM:
            for alarm in self.pump.alarms.active(0):
                self.pump.reset_alarm(0, alarm.code)
        if channel.state in _CLEARABLE:
            self.pump.clear(0)


_CLEARABLE: Final = frozenset({ChannelState.READY, ChannelState.PAUSED, ChannelState.COMPLETE, ChannelState.KVO})


def pump_id(index: int) -> str:
    return f"ward-{index + 1:02d}"


def log_name(index: int) -> str:
    return f"pump-{index + 1:02d}.jsonl"


def run_job(job: Job, time_origin: str) -> str:
    """One pump's week as JSON Lines, with ``time_origin`` in the header (a worker process runs this)."""
    log = _Nurse(job).run()
    library = log.header.get("library")
    identity = None
    if isinstance(library, Mapping):
        identity = LibraryIdentity(str(library["owner"]), str(library["version"]), str(library["hash"]))
    # The core's log has no time origin (PumpConfig has none to give it): the same events, stamped.
    stamped = EventLog(pump_id=str(log.header["pump_id"]), time_origin=time_origin, library=identity)
    for e in log.events():
        stamped.append(e.t, e.kind, e.channel, **e.data)
    return stamped.to_jsonl()


# --- the ward --------------------------------------------------------------------------------------------


def assign_areas(library: Library, pumps: int) -> tuple[str, ...]:
    """Care areas of the pumps: the library's care areas that have programmable entries, in turn."""
    areas = [a.id for a in library.care_areas if a.id in recipes(library)]
    if not areas:
        raise ScenarioError("library", "no care area has an entry the ward simulation can program")
    return tuple(areas[i % len(areas)] for i in range(pumps))


def jobs(library: Library, ward: WardWeek) -> tuple[Job, ...]:
    """The pumps' jobs: the library signed with keys made for this run, one random stream per pump."""
    keys, package = simulation_release(library, f"ward-week:{ward.seed}")
    public = tuple(k.public_bytes_raw() for k in keys)
    streams = np.random.default_rng(ward.seed).spawn(ward.pumps)
    areas = assign_areas(library, ward.pumps)
    return tuple(
        Job(i, areas[i], ward.days, ward.infusions_per_day, library, package, public, streams[i])
        for i in range(ward.pumps)
    )


def generate(
    library: Library, ward: WardWeek, *, workers: int = 1, progress: Callable[[float], None] | None = None
) -> tuple[tuple[str, str], ...]:
    """Every pump's log as ``(file name, JSON Lines text)``, in pump order; the same for any ``workers``."""
    todo = jobs(library, ward)
    texts: dict[int, str] = {}

    def done(index: int, text: str) -> None:
        texts[index] = text
        if progress is not None:
            progress(len(texts) / len(todo))

    if workers <= 1:
        for job in todo:
            done(job.index, run_job(job, ward.time_origin))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            futures = {pool.submit(run_job, job, ward.time_origin): job.index for job in todo}
            for future in as_completed(futures):
                done(futures[future], future.result())
    return tuple((log_name(i), texts[i]) for i in range(len(todo)))


def write_logs(logs: Sequence[tuple[str, str]], out: Path) -> tuple[Path, ...]:
    """Write each log into directory ``out`` (created if needed); InputError if it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in logs:
            path = out / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    except OSError as e:
        raise InputError(str(out), f"cannot write: {e}") from None
    return tuple(paths)
