"""From an infusion order to a pump program, through the drug library (interop.md §2.2, PIV).

Theory of operation. :class:`Formulary` finds the library drug an order names: by code (library id,
NDC, RxNorm) or by name (generic, display, synonyms; case and spacing ignored). A name that starts
the order's text (``"dopamine 400 mg in 250 mL"``) is accepted when exactly one drug matches, and
noted. A code and a name that point at different drugs, or a name that fits two, are refused (9010):
the order is never guessed. :func:`plan_order` then picks the entry of the pump's care area (and
therapy), the standard concentration, builds the program (a dose program for a dose rate, a
continuous or volume-over-time program for mL/h) with the pump channel's own rate limits, and runs
the pump's DERS check (:func:`openinfusion.pump.library.request_for`, ``DersIndex.check``). A hard
limit refuses (9024); a soft limit leaves the order pending with the finding shown, to be overridden
with a reason at the pump or cancelled. Every refusal names the order's own field (``RXG-16``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from openinfusion.druglib.model import Concentration as LibraryConcentration
from openinfusion.druglib.model import Drug, Library
from openinfusion.errors import InputError
from openinfusion.interop.orders import InfusionOrder, OrderError, PivCode
from openinfusion.pump.ders import CompiledEntry, DersIndex, DersResult, Verdict
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.library import LibrarySelection, request_for
from openinfusion.pump.programs import ContinuousProgram, DoseProgram, Program, RateLimits, VolumeOverTimeProgram
from openinfusion.units import ML_PER_H, Duration, FlowRate, Unit, Volume

_SPACES = re.compile(r"\s+")


def _norm(name: str) -> str:
    return _SPACES.sub(" ", name.strip().lower())


@dataclass(frozen=True, slots=True)
class Match:
    drug: Drug
    note: str | None  # how the name was matched when not exactly


class Formulary:
    """Drug lookup by code and name over a library (the one the pumps run)."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self._codes: dict[str, Drug] = {}
        self._names: dict[str, set[str]] = {}
        by_id = {d.id: d for d in library.drugs}
        self._by_id = by_id
        for d in library.drugs:
            for code in (d.id, d.rxnorm, *d.ndc):
                if code:
                    self._codes[code.strip().lower()] = d
            for name in (d.id, d.generic_name, d.display_name, *d.synonyms):
                self._names.setdefault(_norm(name), set()).add(d.id)

    def find(self, order: InfusionOrder) -> Match:
        """The drug ``order`` names (RXG-4 code and text), or :class:`OrderError` (9010)."""
        where = order.at("drug")
        by_code = self._codes.get(order.drug_code.strip().lower()) if order.drug_code.strip() else None
        by_name, note = self._by_name(order.drug_text, where)
        if by_code is not None and by_name is not None and by_code.id != by_name.id:
            raise OrderError(
                where, f"code {order.drug_code!r} is {by_code.id} but the name {order.drug_text!r} is {by_name.id}",
                PivCode.DRUG_NOT_IN_LIBRARY,
            )  # fmt: skip
        found = by_code or by_name
        if found is None:
            label = order.drug_text or order.drug_code or "(none)"
            raise OrderError(where, f"{label!r} is not in drug library {self.library.info.version}",
                               PivCode.DRUG_NOT_IN_LIBRARY)  # fmt: skip
        if by_code is None and order.drug_code.strip():
            note = f"unknown code {order.drug_code!r}; matched by name to {found.id}"
        return Match(found, note)

    def _by_name(self, text: str, where: str) -> tuple[Drug | None, str | None]:
        name = _norm(text)
        if not name:
            return None, None
        exact = self._names.get(name, set())
        if len(exact) == 1:
            return self._by_id[next(iter(exact))], None
        starts = {i for key, ids in self._names.items() if name.startswith(key + " ") for i in ids}
        candidates = exact or starts
        if len(candidates) > 1:
            raise OrderError(where, f"{text!r} fits several library drugs: {', '.join(sorted(candidates))}",
                               PivCode.DRUG_NOT_IN_LIBRARY)  # fmt: skip
        if not candidates:
            return None, None
        drug = self._by_id[next(iter(candidates))]
        return drug, f"drug text {text!r} read as library drug {drug.id}"


