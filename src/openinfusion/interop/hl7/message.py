"""Read an HL7 v2 message: decode, split and access fields, liberally but never ambiguously.

Theory of operation. :func:`read_message` turns bytes (or text) into a :class:`Message`: it decodes
(UTF-8, or the MSH-18 character set), accepts ``CR``, ``LF`` or ``CRLF`` segment separators (noting
anything but ``CR`` as tolerated), requires ``MSH`` first with the PCD encoding characters ``|^~\\&``,
refuses oversized messages and fields, and splits segments into fields, repetitions and components.
Values are unescaped (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``) when read with :meth:`Segment.get`. Any problem
raises :class:`MessageError` whose problems name segment and field; tolerated deviations are kept in
:attr:`Message.notes` so the acknowledgement can say what was accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Final

from openinfusion.interop.hl7.problems import Hl7Code, MessageError, Problem, problem, tolerated

MAX_MESSAGE_BYTES: Final = 1 << 20  # 1 MiB: a PCD message is a few kB
MAX_FIELD_CHARS: Final = 4096
ENCODING_CHARS: Final = "^~\\&"
_ESCAPES: Final = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
_ESCAPE = re.compile(r"\\([FSTRE])\\|\\X([0-9A-Fa-f]{2,})\\")
_CHARSETS: Final = {"": "ascii", "ASCII": "ascii", "UNICODE UTF-8": "utf-8", "8859/1": "latin-1"}


def unescape(value: str) -> str:
    """HL7 escape sequences to text (``\\F\\`` -> ``|``; ``\\X41\\`` -> ``A``); others are kept as sent."""

    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return _ESCAPES[m.group(1)]
        hexed = m.group(2)
        if len(hexed) % 2:
            return m.group(0)
        return bytes.fromhex(hexed).decode("latin-1")

    return _ESCAPE.sub(one, value)


def escape(value: str) -> str:
    """Text to an HL7 value: separators escaped; CR and LF (never allowed inside a value) as ``\\X0D\\``."""
    out = value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    out = out.replace("&", "\\T\\").replace("~", "\\R\\")
    return out.replace("\r", "\\X0D\\").replace("\n", "\\X0A\\")


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: its id, its occurrence among segments of that id (1-based), and raw fields by HL7 number."""

    id: str
    occurrence: int
    fields: tuple[str, ...]  # fields[0] is the id; for MSH fields[1] is "|" and fields[2] the encoding characters

    def raw(self, number: int) -> str:
        return self.fields[number] if 0 <= number < len(self.fields) else ""

    def get(self, number: int, component: int = 1, repetition: int = 1, subcomponent: int = 1) -> str:
        """The unescaped value of ``SEG-number.component`` (1-based; missing parts are ``""``)."""
        value = self.raw(number)
        if self.id == "MSH" and number <= 2:
            return value
        reps = value.split("~")
        if repetition > len(reps):
            return ""
        comps = reps[repetition - 1].split("^")
        if component > len(comps):
            return ""
        subs = comps[component - 1].split("&")
        return unescape(subs[subcomponent - 1]).strip() if subcomponent <= len(subs) else ""

    def components(self, number: int, repetition: int = 1) -> tuple[str, ...]:
        """All components of one repetition of a field, unescaped (subcomponents left joined by ``&``)."""
        reps = self.raw(number).split("~")
        if repetition > len(reps):
            return ()
        return tuple(unescape(c).strip() for c in reps[repetition - 1].split("^"))

    def repetitions(self, number: int) -> int:
        value = self.raw(number)
        return len(value.split("~")) if value else 0


@dataclass(frozen=True, slots=True)
class Message:
    """A split message: its segments in order and the deviations tolerated while reading it."""

    segments: tuple[Segment, ...]
    text: str
    notes: tuple[Problem, ...] = field(default=())

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, segment_id: str) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.id == segment_id)

    def first(self, segment_id: str) -> Segment | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def type(self) -> tuple[str, str, str]:
        """MSH-9: message code, trigger event, structure (``RGV``, ``O15``, ``RGV_O15``)."""
        return self.msh.get(9, 1), self.msh.get(9, 2), self.msh.get(9, 3)


