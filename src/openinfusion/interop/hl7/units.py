"""Numbers and units as HL7 senders write them: NM values and CWE unit fields (MDC or UCUM).

A unit field is read by its coding system, never by position (interop.md §3.4: TF examples put the
partition-4 term code in CWE-1). Both triplets (CWE-1..3 and the alternate CWE-4..6) are read; if they
name different units the field is refused. Unambiguous spellings outside UCUM's case rules (``ml/hr``,
``mcg``, ``IU``) are accepted and noted; ambiguous ones (``U``, ``units``, pounds) are refused, as the
project's unit parser refuses them (OI-UNIT-1).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

from openinfusion.errors import UnitError
from openinfusion.interop.orders import OrderError, PivCode
from openinfusion.interop.terminology import mdc_unit
from openinfusion.units import Quantity, Unit, parse_unit

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_TOKENS: Final = {"ml": "mL", "hr": "h", "hour": "h", "hrs": "h", "l": "L", "meq": "meq", "mEq": "meq",
                  "IU": "[iU]", "[IU]": "[iU]", "mcg": "ug", "MCG": "ug", "MG": "mg", "KG": "kg", "ML": "mL",
                  "sec": "s", "MIN": "min"}  # fmt: skip


def number(value: str, where: str, what: str) -> Fraction:
    """An HL7 NM value, exactly. Raises :class:`OrderError` (9004) naming ``where``."""
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        raise OrderError(where, f"{what} {value!r} is not a number", PivCode.INVALID_PARAMETER)
    result = Fraction(text)
    if result < 0:
        raise OrderError(where, f"{what} must not be negative, got {value}", PivCode.INVALID_PARAMETER)
    return result


def _ucum(code: str) -> tuple[Unit, str | None]:
    """``code`` as UCUM, or with unambiguous token spellings fixed (then the note says so)."""
    try:
        return parse_unit(code, "unit"), None
    except UnitError:
        pass
    fixed = "/".join(_TOKENS.get(token, token) for token in code.split("/"))
    return parse_unit(fixed, "unit"), f"unit {code!r} read as UCUM {fixed!r}"


def read_unit(parts: tuple[str, ...], where: str, notes: list[str]) -> Unit:
    """The unit a CWE field names (components ``parts``). Raises :class:`OrderError` (9008)."""
    padded = (*parts, "", "", "", "", "", "")[:6]
    found: list[tuple[Unit, str | None]] = []
    problems: list[str] = []
    for ident, label, named in (padded[0:3], padded[3:6]):
        if not (ident or label):
            continue
        system = named.upper()
        try:
            if system == "MDC":
                code = mdc_unit(ident, label)
                if code is None:
                    problems.append(f"MDC unit {ident}^{label} is not one this gateway knows")
                    continue
                found.append((parse_unit(code, "unit"), None))
            elif system in {"UCUM", ""}:
                unit, note = _ucum_either(ident, label)
                if system == "":
                    note = f"unit {ident or label!r} without a coding system read as UCUM"
                found.append((unit, note))
            else:
                problems.append(f"coding system {system!r} is not MDC or UCUM")
        except UnitError as e:
            problems.append(e.why)
    if not found:
        detail = "; ".join(problems) or "no unit given"
        raise OrderError(where, detail, PivCode.INVALID_UNITS)
    first = found[0][0]
    for other, _ in found[1:]:
        if other.code != first.code or other.dim != first.dim:
            raise OrderError(where, f"the MDC and UCUM units disagree ({first.code} vs {other.code})",
                               PivCode.INVALID_UNITS)  # fmt: skip
    notes.extend(note for _, note in found if note)
    return first


def _ucum_either(ident: str, label: str) -> tuple[Unit, str | None]:
    """CWE-1 is the UCUM code; the TF examples sometimes put a term code there and the UCUM code in CWE-2."""
    try:
        return _ucum(ident)
    except UnitError:
        if not label:
            raise
    unit, note = _ucum(label)
    return unit, note or f"UCUM unit taken from the text component ({label!r})"


def quantity(value: str, unit_parts: tuple[str, ...], where: tuple[str, str], what: str, notes: list[str]) -> Quantity:
    """A value and its unit field (``where`` = (value field, unit field), e.g. ``("RXG-15", "RXG-16")``)."""
    return Quantity(number(value, where[0], what), read_unit(unit_parts, where[1], notes))