@dataclass(frozen=True, slots=True)
class PumpTarget:
    """What the mapping needs from the pump channel: its active library, care area and rate limits."""

    index: DersIndex
    care_area: str | None
    limits: RateLimits
    library_version: str


@dataclass(frozen=True, slots=True)
class Plan:
    """An order mapped to a program, with the pump's DERS check of it."""

    order: InfusionOrder
    selection: LibrarySelection
    program: Program
    patient: Patient
    result: DersResult
    display_name: str
    notes: tuple[str, ...]

    @property
    def needs_override(self) -> bool:
        return self.result.verdict is Verdict.SOFT


# the end of a core error's field path -> the order field it concerns, and the PIV code
_WHERE_CODES: Final = (
    ("concentration", "strength", PivCode.NOT_LIBRARY_PARAMETER),
    ("weight", "weight", PivCode.WEIGHT_MISSING),
    ("bsa", "bsa", PivCode.BSA_MISSING),
    ("drug", "drug", PivCode.DRUG_NOT_IN_LIBRARY),
    ("vtbi", "vtbi", PivCode.OUT_OF_RANGE),
)


def plan_order(order: InfusionOrder, formulary: Formulary, target: PumpTarget) -> Plan:
    """Map ``order`` for a pump channel (see the module docstring). Raises :class:`OrderError`."""
    notes = list(order.notes)
    area = target.care_area
    if area is None:
        raise OrderError(order.at("pump"), "the pump has no care area selected", PivCode.NO_CARE_AREA)
    if order.care_area is not None and order.care_area.strip().upper() != area.upper():
        why = f"order is for care area {order.care_area!r}, the pump is in {area!r}"
        raise OrderError(order.at("care_area"), why, PivCode.CARE_AREA_MISMATCH)
    match = formulary.find(order)
    if match.note:
        notes.append(match.note)
    entry = _entry(order, target.index, area, match.drug)
    dose_unit = next(e.dose_unit for e in match.drug.entries if e.area == entry.area and e.therapy == entry.therapy)
    concentration = _concentration(order, entry)
    patient = _patient(order)
    program = _program(
        order, entry=entry, dose_unit=dose_unit, concentration=concentration, patient=patient, limits=target.limits
    )
    selection = LibrarySelection(area=area, drug=entry.drug, therapy=entry.therapy, concentration=concentration)
    try:
        result = target.index.check(request_for(selection, program, patient, target.index))
    except InputError as e:
        raise _refusal(order, e) from None
    if result.verdict is Verdict.HARD:
        crossed = "; ".join(str(f) for f in result.findings)
        raise OrderError(order.at(result.findings[0].field.value), f"drug library hard limit: {crossed}",
                           PivCode.HARD_LIMIT)  # fmt: skip
    return Plan(order, selection, program, patient, result, entry.display_name, tuple(notes))


def _refusal(order: InfusionOrder, error: InputError) -> OrderError:
    """A core error (``program.patient.weight: ...``) as a refusal at the order's own field."""
    if isinstance(error, OrderError):
        return error
    for suffix, name, code in _WHERE_CODES:
        if error.where.endswith(suffix):
            return OrderError(order.at(name), error.why, code)
    return OrderError(order.at("rate"), f"{error.where}: {error.why}", PivCode.OUT_OF_RANGE)


