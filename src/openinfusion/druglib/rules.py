"""The library's rules over built objects: every rule that spans fields or objects (OI-DERS-1).

:func:`check_library` applies them to the parts of a library (which may be incomplete when the document had
errors) and returns *every* finding: units consistent with the dosing unit and mode, per-kg dosing only with
weight limits, names that cannot be confused (:mod:`openinfusion.druglib.names`), unknown care areas, custom
concentration bounds containing the standard ones, reachable limits, advisory length and the high-alert
warning. :class:`~openinfusion.druglib.model.Library` runs it when built, so an invalid library cannot exist.
The rule ids are listed in ``docs/drug-library.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from typing import Final

from openinfusion.druglib.model import (
    KG,
    M2,
    ML,
    ML_PER_H,
    SCHEMA,
    SECOND,
    Basis,
    Bounds,
    CareArea,
    Concentration,
    Drug,
    DrugKind,
    Entry,
    Finding,
    LibraryInfo,
    LimitField,
    Mode,
    Shape,
    error,
    quantity_text,
    shape_of,
    version_key,
    warning,
)
from openinfusion.druglib.names import Namespace, code_point, invisible, name_problems, normal, visible
from openinfusion.errors import LibraryError, UnitError
from openinfusion.units import Unit

ADVISORY_MAX_CHARS: Final = 200
"""Longest advisory text: what the pump shows on selection must fit one screen (our choice, see docs)."""

_AREA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DRUG_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_RXNORM = re.compile(r"[0-9]{1,10}")
_NDC = re.compile(r"\d{4}-\d{4}-\d{2}|\d{5}-\d{3}-\d{2}|\d{5}-\d{4}-\d{1,2}|\d{11}")
_LIST_SEPARATOR = ";"  # joins synonyms and NDCs in one CSV cell


# --- the rules over built objects ----------------------------------------------------------------


class _Kind(Enum):
    """What unit a limit field takes, relative to the entry's dosing unit."""

    DOSE = "the entry's dosing unit"
    VOLUME_RATE = "a volume rate (mL/h)"
    VOLUME = "a volume (mL)"
    TIME = "a time (min, h)"
    AMOUNT = "a drug amount, per kg/m2 only as the dosing unit is (e.g. mg, ug/kg)"
    AMOUNT_RATE = "a drug amount per time, per kg/m2 only as the dosing unit is (e.g. mg/h)"
    ANY_RATE = "a drug amount per time or a volume rate (e.g. ug/kg/min, mL/h)"
    CONCENTRATION = "a drug amount per volume (e.g. mg/mL)"


_F = LimitField
FIELD_KIND: Final[dict[LimitField, _Kind]] = {
    _F.DOSE: _Kind.DOSE,
    _F.RATE: _Kind.VOLUME_RATE,
    _F.VTBI: _Kind.VOLUME,
    _F.BOLUS_DOSE: _Kind.AMOUNT,
    _F.BOLUS_RATE: _Kind.ANY_RATE,
    _F.BOLUS_DURATION: _Kind.TIME,
    _F.LOADING_DOSE: _Kind.AMOUNT,
    _F.LOADING_RATE: _Kind.ANY_RATE,
    _F.LOADING_DURATION: _Kind.TIME,
    _F.CONCENTRATION: _Kind.CONCENTRATION,
    _F.DURATION: _Kind.TIME,
    _F.INTERVAL: _Kind.TIME,
    _F.PCA_DEMAND_DOSE: _Kind.DOSE,
    _F.PCA_LOCKOUT: _Kind.TIME,
    _F.PCA_BASAL_RATE: _Kind.AMOUNT_RATE,
    _F.PCA_LIMIT_1H: _Kind.AMOUNT,
    _F.PCA_LIMIT_4H: _Kind.AMOUNT,
}
_BOLUS_LOADING = frozenset(
    {_F.BOLUS_DOSE, _F.BOLUS_RATE, _F.BOLUS_DURATION, _F.LOADING_DOSE, _F.LOADING_RATE, _F.LOADING_DURATION}
)
_PCA = frozenset({_F.PCA_DEMAND_DOSE, _F.PCA_LOCKOUT, _F.PCA_BASAL_RATE, _F.PCA_LIMIT_1H, _F.PCA_LIMIT_4H})
_COMMON = frozenset({_F.RATE, _F.VTBI, _F.CONCENTRATION})
ALLOWED_FIELDS: Final[dict[Mode, frozenset[LimitField]]] = {
    Mode.CONTINUOUS: _COMMON | _BOLUS_LOADING | {_F.DOSE},
    Mode.INTERMITTENT: _COMMON | {_F.DOSE, _F.DURATION, _F.INTERVAL},
    Mode.PCA: _COMMON | _BOLUS_LOADING | _PCA,
}


