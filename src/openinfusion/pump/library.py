"""The pump's side of dose error reduction: from a program and a library selection to a DERS request.

The clinician programs from the library: care area -> drug (and therapy) -> concentration, then the
dose or rate. :class:`LibrarySelection` records that choice; :func:`request_for` turns the program
built from it into the :class:`~openinfusion.pump.ders.DersRequest` the check needs, field by field
(dose, rate, VTBI, loading dose, duration, interval, weight/BSA, concentration, PCA settings), and
:func:`bolus_request` does the same for a clinician bolus. The program's concentration must be the
selected library concentration: a program mixed up with another bag is refused, never checked
against the wrong limits.

:func:`check_context` is what every DERS event in the log carries (ARCHITECTURE rule 6): the selection,
the values checked, the findings and the verdict, so pharmacy analytics and what-if replays can read
the log alone (OI-DERS-5).
"""

from __future__ import annotations

from dataclasses import dataclass

from openinfusion.druglib.model import Basis, LimitField, shape_of
from openinfusion.druglib.model import Concentration as LibraryConcentration
from openinfusion.errors import ProgramError
from openinfusion.pump.ders import CompiledEntry, DersIndex, DersRequest, DersResult
from openinfusion.pump.dosing import Concentration, Patient, rate_to_dose
from openinfusion.pump.eventlog import JsonValue, encode_duration, encode_quantity, encode_rate, encode_volume
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import (
    Bolus,
    ContinuousProgram,
    DoseProgram,
    IntermittentProgram,
    MultistepProgram,
    Program,
    RampTaperProgram,
    SecondaryProgram,
    VolumeOverTimeProgram,
)
from openinfusion.units import ML, Duration, FlowRate, Quantity, Unit, Volume


@dataclass(frozen=True, slots=True, kw_only=True)
class LibrarySelection:
    """What the clinician picked from the active library: care area, drug, therapy and concentration, either a
    standard one by its key or, where the entry allows it, a custom one entered as an amount per volume (the
    check holds it to the entry's ``concentration`` limits)."""

    area: str
    drug: str
    therapy: str | None = None
    concentration: str | None = None  # a standard concentration key, e.g. "400 mg/250 mL"
    custom_concentration: Quantity | None = None  # amount per volume, e.g. 2.5 mg/mL

    def __post_init__(self) -> None:
        if not self.area.strip() or not self.drug.strip():
            raise ProgramError("selection", "care area and drug are required")
        if self.custom_concentration is not None:
            if self.concentration is not None:
                raise ProgramError("selection.concentration", "either a standard or a custom concentration, not both")
            Concentration.from_quantity(self.custom_concentration, "selection.custom_concentration")

    @property
    def concentration_text(self) -> str | None:
        """The concentration as shown and logged: the standard key, or ``"custom 2.5 mg/mL"``."""
        custom = self.custom_concentration
        return self.concentration if custom is None else f"custom {custom}"

    def to_json(self) -> dict[str, JsonValue]:
        return {"area": self.area, "drug": self.drug, "therapy": self.therapy, "concentration": self.concentration_text}


def concentration_key(conc: Concentration) -> str:
    """The library key of a program's concentration (``"400 mg/250 mL"``)."""
    return LibraryConcentration(conc.amount, conc.volume).key


def _concentration(selection: LibrarySelection, program: Program) -> tuple[str | None, Quantity | None]:
    """The selected concentration, standard key or custom amount per volume; the program's own must be it."""
    conc = getattr(program, "concentration", None)
    custom = selection.custom_concentration
    if not isinstance(conc, Concentration):
        return selection.concentration, custom
    if custom is not None:
        per_ml = conc.per_ml()
        if custom.to(per_ml.unit, "program.concentration").value != per_ml.value:
            raise ProgramError(
                "program.concentration", f"the program's {conc} is not the selected custom concentration {custom}"
            )
        return None, custom
    key = concentration_key(conc)
    if selection.concentration is not None and selection.concentration != key:
        raise ProgramError(
            "program.concentration", f"the program's {key} is not the selected library concentration "
            f"{selection.concentration}"
        )  # fmt: skip
    return key, None


def _max_rate(rates: list[FlowRate]) -> FlowRate:
    return max(rates, key=lambda r: r.nl_per_h)


def request_for(
    selection: LibrarySelection, program: Program, patient: Patient | None, index: DersIndex
) -> DersRequest:
    """The DERS request for ``program`` programmed from ``selection`` (every value the library limits)."""
    who = patient or Patient()
    entry = index.entry(selection.area, selection.drug, selection.therapy)
    key, custom = _concentration(selection, program)
    held = custom if key is None else entry.concentrations.get(key)
    common: dict[str, object] = {
        "area": selection.area,
        "drug": selection.drug,
        "therapy": selection.therapy,
        "concentration": key,
        "custom_concentration": custom,
        "weight": who.weight,
        "bsa": who.bsa,
        "vtbi": program.planned_vtbi(),
    }
    match program:
        case DoseProgram():
            conv = program.conversion()
            loading = program.loading
            extra: dict[str, object] = {"dose": program.dose, "rate": conv.rate}
            if loading is not None:
                extra["loading_dose"] = loading.amount
                if isinstance(loading.pace, Duration):
                    extra["loading_duration"] = loading.pace
                else:
                    limit = entry.limits.get(LimitField.LOADING_RATE)
                    unit = None if limit is None else limit.display
                    extra["loading_rate"] = pace_in(loading.pace, unit, program.concentration, who)
        case PcaProgram():
            common["vtbi"] = None
            extra = {
                "pca_demand_dose": program.demand_dose,
                "pca_lockout": program.lockout,
                "pca_basal_rate": program.basal,
                "pca_limit_1h": program.limit_1h,
                "pca_limit_4h": program.limit_4h,
                "loading_dose": program.loading,
            }
        case VolumeOverTimeProgram():
            dose = dose_in(program.vtbi, entry, held, who)
            extra = {"rate": program.primary_rate(), "duration": program.duration, "dose": dose}
        case IntermittentProgram():
            dose = dose_in(program.dose_volume, entry, held, who)
            extra = {"rate": program.rate, "interval": program.interval, "vtbi": program.dose_volume, "dose": dose}
        case MultistepProgram() | RampTaperProgram():
            extra = {"rate": _max_rate([s.rate for s in program.plan()])}
        case ContinuousProgram() | SecondaryProgram():
            extra = {"rate": program.rate}
        case _:
            extra = {"rate": program.primary_rate()}
    return DersRequest(**{**common, **extra})  # type: ignore[arg-type]


