"""The drug library as frozen value objects (issue 5, item 1).

Theory of operation. A :class:`Library` holds care areas (each with its pump settings and patient
weight/BSA limits) and drugs. A drug has one :class:`Entry` per care area (and per *therapy*, where a
care area uses the drug in two ways, e.g. heparin "vte" and "cardiac"). An entry fixes the infusion
mode, the dosing unit, the standard concentrations (``400 mg / 250 mL``, or an amount alone whose
volume is entered at the pump), whether a custom concentration is allowed, and the limits: for each
:class:`LimitField` a :class:`Bounds` of soft/hard, lower/upper :class:`~openinfusion.units.Quantity`.

Invariants. :class:`Bounds` and :class:`Concentration` check themselves when built (lower below
upper, soft inside hard, one unit per field, positive amounts). Everything that involves more than one
object (units consistent with the dosing unit and mode, known care areas, duplicates, reachable limits)
is checked by :func:`openinfusion.druglib.rules.check_library`, which :class:`Library` runs when it is
built: an invalid library cannot exist. The same rule functions serve the validator, which collects
*every* problem as a :class:`Finding` instead of stopping at the first.

Every value is exact (``Fraction``) and every limit carries its UCUM unit. :meth:`Library.to_data` gives
the canonical plain-data form (exact decimal strings, normalised unit codes) that the YAML and CSV
writers, the package hash and the diff all use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Final

from openinfusion.errors import LibraryError
from openinfusion.units import DIMENSIONS, Quantity, Unit, unit

SCHEMA: Final = "openinfusion.druglib/1"
BOUND_NAMES: Final = ("soft_min", "soft_max", "hard_min", "hard_max")

Data = dict[str, Any]


class Severity(Enum):
    """How bad a finding is: an error blocks release, a warning is shown to the reviewer."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a library: where (field path), the offending value, the rule and why."""

    severity: Severity
    where: str
    rule: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        value = f" = {self.value}" if self.value is not None else ""
        return f"{self.severity.value}: {self.where}{value}: [{self.rule}] {self.message}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "severity": self.severity.value,
            "where": self.where,
            "value": self.value,
            "rule": self.rule,
            "message": self.message,
        }


def error(where: str, rule: str, message: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, where, rule, message, None if value is None else str(value))


def warning(where: str, rule: str, message: str, value: object = None) -> Finding:
    return Finding(Severity.WARNING, where, rule, message, None if value is None else str(value))


def raise_first(findings: list[Finding]) -> None:
    """Raise the first error of ``findings`` as a :class:`LibraryError` (counting the others)."""
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        where = first.where if first.value is None else f"{first.where} = {first.value}"
        raise LibraryError(where, f"[{first.rule}] {first.message}{more}")


# --- versions -----------------------------------------------------------------------------------

_VERSION: Final = re.compile(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}")


def version_key(version: str) -> tuple[int, ...]:
    """``"2026.3.1"`` -> ``(2026, 3, 1)``, for comparing versions; LibraryError unless dotted numbers."""
    if not _VERSION.fullmatch(version):
        raise LibraryError(
            "library.version",
            f"{version!r} is not a release version: dotted numbers (12, 2026.3.1), to refuse rollbacks",
        )
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


# --- exact text ---------------------------------------------------------------------------------


def decimal_text(value: Fraction) -> str:
    """``value`` as an exact decimal string (``3/10`` -> ``"0.3"``); refuses non-terminating ones."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        raise LibraryError("value", f"{value} is not a finite decimal")
    places = max(twos, fives)
    scaled = value * 10**places
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    text = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}"
    return f"-{text}" if value < 0 else text


def quantity_text(q: Quantity) -> str:
    """The canonical text of a quantity: exact decimal, one space, normalised UCUM code."""
    return f"{decimal_text(q.value)} {q.unit.code}"


# --- enums --------------------------------------------------------------------------------------


class Mode(Enum):
    """How the entry's drug is given; fixes the meaning of its dosing unit."""

    CONTINUOUS = "continuous"  # dose is a rate: amount/time (per kg or m2), or mL/h for rate-only entries
    INTERMITTENT = "intermittent"  # dose is an amount per dose, given over a duration, every interval
    PCA = "pca"  # dosing unit is the demand dose's; basal, lockout and 1-h/4-h limits apply


class DrugKind(Enum):
    MEDICATION = "medication"
    FLUID = "fluid"  # an IV fluid limited by rate (mL/h) only
    BASIC = "basic"  # the "basic infusion" (rate only, no drug); care areas may disable it


class Occlusion(Enum):
    """Default downstream occlusion sensitivity of a care area."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Basis(Enum):
    """What a dose is per: nothing, the patient's weight (kg) or body surface area (m2)."""

    NONE = "none"
    WEIGHT = "kg"
    BSA = "m2"