def check_library(
    info: LibraryInfo,
    override_reasons: Sequence[str],
    care_areas: Sequence[CareArea],
    drugs: Sequence[Drug],
    schema: str = SCHEMA,
) -> list[Finding]:
    """Every rule that spans objects, over built parts of a library; returns all findings."""
    found: list[Finding] = []
    if schema != SCHEMA:
        found.append(error("schema", "unknown_schema", f"this software reads {SCHEMA!r}", schema))
    for name in ("owner", "name", "version"):
        found += _text(f"library.{name}", getattr(info, name))
    try:
        version_key(info.version)
    except LibraryError as e:
        found.append(error("library.version", "bad_version", e.why, info.version))
    found += _optional_text("library.notice", info.notice)
    found += _reasons(override_reasons)
    if not care_areas:
        found.append(error("care_areas", "empty", "a library needs at least one care area"))
    if not drugs:
        found.append(error("drugs", "empty", "a library needs at least one drug"))
    areas: dict[str, CareArea] = {}
    area_names = (Namespace("care area id"), Namespace("care area name"))
    for a in care_areas:
        found += _care_area(a, areas, area_names)
        areas.setdefault(a.id, a)
    found += _unused_areas(care_areas, drugs)
    found += _drug_names(drugs)
    basics = [d for d in drugs if d.kind is DrugKind.BASIC]
    if len(basics) > 1:
        found.append(error(f"drugs[{basics[1].id}]", "duplicate", "a library has at most one basic infusion entry"))
    seen: set[str] = set()
    for d in drugs:
        where = f"drugs[{d.id}]"
        if d.id in seen:
            found.append(error(where, "duplicate", f"drug id {d.id!r} is used twice", d.id))
        seen.add(d.id)
        found += _drug(d, where, areas)
    return found


def _text(where: str, value: str) -> list[Finding]:
    """Free text: not empty, and nothing invisible in it but line breaks and tabs (OI-LIB-NAME-1)."""
    if not value.strip():
        return [error(where, "empty_text", "must not be empty")]
    hidden = [c for c in dict.fromkeys(value) if invisible(c) and c not in "\n\t"]
    if hidden:
        listed = ", ".join(code_point(c) for c in hidden)
        return [error(where, "invisible_character", f"contains invisible characters: {listed}", visible(value))]
    return []


def _name(where: str, value: str) -> list[Finding]:
    """A name: not empty, and usable as a name on its own (:func:`~openinfusion.druglib.names.name_problems`)."""
    return [error(where, "empty_text", "must not be empty")] if not value.strip() else name_problems(where, value)


def _optional_text(where: str, value: str | None) -> list[Finding]:
    return [] if value is None else _text(where, value)


def _advisory(where: str, text: str | None) -> list[Finding]:
    if text is None:
        return []
    if len(text) > ADVISORY_MAX_CHARS:
        return [
            error(
                where,
                "advisory_too_long",
                f"{len(text)} characters; an advisory must fit the pump screen ({ADVISORY_MAX_CHARS} at most)",
                f"{text[:40]}...",
            )
        ]
    return _text(where, text)


def _reasons(reasons: Sequence[str]) -> list[Finding]:
    if not reasons:
        return [error("override_reasons", "empty", "a soft-limit override needs at least one reason to choose from")]
    found: list[Finding] = []
    names = Namespace("override reason")
    for i, r in enumerate(reasons):
        found += _name(f"override_reasons[{i}]", r) + names.add(f"override_reasons[{i}]", r, f"override_reasons[{i}]")
    return found