def _entry(order: InfusionOrder, index: DersIndex, area: str, drug: Drug) -> CompiledEntry:
    entries = [e for (a, d, _), e in index.entries.items() if a == area and d == drug.id]
    if not entries:
        raise OrderError(order.at("drug"), f"{drug.display_name} has no entry in care area {area}",
                           PivCode.DRUG_NOT_IN_LIBRARY)  # fmt: skip
    if len(entries) == 1:
        return entries[0]
    wanted = _norm(order.indication)
    if wanted:
        chosen = [e for e in entries if e.therapy is not None and _norm(e.therapy) == wanted]
    else:  # no indication: the entry without a named therapy, where the library has one
        chosen = [e for e in entries if e.therapy is None]
    if len(chosen) != 1:
        names = ", ".join(sorted(str(e.therapy) for e in entries))
        raise OrderError(order.at("indication"), f"{drug.display_name} has several therapies in {area} ({names}): "
                           "name one as the indication", PivCode.MISSING_PARAMETER)  # fmt: skip
    return chosen[0]


def _concentration(order: InfusionOrder, entry: CompiledEntry) -> str | None:
    if order.strength is None:
        if entry.needs_concentration:
            raise OrderError(
                order.at("strength"),
                f"{entry.display_name} needs the drug amount and volume "
                f"(standard: {', '.join(sorted(entry.concentrations))})",
                PivCode.MISSING_PARAMETER,
            )
        return None
    try:
        key = LibraryConcentration(order.strength, order.diluent).key
    except InputError as e:
        raise OrderError(order.at("strength"), e.why, PivCode.INVALID_PARAMETER) from None
    if key not in entry.concentrations:
        known = ", ".join(sorted(entry.concentrations)) or "none"
        raise OrderError(order.at("strength"), f"{key} is not a standard concentration of {entry.display_name} "
                           f"in {entry.area} ({known})", PivCode.NOT_LIBRARY_PARAMETER)  # fmt: skip
    return key


def _patient(order: InfusionOrder) -> Patient:
    try:
        return Patient(weight=order.weight, bsa=order.bsa)
    except InputError as e:
        name = "weight" if "weight" in e.where else "bsa"
        raise OrderError(order.at(name), e.why, PivCode.INVALID_PARAMETER) from None


def _program(
    order: InfusionOrder,
    *, entry: CompiledEntry, dose_unit: Unit, concentration: str | None, patient: Patient,
    limits: RateLimits,
) -> Program:  # fmt: skip
    vtbi = None
    try:
        if order.vtbi is not None:
            vtbi = Volume.of(order.vtbi)
        rate = order.rate
        if rate is None:
            if vtbi is not None and order.duration is not None and not entry.needs_concentration:
                return VolumeOverTimeProgram(vtbi=vtbi, duration=Duration.of(order.duration), limits=limits)
            raise OrderError(order.at("rate"), "no rate or dose rate given", PivCode.MISSING_PARAMETER)
        if rate.unit.same_dimension(ML_PER_H):
            if entry.needs_concentration:
                raise OrderError(
                    order.at("rate_unit"), f"{entry.display_name} is dosed in {dose_unit.code} in the drug "
                    "library: order the dose rate, not mL/h", PivCode.UNITS_NOT_LIBRARY,
                )  # fmt: skip
            return ContinuousProgram(rate=FlowRate.of(rate), vtbi=vtbi, limits=limits)
        if not entry.needs_concentration or concentration is None:
            raise OrderError(order.at("rate_unit"), f"{entry.display_name} is given by rate (mL/h) in the library",
                               PivCode.UNITS_NOT_LIBRARY)  # fmt: skip
        if not rate.unit.same_dimension(dose_unit):
            raise OrderError(order.at("rate_unit"), f"{rate.unit.code} does not match the library's dosing unit "
                               f"{dose_unit.code} for {entry.display_name}", PivCode.UNITS_NOT_LIBRARY)  # fmt: skip
        if order.strength is None or order.diluent is None:
            raise OrderError(order.at("diluent"), "a dose rate needs the container volume", PivCode.MISSING_PARAMETER)
        conc = Concentration(order.strength, order.diluent)
        return DoseProgram(dose=rate, concentration=conc, patient=patient, vtbi=vtbi, limits=limits)
    except OrderError:
        raise
    except InputError as e:
        raise _refusal(order, e) from None
