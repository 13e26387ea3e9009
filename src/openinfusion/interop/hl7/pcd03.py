"""PCD-03 Communicate Infusion Order (``RGV^O15``) in: the message to an :class:`InfusionOrder`.

Segment order ``MSH PID [PV1] { ORC { RXG [TQ1] RXR { OBX } } }`` (interop.md §2.2). Read here:
ORC-1 (RE new order; XO a new rate or dose for the running order; CH bolus is refused), ORC-2 placer
number, ORC-9 request time, ORC-19 caregiver, PID-3 patient, RXG-4 give code, RXG-5/7 VTBI, RXG-15/16 rate or dose rate,
RXG-17/18 strength, RXG-22 indication (the library therapy), RXG-23/24 container volume, TQ1-13
duration, RXR route and pump type, the pump-ID OBX (``69986^MDC_DEV_PUMP_INFUS_VMD``, ID in OBX-18
EI-1 as ``<pump id>/<channel>``) and the patient OBX (weight, BSA), and a care-area OBX if sent.
Every refusal is an :class:`OrderError` naming the segment and field.
"""

from __future__ import annotations

from datetime import UTC, timezone
from typing import Final

from openinfusion.interop.hl7.message import Message, Segment, parse_ts
from openinfusion.interop.hl7.problems import MessageError, Problem
from openinfusion.interop.hl7.units import quantity
from openinfusion.interop.orders import InfusionOrder, OrderError, PivCode
from openinfusion.units import Quantity, unit

PUMP_OBX: Final = frozenset({"69986", "MDC_DEV_PUMP_INFUS_VMD"})
WEIGHT_OBX: Final = frozenset({"68063", "MDC_ATTR_PT_WEIGHT"})
BSA_OBX: Final = frozenset({"188744", "MDC_AREA_BODY_SURF_ACTUAL"})
CARE_AREA_OBX: Final = frozenset({"184516", "MDC_PUMP_DRUG_LIBRARY_CARE_AREA"})
_KG = unit("kg")


def _required(seg: Segment | None, seg_id: str, number: int, what: str, code: PivCode) -> str:
    value = "" if seg is None else seg.get(number)
    if not value:
        raise OrderError(f"{seg_id}-{number}", f"{what} is missing", code)
    return value


def read_order(message: Message, local: timezone = UTC) -> InfusionOrder:
    """The order in an accepted ``RGV^O15``. Raises :class:`OrderError` with the PIV code."""
    notes: list[str] = [str(p) for p in message.notes]
    pid, orc = message.first("PID"), message.first("ORC")
    gives = message.all("RXG")
    if len(message.all("ORC")) > 1:
        raise OrderError("ORC", "one order per message", PivCode.INVALID_PARAMETER)
    if len(gives) > 1:
        raise OrderError("RXG", "multistep orders (several RXG) are not supported", PivCode.MULTISTEP_UNSUPPORTED)
    control = _required(orc, "ORC", 1, "order control", PivCode.MISSING_PARAMETER)
    if control in {"CH"}:
        raise OrderError("ORC-1", "bolus orders (CH) are not supported", PivCode.BOLUS_UNSUPPORTED)
    if control not in {"RE", "NW", "XO"}:
        raise OrderError(
            "ORC-1", f"order control {control!r} is not supported (RE new order, XO change)", PivCode.OTHER
        )
    if control == "NW":
        notes.append("ORC-1: NW read as RE (new order)")
    rxg = gives[0] if gives else None
    message.first("RXR")
    tq1 = message.first("TQ1")
    places = {
        "drug": "RXG-4", "vtbi": "RXG-5", "vtbi_unit": "RXG-7", "rate": "RXG-15", "rate_unit": "RXG-16",
        "strength": "RXG-17", "diluent": "RXG-23", "indication": "RXG-22", "duration": "TQ1-13",
        "pump": "OBX-18", "weight": "OBX-5", "bsa": "OBX-5", "care_area": "OBX-5", "patient": "PID-3",
        "requested_at": "ORC-9", "dose": "RXG-15", "order_id": "ORC-2",
    }  # fmt: skip
    order_id = _required(orc, "ORC", 2, "placer order number", PivCode.MISSING_PARAMETER)
    assert orc is not None
    stamp = _required(orc, "ORC", 9, "the time the program was requested", PivCode.MISSING_PARAMETER)
    stamp_notes: list[Problem] = []
    try:
        requested = parse_ts(stamp, ("ORC", 9), local, stamp_notes)
    except MessageError as e:
        raise OrderError("ORC-9", e.why, PivCode.INVALID_PARAMETER) from None
    notes += [str(p) for p in stamp_notes]
    caregiver = _required(orc, "ORC", 19, "the caregiver who initiated the order", PivCode.MISSING_PARAMETER)
    patient_id = _required(pid, "PID", 3, "patient identifier", PivCode.PATIENT_ID_MISSING)
    assert pid is not None and rxg is not None
    code, text_, system = rxg.get(4, 1), rxg.get(4, 2), rxg.get(4, 3)
    if not code and not text_:
        raise OrderError("RXG-4", "give code (medication) is missing", PivCode.MISSING_PARAMETER)
    rate = _quantity(rxg, 15, 16, "rate", notes)
    vtbi = _quantity(rxg, 5, 7, "VTBI", notes)
    if vtbi is not None and not vtbi.unit.same_dimension(unit("mL")):
        raise OrderError("RXG-7", f"VTBI unit must be a volume (mL), got {vtbi.unit.code}", PivCode.INVALID_UNITS)
    strength = _quantity(rxg, 17, 18, "strength", notes)
    diluent = _quantity(rxg, 23, 24, "container volume", notes)
    duration = _duration(tq1, notes)
    pump_id, channel = _pump(message, notes)
    weight = _observation(message, WEIGHT_OBX, "weight", notes)
    if weight is not None:
        if not weight.unit.same_dimension(_KG) and weight.unit.code != "g":
            raise OrderError("OBX-6", f"weight unit must be kg or g, got {weight.unit.code}", PivCode.INVALID_UNITS)
        weight = weight.to(_KG) if weight.unit.code != "g" else Quantity(weight.value / 1000, _KG)
    bsa = _observation(message, BSA_OBX, "BSA", notes)
    area = _text_observation(message, CARE_AREA_OBX)
    return InfusionOrder(
        order_id=order_id, control="XO" if control == "XO" else "RE", order_namespace=orc.get(2, 2),
        requested_at=requested, caregiver=caregiver,
        patient_id=patient_id, patient_name=" ".join(p for p in (pid.get(5, 2), pid.get(5, 1)) if p),
        drug_code=code, drug_system=system, drug_text=text_, indication=rxg.get(22, 2) or rxg.get(22, 1),
        vtbi=vtbi, rate=rate, strength=strength, diluent=diluent, duration=duration, pump_id=pump_id,
        channel=channel, weight=weight, bsa=bsa, care_area=area, places=places, notes=tuple(notes),
    )  # fmt: skip