class LimitField(Enum):
    """A quantity the DERS check limits. WEIGHT and BSA are care-area limits, never entry limits."""

    DOSE = "dose"
    RATE = "rate"
    VTBI = "vtbi"
    BOLUS_DOSE = "bolus_dose"
    BOLUS_RATE = "bolus_rate"
    BOLUS_DURATION = "bolus_duration"
    LOADING_DOSE = "loading_dose"
    LOADING_RATE = "loading_rate"
    LOADING_DURATION = "loading_duration"
    CONCENTRATION = "concentration"
    DURATION = "duration"
    INTERVAL = "interval"
    PCA_DEMAND_DOSE = "pca_demand_dose"
    PCA_LOCKOUT = "pca_lockout"
    PCA_BASAL_RATE = "pca_basal_rate"
    PCA_LIMIT_1H = "pca_limit_1h"
    PCA_LIMIT_4H = "pca_limit_4h"
    WEIGHT = "weight"
    BSA = "bsa"


ENTRY_FIELDS: Final[tuple[LimitField, ...]] = tuple(
    f for f in LimitField if f not in (LimitField.WEIGHT, LimitField.BSA)
)


# --- unit shapes --------------------------------------------------------------------------------

AMOUNT_DIMS: Final = ("drug_mass", "activity", "equivalents", "substance")
ML: Final = unit("mL")
ML_PER_H: Final = unit("mL/h")
SECOND: Final = unit("s")
KG: Final = unit("kg")
M2: Final = unit("m2")


@dataclass(frozen=True, slots=True)
class Shape:
    """The form of a dose-like unit: what amount (``volume`` or a drug-amount dimension), per what."""

    amount: str
    basis: Basis
    per_time: bool
    per_volume: bool


def shape_of(u: Unit) -> Shape | None:
    """Decompose ``u`` as amount [/kg | /m2] [/volume] [/time]; None if it has no such form."""
    exps = dict(zip(DIMENSIONS, u.dim, strict=True))
    if exps["time"] not in (0, -1) or exps["body_mass"] not in (0, -1) or exps["body_surface"] not in (0, -1):
        return None
    if exps["body_mass"] and exps["body_surface"]:
        return None
    basis = Basis.WEIGHT if exps["body_mass"] else Basis.BSA if exps["body_surface"] else Basis.NONE
    amounts = [name for name in AMOUNT_DIMS if exps[name]]
    if len(amounts) > 1:
        return None
    if amounts:
        if exps[amounts[0]] != 1 or exps["volume"] not in (0, -1):
            return None
        return Shape(amounts[0], basis, exps["time"] == -1, exps["volume"] == -1)
    if exps["volume"] != 1:
        return None
    return Shape("volume", basis, exps["time"] == -1, False)


# --- limits -------------------------------------------------------------------------------------


