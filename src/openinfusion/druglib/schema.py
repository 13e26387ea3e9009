"""The library document's shape, and building the frozen objects from it (OI-DERS-1, OI-UNIT-1).

:class:`LibraryDoc` (pydantic, at the edge) checks the shape: unknown or missing fields, wrong types, a number
without a unit. :class:`Builder` then parses every quantity and unit strictly and builds the objects of
:mod:`openinfusion.druglib.model` piece by piece, recording every problem as a
:class:`~openinfusion.druglib.model.Finding` instead of stopping at the first, and finally applies the rules
(:func:`openinfusion.druglib.rules.check_library`), hiding findings about parts already reported unbuildable.

Paths name things by their ids, not list positions, so a pharmacist can find them:
``drugs[norepinephrine].care_areas[ADULT-ICU].limits.dose.soft_max``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

from openinfusion.druglib.model import (
    ENTRY_FIELDS,
    Bounds,
    CareArea,
    Concentration,
    Drug,
    DrugKind,
    Entry,
    Finding,
    Library,
    LibraryInfo,
    LimitField,
    Mode,
    Occlusion,
    Severity,
    bounds_problems,
    concentration_problems,
    error,
)
from openinfusion.druglib.rules import check_library
from openinfusion.errors import UnitError
from openinfusion.units import Quantity, Unit, parse_unit

# --- the document's shape (pydantic, at the edge) ------------------------------------------------


def _quantity_text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit: write the value with its UCUM unit, e.g. '{value} mL/h'")
    return value


QText = Annotated[str, BeforeValidator(_quantity_text)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoundsDoc(_Doc):
    soft_min: QText | None = None
    soft_max: QText | None = None
    hard_min: QText | None = None
    hard_max: QText | None = None


class ConcentrationDoc(_Doc):
    amount: QText
    volume: QText | None = None


class EntryDoc(_Doc):
    area: str
    therapy: str | None = None
    mode: Mode
    dose_unit: str
    concentrations: list[ConcentrationDoc] = Field(default_factory=list)
    custom_concentration: StrictBool = False
    limits: dict[LimitField, BoundsDoc] = Field(default_factory=dict)
    advisory: str | None = None
    source: str | None = None


class DrugDoc(_Doc):
    id: str
    generic_name: str
    display_name: str
    kind: DrugKind = DrugKind.MEDICATION
    therapeutic_class: str
    high_alert: StrictBool
    synonyms: list[str] = Field(default_factory=list)
    rxnorm: str | None = None
    ndc: list[str] = Field(default_factory=list)
    advisory: str | None = None
    source: str | None = None
    care_areas: list[EntryDoc]


class CareAreaDoc(_Doc):
    id: str
    name: str
    max_rate: QText
    max_vtbi: QText | None = None
    occlusion: Occlusion
    air_in_line: QText
    callback: QText
    basic_infusion: StrictBool
    weight: BoundsDoc | None = None
    bsa: BoundsDoc | None = None
    source: str | None = None


class InfoDoc(_Doc):
    owner: str
    name: str
    version: str
    notice: str | None = None


class LibraryDoc(_Doc):
    schema_id: str = Field(alias="schema")
    library: InfoDoc
    override_reasons: list[str]
    care_areas: list[CareAreaDoc]
    drugs: list[DrugDoc]


def shape_findings(e: ValidationError, raw: object) -> list[Finding]:
    found = []
    for err in e.errors(include_url=False):
        where, node = _path(raw, err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown field (check its spelling against docs/drug-library.md)"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        value = None if kind == "missing" or isinstance(node, dict | list) else repr(node)
        found.append(error(where or "document", "schema", message, value))
    return found


def _path(raw: object, loc: Sequence[int | str]) -> tuple[str, object]:
    """A pydantic location as a readable path (list items named by id), and the value found there."""
    parts: list[str] = []
    node: object = raw
    for step in loc:
        if step == "[key]":
            continue
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
            parts[-1] += f"[{_label(node, step)}]" if parts else f"[{step}]"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts), node


def _label(item: object, index: int) -> str:
    if isinstance(item, dict):
        if isinstance(item.get("id"), str):
            return str(item["id"])
        if isinstance(item.get("area"), str):
            therapy = item.get("therapy")
            return f"{item['area']}/{therapy}" if isinstance(therapy, str) else str(item["area"])
    return str(index)


# --- building the objects, collecting findings ---------------------------------------------------


class Builder:
    """Turns a shape-checked document into model objects, recording every problem on the way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.findings: list[Finding] = []
        self.broken: list[str] = []  # paths whose value could not be built
        self.broken_areas: set[str] = set()

    def fail(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.findings.append(f)
            if f.severity is Severity.ERROR:
                self.broken.append(f.where)

    def quantity(self, text: str, where: str) -> Quantity | None:
        try:
            return Quantity.parse(text, where)
        except UnitError as e:
            self.fail([error(where, "unit", e.why, text)])
            return None

    def unit(self, code: str, where: str) -> Unit | None:
        try:
            return parse_unit(code, where)
        except UnitError as e:
            self.fail([error(where, "unit", e.why, code)])
            return None

    def bounds(self, doc: BoundsDoc, where: str) -> Bounds | None:
        texts = (doc.soft_min, doc.soft_max, doc.hard_min, doc.hard_max)
        names = ("soft_min", "soft_max", "hard_min", "hard_max")
        values = [None if t is None else self.quantity(t, f"{where}.{n}") for n, t in zip(names, texts, strict=True)]
        if any(t is not None and v is None for t, v in zip(texts, values, strict=True)):
            return None
        problems = bounds_problems(where, *values)
        if problems:
            self.fail(problems)
            return None
        return Bounds(*values)

    def build(self, doc: LibraryDoc) -> tuple[tuple[Finding, ...], Library | None]:
        """Every finding, and the library when there is no error."""
        info = LibraryInfo(doc.library.owner, doc.library.name, doc.library.version, doc.library.notice)
        areas = tuple(a for a in (self.care_area(a) for a in doc.care_areas) if a is not None)
        drugs = tuple(self.drug(d) for d in doc.drugs)
        reasons = tuple(doc.override_reasons)
        for f in check_library(info, reasons, areas, drugs, doc.schema_id):
            if not self._masked(f):
                self.findings.append(f)
        findings = tuple(self.findings)
        if any(f.severity is Severity.ERROR for f in findings):
            return findings, None
        return findings, Library(info, reasons, areas, drugs, doc.schema_id)

    def _masked(self, f: Finding) -> bool:
        """A finding about something already reported as unbuildable adds nothing."""
        if f.rule == "unknown_care_area" and f.value in self.broken_areas:
            return True
        return any(b.startswith(f.where) or f.where.startswith(b) for b in self.broken)

    def care_area(self, doc: CareAreaDoc) -> CareArea | None:
        where = f"care_areas[{doc.id}]"
        max_rate = self.quantity(doc.max_rate, f"{where}.max_rate")
        max_vtbi = None if doc.max_vtbi is None else self.quantity(doc.max_vtbi, f"{where}.max_vtbi")
        air = self.quantity(doc.air_in_line, f"{where}.air_in_line")
        callback = self.quantity(doc.callback, f"{where}.callback")
        weight = None if doc.weight is None else self.bounds(doc.weight, f"{where}.weight")
        bsa = None if doc.bsa is None else self.bounds(doc.bsa, f"{where}.bsa")
        if (
            max_rate is None
            or air is None
            or callback is None
            or (doc.max_vtbi is not None and max_vtbi is None)
            or (doc.weight is not None and weight is None)
            or (doc.bsa is not None and bsa is None)
        ):
            self.broken_areas.add(doc.id)
            return None
        return CareArea(
            doc.id,
            doc.name,
            max_rate,
            doc.occlusion,
            air,
            callback,
            doc.basic_infusion,
            max_vtbi,
            weight,
            bsa,
            doc.source,
        )

    def drug(self, doc: DrugDoc) -> Drug:
        where = f"drugs[{doc.id}]"
        entries = tuple(e for e in (self.entry(e, where) for e in doc.care_areas) if e is not None)
        return Drug(
            doc.id,
            doc.generic_name,
            doc.display_name,
            doc.therapeutic_class,
            doc.high_alert,
            entries,
            doc.kind,
            tuple(doc.synonyms),
            doc.rxnorm,
            tuple(doc.ndc),
            doc.advisory,
            doc.source,
        )

    def entry(self, doc: EntryDoc, drug_where: str) -> Entry | None:
        label = doc.area if doc.therapy is None else f"{doc.area}/{doc.therapy}"
        where = f"{drug_where}.care_areas[{label}]"
        dose_unit = self.unit(doc.dose_unit, f"{where}.dose_unit")
        concentrations = []
        for i, c in enumerate(doc.concentrations):
            at = f"{where}.concentrations[{i}]"
            amount = self.quantity(c.amount, f"{at}.amount")
            volume = None if c.volume is None else self.quantity(c.volume, f"{at}.volume")
            if amount is None or (c.volume is not None and volume is None):
                continue
            problems = concentration_problems(at, amount, volume)
            if problems:
                self.fail(problems)
            else:
                concentrations.append(Concentration(amount, volume))
        limits = []
        for field in ENTRY_FIELDS:  # canonical field order, whatever order the file used
            bounds_doc = doc.limits.get(field)
            if bounds_doc is not None:
                bounds = self.bounds(bounds_doc, f"{where}.limits.{field.value}")
                if bounds is not None:
                    limits.append((field, bounds))
        for field in doc.limits:
            if field not in ENTRY_FIELDS:
                self.fail([error(f"{where}.limits.{field.value}", "field_not_allowed", _NOT_ENTRY_FIELD)])
        if dose_unit is None:
            return None
        return Entry(
            doc.area,
            doc.mode,
            dose_unit,
            doc.therapy,
            tuple(concentrations),
            doc.custom_concentration,
            tuple(limits),
            doc.advisory,
            doc.source,
        )


_NOT_ENTRY_FIELD = "patient weight and BSA limits belong to the care area, not to a drug entry"