def _quantity(seg: Segment, value_field: int, unit_field: int, what: str, notes: list[str]) -> Quantity | None:
    value = seg.get(value_field)
    if not value:
        return None
    where = (f"{seg.id}-{value_field}", f"{seg.id}-{unit_field}")
    if not seg.get(unit_field) and not seg.get(unit_field, 2):
        raise OrderError(where[1], f"{what} {value} has no unit", PivCode.INVALID_UNITS)
    return quantity(value, seg.components(unit_field), where, what, notes)


def _duration(tq1: Segment | None, notes: list[str]) -> Quantity | None:
    if tq1 is None or not tq1.raw(13):
        return None
    total = Quantity.of(0, "s")
    for rep in range(1, tq1.repetitions(13) + 1):
        parts = tq1.components(13, rep)
        value = parts[0] if parts else ""
        unit_parts = tuple(parts[1].split("&")) if len(parts) > 1 else ()
        part = quantity(value, unit_parts, ("TQ1-13", "TQ1-13"), "duration", notes)
        if not part.unit.same_dimension(total.unit):
            raise OrderError("TQ1-13", f"duration unit must be s, min or h, got {part.unit.code}",
                               PivCode.INVALID_UNITS)  # fmt: skip
        total = total + part.to(total.unit)
    return total


def _code_of(obx: Segment) -> set[str]:
    return {obx.get(3, 1), obx.get(3, 2)}


def _pump(message: Message, notes: list[str]) -> tuple[str, int | None]:
    found = [o for o in message.all("OBX") if _code_of(o) & PUMP_OBX]
    if not found:
        raise OrderError("OBX-3", "no pump-ID OBX (69986^MDC_DEV_PUMP_INFUS_VMD^MDC)", PivCode.UNKNOWN_INFUSER)
    if len(found) > 1:
        raise OrderError("OBX-3", "more than one pump-ID OBX", PivCode.INVALID_PARAMETER)
    obx = found[0]
    ident = obx.get(18, 1)
    if not ident and obx.get(18, 3):
        ident = obx.get(18, 3)
        notes.append("OBX-18: pump ID read from EI-3 (deprecated form)")
    if not ident:
        raise OrderError("OBX-18", "pump/channel ID (EI-1) is missing", PivCode.UNKNOWN_INFUSER)
    pump, slash, channel = ident.rpartition("/")
    if not slash:
        return ident, None
    if not channel.isdigit() or not 1 <= int(channel) <= 4:
        raise OrderError("OBX-18", f"channel {channel!r} in {ident!r} is not 1 to 4", PivCode.UNKNOWN_INFUSER)
    return pump, int(channel)


def _observation(message: Message, codes: frozenset[str], what: str, notes: list[str]) -> Quantity | None:
    found = [o for o in message.all("OBX") if _code_of(o) & codes]
    if not found:
        return None
    if len(found) > 1:
        raise OrderError("OBX-3", f"more than one {what} OBX", PivCode.INVALID_PARAMETER)
    obx = found[0]
    value = obx.get(5)
    if not value:
        raise OrderError("OBX-5", f"{what} OBX has no value", PivCode.MISSING_PARAMETER)
    return quantity(value, obx.components(6), ("OBX-5", "OBX-6"), what, notes)


def _text_observation(message: Message, codes: frozenset[str]) -> str | None:
    found = [o.get(5) for o in message.all("OBX") if _code_of(o) & codes]
    return found[0] if found and found[0] else None