def _care_area(a: CareArea, seen: dict[str, CareArea], names: tuple[Namespace, Namespace]) -> list[Finding]:
    where = f"care_areas[{a.id}]"
    found: list[Finding] = []
    if a.id in seen:
        found.append(error(where, "duplicate", f"care area id {a.id!r} is used twice", a.id))
    elif not _AREA_ID.fullmatch(a.id):
        found.append(error(f"{where}.id", "bad_id", "letters, digits, '-', '_' and '.' only", a.id))
    else:
        found += names[0].add(f"{where}.id", a.id, a.id)
    found += _name(f"{where}.name", a.name) + names[1].add(f"{where}.name", a.name, a.id)
    found += _optional_text(f"{where}.source", a.source)
    for name, q, expected in (
        ("max_rate", a.max_rate, ML_PER_H),
        ("max_vtbi", a.max_vtbi, ML),
        ("air_in_line", a.air_in_line, ML),
        ("callback", a.callback, SECOND),
    ):
        if q is None:
            continue
        if q.unit.dim != expected.dim:
            found.append(
                error(f"{where}.{name}", "unit_dimension", f"expected a unit like {expected.code}", quantity_text(q))
            )
        elif q.value <= 0:
            found.append(error(f"{where}.{name}", "non_positive", "must be positive", quantity_text(q)))
    for name, bounds, expected in (("weight", a.weight, KG), ("bsa", a.bsa, M2)):
        if bounds is not None and bounds.unit.dim != expected.dim:
            found.append(error(f"{where}.{name}", "unit_dimension", f"expected {expected.code}", bounds.unit.code))
        elif bounds is not None:
            found += _patient_minimum(f"{where}.{name}", name, bounds)
    return found


def _patient_minimum(where: str, name: str, bounds: Bounds) -> list[Finding]:
    """A care area's weight or BSA needs a real smallest patient as its hard minimum, not 0 (OI-LIB-VAL-1)."""
    if bounds.hard_min is None or bounds.hard_min.value != 0:
        return []
    why = f"a hard minimum of 0 lets any {name} through (a slipped decimal, an empty field); "
    why += "set the smallest real patient"
    return [error(f"{where}.hard_min", "zero_patient_minimum", why, quantity_text(bounds.hard_min))]


def _unused_areas(care_areas: Sequence[CareArea], drugs: Sequence[Drug]) -> list[Finding]:
    """A care area no drug has an entry in: pumps set to it could program nothing from the library (OI-LIB-VAL-1)."""
    used = {e.area for d in drugs for e in d.entries}
    return [
        error(
            f"care_areas[{a.id}]",
            "empty_care_area",
            "no drug has an entry in this care area: pumps set to it could not program from the library",
            a.id,
        )
        for a in care_areas
        if a.id not in used
    ]


def _drug_names(drugs: Sequence[Drug]) -> list[Finding]:
    """Ids, generic names, display names and synonyms of different drugs must be neither the same name
    (case, spacing and compatibility forms aside) nor look-alikes (OI-LIB-NAME-2)."""
    found: list[Finding] = []
    names = Namespace("drug name")
    for d in drugs:
        where = f"drugs[{d.id}]"
        texts = [("id", d.id), ("generic_name", d.generic_name), ("display_name", d.display_name)]
        texts += [(f"synonyms[{i}]", s) for i, s in enumerate(d.synonyms)]
        for field, text in texts:
            if text.strip():
                found += names.add(f"{where}.{field}", text, d.id)
    return found


def _drug(d: Drug, where: str, areas: dict[str, CareArea]) -> list[Finding]:
    found: list[Finding] = []
    if not _DRUG_ID.fullmatch(d.id):
        found.append(error(f"{where}.id", "bad_id", "lower-case letters, digits, '-', '_' and '.' only", d.id))
    for name in ("generic_name", "display_name", "therapeutic_class"):
        found += _name(f"{where}.{name}", getattr(d, name))
    if normal(d.display_name) != normal(d.generic_name):
        found.append(
            error(
                f"{where}.display_name",
                "display_name_mismatch",
                f"must spell the generic name {visible(d.generic_name)} (tall-man letters change case only)",
                visible(d.display_name),
            )
        )
    for i, s in enumerate(d.synonyms):
        found += _list_item(f"{where}.synonyms[{i}]", s) or _name(f"{where}.synonyms[{i}]", s)
    for i, n in enumerate(d.ndc):
        found += _list_item(f"{where}.ndc[{i}]", n)
        if not _NDC.fullmatch(n):
            found.append(error(f"{where}.ndc[{i}]", "bad_identifier", "an NDC is 4-4-2, 5-3-2 or 5-4-2 digits", n))
    if d.rxnorm is not None and not _RXNORM.fullmatch(d.rxnorm):
        found.append(error(f"{where}.rxnorm", "bad_identifier", "an RxNorm CUI is 1 to 10 digits", d.rxnorm))
    found += _advisory(f"{where}.advisory", d.advisory)
    found += _optional_text(f"{where}.source", d.source)
    if not d.entries:
        found.append(error(f"{where}.care_areas", "no_entries", "a drug needs an entry in at least one care area"))
    seen: set[tuple[str, str | None]] = set()
    therapies = Namespace("therapy")
    for e in d.entries:
        at = f"{where}.care_areas[{e.label}]"
        if (e.area, e.therapy) in seen:
            found.append(error(at, "duplicate", f"two entries for care area {e.label!r}", e.label))
        seen.add((e.area, e.therapy))
        if e.therapy is not None and _AREA_ID.fullmatch(e.therapy):
            found += therapies.add(f"{at}.therapy", e.therapy, e.therapy)
        found += _entry(d, e, at, areas.get(e.area))
    return found


