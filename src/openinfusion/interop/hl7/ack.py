"""Acknowledgements we send (interop.md §2.2, §4.2-4.3): strict, with every problem in an ERR segment.

* accept (commit) ACK: ``ACK^<event>^ACK`` with MSA-1 CA, CE or CR, MSH-15/16 ``NE``;
* application ACK to an order: ``RRG^O16^RRG_O16`` with MSA-1 AA, AE or AR, the order echoed in ORC
  (ORC-1 ``OK`` accepted or ``UA`` unable to accept, ORC-2, ORC-9, ORC-19) and the PID of the order;
* general ACK (``ACK^R41^ACK``...) for the other messages we consume.

Each :class:`Problem` becomes one ERR: ERR-2 location (ERL), ERR-3 HL7 code (table 0357), ERR-4
severity (E, W, I), ERR-5 the PIV application error code where there is one, ERR-8 the text. What we
tolerated is reported with severity I, soft-limit findings with W, so the sender learns both.
"""

from __future__ import annotations

from openinfusion.interop.hl7.message import Message
from openinfusion.interop.hl7.problems import Hl7Code, Problem, Severity
from openinfusion.interop.hl7.writer import Sender, components, join, segment, text
from openinfusion.interop.orders import PIV_TEXT


def err(p: Problem) -> str:
    """One ERR segment for ``p``."""
    code = components(str(p.code.value), p.code.text, "HL70357")
    piv = "" if p.piv is None else components(str(p.piv.value), PIV_TEXT.get(p.piv, p.piv.name), "HL70533")
    return segment("ERR", "", components(*p.where.erl()), code, p.severity.value, piv, "", "", text(p.text[:1000]))


def _receiver(message: Message | None) -> str:
    return "" if message is None else message.msh.raw(3)


def wants_ack(field_value: str, ok: bool) -> bool:
    """Whether MSH-15/16 (table 0155) asks for this acknowledgement: AL, ER (errors), SU (success), NE."""
    mode = field_value.strip().upper()
    return mode == "AL" or (mode == "ER" and not ok) or (mode == "SU" and ok)


def commit_ack(sender: Sender, message: Message | None, code: str, problems: tuple[Problem, ...],
               control_id: str = "") -> str:  # fmt: skip
    """The accept acknowledgement: MSA-1 ``code`` (CA, CE, CR) for ``message`` (None if unreadable)."""
    event = message.type[1] if message is not None and message.type[1] else "O15"
    msh, _ = sender.msh(f"ACK^{event}^ACK", accept="NE", application="NE", profile=None, receiver=_receiver(message))
    acked = message.control_id if message is not None else control_id
    return join([msh, segment("MSA", code, text(acked)), *(err(p) for p in problems)])


def general_ack(sender: Sender, message: Message, code: str, problems: tuple[Problem, ...] = ()) -> str:
    """An application acknowledgement (AA, AE, AR) as a general ACK, for the PCD-05 and other reports."""
    event = message.type[1]
    msh, _ = sender.msh(f"ACK^{event}^ACK", accept="NE", application="NE", profile=None, receiver=_receiver(message))
    return join([msh, segment("MSA", code, text(message.control_id)), *(err(p) for p in problems)])


def order_ack(sender: Sender, message: Message, code: str, problems: tuple[Problem, ...]) -> str:
    """``RRG^O16``: the application acknowledgement of an ``RGV^O15`` (AA, AE or AR)."""
    msh, _ = sender.msh("RRG^O16^RRG_O16", accept="AL", application="NE", profile="RRG", receiver=_receiver(message))
    lines = [msh, segment("MSA", code, text(message.control_id)), *(err(p) for p in problems)]
    pid, orc = message.first("PID"), message.first("ORC")
    if pid is not None and pid.raw(3):
        lines.append(segment("PID", "", "", pid.raw(3), "", pid.raw(5) or '""'))
    if orc is not None:
        fields = [""] * 19
        fields[0] = "OK" if code == "AA" else "UA"
        fields[1], fields[8], fields[18] = orc.raw(2), orc.raw(9), orc.raw(19)
        lines.append(segment("ORC", *fields))
    return join(lines)


def information(notes: tuple[Problem, ...]) -> tuple[Problem, ...]:
    """Only the tolerated-deviation notes of ``notes``."""
    return tuple(p for p in notes if p.severity is Severity.INFORMATION and p.code is Hl7Code.ACCEPTED)