def bounds_problems(
    where: str,
    soft_min: Quantity | None,
    soft_max: Quantity | None,
    hard_min: Quantity | None,
    hard_max: Quantity | None,
) -> list[Finding]:
    """Problems of one field's bounds on their own: present, one unit, non-negative, ordered, soft in hard."""
    named = [(n, q) for n, q in zip(BOUND_NAMES, (soft_min, soft_max, hard_min, hard_max), strict=True) if q]
    if not named:
        return [error(where, "empty_limit", "a limit needs at least one of soft_min, soft_max, hard_min, hard_max")]
    codes = sorted({q.unit.code for _, q in named})
    if len(codes) > 1:
        return [error(where, "mixed_units", f"all bounds of one field must use one unit, found {', '.join(codes)}")]
    found: list[Finding] = []
    for name, q in named:
        if q.value < 0:
            found.append(error(f"{where}.{name}", "negative_limit", "a limit cannot be negative", quantity_text(q)))
        elif q.value == 0 and name.endswith("max"):
            found.append(error(f"{where}.{name}", "zero_maximum", "a maximum of zero blocks every value", "0"))
    if found:
        return found
    for lo_name, lo, hi_name, hi in (
        ("soft_min", soft_min, "soft_max", soft_max),
        ("hard_min", hard_min, "hard_max", hard_max),
    ):
        if lo is not None and hi is not None and lo > hi:
            found.append(
                error(
                    f"{where}.{lo_name}",
                    "lower_above_upper",
                    f"{lo_name} {quantity_text(lo)} is above {hi_name} {quantity_text(hi)}",
                    quantity_text(lo),
                )
            )
    for name, soft in (("soft_min", soft_min), ("soft_max", soft_max)):
        if soft is None:
            continue
        if hard_min is not None and soft < hard_min:
            found.append(
                error(
                    f"{where}.{name}",
                    "soft_outside_hard",
                    f"{name} {quantity_text(soft)} is below hard_min {quantity_text(hard_min)}",
                    quantity_text(soft),
                )
            )
        if hard_max is not None and soft > hard_max:
            found.append(
                error(
                    f"{where}.{name}",
                    "soft_outside_hard",
                    f"{name} {quantity_text(soft)} is above hard_max {quantity_text(hard_max)}",
                    quantity_text(soft),
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class Bounds:
    """Soft and hard, lower and upper limits of one quantity, all in one unit.

    Invariants: at least one bound; one unit code; no negative bound; no zero maximum;
    ``min <= max`` for soft and hard; soft bounds inside the hard ones. A value beyond a soft bound
    needs an override with a reason; beyond a hard bound it is blocked.
    """

    soft_min: Quantity | None = None
    soft_max: Quantity | None = None
    hard_min: Quantity | None = None
    hard_max: Quantity | None = None

    def __post_init__(self) -> None:
        raise_first(bounds_problems("limit", self.soft_min, self.soft_max, self.hard_min, self.hard_max))

    def items(self) -> tuple[tuple[str, Quantity], ...]:
        """The bounds that are set, as (name, quantity), in the order soft_min, soft_max, hard_min, hard_max."""
        values = (self.soft_min, self.soft_max, self.hard_min, self.hard_max)
        return tuple((n, q) for n, q in zip(BOUND_NAMES, values, strict=True) if q is not None)

    @property
    def unit(self) -> Unit:
        return self.items()[0][1].unit

    @property
    def lowest(self) -> Quantity | None:
        """The smallest value a program may normally use: the soft minimum, else the hard minimum."""
        return self.soft_min if self.soft_min is not None else self.hard_min

    def to_data(self) -> Data:
        return {name: quantity_text(q) for name, q in self.items()}


def concentration_problems(where: str, amount: Quantity, volume: Quantity | None) -> list[Finding]:
    """Problems of one concentration on its own: a positive drug amount, a positive volume."""
    found: list[Finding] = []
    shape = shape_of(amount.unit)
    if shape is None or shape.amount == "volume" or shape.per_time or shape.per_volume or shape.basis is not Basis.NONE:
        found.append(
            error(
                f"{where}.amount",
                "concentration_unit",
                f"{amount.unit.code!r} is not a drug amount (mg, [iU], meq, mmol, ...)",
                quantity_text(amount),
            )
        )
    elif amount.value <= 0:
        found.append(error(f"{where}.amount", "non_positive", "the amount must be positive", quantity_text(amount)))
    if volume is not None:
        if volume.unit.dim != ML.dim:
            found.append(
                error(
                    f"{where}.volume",
                    "concentration_unit",
                    f"{volume.unit.code!r} is not a volume",
                    quantity_text(volume),
                )
            )
        elif volume.value <= 0:
            found.append(error(f"{where}.volume", "non_positive", "the volume must be positive", quantity_text(volume)))
    return found


@dataclass(frozen=True, slots=True)
class Concentration:
    """A standard concentration: ``amount`` in ``volume``, or ``amount`` alone (volume entered at the pump)."""

    amount: Quantity
    volume: Quantity | None = None

    def __post_init__(self) -> None:
        raise_first(concentration_problems("concentration", self.amount, self.volume))

    @property
    def key(self) -> str:
        """How programs name this concentration: ``"400 mg/250 mL"``, or ``"2 g"`` for an amount alone."""
        amount = quantity_text(self.amount)
        return amount if self.volume is None else f"{amount}/{quantity_text(self.volume)}"

    @property
    def per_volume(self) -> Quantity | None:
        """Amount per volume (``mg/mL``), or None when the volume is entered at the pump."""
        return None if self.volume is None else self.amount / self.volume

    def to_data(self) -> Data:
        data: Data = {"amount": quantity_text(self.amount)}
        if self.volume is not None:
            data["volume"] = quantity_text(self.volume)
        return data


# --- entries, drugs, care areas -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A drug's use in one care area (and therapy): mode, dosing unit, concentrations and limits."""

    area: str
    mode: Mode
    dose_unit: Unit
    therapy: str | None = None
    concentrations: tuple[Concentration, ...] = ()
    custom_concentration: bool = False
    limits: tuple[tuple[LimitField, Bounds], ...] = ()
    advisory: str | None = None
    source: str | None = None

    @property
    def label(self) -> str:
        """``"ICU"``, or ``"ICU/vte"`` for a named therapy: the entry's name in paths and keys."""
        return self.area if self.therapy is None else f"{self.area}/{self.therapy}"

    def limit(self, field: LimitField) -> Bounds | None:
        for f, bounds in self.limits:
            if f is field:
                return bounds
        return None

    @property
    def shape(self) -> Shape | None:
        return shape_of(self.dose_unit)

    @property
    def rate_only(self) -> bool:
        """True when the dosing unit is a plain volume rate (mL/h): limited by ``rate``, not ``dose``."""
        shape = self.shape
        return shape is not None and shape.amount == "volume" and shape.per_time and shape.basis is Basis.NONE

    def to_data(self) -> Data:
        data: Data = {"area": self.area}
        if self.therapy is not None:
            data["therapy"] = self.therapy
        data["mode"] = self.mode.value
        data["dose_unit"] = self.dose_unit.code
        if self.concentrations:
            data["concentrations"] = [c.to_data() for c in self.concentrations]
        data["custom_concentration"] = self.custom_concentration
        if self.limits:
            data["limits"] = {f.value: b.to_data() for f, b in self.limits}
        _put(data, "advisory", self.advisory)
        _put(data, "source", self.source)
        return data


@dataclass(frozen=True, slots=True)
class Drug:
    """A drug (or IV fluid, or the basic infusion): names, class, identifiers, advisory and entries.

    ``display_name`` is the generic name with tall-man lettering (``DOPamine``); it must spell the
    generic name, case aside.
    """

    id: str
    generic_name: str
    display_name: str
    therapeutic_class: str
    high_alert: bool
    entries: tuple[Entry, ...]
    kind: DrugKind = DrugKind.MEDICATION
    synonyms: tuple[str, ...] = ()
    rxnorm: str | None = None
    ndc: tuple[str, ...] = ()
    advisory: str | None = None
    source: str | None = None

    def to_data(self) -> Data:
        data: Data = {
            "id": self.id,
            "generic_name": self.generic_name,
            "display_name": self.display_name,
            "kind": self.kind.value,
            "therapeutic_class": self.therapeutic_class,
            "high_alert": self.high_alert,
        }
        if self.synonyms:
            data["synonyms"] = list(self.synonyms)
        _put(data, "rxnorm", self.rxnorm)
        if self.ndc:
            data["ndc"] = list(self.ndc)
        _put(data, "advisory", self.advisory)
        _put(data, "source", self.source)
        data["care_areas"] = [e.to_data() for e in self.entries]
        return data


@dataclass(frozen=True, slots=True)
class CareArea:
    """A care area's pump settings and patient limits.

    ``max_rate`` (mL/h) caps every rate; ``max_vtbi`` (mL) every VTBI; ``air_in_line`` is the single
    bubble alarm threshold (mL); ``callback`` is the time (min) before a paused or unfinished program
    calls the clinician back; ``weight`` (kg) and ``bsa`` (m2) bound the patient values a program may use.
    """

    id: str
    name: str
    max_rate: Quantity
    occlusion: Occlusion
    air_in_line: Quantity
    callback: Quantity
    basic_infusion: bool
    max_vtbi: Quantity | None = None
    weight: Bounds | None = None
    bsa: Bounds | None = None
    source: str | None = None

    def to_data(self) -> Data:
        data: Data = {"id": self.id, "name": self.name, "max_rate": quantity_text(self.max_rate)}
        if self.max_vtbi is not None:
            data["max_vtbi"] = quantity_text(self.max_vtbi)
        data["occlusion"] = self.occlusion.value
        data["air_in_line"] = quantity_text(self.air_in_line)
        data["callback"] = quantity_text(self.callback)
        data["basic_infusion"] = self.basic_infusion
        if self.weight is not None:
            data["weight"] = self.weight.to_data()
        if self.bsa is not None:
            data["bsa"] = self.bsa.to_data()
        _put(data, "source", self.source)
        return data


@dataclass(frozen=True, slots=True)
class LibraryInfo:
    """Who owns the library (the hospital), its name and version, and a notice shown with it."""

    owner: str
    name: str
    version: str
    notice: str | None = None

    def to_data(self) -> Data:
        data: Data = {"owner": self.owner, "name": self.name, "version": self.version}
        _put(data, "notice", self.notice)
        return data


@dataclass(frozen=True, slots=True)
class Library:
    """A validated drug library. Building one runs every validation rule; any error raises LibraryError."""

    info: LibraryInfo
    override_reasons: tuple[str, ...]
    care_areas: tuple[CareArea, ...]
    drugs: tuple[Drug, ...]
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        from openinfusion.druglib.rules import check_library  # rules imports this module

        raise_first(check_library(self.info, self.override_reasons, self.care_areas, self.drugs, self.schema))

    def entries(self) -> Iterator[tuple[Drug, Entry]]:
        for d in self.drugs:
            for e in d.entries:
                yield d, e

    def to_data(self) -> Data:
        """The canonical plain-data form (the YAML document's shape)."""
        return {
            "schema": self.schema,
            "library": self.info.to_data(),
            "override_reasons": list(self.override_reasons),
            "care_areas": [a.to_data() for a in self.care_areas],
            "drugs": [d.to_data() for d in self.drugs],
        }


def _put(data: Data, key: str, value: str | None) -> None:
    if value is not None:
        data[key] = value
