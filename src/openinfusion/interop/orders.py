"""An infusion order as the pump gateway receives it, whatever carried it (PCD-03 or FHIR MedicationRequest).

:class:`InfusionOrder` holds every value with its unit (``Quantity``; UCUM codes), the identifiers
that must follow the program into the pump's records (placer order number, patient, caregiver), and
``places``: for each of its fields, where it came from in the message (``"rate" -> "RXG-15"``), so a
refusal names the sender's own segment and field or JSON path. :class:`OrderError` is a refusal
with its IHE PIV application error code (interop.md §2.2, TF2-R10 B.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from openinfusion.errors import InputError
from openinfusion.units import Quantity


class PivCode(IntEnum):
    """IHE PIV application error codes (ERR-5), interop.md §2.2."""

    UNKNOWN_INFUSER = 9001
    INFUSER_BUSY = 9002
    MISSING_PARAMETER = 9003
    INVALID_PARAMETER = 9004
    OUT_OF_RANGE = 9005
    POWERED_OFF = 9006
    OFFLINE = 9007
    INVALID_UNITS = 9008
    UNITS_NOT_LIBRARY = 9009
    DRUG_NOT_IN_LIBRARY = 9010
    WEIGHT_MISMATCH = 9011
    PATIENT_MISMATCH = 9012
    NO_PIGGYBACK = 9013
    EXCEEDS_MAXIMUM = 9014
    TIMED_OUT = 9015
    OTHER = 9016
    CANNOT_ACCEPT = 9017
    NOT_LIBRARY_PARAMETER = 9018
    WEIGHT_MISSING = 9019
    HEIGHT_MISSING = 9020
    CARE_AREA_MISMATCH = 9021
    STALE = 9022
    REJECTED_BY_USER = 9023
    HARD_LIMIT = 9024
    BSA_MISSING = 9027
    NO_CARE_AREA = 9029
    PATIENT_ID_MISSING = 9031
    ALARMING = 9033
    BOLUS_UNSUPPORTED = 9038
    MULTISTEP_UNSUPPORTED = 9044


PIV_TEXT: dict[PivCode, str] = {
    PivCode.UNKNOWN_INFUSER: "Unknown infuser or channel",
    PivCode.INFUSER_BUSY: "Infuser/channel is currently infusing",
    PivCode.MISSING_PARAMETER: "Missing required program parameter(s)",
    PivCode.INVALID_PARAMETER: "Invalid program parameter(s)",
    PivCode.OUT_OF_RANGE: "Parameter outside allowable range",
    PivCode.POWERED_OFF: "Infuser is powered off",
    PivCode.OFFLINE: "Infuser offline",
    PivCode.INVALID_UNITS: "Invalid units for a parameter",
    PivCode.UNITS_NOT_LIBRARY: "Dose/rate units do not match drug library",
    PivCode.DRUG_NOT_IN_LIBRARY: "Unable to match medication to drug library",
    PivCode.WEIGHT_MISMATCH: "Patient weight mismatch",
    PivCode.PATIENT_MISMATCH: "Patient ID mismatch",
    PivCode.NO_PIGGYBACK: "Unable to program medication as piggyback",
    PivCode.EXCEEDS_MAXIMUM: "Dose rate or VTBI exceeds maximum",
    PivCode.TIMED_OUT: "Request timed out",
    PivCode.OTHER: "Other error",
    PivCode.CANNOT_ACCEPT: "Infuser cannot accept program",
    PivCode.NOT_LIBRARY_PARAMETER: "Parameter does not match drug library",
    PivCode.WEIGHT_MISSING: "Patient weight missing",
    PivCode.HEIGHT_MISSING: "Patient height missing",
    PivCode.CARE_AREA_MISMATCH: "Care area or profile mismatch",
    PivCode.STALE: "Requested infusion program is stale",
    PivCode.REJECTED_BY_USER: "Program rejected by user before start",
    PivCode.HARD_LIMIT: "Drug library hard limit exceeded",
    PivCode.BSA_MISSING: "Patient BSA missing",
    PivCode.NO_CARE_AREA: "Care area or profile not selected",
    PivCode.PATIENT_ID_MISSING: "Patient ID missing or invalid",
    PivCode.ALARMING: "Pump is alarming",
    PivCode.BOLUS_UNSUPPORTED: "Bolus order type not supported",
    PivCode.MULTISTEP_UNSUPPORTED: "Multistep order type not supported",
}

#: codes for a request the pump cannot take now, whatever its content (HL7 "AR": reject)
NOT_CONTENT: frozenset[PivCode] = frozenset(
    {PivCode.INFUSER_BUSY, PivCode.POWERED_OFF, PivCode.OFFLINE, PivCode.CANNOT_ACCEPT, PivCode.ALARMING}
)


class OrderError(InputError):
    """The order cannot become a pending program: ``where`` (segment-field or JSON path), why, and the PIV code."""

    def __init__(self, where: str, why: str, code: PivCode) -> None:
        super().__init__(where, why)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class InfusionOrder:
    """A validated infusion order (new order; one step). Quantities carry UCUM units."""

    order_id: str  # placer order number (ORC-2.1 / MedicationRequest.identifier)
    control: str = "RE"  # RE: a new order; XO: a new rate or dose for the running program of this order
    order_namespace: str = ""
    requested_at: datetime  # when the clinician initiated the request (ORC-9 / authoredOn), aware
    caregiver: str  # who initiated it (ORC-19.1 / requester)
    patient_id: str  # PID-3.1 / subject
    patient_name: str = ""
    drug_code: str = ""
    drug_system: str = ""
    drug_text: str = ""
    indication: str = ""  # the library therapy, when a drug has several in a care area (RXG-22)
    vtbi: Quantity | None = None  # mL
    rate: Quantity | None = None  # a flow (mL/h) or a dose rate (ug/kg/min, [iU]/h, ...)
    strength: Quantity | None = None  # drug amount in the container (mg, [iU], ...)
    diluent: Quantity | None = None  # container volume (mL)
    duration: Quantity | None = None  # infusion duration (s, min, h)
    pump_id: str
    channel: int | None = None  # 1-based; None: the pump's only channel
    weight: Quantity | None = None  # kg
    bsa: Quantity | None = None  # m2
    care_area: str | None = None
    places: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # deviations tolerated while reading the order

    def at(self, name: str) -> str:
        """Where field ``name`` came from in the sender's message (``RXG-15``), or the name itself."""
        return self.places.get(name, name)

    @property
    def reference(self) -> str:
        """``ORD-1001^BCMA``-style label for logs and the pump's screen."""
        return f"{self.order_id}^{self.order_namespace}" if self.order_namespace else self.order_id
