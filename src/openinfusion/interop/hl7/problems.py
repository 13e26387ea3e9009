"""What is wrong with a message, and where: the one vocabulary of HL7 errors (interop.md §2.2, §4.2).

A :class:`Problem` names a place (segment, its occurrence, field, component: ``RXG-16.1``), an HL7
error code (table 0357), a severity (table 0516: E error, W warning, I information), and for
application errors the IHE PIV code (9001-9044, ``ERR-5``). Information problems are what we
*tolerated* from a sender (liberal in what we accept), reported back in the acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from openinfusion.errors import InputError
from openinfusion.interop.orders import PivCode


class Hl7Code(IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    ACCEPTED = 0
    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    APPLICATION_INTERNAL = 207

    @property
    def text(self) -> str:
        return self.name.replace("_", " ").capitalize()


class Severity(Enum):
    """HL7 table 0516."""

    ERROR = "E"
    WARNING = "W"
    INFORMATION = "I"


@dataclass(frozen=True, slots=True)
class Location:
    """Segment id, occurrence (1-based), field, component; 0 means not given."""

    segment: str
    field: int = 0
    component: int = 0
    occurrence: int = 1

    def __str__(self) -> str:
        text = self.segment if self.occurrence == 1 else f"{self.segment}[{self.occurrence}]"
        if self.field:
            text += f"-{self.field}"
            if self.component:
                text += f".{self.component}"
        return text

    def erl(self) -> tuple[str, ...]:
        """ERR-2 (ERL) components, unescaped: ``("RXG", "1", "16", "1", "1")``."""
        parts = [self.segment, str(self.occurrence)]
        if self.field:
            parts += [str(self.field), "1"]
            if self.component:
                parts.append(str(self.component))
        return tuple(parts)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or tolerated) in a message, located."""

    where: Location
    code: Hl7Code
    text: str
    severity: Severity = Severity.ERROR
    piv: PivCode | None = None

    def __str__(self) -> str:
        tag = "" if self.piv is None else f" [{self.piv.value}]"
        return f"{self.where}: {self.text}{tag}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class MessageError(InputError):
    """A message refused for the problems it lists (the first one is ``where: why``)."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        first = next(p for p in problems if p.is_error)
        super().__init__(str(first.where), first.text if first.piv is None else f"{first.text} [{first.piv.value}]")
        self.problems = problems


def problem(
    segment: str, field: int, text: str, code: Hl7Code = Hl7Code.REQUIRED_FIELD_MISSING, *, component: int = 0,
    piv: PivCode | None = None, occurrence: int = 1,
) -> Problem:  # fmt: skip
    """An error at ``segment-field[.component]``."""
    return Problem(Location(segment, field, component, occurrence), code, text, Severity.ERROR, piv)


def tolerated(segment: str, field: int, text: str, *, component: int = 0) -> Problem:
    """An information note: a deviation we accepted because its meaning is unambiguous."""
    return Problem(Location(segment, field, component), Hl7Code.ACCEPTED, text, Severity.INFORMATION)