def _list_item(where: str, text: str) -> list[Finding]:
    if _LIST_SEPARATOR in text:
        return [
            error(where, "bad_text", f"must not contain {_LIST_SEPARATOR!r} (it separates list items in CSV)", text)
        ]
    return _text(where, text)


def _entry(d: Drug, e: Entry, where: str, area: CareArea | None) -> list[Finding]:
    found: list[Finding] = []
    if area is None:
        found.append(error(f"{where}.area", "unknown_care_area", "no care area with this id", e.area))
    if e.therapy is not None and not _AREA_ID.fullmatch(e.therapy):
        found.append(error(f"{where}.therapy", "bad_id", "letters, digits, '-', '_' and '.' only", e.therapy))
    found += _advisory(f"{where}.advisory", e.advisory)
    found += _optional_text(f"{where}.source", e.source)
    shape = e.shape
    mode_problem = _mode_problem(e.mode, shape, e.dose_unit)
    if mode_problem is not None or shape is None:
        found.append(error(f"{where}.dose_unit", "dose_unit_mode", str(mode_problem), e.dose_unit.code))
        return found
    found += _kind_rules(d, e, where, area)
    found += _concentrations(e, shape, where)
    unit_errors = False
    for field, bounds in e.limits:
        at = f"{where}.limits.{field.value}"
        if field not in ALLOWED_FIELDS[e.mode] or (field is LimitField.DOSE and e.rate_only):
            why = "use 'rate' for an entry dosed in mL/h" if field is LimitField.DOSE else f"not a {e.mode.value} limit"
            found.append(error(at, "field_not_allowed", why, field.value))
            unit_errors = True
            continue
        problem = _unit_problem(field, bounds.unit, e, shape)
        if problem is not None:
            found.append(error(at, problem[0], problem[1], bounds.unit.code))
            unit_errors = True
    found += _custom(e, shape, where)
    if area is not None:
        found += _patient_limits(e, shape, where, area)
        if not unit_errors:
            found += _area_caps(e, where, area)
            found += _reachable(e, shape, where, area)
    primary = _primary_field(e)
    guard = e.limit(primary)
    if d.high_alert and (guard is None or guard.hard_max is None):
        found.append(
            warning(
                f"{where}.limits.{primary.value}",
                "high_alert_no_hard_max",
                f"high-alert drug without a hard upper {primary.value} limit: only soft limits guard it",
            )
        )
    return found


def _mode_problem(mode: Mode, shape: Shape | None, u: Unit) -> str | None:
    if shape is None or shape.per_volume:
        return f"{u.code!r} is not a dosing unit (amount [/kg or /m2] [/time], e.g. ug/kg/min, mg, mL/h)"
    if mode is Mode.CONTINUOUS and not shape.per_time:
        return f"a continuous dose is a rate: {u.code!r} has no time (e.g. {u.code}/h)"
    if mode is not Mode.CONTINUOUS and shape.per_time:
        return f"a {mode.value} dose is an amount per dose, but {u.code!r} is a rate"
    if mode is Mode.INTERMITTENT and shape.amount == "volume":
        return "an intermittent dose is a drug amount; limit a volume-based entry by 'rate' and 'vtbi'"
    return None


def _kind_rules(d: Drug, e: Entry, where: str, area: CareArea | None) -> list[Finding]:
    found: list[Finding] = []
    if d.kind is not DrugKind.MEDICATION and (e.mode is not Mode.CONTINUOUS or not e.rate_only):
        found.append(
            error(f"{where}.dose_unit", "fluid_shape", f"a {d.kind.value} entry is continuous and dosed in mL/h")
        )
    if d.kind is DrugKind.BASIC:
        if e.concentrations or e.custom_concentration:
            found.append(error(f"{where}.concentrations", "fluid_shape", "the basic infusion has no concentration"))
        if area is not None and not area.basic_infusion:
            found.append(
                error(f"{where}.area", "basic_infusion_disabled", "this care area disables basic infusions", e.area)
            )
    return found


