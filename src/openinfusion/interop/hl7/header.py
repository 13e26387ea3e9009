"""Accept-level checks of an incoming message's MSH (interop.md §1.1, §4.2).

What decides the commit acknowledgement (CA/CE/CR): a message type we consume, a version we read
(2.6; 2.5.x and 2.7.x tolerated and noted), a processing ID, a control ID, a time stamp, and the
profile OID in MSH-21.3 where the profile has one (missing: tolerated, as in the TF's own examples;
another profile's OID: refused). Structure errors (hl7apy) make it CE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timezone
from typing import Final

from openinfusion.interop.hl7.message import Message, parse_ts
from openinfusion.interop.hl7.problems import Hl7Code, MessageError, Problem, problem, tolerated
from openinfusion.interop.hl7.structure import check_structure
from openinfusion.interop.hl7.writer import PROFILE_OIDS

#: (MSH-9.1, MSH-9.2) we consume -> the profile whose OID MSH-21.3 may carry (older OIDs accepted, §7)
CONSUMED: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("RGV", "O15"): (PROFILE_OIDS["PCD-03"],),
    ("ORA", "R41"): (PROFILE_OIDS["PCD-05"],),
    ("ORU", "R41"): (PROFILE_OIDS["PCD-05"],),  # the B.1 spelling of PCD-05 (interop.md §7.1)
    ("ACK", ""): (),
}
#: every IHE PCD message, for checking (``openinfusion hl7 check``) rather than consuming
PCD_MESSAGES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    **CONSUMED,
    ("ORU", "R01"): (PROFILE_OIDS["PCD-01"],),
    ("ORU", "R40"): (PROFILE_OIDS["PCD-04"], "1.3.6.1.4.1.19376.1.6.4.4.1"),  # both OIDs in use (interop.md §7.2)
    ("ORU", "R42"): (PROFILE_OIDS["PCD-10"], "1.3.6.1.4.1.19376.1.6.1.10.1"),  # and the older IPEC one (§7.3)
    ("RRG", "O16"): (PROFILE_OIDS["RRG"],),
}
_TOLERATED_VERSIONS: Final = frozenset({"2.5", "2.5.1", "2.7", "2.7.1"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The accept decision: CA (no errors), CE (content errors) or CR (cannot be processed at all)."""

    code: str
    problems: tuple[Problem, ...]  # errors and tolerated notes, in the order found


def accept(
    message: Message, local: timezone = UTC, known: dict[tuple[str, str], tuple[str, ...]] = CONSUMED
) -> Verdict:
    """Check ``message``'s header and structure for acceptance (the commit acknowledgement).

    ``known`` maps the message types accepted to their profile OIDs (default: what the gateway consumes).
    """
    msh = message.msh
    found: list[Problem] = list(message.notes)
    reject: list[Problem] = []
    code, event, structure = message.type
    key = (code, event if code != "ACK" else "")
    if not code:
        reject.append(problem("MSH", 9, "message type is missing"))
    elif key not in known:
        reject.append(problem("MSH", 9, f"{code}^{event} is not a message this gateway consumes",
                              Hl7Code.UNSUPPORTED_MESSAGE_TYPE))  # fmt: skip
    version = msh.get(12)
    if version in _TOLERATED_VERSIONS:
        found.append(tolerated("MSH", 12, f"version {version} read as 2.6"))
    elif version != "2.6":
        reject.append(problem("MSH", 12, f"version {version or '(empty)'} is not supported (2.6)",
                              Hl7Code.UNSUPPORTED_VERSION))  # fmt: skip
    if msh.get(11) not in {"P", "D", "T"}:
        reject.append(problem("MSH", 11, f"processing ID {msh.get(11) or '(empty)'} is not P, D or T",
                              Hl7Code.UNSUPPORTED_PROCESSING_ID))  # fmt: skip
    if not message.control_id:
        reject.append(problem("MSH", 10, "message control ID is missing"))
    if reject:
        return Verdict("CR", tuple(found + reject))
    errors: list[Problem] = []
    try:
        parse_ts(msh.get(7), ("MSH", 7), local, found)
    except MessageError as e:
        errors += e.problems
    if code != "ACK" and key in known:
        if not event or (structure and structure != f"{code}_{event}" and code != "ORU"):
            found.append(tolerated("MSH", 9, f"message structure {structure or '(empty)'} for {code}^{event}"))
        oid = msh.get(21, 3)
        if not oid:
            found.append(tolerated("MSH", 21, "no profile OID in MSH-21.3"))
        elif oid not in known[key]:
            errors.append(problem("MSH", 21, f"profile OID {oid} is not {' or '.join(known[key])}",
                                  Hl7Code.TABLE_VALUE, component=3))  # fmt: skip
    ours = {e.where for e in errors}
    errors += [p for p in check_structure(message) if p.where not in ours]
    return Verdict("CE" if errors else "CA", tuple(found + errors))
