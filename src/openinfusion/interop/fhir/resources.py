"""FHIR R4 resources from the pump's status and event log (interop.md §5, the PoCD IG where it applies).

* Device: the pump (MDS, ``70049``) and one Device per channel (VMD, ``70050``, ``parent`` the pump).
* DeviceMetric: per channel, the infusion rate (setting) and the volume infused (measurement); ``source``
  the pump, ``parent`` the channel (PoCD: metrics hang off the MDS).
* Observation: the rate and volume infused now, ``device`` the DeviceMetric, ``subject`` the pump Device
  (PoCD: device settings, explicitly the infusion rate, have the MDS as subject); and the downstream line
  pressure (UCUM ``mm[Hg]``) when the pump reports it, under a local code: the shared reference gives no
  MDC code for it (to be resolved against RTMMS, like the PCD-10 codes sent as ``0``).
* MedicationAdministration: one per order that ran, from the event log (OI-IOP-3): ``effectivePeriod``
  from its first delivery start to its completion or clearing, ``status`` from the last event
  (in-progress, on-hold, completed, stopped), ``dosage.rateQuantity`` the programmed rate and
  ``dosage.dose`` the volume infused, ``request`` the order, ``device`` the pump.

Every resource is built as data, read through the fhir.resources R4B model (types) and returned as
JSON-ready dicts; tests validate each against the official R4 JSON Schema.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.devicemetric import DeviceMetric
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.resource import Resource

from openinfusion.interop import terminology as mdc
from openinfusion.interop.gateway import ChannelStatus, EventSource, OrderRecord, PumpStatus
from openinfusion.interop.hl7.observations import number
from openinfusion.pump.eventlog import EventKind, LoggedEvent, decode_quantity
from openinfusion.units import Quantity

PUMP_SYSTEM: Final = "urn:openinfusion:pump"
ORDER_SYSTEM: Final = "urn:openinfusion:order"
ROUTE_IV: Final = {"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}
PRESSURE_CODE: Final = {"system": mdc.LINE_PRESSURE.system, "code": mdc.LINE_PRESSURE.code,
                        "display": mdc.LINE_PRESSURE.display}  # fmt: skip
_ID = re.compile(r"[^A-Za-z0-9\-.]")


_SYSTEMS: Final = {"NDC": "http://hl7.org/fhir/sid/ndc", "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm"}


def code_system(name: str) -> str:
    """The FHIR system URI of an HL7 v2 coding system name (``NDC``, ``RXNORM``; others as a URN)."""
    if name.startswith(("http://", "https://", "urn:")):
        return name
    return _SYSTEMS.get(name.upper(), f"urn:openinfusion:codesystem:{fhir_id(name or 'library')}")


def fhir_id(text: str) -> str:
    """A FHIR id (``[A-Za-z0-9-.]{1,64}``) for an identifier that may hold other characters."""
    return (_ID.sub("-", text) or "-")[:64]


def _json(model: Resource) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
    return data


def _mdc(code: mdc.Code, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": mdc.MDC_SYSTEM, "code": str(code.code), "display": display or code.refid}
    return {"coding": [coding], "text": display or code.refid}


def quantity(q: Quantity) -> dict[str, Any]:
    """A UCUM Quantity (value exact to the device's precision)."""
    return {"value": Decimal(number(q.value)), "unit": q.unit.code, "system": mdc.UCUM_SYSTEM, "code": q.unit.code}


def _when(status: PumpStatus) -> str:
    return status.at.isoformat()


def devices(status: PumpStatus) -> list[dict[str, Any]]:
    """The pump Device and one Device per channel."""
    pump = {
        "resourceType": "Device", "id": fhir_id(status.pump_id),
        "identifier": [{"system": PUMP_SYSTEM, "value": status.pump_id}],
        "status": "active", "type": _mdc(mdc.PUMP_MDS, "Infusion pump"),
        "deviceName": [{"name": status.pump_id, "type": "user-friendly-name"}],
        "version": [{"type": {"text": "drug library"}, "value": status.library}] if status.library else None,
        "patient": {"reference": f"Patient/{fhir_id(status.patient_id)}"} if status.patient_id else None,
    }  # fmt: skip
    out = [_json(Device.model_validate({k: v for k, v in pump.items() if v is not None}))]
    for channel in status.channels:
        vmd = {
            "resourceType": "Device", "id": _channel_id(status, channel), "status": "active",
            "identifier": [{"system": PUMP_SYSTEM, "value": f"{status.pump_id}/{channel.number}"}],
            "type": _mdc(mdc.PUMP_VMD, "Infusion pump channel"),
            "deviceName": [{"name": f"{status.pump_id} channel {channel.number}", "type": "user-friendly-name"}],
            "parent": {"reference": f"Device/{fhir_id(status.pump_id)}"},
        }  # fmt: skip
        out.append(_json(Device.model_validate(vmd)))
    return out


def _channel_id(status: PumpStatus, channel: ChannelStatus) -> str:
    return fhir_id(f"{status.pump_id}.{channel.number}")


_METRICS: Final = (("rate", mdc.FLOW_PUMP, "setting"), ("volume", mdc.VOL_DELIV_TOTAL, "measurement"))


def device_metrics(status: PumpStatus) -> list[dict[str, Any]]:
    """Per channel: the rate (setting) and the volume infused (measurement)."""
    out = []
    for channel in status.channels:
        running = channel.state in {"infusing", "kvo"}
        for name, code, category in _METRICS:
            unit = mdc.unit_code("mL/h" if name == "rate" else "mL")
            assert unit.mdc is not None
            metric = {
                "resourceType": "DeviceMetric", "id": f"{_channel_id(status, channel)}.{name}",
                "type": _mdc(code), "unit": _mdc(unit.mdc, unit.ucum),
                "source": {"reference": f"Device/{fhir_id(status.pump_id)}"},
                "parent": {"reference": f"Device/{_channel_id(status, channel)}"},
                "operationalStatus": "on" if running else "standby", "category": category,
            }  # fmt: skip
            out.append(_json(DeviceMetric.model_validate(metric)))
    return out


def observations(status: PumpStatus) -> list[dict[str, Any]]:
    """Per channel, now: the rate delivered and the volume infused (PoCD: subject is the pump Device)."""
    out = []
    for channel in status.channels:
        values = (
            ("rate", mdc.FLOW_PUMP, channel.rate.quantity()),
            ("volume", mdc.VOL_DELIV_TOTAL, channel.delivered.quantity()),
        )
        stamp = f"{status.at:%Y%m%d%H%M%S}"
        for name, code, value in values:
            observation = {
                "resourceType": "Observation", "id": fhir_id(f"{_channel_id(status, channel)}.{name}.{stamp}"),
                "status": "final", "code": _mdc(code), "subject": {"reference": f"Device/{fhir_id(status.pump_id)}"},
                "effectiveDateTime": _when(status), "valueQuantity": quantity(value),
                "device": {"reference": f"DeviceMetric/{_channel_id(status, channel)}.{name}"},
            }  # fmt: skip
            out.append(_json(Observation.model_validate(observation)))
        if channel.pressure_mmhg is not None:
            out.append(_pressure(status, channel, channel.pressure_mmhg, stamp))
    return out


def _pressure(status: PumpStatus, channel: ChannelStatus, mmhg: float, stamp: str) -> dict[str, Any]:
    value = {"value": Decimal(f"{mmhg:.1f}"), "unit": "mmHg", "system": mdc.UCUM_SYSTEM, "code": "mm[Hg]"}
    observation = {
        "resourceType": "Observation", "id": fhir_id(f"{_channel_id(status, channel)}.pressure.{stamp}"),
        "status": "final", "code": {"coding": [PRESSURE_CODE], "text": PRESSURE_CODE["display"]},
        "subject": {"reference": f"Device/{fhir_id(status.pump_id)}"}, "effectiveDateTime": _when(status),
        "valueQuantity": value, "device": {"reference": f"Device/{_channel_id(status, channel)}"},
    }  # fmt: skip
    return _json(Observation.model_validate(observation))


_ENDS: Final = {
    EventKind.VTBI_COMPLETE: "completed",
    EventKind.PROGRAM_CLEARED: "stopped",
    EventKind.INFUSION_STOPPED: "on-hold",
    EventKind.INFUSION_STARTED: "in-progress",
    EventKind.KVO_STARTED: "completed",
}


def medication_administrations(source: EventSource, pump_id: str) -> list[dict[str, Any]]:
    """One MedicationAdministration per order that was confirmed and started on ``pump_id``."""
    status = source.status(pump_id)
    events = source.events(pump_id)
    out = []
    for record in source.orders(pump_id):
        if record.confirmed_seq is None:
            continue
        mine = _program_events(events, record)
        started = [e for e in mine if e.kind is EventKind.INFUSION_STARTED]
        if not started:
            continue
        now = (
            status.channels[record.channel - 1].delivered.quantity() if record.channel <= len(status.channels) else None
        )
        out.append(_administration(record, mine, started[0], status.time_origin, pump_id=pump_id, delivered_now=now))
    return out


def _program_events(events: tuple[LoggedEvent, ...], record: OrderRecord) -> list[LoggedEvent]:
    """The channel's events from the order's PROGRAM_CONFIRMED to the next one (the program's life)."""
    channel = record.channel - 1
    mine = []
    for event in events:
        if event.channel != channel or record.confirmed_seq is None or event.seq <= record.confirmed_seq:
            continue
        if event.kind is EventKind.PROGRAM_CONFIRMED:
            break
        mine.append(event)
    return mine


def _administration(record: OrderRecord, mine: list[LoggedEvent], first: LoggedEvent, origin: datetime, *,
                    pump_id: str, delivered_now: Quantity | None) -> dict[str, Any]:  # fmt: skip
    state = "in-progress"
    end: datetime | None = None
    delivered: Quantity | None = None
    for event in mine:
        if event.kind in _ENDS:
            state = _ENDS[event.kind] if state != "completed" else state
        if "delivered" in event.data:
            delivered = decode_quantity(event.data["delivered"])
        if event.kind in (EventKind.VTBI_COMPLETE, EventKind.PROGRAM_CLEARED) and end is None:
            end = origin + timedelta(microseconds=event.t.us)
    if state == "in-progress":
        delivered = delivered_now
    o = record.order
    coding = [{"system": code_system(o.drug_system), "code": o.drug_code or record.drug,
               "display": o.drug_text or record.drug_label}]  # fmt: skip
    period: dict[str, str] = {"start": (origin + timedelta(microseconds=first.t.us)).isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    dosage: dict[str, Any] = {"route": {"coding": [ROUTE_IV]}, "rateQuantity": quantity(record.rate.quantity())}
    if delivered is not None:
        dosage["dose"] = quantity(delivered)
    if record.dose is not None:
        dosage["text"] = f"{record.dose} ({record.drug_label} {record.concentration})"
    resource = {
        "resourceType": "MedicationAdministration", "id": fhir_id(f"{pump_id}.{record.confirmed_seq}"),
        "identifier": [{"system": ORDER_SYSTEM, "value": o.order_id}], "status": state,
        "medicationCodeableConcept": {"coding": coding, "text": record.drug_label},
        "subject": {"reference": f"Patient/{fhir_id(o.patient_id)}"}, "effectivePeriod": period,
        "performer": [{"actor": {"reference": f"Practitioner/{fhir_id(record.confirmed_by or o.caregiver)}"}}],
        "request": {"reference": f"MedicationRequest/{fhir_id(o.order_id)}"},
        "device": [{"reference": f"Device/{fhir_id(pump_id)}"}], "dosage": dosage,
    }  # fmt: skip
    return _json(MedicationAdministration.model_validate(resource))
