"""The gateway's HL7 inbound: every message in, the acknowledgements out (interop.md §2.2, §4).

:meth:`Receiver.receive` never raises on bad input (OI-IOP-2): it reads the message, decides the accept ACK
(CA/CE/CR, :func:`~openinfusion.interop.hl7.header.accept`), and for an accepted message does the
application work. An ``RGV^O15`` becomes an :class:`InfusionOrder` delivered through the
:class:`OrderGateway` (pending at the pump), answered by ``RRG^O16`` (AA, or AE/AR with the PIV code
naming segment and field); an ``ORA^R41`` (PCD-05) is logged and acknowledged; an ``ACK`` to one of
our reports is recorded. Which acknowledgements are sent follows MSH-15/16 (enhanced mode); with both
empty (original mode) the application ACK alone is returned on the same connection. A message that is
not accepted (CE/CR) is always answered, whatever its MSH-15 says: an order must never vanish silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, timezone

from openinfusion.interop.gateway import Delivery, OrderGateway
from openinfusion.interop.hl7.ack import commit_ack, general_ack, order_ack, wants_ack
from openinfusion.interop.hl7.header import accept
from openinfusion.interop.hl7.message import Message, read_message
from openinfusion.interop.hl7.pcd03 import read_order
from openinfusion.interop.hl7.pcd05 import AlertStatus, read_alert_status
from openinfusion.interop.hl7.problems import Hl7Code, Location, MessageError, Problem, Severity, problem
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.orders import NOT_CONTENT, OrderError

_ACK_MODES = frozenset({"", "AL", "ER", "SU", "NE"})
_WHERE = re.compile(r"([A-Z][A-Z0-9]{2})(?:-(\d+)(?:\.(\d+))?)?")


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send back: the commit ACK (same connection) and the application ACK.

    ``application_here`` is True when the application ACK also goes back on the same connection
    (original mode, PCD-05); an RRG^O16 in enhanced mode goes to the IOP on a new connection.
    """

    kind: str  # "order", "alert-status", "ack", "refused"
    commit: str | None = None
    application: str | None = None
    application_here: bool = False
    delivery: Delivery | None = None
    problems: tuple[Problem, ...] = ()


def locate(where: str) -> Location:
    """``"RXG-16"`` -> Location(RXG, 16); anything else is the message as a whole (MSH)."""
    m = _WHERE.fullmatch(where)
    if m is None:
        return Location("MSH")
    return Location(m.group(1), int(m.group(2) or 0), int(m.group(3) or 0))


def _raw_control_id(data: bytes | str) -> str:
    raw = data.decode("latin-1") if isinstance(data, bytes) else data
    first = re.split(r"\r|\n", raw, maxsplit=1)[0]
    parts = first.split("|")
    return parts[9][:50] if first.startswith("MSH") and len(parts) > 9 else ""


@dataclass
class Receiver:
    """Inbound HL7 for one gateway (see the module docstring)."""

    gateway: OrderGateway
    sender: Sender = field(default_factory=Sender)
    local: timezone = UTC
    alert_statuses: list[AlertStatus] = field(default_factory=list)
    acks: list[tuple[str, str]] = field(default_factory=list)  # (acked control ID, MSA-1)

    def receive(self, data: bytes | str) -> Answer:
        """Process one message (see the module docstring); never raises.

        A failure inside the gateway (a defect, not the message) is answered as a commit reject with HL7 error
        207 (application internal error), so the sender knows the order was not taken.
        """
        try:
            return self._receive(data)
        except Exception as e:  # the boundary: a connection must never die on one message
            internal = (problem("MSH", 0, f"internal error: {type(e).__name__}", Hl7Code.APPLICATION_INTERNAL),)
            return Answer("refused", commit=commit_ack(self.sender, None, "CR", internal, _raw_control_id(data)))

    def _receive(self, data: bytes | str) -> Answer:
        try:
            message = read_message(data)
        except MessageError as e:
            refusal = commit_ack(self.sender, None, "CR", e.problems, _raw_control_id(data))
            return Answer("refused", commit=refusal, problems=e.problems)
        verdict = accept(message, self.local)
        # an MSH-15/16 outside table 0155 is answered as AL: a sender is never left without an answer
        msh15, msh16 = (v if v in _ACK_MODES else "AL" for v in (message.msh.raw(15), message.msh.raw(16)))
        original = not msh15 and not msh16
        ok = verdict.code == "CA"
        commit: str | None = None
        if (wants_ack(msh15, ok) or not ok) and message.type[0] != "ACK":  # a refusal is always answered
            commit = commit_ack(self.sender, message, verdict.code if not original else "A" + verdict.code[1],
                                verdict.problems)  # fmt: skip
        if not ok:
            return Answer("refused", commit=commit, problems=verdict.problems)
        code = message.type[0]
        if code == "RGV":
            return self._order(message, commit, verdict.problems, msh16, original)
        if code in {"ORA", "ORU"}:
            return self._alert_status(message, commit)
        msa = message.first("MSA")
        if msa is not None:
            self.acks.append((msa.get(2), msa.get(1)))
        return Answer("ack", problems=verdict.problems)

    def _order(self, message: Message, commit: str | None, notes: tuple[Problem, ...], msh16: str,
               original: bool) -> Answer:  # fmt: skip
        try:
            order = read_order(message, self.local)
        except OrderError as e:
            problem = Problem(locate(e.where), Hl7Code.APPLICATION_INTERNAL, e.why, Severity.ERROR, e.code)
            return self._order_answer(
                message, commit, "AE", (*notes, problem), delivery=None, msh16=msh16, original=original
            )
        delivery = self.gateway.deliver(order)
        information = tuple(Problem(Location("MSH"), Hl7Code.ACCEPTED, n, Severity.INFORMATION) for n in delivery.notes)
        if not delivery.accepted:
            assert delivery.code is not None
            problem = Problem(locate(delivery.where), Hl7Code.APPLICATION_INTERNAL, delivery.why, Severity.ERROR,
                              delivery.code)  # fmt: skip
            code = "AR" if delivery.code in NOT_CONTENT else "AE"
            return self._order_answer(
                message,
                commit,
                code,
                (*notes, *information, problem),
                delivery=delivery,
                msh16=msh16,
                original=original,
            )
        warnings = tuple(Problem(Location("RXG", 15), Hl7Code.ACCEPTED, w, Severity.WARNING) for w in delivery.warnings)
        return self._order_answer(
            message, commit, "AA", (*notes, *information, *warnings), delivery=delivery, msh16=msh16, original=original
        )

    def _order_answer(self, message: Message, commit: str | None, code: str, problems: tuple[Problem, ...], *,
                      delivery: Delivery | None, msh16: str, original: bool) -> Answer:  # fmt: skip
        send = original or wants_ack(msh16, code == "AA")
        application = order_ack(self.sender, message, code, problems) if send else None
        return Answer("order", commit, application, original, delivery, problems)

    def _alert_status(self, message: Message, commit: str | None) -> Answer:
        try:
            status = read_alert_status(message)
        except MessageError as e:
            return Answer("alert-status", commit, general_ack(self.sender, message, "AE", e.problems), True,
                          problems=e.problems)  # fmt: skip
        self.alert_statuses.append(status)
        return Answer("alert-status", commit, general_ack(self.sender, message, "AA"), True)