def _concentrations(e: Entry, shape: Shape, where: str) -> list[Finding]:
    found: list[Finding] = []
    for i, c in enumerate(e.concentrations):
        at = f"{where}.concentrations[{i}]"
        amount_shape = shape_of(c.amount.unit)
        if shape.amount != "volume" and amount_shape is not None and amount_shape.amount != shape.amount:
            found.append(
                error(
                    f"{at}.amount",
                    "concentration_unit",
                    f"a {amount_shape.amount.replace('_', ' ')} cannot give a dose in {e.dose_unit.code!r}",
                    c.key,
                )
            )
        for j, other in enumerate(e.concentrations[:i]):
            if _same_concentration(c, other):
                found.append(error(at, "duplicate", f"same as concentrations[{j}]", c.key))
    if shape.amount != "volume" and not e.concentrations and not e.custom_concentration:
        found.append(
            error(f"{where}.concentrations", "no_concentration", "needs a standard concentration or a custom one")
        )
    return found


def _same_concentration(a: Concentration, b: Concentration) -> bool:
    if not a.amount.equals(b.amount):
        return False
    if a.volume is None or b.volume is None:
        return a.volume is None and b.volume is None
    return a.volume.equals(b.volume)


def _unit_problem(field: LimitField, u: Unit, e: Entry, entry_shape: Shape) -> tuple[str, str] | None:
    """(rule, message) if ``u`` does not fit ``field`` of entry ``e``; None if it does."""
    kind = FIELD_KIND[field]
    if kind is _Kind.DOSE:
        if u.dim != e.dose_unit.dim:
            return "unit_dimension", f"expected {kind.value} {e.dose_unit.code!r}"
        if u.code != e.dose_unit.code:
            return (
                "unit_mismatch",
                f"write dose limits in the dosing unit {e.dose_unit.code!r}, not {u.code!r} "
                "(a mix of units, such as mg and ug, is how 1000-fold errors happen)",
            )
        return None
    fixed = {_Kind.VOLUME_RATE: ML_PER_H, _Kind.VOLUME: ML, _Kind.TIME: SECOND}.get(kind)
    if fixed is not None:
        return None if u.dim == fixed.dim else ("unit_dimension", f"expected {kind.value}")
    shape = shape_of(u)
    bases = (Basis.NONE, entry_shape.basis)
    if shape is None:
        fits = False
    elif kind is _Kind.CONCENTRATION:
        fits = shape.amount == entry_shape.amount and shape.per_volume and not shape.per_time
        fits = fits and shape.basis is Basis.NONE
    elif kind is _Kind.ANY_RATE and shape.amount == "volume":
        fits = shape.per_time and shape.basis is Basis.NONE
    else:
        per_time = kind is not _Kind.AMOUNT
        fits = shape.amount == entry_shape.amount and shape.per_time == per_time
        fits = fits and not shape.per_volume and shape.basis in bases
    return None if fits else ("unit_dimension", f"expected {kind.value}, to fit the dosing unit {e.dose_unit.code!r}")


def _custom(e: Entry, shape: Shape, where: str) -> list[Finding]:
    bounds = e.limit(LimitField.CONCENTRATION)
    at = f"{where}.limits.concentration"
    if not e.custom_concentration:
        if bounds is not None:
            return [warning(at, "concentration_limits_unused", "custom concentrations are not allowed in this entry")]
        return []
    if shape.amount == "volume":
        return [error(f"{where}.custom_concentration", "custom_not_applicable", "an mL/h entry has no concentration")]
    if bounds is None:
        return [error(at, "custom_bounds_missing", "a custom concentration must be bounded by concentration limits")]
    found: list[Finding] = []
    for i, c in enumerate(e.concentrations):
        per = c.per_volume
        if per is None or per.unit.dim != bounds.unit.dim:
            continue
        for name, limit in bounds.items():
            outside = per < limit if name.endswith("min") else per > limit
            if outside:
                found.append(
                    error(
                        f"{where}.concentrations[{i}]",
                        "custom_bounds_exclude_standard",
                        f"standard concentration {c.key} = {per.to(bounds.unit)} is outside the custom bounds "
                        f"({name} {quantity_text(limit)})",
                        c.key,
                    )
                )
                break
    return found


def _bases(e: Entry, shape: Shape) -> set[Basis]:
    bases = {shape.basis}
    for _, bounds in e.limits:
        s = shape_of(bounds.unit)
        if s is not None:
            bases.add(s.basis)
    return bases


