"""Check and answer messages offline, for integrators (``openinfusion hl7 check`` / ``hl7 answer``).

:func:`split_messages` cuts a file into messages: MLLP frames if it has any, else at each line that
starts an MSH. :func:`check_message` runs what the gateway runs on receipt (decode, header and hl7apy
structure, and for an order its content and units; with a ward, the drug library and DERS check) and
returns every problem found. :func:`answering_ward` builds the ward that answers as the gateway would:
the pumps the orders name, in one care area, with the library given, at the time the message was sent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from openinfusion.druglib.model import Library
from openinfusion.interop.hl7.header import PCD_MESSAGES, accept
from openinfusion.interop.hl7.message import Message, parse_ts, read_message
from openinfusion.interop.hl7.pcd03 import read_order
from openinfusion.interop.hl7.problems import Hl7Code, MessageError, Problem, Severity, tolerated
from openinfusion.interop.hl7.receiver import locate
from openinfusion.interop.orders import OrderError
from openinfusion.interop.ward import VirtualWard
from openinfusion.units import Duration

_FRAME = re.compile(rb"\x0b(.*?)\x1c\r?", re.S)


def split_messages(data: bytes) -> list[bytes]:
    """The messages in a file: MLLP frames, or plain text split before each ``MSH|`` line."""
    if b"\x0b" in data:
        return [m.group(1) for m in _FRAME.finditer(data)] or [data]
    parts = re.split(rb"(?:\r\n|\r|\n)(?=MSH\|)", data.strip(b"\r\n"))
    return [p for p in parts if p.strip()] or [data]


def is_order(data: bytes) -> bool:
    """Whether ``data`` looks like an ``RGV^O15`` (worth a ward to check against the library)."""
    return b"|RGV^O15" in data[:400]


@dataclass(frozen=True, slots=True)
class Checked:
    """One message's verdict: its type and control ID (when readable) and what was found."""

    type: str
    control_id: str
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)


def check_message(data: bytes, ward: VirtualWard | None = None) -> Checked:
    """Every problem the gateway would find in ``data`` (see the module docstring)."""
    try:
        message = read_message(data)
    except MessageError as e:
        return Checked("?", "", e.problems)
    kind = "^".join(p for p in message.type if p) or "?"
    verdict = accept(message, known=PCD_MESSAGES)
    if verdict.code != "CA" or message.type[0] != "RGV":
        return Checked(kind, message.control_id, verdict.problems)
    try:
        order = read_order(message)
    except OrderError as e:
        found = Problem(locate(e.where), Hl7Code.APPLICATION_INTERNAL, e.why, Severity.ERROR, e.code)
        return Checked(kind, message.control_id, (*verdict.problems, found))
    notes = tuple(tolerated("MSH", 0, n) for n in order.notes)
    if ward is None:
        return Checked(kind, message.control_id, (*verdict.problems, *notes))
    delivery = ward.deliver(order)
    if delivery.accepted or delivery.code is None:
        return Checked(kind, message.control_id, (*verdict.problems, *notes))
    found = Problem(locate(delivery.where), Hl7Code.APPLICATION_INTERNAL, delivery.why, Severity.ERROR, delivery.code)
    return Checked(kind, message.control_id, (*verdict.problems, found))


def answering_ward(data: bytes, library: Library, care_area: str | None) -> VirtualWard:
    """A ward set at the message's send time (MSH-7), holding the pumps its orders name, in ``care_area``."""
    sent = dt.datetime.now(dt.UTC)
    pumps: dict[str, int] = {}
    try:
        message = read_message(data)
        sent = _sent(message) or sent
        order = read_order(message)
        pumps[order.pump_id] = max(order.channel or 1, pumps.get(order.pump_id, 1))
    except (MessageError, OrderError):
        pass
    ward = VirtualWard(library, time_origin=sent - dt.timedelta(seconds=2))
    for pump_id, channels in pumps.items():
        ward.add_pump(pump_id, care_area, channels)
    ward.advance(Duration.s(2))
    return ward


def _sent(message: Message) -> dt.datetime | None:
    try:
        return parse_ts(message.msh.get(7), ("MSH", 7), dt.UTC, [])
    except MessageError:
        return None
