"""MedicationRequest in: the FHIR order path to the same pending program as PCD-03 (interop.md §5.1).

The request must be valid R4 (the official JSON Schema) and then carry what an infusion order needs;
every refusal names the JSON path (``MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity``).
The mapping (not standardised; kept here, with tests):

* ``identifier[0]`` -> placer order number (``system`` as its namespace); ``authoredOn`` -> request time;
  ``requester`` -> caregiver; ``subject`` -> patient (``Patient/<id>`` or an identifier);
* ``medicationCodeableConcept`` (or a contained ``Medication`` by ``#id``): code and text; the contained
  Medication's ``ingredient[0].strength`` (amount / container volume) -> concentration;
* ``dosageInstruction[0].doseAndRate[0].rateQuantity`` -> rate or dose rate (UCUM), ``doseQuantity`` (mL)
  -> VTBI; ``reasonCode[0].text`` -> the library therapy;
* ``performer.identifier.value`` -> the pump channel (``<pump>/<channel>``);
* a contained body-weight Observation (LOINC 29463-7) in ``supportingInformation`` -> weight (kg), a
  body-surface-area one (LOINC 8277-6, UCUM ``m2``) -> BSA, for doses per kg or per m2.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any, Final

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError

from openinfusion.errors import InputError, UnitError
from openinfusion.interop.fhir.schema import check_resource
from openinfusion.interop.orders import InfusionOrder, OrderError, PivCode
from openinfusion.units import Quantity, parse_unit

BODY_WEIGHT: Final = "29463-7"
BODY_SURFACE: Final = "8277-6"  # LOINC body surface area
_RATE = "MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity"
_PLACES: Final = {
    "drug": "MedicationRequest.medicationCodeableConcept", "rate": _RATE, "rate_unit": f"{_RATE}.code",
    "dose": _RATE, "vtbi": "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity",
    "strength": "Medication.ingredient[0].strength", "diluent": "Medication.ingredient[0].strength.denominator",
    "indication": "MedicationRequest.reasonCode[0]", "pump": "MedicationRequest.performer.identifier",
    "patient": "MedicationRequest.subject", "requested_at": "MedicationRequest.authoredOn",
    "weight": "Observation.valueQuantity", "bsa": "Observation.valueQuantity", "care_area": "MedicationRequest",
    "duration": "MedicationRequest.dosageInstruction[0].timing",
}  # fmt: skip


def read_medication_request(resource: dict[str, Any]) -> InfusionOrder:
    """The order in a MedicationRequest. Raises :class:`InputError` (schema, path) or :class:`OrderError` (PIV code)."""
    check_resource(resource)
    if resource.get("resourceType") != "MedicationRequest":
        raise InputError("resourceType", "expected a MedicationRequest")
    try:
        MedicationRequest.model_validate(resource)
    except ValidationError as e:
        first = e.errors()[0]
        raise InputError("MedicationRequest." + ".".join(str(p) for p in first["loc"]), first["msg"]) from None
    if resource.get("status") != "active" or resource.get("intent") not in {
        "order",
        "original-order",
        "instance-order",
    }:
        raise OrderError("MedicationRequest.status", "only an active order (intent order) can program a pump",
                         PivCode.INVALID_PARAMETER)  # fmt: skip
    contained = {f"#{c.get('id')}": c for c in resource.get("contained", []) if isinstance(c, dict)}
    medication = _medication(resource, contained)
    dose_and_rate = _first(
        _first(resource.get("dosageInstruction"), "dosageInstruction").get("doseAndRate"), "doseAndRate"
    )
    identifier = _first(resource.get("identifier"), "identifier")
    order_id = _text(identifier.get("value"), "MedicationRequest.identifier[0].value", PivCode.MISSING_PARAMETER)
    code = _first(medication.get("code", {}).get("coding") or [{}], "coding")
    strength = medication.get("ingredient", [{}])[0].get("strength") if medication.get("ingredient") else None
    pump_ref = _text(
        resource.get("performer", {}).get("identifier", {}).get("value"), _PLACES["pump"], PivCode.UNKNOWN_INFUSER
    )
    pump, slash, channel = pump_ref.rpartition("/")
    if slash and (not channel.isdigit() or not 1 <= int(channel) <= 4):
        raise OrderError(_PLACES["pump"], f"channel {channel!r} is not 1 to 4", PivCode.UNKNOWN_INFUSER)
    return InfusionOrder(
        order_id=order_id, order_namespace=str(identifier.get("system", "")),
        requested_at=_time(resource.get("authoredOn")),
        caregiver=_reference(resource.get("requester"), "MedicationRequest.requester", PivCode.MISSING_PARAMETER),
        patient_id=_reference(resource.get("subject"), _PLACES["patient"], PivCode.PATIENT_ID_MISSING),
        drug_code=str(code.get("code", "")), drug_system=str(code.get("system", "")),
        drug_text=str(medication.get("code", {}).get("text") or code.get("display") or ""),
        indication=str(_first(resource.get("reasonCode") or [{}], "reasonCode").get("text", "")),
        rate=_quantity(dose_and_rate.get("rateQuantity"), _RATE),
        vtbi=_quantity(dose_and_rate.get("doseQuantity"), _PLACES["vtbi"]),
        strength=None if strength is None else _quantity(strength.get("numerator"), _PLACES["strength"]),
        diluent=None if strength is None else _quantity(strength.get("denominator"), _PLACES["diluent"]),
        pump_id=pump if slash else pump_ref, channel=int(channel) if slash else None,
        weight=_measure(resource, contained, BODY_WEIGHT, "kg"), bsa=_measure(resource, contained, BODY_SURFACE, "m2"),
        places=_PLACES,
    )  # fmt: skip


def _first(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    if isinstance(value, dict):
        return value
    raise OrderError(f"MedicationRequest.{name}", f"{name} is missing", PivCode.MISSING_PARAMETER)


def _text(value: Any, where: str, code: PivCode) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OrderError(where, "is missing", code)
    return value.strip()


def _reference(value: Any, where: str, code: PivCode) -> str:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and "/" in reference:
            return reference.rsplit("/", 1)[1]
        identifier = value.get("identifier")
        if isinstance(identifier, dict):
            return _text(identifier.get("value"), f"{where}.identifier.value", code)
    raise OrderError(where, "needs a reference (Type/id) or an identifier", code)


def _time(value: Any) -> datetime:
    where = "MedicationRequest.authoredOn"
    if not isinstance(value, str) or "T" not in value:
        raise OrderError(where, "the time the order was authored (date and time) is missing", PivCode.MISSING_PARAMETER)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise OrderError(where, "needs a UTC offset", PivCode.INVALID_PARAMETER)
    return when


def _quantity(value: Any, where: str) -> Quantity | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "value" not in value:
        raise OrderError(where, "needs a value", PivCode.MISSING_PARAMETER)
    system, code = value.get("system"), value.get("code") or value.get("unit")
    if system not in (None, "http://unitsofmeasure.org") or not isinstance(code, str):
        raise OrderError(f"{where}.system", "units must be UCUM (system http://unitsofmeasure.org, code)",
                         PivCode.INVALID_UNITS)  # fmt: skip
    try:
        unit = parse_unit(code, f"{where}.code")
    except UnitError as e:
        raise OrderError(e.where, e.why, PivCode.INVALID_UNITS) from None
    amount = Fraction(str(value["value"]))
    if amount < 0:
        raise OrderError(f"{where}.value", "must not be negative", PivCode.INVALID_PARAMETER)
    return Quantity(amount, unit)


def _medication(resource: dict[str, Any], contained: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "medicationCodeableConcept" in resource:
        return {"code": resource["medicationCodeableConcept"]}
    reference = resource.get("medicationReference", {}).get("reference", "")
    found = contained.get(reference)
    if found is None or found.get("resourceType") != "Medication":
        raise OrderError("MedicationRequest.medicationReference", f"{reference!r} is not a contained Medication",
                         PivCode.MISSING_PARAMETER)  # fmt: skip
    return found


def _measure(resource: dict[str, Any], contained: dict[str, dict[str, Any]], loinc: str, unit: str) -> Quantity | None:
    """The value of the contained Observation coded ``loinc`` in ``supportingInformation``, in ``unit``."""
    for info in resource.get("supportingInformation", []):
        found = contained.get(info.get("reference", "")) if isinstance(info, dict) else None
        if found is None or found.get("resourceType") != "Observation":
            continue
        codes = {c.get("code") for c in found.get("code", {}).get("coding", [])}
        if loinc in codes:
            value = _quantity(found.get("valueQuantity"), "Observation.valueQuantity")
            if value is not None and not value.unit.same_dimension(parse_unit(unit)):
                raise OrderError("Observation.valueQuantity.code", f"LOINC {loinc} must be in {unit}",
                                 PivCode.INVALID_UNITS)  # fmt: skip
            return None if value is None else value.to(unit)
    return None
