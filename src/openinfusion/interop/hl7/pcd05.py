"""PCD-05 Report Alert Status (``ORA^R41``) in: what the Alert Manager did with one of our alerts.

Segments ``MSH MSA [PID] [PV1] [ORC] OBR [PRT] [{OBX}] [NTE]`` (interop.md §2.4). MSA-2 is the MSH-10
of the onset PCD-04; OBR-29.2 (or OBR-3) the alert instance ID; OBX-5 values say what happened
(accepted, delivered, read, ...); PRT-4 who. We log each one and acknowledge it.
"""

from __future__ import annotations

from dataclasses import dataclass

from openinfusion.interop.hl7.message import Message
from openinfusion.interop.hl7.problems import MessageError, problem


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """One dissemination status report for an alert we sent."""

    control_id: str  # this PCD-05's MSH-10
    onset_message: str  # MSA-2: MSH-10 of the onset PCD-04
    instance: str  # the alert instance ID (onset OBR-3)
    statuses: tuple[str, ...]  # OBX-5 values, e.g. ("delivered", "read")
    recipients: tuple[str, ...]  # PRT-4/PRT-5 identifiers


def read_alert_status(message: Message) -> AlertStatus:
    """The status in an accepted ``ORA^R41``. Raises :class:`MessageError` naming the missing field."""
    msa, obr = message.first("MSA"), message.first("OBR")
    if msa is None or not msa.get(2):
        raise MessageError((problem("MSA", 2, "the onset PCD-04's control ID is missing"),))
    if obr is None:
        raise MessageError((problem("OBR", 0, "OBR segment is missing"),))
    instance = obr.get(29, 2) or obr.get(29, 1) or obr.get(3)
    if not instance:
        raise MessageError((problem("OBR", 29, "the alert instance ID is missing (OBR-29 or OBR-3)"),))
    statuses = tuple(v for v in (o.get(5) for o in message.all("OBX")) if v)
    recipients = tuple(v for v in (p.get(5) or p.get(4) for p in message.all("PRT")) if v)
    return AlertStatus(message.control_id, msa.get(2), instance, statuses, recipients)
