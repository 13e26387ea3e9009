"""Strict HL7 v2.6 structure validation: the one module that talks to hl7apy.

:func:`check_structure` validates every segment (required fields, data types) and then the message
structure (segment order, groups, cardinality) against the v2.6 reference hl7apy ships, and returns
located :class:`~openinfusion.interop.hl7.problems.Problem` s. Where the IHE PCD profile relaxes the
base standard (interop.md §2.2: ``[TQ1]`` is optional in the PCD-03 GIVE group; RXG-5/-7 are empty in
a rate change), :data:`PROFILE_RELAXATIONS` says so, by message structure; nothing else is waived.
hl7apy reports an invalid value without its field, so the field is found by re-reading the segment's
prefixes until the error appears.
"""

from __future__ import annotations

import re
from typing import Final

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message, parse_segment

from openinfusion.interop.hl7.message import Message
from openinfusion.interop.hl7.problems import Hl7Code, Problem, problem

VERSION: Final = "2.6"

#: message structure -> hl7apy element names whose base-standard "required" the PCD profile lifts
PROFILE_RELAXATIONS: Final[dict[str, frozenset[str]]] = {
    # [TQ1] optional; RXG-5/-7 empty for a rate change; OBX-11 absent on the pump-ID OBX (TF examples)
    "RGV_O15": frozenset({"RGV_O15_TIMING_GIVE", "RXG_5", "RXG_7", "OBX_11"}),
}
#: structures hl7apy's v2.6 tables lack, checked as the v2.6 structure the IHE profile builds them on
STRUCTURE_ALIASES: Final[dict[str, str]] = {"ORU_R40": "ORU^R01^ORU_R01"}
#: structures with no v2.6 equivalent in hl7apy (PCD-05 is a v2.7 message): their segments are checked only
SEGMENTS_ONLY: Final = frozenset({"ORA_R41", "ORU_R41"})
_FIELD_REF = re.compile(r"\b([A-Z][A-Z0-9]{2})_(\d+)\b")
_GROUP_FIRST: Final = {"TIMING_GIVE": "TQ1", "GIVE": "RXG", "ORDER": "ORC", "PATIENT": "PID", "OBSERVATION": "OBX"}


def check_structure(message: Message) -> list[Problem]:
    """Every structural problem hl7apy finds in ``message`` (empty when it conforms), located."""
    structure = message.type[2] or f"{message.type[0]}_{message.type[1]}"
    relaxed = PROFILE_RELAXATIONS.get(structure, frozenset())
    problems: list[Problem] = []
    for segment in message.segments:
        raw = "MSH|" + "|".join(segment.fields[2:]) if segment.id == "MSH" else "|".join(segment.fields)
        found = _segment_problem(segment.id, raw, relaxed, segment.occurrence)
        if found is not None:
            problems.append(found)
    if problems or structure in SEGMENTS_ONLY:
        return problems
    try:
        parsed = parse_message(_as_version(message), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        parsed.validate()
    except HL7apyException as e:
        text = str(e)
        if not any(name in text for name in relaxed):
            problems.append(_locate(text, Hl7Code.SEGMENT_SEQUENCE))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        problems.append(problem("MSH", 9, f"structure not recognised: {e}", Hl7Code.SEGMENT_SEQUENCE))
    return problems


def _as_version(message: Message) -> str:
    """The message text with MSH-12 read as v2.6 (tolerated 2.5/2.7 senders are checked against 2.6) and
    MSH-9 as the structure hl7apy knows (:data:`STRUCTURE_ALIASES`)."""
    msh = list(message.msh.fields)
    while len(msh) <= 12:
        msh.append("")
    msh[12] = VERSION
    alias = STRUCTURE_ALIASES.get(message.type[2] or f"{message.type[0]}_{message.type[1]}")
    if alias is not None:
        msh[9] = alias
    lines = ["MSH|" + "|".join(msh[2:])]
    lines += ["|".join(s.fields) for s in message.segments[1:]]
    return "\r".join(lines)


def _segment_problem(seg_id: str, raw: str, relaxed: frozenset[str], occurrence: int) -> Problem | None:
    if seg_id.startswith("Z"):
        return None  # site-defined segments have no reference structure
    try:
        segment = parse_segment(raw, version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        segment.validate()
    except HL7apyException as e:
        text = str(e)
        if any(name in text for name in relaxed):
            return None
        located = _locate(text, Hl7Code.REQUIRED_FIELD_MISSING, occurrence)
        return located if located.where.field else _bisect(seg_id, raw, text, occurrence)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        return _bisect(seg_id, raw, str(e), occurrence)
    return None


def _bisect(seg_id: str, raw: str, text: str, occurrence: int) -> Problem:
    """Find the first field whose inclusion makes the segment unreadable (hl7apy does not say)."""
    parts = raw.split("|")
    for end in range(2, len(parts) + 1):
        try:
            parse_segment("|".join(parts[:end]), version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        except (HL7apyException, ValueError, TypeError, IndexError, KeyError):
            number = end - 1 if seg_id != "MSH" else end
            return problem(seg_id, number, text, Hl7Code.DATA_TYPE, occurrence=occurrence)
    return problem(seg_id, 0, text, Hl7Code.DATA_TYPE, occurrence=occurrence)


def _locate(text: str, code: Hl7Code, occurrence: int = 1) -> Problem:
    m = _FIELD_REF.search(text)
    if m is not None:
        return problem(m.group(1), int(m.group(2)), text, code, occurrence=occurrence)
    for group, seg in _GROUP_FIRST.items():
        if group in text:
            return problem(seg, 0, text, code)
    seg_m = re.search(r"\b([A-Z][A-Z0-9]{2})\b", text)
    return problem(seg_m.group(1) if seg_m else "MSH", 0, text, code)
