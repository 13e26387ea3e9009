"""Dose <-> rate conversion, exact (OI-PROG-2, OI-PROG-3, OI-UNIT-2).

Theory of operation. A dose is an amount of drug per time, optionally per kg of patient weight or per
m2 of body surface (``ug/kg/min``, ``[iU]/h``, ``mg/m2/h``). The pump moves volume, so a dose becomes a
rate through the concentration (amount per mL)::

    rate [mL/h] = dose x (weight or BSA, if per-kg/per-m2) / concentration [amount/mL]

Everything up to the exact rate is rational arithmetic on :class:`~openinfusion.units.Quantity`
(``Fraction`` values), so no digit is lost. Only then is the rate rounded, once, straight from the
exact fraction to the pump's resolution, half to even (never via a nanolitre-rounded intermediate,
which could round twice). The dose the patient actually gets, and the pump displays, is recomputed from
the rounded rate and reported next to the requested one. See ``docs/dosing.md`` for worked examples.

Amounts are drug mass (g, mg, ug, ng), activity ([iU], m[iU]), equivalents (meq) or substance (mmol);
a dose and its concentration must share one of these dimensions. Patient weight (kg) and BSA (m2) are
dimensions of their own (``units.py``), so a per-kg dose can never be mistaken for a mass dose.

Errors: a unit of the wrong shape or dimension is a :class:`UnitError`; a value that cannot be
programmed (non-positive, missing weight, rounds to zero) is a :class:`ProgramError`. Both name the
field (``where``) and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Final

from openinfusion.errors import ProgramError, UnitError
from openinfusion.units import (
    DIMENSIONS,
    ML,
    ML_PER_H,
    NL_PER_ML,
    FlowRate,
    Quantity,
    Unit,
    Volume,
    parse_unit,
    unit,
)

AMOUNT_DIMENSIONS: Final = ("drug_mass", "activity", "equivalents", "substance")
KG: Final = unit("kg")
M2: Final = unit("m2")

# Plausibility bounds for a patient: 0.3 kg is below the smallest viable preterm neonate; 350 kg and
# 3.5 m2 cover the heaviest adults while still catching a weight typed in pounds or grams.
WEIGHT_RANGE_KG: Final = (Fraction(3, 10), Fraction(350))
BSA_RANGE_M2: Final = (Fraction(1, 10), Fraction(7, 2))


class DoseBasis(Enum):
    """Whether a dose or amount is absolute, per kg of patient weight, or per m2 of body surface."""

    ABSOLUTE = "absolute"  # mg/h, [iU]/h, mg
    PER_KG = "per_kg"  # ug/kg/min, mg/kg
    PER_M2 = "per_m2"  # mg/m2/h, mg/m2


_BASES: Final = {(0, 0): DoseBasis.ABSOLUTE, (-1, 0): DoseBasis.PER_KG, (0, -1): DoseBasis.PER_M2}


def unit_form(u: Unit, where: str, *, per_time: bool) -> tuple[str, DoseBasis]:
    """Check ``u`` is an amount (``per_time=False``) or a dose rate (``per_time=True``).

    Returns the amount dimension (one of :data:`AMOUNT_DIMENSIONS`) and the basis. Accepted shapes:
    ``amount``, ``amount/kg``, ``amount/m2``, each divided by one time unit when ``per_time``.
    Raises :class:`UnitError` naming ``where`` for anything else (a volume, a rate in mL/h, ...).
    """
    exps = dict(zip(DIMENSIONS, u.dim, strict=True))
    amounts = [name for name in AMOUNT_DIMENSIONS if exps[name]]
    basis = _BASES.get((exps["body_mass"], exps["body_surface"]))
    fits = (
        len(amounts) == 1
        and exps[amounts[0]] == 1
        and exps["volume"] == 0
        and exps["time"] == (-1 if per_time else 0)
        and basis is not None
    )
    if not fits or basis is None:
        shape = "a dose rate such as mg/h, ug/kg/min or mg/m2/h" if per_time else "an amount such as mg or mg/kg"
        raise UnitError(where, f"{u.code!r} is not {shape}")
    return amounts[0], basis


@dataclass(frozen=True, slots=True)
class Concentration:
    """Drug amount per volume of solution, e.g. ``400 mg / 250 mL``.

    ``amount`` is an absolute amount (mass, [iU], meq or mmol) and ``volume`` a volume; both > 0.
    """

    amount: Quantity
    volume: Quantity

    def __post_init__(self) -> None:
        if unit_form(self.amount.unit, "concentration.amount", per_time=False)[1] is not DoseBasis.ABSOLUTE:
            raise UnitError("concentration.amount", f"{self.amount.unit.code!r} is per patient, not an amount")
        if self.volume.unit.dim != ML.dim:
            raise UnitError("concentration.volume", f"{self.volume.unit.code!r} is not a volume")
        if self.amount.value <= 0:
            raise ProgramError("concentration.amount", "must be positive")
        if self.volume.value <= 0:
            raise ProgramError("concentration.volume", "must be positive")

    @classmethod
    def from_quantity(cls, q: Quantity, where: str = "concentration") -> Concentration:
        """From a single ``amount/volume`` quantity such as ``4 mg/mL`` (read as ``4 mg`` in ``1 mL``)."""
        amount_code, slash, volume_code = q.unit.code.rpartition("/")
        if not slash:
            raise UnitError(where, f"{q.unit.code!r} is not amount/volume (e.g. mg/mL)")
        amount_unit = parse_unit(amount_code, where)
        volume_unit = parse_unit(volume_code, where)
        if volume_unit.dim != ML.dim:
            raise UnitError(where, f"{q.unit.code!r} is not amount/volume (e.g. mg/mL)")
        return cls(Quantity(q.value, amount_unit), Quantity(Fraction(1), volume_unit))

    @property
    def amount_dimension(self) -> str:
        """Which amount dimension the drug is measured in (``drug_mass``, ``activity``, ...)."""
        return unit_form(self.amount.unit, "concentration.amount", per_time=False)[0]

    def per_ml(self) -> Quantity:
        """Exact amount per mL, in the amount's own unit (``400 mg / 250 mL`` -> ``1.6 mg/mL``)."""
        return Quantity(self.amount.value / self.volume.in_(ML), self.amount.unit.per(ML))

    def __str__(self) -> str:
        return f"{self.amount} / {self.volume}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    """What dose calculation needs to know about the patient: weight (kg) and BSA (m2), both optional; and
    ``id``, the identifier scanned from the wristband (1 to 64 printable characters), logged, never used in
    dose calculation."""

    weight: Quantity | None = None
    bsa: Quantity | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if self.id is not None and not (0 < len(self.id) <= 64 and self.id.isprintable() and self.id.strip()):
            raise ProgramError("patient.id", f"1 to 64 printable characters, got {self.id!r}")
        _check_measure(self.weight, KG, WEIGHT_RANGE_KG, "patient.weight")
        _check_measure(self.bsa, M2, BSA_RANGE_M2, "patient.bsa")

    def basis_value(self, basis: DoseBasis, needed_by: Unit) -> Quantity | None:
        """The weight or BSA a dose of ``basis`` is multiplied by (None for an absolute dose).

        Raises :class:`ProgramError` naming ``patient.weight`` or ``patient.bsa`` if it is missing.
        """
        if basis is DoseBasis.ABSOLUTE:
            return None
        value, field, what = (
            (self.weight, "patient.weight", "weight (kg)")
            if basis is DoseBasis.PER_KG
            else (self.bsa, "patient.bsa", "body surface area (m2)")
        )
        if value is None:
            raise ProgramError(field, f"a dose in {needed_by.code} needs the patient's {what}")
        return value


def _check_measure(q: Quantity | None, expected: Unit, bounds: tuple[Fraction, Fraction], where: str) -> None:
    if q is None:
        return
    if q.unit.dim != expected.dim:
        raise UnitError(where, f"{q.unit.code!r} is not in {expected.code}")
    value = q.in_(expected)
    if not bounds[0] <= value <= bounds[1]:
        lo, hi = (Quantity(b, expected) for b in bounds)
        raise ProgramError(where, f"{q} is outside the plausible range {lo} to {hi}")


def _absolute(q: Quantity, conc: Concentration, patient: Patient, where: str, *, per_time: bool) -> Quantity:
    """``q`` (an amount or dose rate) without its per-kg/per-m2 basis, checked against ``conc``.

    Checks the unit's shape, that its amount dimension is the concentration's, and that ``q > 0``.
    The result is exact, in a product unit of the same dimension as ``conc.amount`` (per time if
    ``per_time``).
    """
    dimension, basis = unit_form(q.unit, where, per_time=per_time)
    if dimension != conc.amount_dimension:
        raise UnitError(
            where,
            f"a dose in {q.unit.code} ({dimension.replace('_', ' ')}) cannot be given from a concentration "
            f"in {conc.amount.unit.code} ({conc.amount_dimension.replace('_', ' ')})",
        )
    if q.value <= 0:
        raise ProgramError(where, f"must be positive, got {q}")
    by = patient.basis_value(basis, q.unit)
    return q if by is None else q * by


def round_to_resolution(exact_nl_per_h: Fraction, resolution: FlowRate) -> FlowRate:
    """The multiple of ``resolution`` nearest the exact rate (nL/h), ties to even (one rounding)."""
    step = resolution.nl_per_h
    return FlowRate(round(exact_nl_per_h / step) * step)


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseConversion:
    """The result of :func:`dose_to_rate`.

    ``requested`` is the dose asked for; ``exact_rate`` the exact rate (mL/h) that would deliver it;
    ``rate`` the programmed rate, ``exact_rate`` rounded to the pump's resolution; ``actual`` the dose
    that ``rate`` delivers, in the unit of ``requested`` (what the patient gets and the pump shows).
    """

    requested: Quantity
    exact_rate: Quantity
    rate: FlowRate
    actual: Quantity

    def __post_init__(self) -> None:
        if self.rate.nl_per_h <= 0:
            raise ProgramError("dose", "a dose conversion needs a positive rate")
        if self.exact_rate.unit != ML_PER_H or self.actual.unit != self.requested.unit:
            raise UnitError("dose", "exact rate must be in mL/h and the actual dose in the requested unit")


def dose_to_rate(
    dose: Quantity, conc: Concentration, patient: Patient, resolution: FlowRate, where: str = "dose"
) -> DoseConversion:
    """Convert a dose (amount[/kg|/m2]/time) into a pump rate on the ``resolution`` grid.

    Exact up to one half-to-even rounding of the rate; ``actual`` is recomputed from the rounded
    rate, so ``|actual - requested|`` is at most half a resolution step expressed as dose.
    Raises :class:`ProgramError` for a missing weight/BSA, a non-positive dose or a dose whose
    rate rounds to zero; :class:`UnitError` for a unit of the wrong shape or amount dimension.
    """
    amount_rate = _absolute(dose, conc, patient, where, per_time=True)
    exact_rate = (amount_rate / conc.per_ml()).to(ML_PER_H, where)
    rate = round_to_resolution(exact_rate.value * NL_PER_ML, resolution)
    if rate.nl_per_h == 0:
        raise ProgramError(where, f"{dose} needs {exact_rate}, which rounds to 0 at the pump's resolution {resolution}")
    actual = rate_to_dose(rate, conc, patient, dose.unit, where)
    return DoseConversion(requested=dose, exact_rate=exact_rate, rate=rate, actual=actual)


def rate_to_dose(
    rate: FlowRate, conc: Concentration, patient: Patient, dose_unit: Unit, where: str = "dose"
) -> Quantity:
    """The dose (in ``dose_unit``) that ``rate`` delivers from ``conc``, exactly."""
    dimension, basis = unit_form(dose_unit, where, per_time=True)
    if dimension != conc.amount_dimension:
        raise UnitError(where, f"{dose_unit.code} does not measure the drug in {conc.amount.unit.code}")
    if rate.nl_per_h < 0:
        raise ProgramError(where, "rate must not be negative")
    amount_rate = rate.quantity() * conc.per_ml()
    by = patient.basis_value(basis, dose_unit)
    return (amount_rate if by is None else amount_rate / by).to(dose_unit, where)


def amount_to_volume(amount: Quantity, conc: Concentration, patient: Patient, where: str = "amount") -> Volume:
    """The volume holding ``amount`` (mg, or per-kg/per-m2 like mg/kg), to the nearest nL (ties to even).

    Raises :class:`ProgramError` if the volume rounds to zero.
    """
    exact_ml = (_absolute(amount, conc, patient, where, per_time=False) / conc.per_ml()).in_(ML)
    volume = Volume(round(exact_ml * NL_PER_ML))
    if volume.nl <= 0:
        raise ProgramError(where, f"{amount} is less than 1 nL of {conc}")
    return volume


def volume_to_amount(volume: Volume, conc: Concentration) -> Quantity:
    """The amount of drug in ``volume`` of ``conc``, exactly, in the concentration's amount unit."""
    return (volume.quantity() * conc.per_ml()).to(conc.amount.unit)