def dose_in(
    volume: Volume, entry: CompiledEntry, conc: LibraryConcentration | Quantity | None, patient: Patient
) -> Quantity | None:
    """The dose one ``volume`` of ``conc`` gives, in the unit of the entry's dose limit.

    ``conc`` is the selected standard concentration, or a custom one as an amount per volume. For an entry dosed
    per dose (``meq``, ``mg/kg``, ``mg/m2``: an intermittent dose) this is the amount in the volume a
    volume-over-time program infuses (or one intermittent dose), per kg or m2 of the patient when the limit is; a
    standard concentration given as an amount alone (volume entered at the pump) is that amount in the volume
    programmed. None (nothing to check here) when the entry limits no such dose, or the concentration or the
    patient's weight/BSA is missing or unknown: :meth:`CompiledEntry.check_selection` refuses those by name.
    """
    limit = entry.limits.get(LimitField.DOSE)
    shape = None if limit is None else shape_of(limit.display)
    if limit is None or conc is None or shape is None or shape.per_time or shape.per_volume:
        return None
    per = {Basis.NONE: None, Basis.WEIGHT: patient.weight, Basis.BSA: patient.bsa}[shape.basis]
    if shape.basis is not Basis.NONE and per is None:
        return None
    if isinstance(conc, Quantity):
        amount = conc * volume.quantity()
    else:
        amount = conc.amount if conc.volume is None else conc.amount * (volume.in_ml / conc.volume.in_(ML))
    return (amount if per is None else amount / per).to(limit.display, "program.dose")


def pace_in(rate: FlowRate, unit: Unit | None, conc: Concentration | None, patient: Patient) -> Quantity:
    """A bolus or loading rate in the unit its library limit is written in.

    A limit written as a dose rate (``[iU]/kg/min``) is compared with the dose rate the flow delivers from
    the concentration for this patient, exactly; a limit in ``mL/h`` (or none) with the flow itself.
    """
    if unit is None or conc is None or unit.same_dimension(rate.quantity().unit):
        return rate.quantity()
    return rate_to_dose(rate, conc, patient, unit, "rate")


def bolus_request(
    selection: LibrarySelection, bolus: Bolus, patient: Patient | None, program: Program | None, index: DersIndex
) -> DersRequest:
    """The DERS request for a clinician bolus from ``program`` (its dose, or its volume when given as one)."""
    who = patient or Patient()
    dose: Quantity = bolus.amount if bolus.amount is not None else bolus.volume.quantity()
    conc = getattr(program, "concentration", None)
    limit = index.entry(selection.area, selection.drug, selection.therapy).limits.get(LimitField.BOLUS_RATE)
    return DersRequest(
        area=selection.area,
        drug=selection.drug,
        therapy=selection.therapy,
        concentration=selection.concentration,
        custom_concentration=selection.custom_concentration,
        weight=who.weight,
        bsa=who.bsa,
        bolus_dose=dose,
        bolus_rate=pace_in(bolus.rate, None if limit is None else limit.display, _conc(conc), who),
        bolus_duration=bolus.rate.time_for(bolus.volume),
    )


def _conc(value: object) -> Concentration | None:
    return value if isinstance(value, Concentration) else None


def check_context(request: DersRequest, result: DersResult) -> dict[str, JsonValue]:
    """What a DERS log event records: the values checked, every limit crossed, and the verdict."""
    values: dict[str, JsonValue] = {}
    for name in DersRequest.__dataclass_fields__:
        value = getattr(request, name)
        if value is None or name in {"area", "drug", "therapy", "concentration"}:
            continue
        values[name] = _encode(value)
    findings: list[JsonValue] = [
        {
            "field": f.field.value,
            "kind": f.kind.value,
            "bound": f.bound.value,
            "entered": encode_quantity(f.entered),
            "limit": encode_quantity(f.limit),
        }
        for f in result.findings
    ]
    return {
        "selection": {
            "area": request.area,
            "drug": request.drug,
            "therapy": request.therapy,
            "concentration": request.concentration,
        },
        "values": values,
        "findings": findings,
        "verdict": result.verdict.name.lower(),
    }


def _encode(value: object) -> JsonValue:
    if isinstance(value, Quantity):
        return encode_quantity(value)
    if isinstance(value, FlowRate):
        return encode_rate(value)
    if isinstance(value, Volume):
        return encode_volume(value)
    if isinstance(value, Duration):
        return encode_duration(value)
    return str(value)