def _patient_limits(e: Entry, shape: Shape, where: str, area: CareArea) -> list[Finding]:
    found: list[Finding] = []
    bases = _bases(e, shape)
    for basis, bounds, rule, what in (
        (Basis.WEIGHT, area.weight, "weight_limits_missing", "weight (kg)"),
        (Basis.BSA, area.bsa, "bsa_limits_missing", "BSA (m2)"),
    ):
        if basis in bases and (bounds is None or bounds.hard_min is None or bounds.hard_max is None):
            found.append(
                error(
                    f"{where}.dose_unit",
                    rule,
                    f"dosing per {basis.value} needs the care area {area.id!r} to set hard {what} limits",
                    e.dose_unit.code,
                )
            )
    return found


def _area_caps(e: Entry, where: str, area: CareArea) -> list[Finding]:
    found: list[Finding] = []
    for field, cap, what in ((LimitField.RATE, area.max_rate, "rate"), (LimitField.VTBI, area.max_vtbi, "VTBI")):
        bounds = e.limit(field)
        if bounds is None or cap is None:
            continue
        lowest = bounds.lowest
        if lowest is not None and lowest > cap:
            found.append(
                error(
                    f"{where}.limits.{field.value}",
                    "unreachable_minimum",
                    f"minimum {quantity_text(lowest)} is above the care area's maximum {what} {quantity_text(cap)}",
                    quantity_text(lowest),
                )
            )
        elif bounds.hard_max is not None and bounds.hard_max > cap:
            found.append(
                warning(
                    f"{where}.limits.{field.value}.hard_max",
                    "above_area_max",
                    f"above the care area's maximum {what} {quantity_text(cap)}, which applies instead",
                    quantity_text(bounds.hard_max),
                )
            )
    return found


def _reachable(e: Entry, shape: Shape, where: str, area: CareArea) -> list[Finding]:
    """Can the dose limits be met at each standard concentration within the area's (and entry's) caps?

    A continuous dose needs rate = dose x (lightest patient's weight or BSA) / concentration; an
    intermittent dose needs volume = dose x basis / concentration. If the soft minimum needs more than
    the maximum rate (or VTBI), the normal range cannot be given: an error. If the soft maximum needs
    more, that limit can never trigger: a warning.
    """
    dose = e.limit(LimitField.DOSE)
    if dose is None or e.rate_only or e.mode is Mode.PCA:
        return []
    cap_field, area_cap = (
        (LimitField.RATE, area.max_rate) if e.mode is Mode.CONTINUOUS else (LimitField.VTBI, area.max_vtbi)
    )
    entry_bounds = e.limit(cap_field)
    caps = [c for c in (area_cap, entry_bounds.hard_max if entry_bounds else None) if c is not None]
    if not caps:
        return []
    cap = min(caps, key=lambda q: q.to(caps[0].unit).value)
    basis = {Basis.NONE: None, Basis.WEIGHT: area.weight, Basis.BSA: area.bsa}[shape.basis]
    lightest = None if basis is None else basis.hard_min
    if shape.basis is not Basis.NONE and lightest is None:
        return []  # reported as weight_limits_missing / bsa_limits_missing
    found: list[Finding] = []
    checks = (
        ("soft_min" if dose.soft_min is not None else "hard_min", dose.lowest),
        ("soft_max", dose.soft_max),
    )
    for i, c in enumerate(e.concentrations):
        per = c.per_volume
        if per is None:
            continue
        for name, limit in checks:
            if limit is None:
                continue
            amount = limit if lightest is None else limit * lightest
            try:
                needed = (amount / per).to(cap.unit)
            except UnitError:
                continue
            if needed > cap:
                rule = f"unreachable_{name}"
                text = (
                    f"{name} {quantity_text(limit)} needs {needed} at {c.key}"
                    + ("" if lightest is None else f" for the lightest patient ({quantity_text(lightest)})")
                    + f", above the maximum {cap_field.value} {quantity_text(cap)}"
                )
                make = warning if name == "soft_max" else error
                found.append(make(f"{where}.limits.dose.{name}", rule, text, f"concentrations[{i}]"))
    return found


def _primary_field(e: Entry) -> LimitField:
    """The limit that guards the main programmed quantity of the entry."""
    if e.rate_only:
        return LimitField.RATE
    return LimitField.PCA_DEMAND_DOSE if e.mode is Mode.PCA else LimitField.DOSE