def read_message(data: bytes | str) -> Message:
    """Decode and split one message (see the module docstring). Raises :class:`MessageError`."""
    notes: list[Problem] = []
    text = _decode(data, notes)
    text = text.lstrip("\ufeff")
    if "\x0b" in text or "\x1c" in text:
        raise MessageError((problem("MSH", 0, "MLLP framing characters inside the message", Hl7Code.SEGMENT_SEQUENCE),))
    if "\r" not in text and "\n" in text:
        notes.append(tolerated("MSH", 0, "segments separated by LF instead of CR"))
    elif "\r\n" in text:
        notes.append(tolerated("MSH", 0, "segments separated by CRLF instead of CR"))
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    if not lines or not lines[0].startswith("MSH"):
        raise MessageError((problem("MSH", 0, "the message must begin with an MSH segment", Hl7Code.SEGMENT_SEQUENCE),))
    first = lines[0]
    if len(first) < 8 or first[3] != "|" or first[4:8] != ENCODING_CHARS:
        found = first[3:8] if len(first) >= 4 else ""
        raise MessageError(
            (problem("MSH", 2, f"encoding characters must be '|{ENCODING_CHARS}' (IHE PCD), got {found!r}",
                     Hl7Code.DATA_TYPE),)
        )  # fmt: skip
    segments: list[Segment] = []
    seen: dict[str, int] = {}
    for line in lines:
        raw = line.rstrip()
        if raw != line:
            notes.append(tolerated(raw[:3], 0, "trailing spaces after a segment"))
        seg_id = raw[:3]
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", seg_id) or (len(raw) > 3 and raw[3] != "|"):
            raise MessageError((problem(seg_id or "?", 0, f"not a segment: {raw[:20]!r}", Hl7Code.SEGMENT_SEQUENCE),))
        parts = raw.split("|")
        fields = ("MSH", "|", *parts[1:]) if seg_id == "MSH" else tuple(parts)
        seen[seg_id] = seen.get(seg_id, 0) + 1
        for number, value in enumerate(fields):
            if len(value) > MAX_FIELD_CHARS:
                raise MessageError(
                    (problem(seg_id, number, f"field of {len(value)} characters (at most {MAX_FIELD_CHARS})",
                             Hl7Code.DATA_TYPE, occurrence=seen[seg_id]),)
                )  # fmt: skip
        segments.append(Segment(seg_id, seen[seg_id], fields))
    if seen.get("MSH", 0) != 1:
        raise MessageError((problem("MSH", 0, "exactly one MSH segment per message", Hl7Code.SEGMENT_SEQUENCE),))
    return Message(tuple(segments), "\r".join(s.rstrip() for s in lines) + "\r", tuple(notes))


def _decode(data: bytes | str, notes: list[Problem]) -> str:
    if isinstance(data, str):
        if len(data.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
            raise MessageError(
                (problem("MSH", 0, f"message larger than {MAX_MESSAGE_BYTES} bytes", Hl7Code.DATA_TYPE),)
            )
        return data
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError((problem("MSH", 0, f"message larger than {MAX_MESSAGE_BYTES} bytes", Hl7Code.DATA_TYPE),))
    charset = _msh18(data)
    codec = _CHARSETS.get(charset)
    if codec is None:
        raise MessageError((problem("MSH", 18, f"unsupported character set {charset!r}", Hl7Code.TABLE_VALUE),))
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        if codec == "ascii":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                notes.append(tolerated("MSH", 18, "UTF-8 text sent without MSH-18 'UNICODE UTF-8'"))
                return text
        raise MessageError(
            (problem("MSH", 18, f"bytes at {e.start} are not valid {codec} (MSH-18 {charset!r})", Hl7Code.DATA_TYPE),)
        ) from None


def _msh18(data: bytes) -> str:
    first = re.split(rb"\r|\n", data, maxsplit=1)[0]
    parts = first.split(b"|")
    return parts[17].decode("ascii", "replace").strip() if len(parts) > 17 else ""


_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?")


def parse_ts(value: str, where: tuple[str, int], local: timezone, notes: list[Problem]) -> datetime:
    """An HL7 DTM (``YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]``) as an aware datetime.

    Without an offset the time is read in ``local`` (the gateway's zone) and noted as tolerated.
    Raises :class:`MessageError` naming ``where`` (segment, field) for anything else.
    """
    segment, number = where
    text = value.replace(" ", "")
    if text != value:
        notes.append(tolerated(segment, number, "spaces inside a time stamp"))
    m = _TS.fullmatch(text)
    if m is None or m.group(4) is None or m.group(5) is None:
        raise MessageError(
            (problem(segment, number, f"not an HL7 time stamp to the minute: {value!r}", Hl7Code.DATA_TYPE),)
        )
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = round(float(m.group(7)) * 1_000_000) if m.group(7) else 0
    zone = local
    if m.group(8):
        sign = 1 if m.group(8)[0] == "+" else -1
        hh, mm = int(m.group(8)[1:3]), int(m.group(8)[3:5])
        if hh > 14 or mm > 59:
            raise MessageError((problem(segment, number, f"invalid UTC offset in {value!r}", Hl7Code.DATA_TYPE),))
        zone = timezone(sign * timedelta(hours=hh, minutes=mm))
    else:
        notes.append(tolerated(segment, number, "time stamp without a UTC offset, read as the gateway's local time"))
    try:
        return datetime(year, month, day, hour, minute, min(second, 59), min(micro, 999_999), tzinfo=zone)
    except ValueError:
        raise MessageError(
            (problem(segment, number, f"not a valid date and time: {value!r}", Hl7Code.DATA_TYPE),)
        ) from None


def format_ts(when: datetime) -> str:
    """An aware datetime as HL7 DTM with seconds and offset (``20260115083000-0500``)."""
    if when.tzinfo is None:
        raise ValueError("HL7 time stamps we send always carry a UTC offset")
    return when.strftime("%Y%m%d%H%M%S%z")
