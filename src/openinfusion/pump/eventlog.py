"""The pump's event log: its record of truth (ARCHITECTURE rule 6; OI-LOG-1, UMN-GPCA-REQ-80).

Every program, confirmation, state change, alarm, DERS check and override, library change and fault
is appended here, sequence-numbered, with the pump's time and channel. Later layers read the log and
nothing else: pharmacy analytics (CQI), EHR auto-documentation (IHE PCD-10 infusion events, PCD-01
status, PCD-04 alerts), the central station. So each event carries its own context, supplied by the
caller in ``data``.

Theory of operation
-------------------
* :class:`EventLog` is append-only. Sequence numbers start at 1 and have no gaps; times (the pump's
  monotonic clock, integer microseconds since power-on) never decrease. There is no method that
  changes or removes an event, and :class:`LoggedEvent` is frozen with a read-only ``data`` mapping.
* ``data`` holds JSON values only: ``str``, ``int``, ``bool``, ``None``, lists and string-keyed
  objects. Floats are refused: a quantity is logged exactly as ``{"value": "30", "unit": "mL/h"}``
  (:func:`encode_quantity`, :func:`encode_volume`, :func:`encode_rate`, :func:`encode_duration`);
  a value with no finite decimal form is written as an exact fraction (``"1/3"``).
* Export is JSON Lines (:meth:`EventLog.to_jsonl`): the first line is the header (``schema``, and the
  ``pump_id``, ``time_origin`` and ``library`` identity when given), then one event per line
  ``{"channel", "data", "kind", "seq", "t_us"}``, keys sorted, no spaces, so the same log always gives
  the same bytes. ``channel`` is numbered from 1 as people number channels (null for the whole pump;
  :attr:`LoggedEvent.channel` is the 0-based index the code uses); ``t_us`` is the pump's one time base,
  microseconds since power-on of its first boot (it runs on across power cycles, which the log records
  as ``power_changed``). :meth:`EventLog.from_jsonl` validates a file (schema, gapless sequence, ordered
  times, known kinds, JSON-only data) and names the offending line.

Conventions for ``data`` (what the readers expect; the log does not enforce them):

* ``program``: the channel's program context (type, rate, VTBI, dose and concentration with their units);
  program, secondary and titration events add ``selection`` (care area, drug, therapy, concentration key),
  the patient's ``weight`` and the ``library`` in use; titrations give ``old_rate`` and ``new_rate``;
* ``library``: ``{"owner", "version", "hash"}`` of the library in use, on program and DERS events;
* ``state``: the channel state; ``remaining``: an encoded volume; ``volumes``: the counters (``delivered``,
  ``secondary``, ``kvo`` and their ``total``), also on ``infusion_stopped`` and ``program_cleared``;
* alarm events: the fields of :meth:`openinfusion.pump.alarms.AlarmEvent.log_data` (code, instance,
  priority, alarm_state, text, detail, stops_delivery), plus the channel's ``state``, ``rate``,
  ``remaining`` volume and ``volumes`` (UMN-GPCA-REQ-80 asks for the notification, the mode and the
  remaining volume); a pump-wide alarm carries ``channels``, each channel's of these;
* refusals: ``event`` (what was refused) and ``reason``.

``time_origin`` in the header is the wall-clock time (ISO 8601 with a UTC offset) of instant 0 when
the driver knows it; EHR messages need wall-clock stamps and the core never reads a clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from pydantic import BaseModel, ConfigDict, ValidationError

from openinfusion.errors import InputError
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume, parse_unit

SCHEMA: Final = "openinfusion.eventlog/2"

JsonValue: TypeAlias = str | int | bool | list["JsonValue"] | tuple["JsonValue", ...] | Mapping[str, "JsonValue"] | None
"""A JSON value as the log accepts it (floats excluded). Stored frozen: tuples and read-only mappings."""


class EventKind(Enum):
    """The closed set of things the log records. The value is the ``kind`` written to JSON Lines."""

    # programming and delivery
    PROGRAM_ENTERED = "program_entered"  # a program was entered (not yet confirmed); data: program
    PROGRAM_CONFIRMED = "program_confirmed"  # the clinician confirmed it; data: program, library
    PROGRAM_CLEARED = "program_cleared"  # a program was discarded (PCD-10 MDC_EVT_PUMP_PROG_CLEARED)
    BASIC_INFUSION = "basic_infusion"  # a program without a library entry (no DERS limits)
    STATE_CHANGED = "state_changed"  # channel lifecycle transition; data: source, event, target
    INFUSION_STARTED = "infusion_started"  # delivery started or resumed (PCD-10 DELIV_START)
    INFUSION_STOPPED = "infusion_stopped"  # delivery stopped: paused, alarm, user (PCD-10 DELIV_STOP); data: reason
    RATE_CHANGED = "rate_changed"  # the delivered rate changed; data: rate, previous
    TITRATION_PENDING = "titration_pending"  # a change awaits confirmation (the old rate continues)
    TITRATION_CONFIRMED = "titration_confirmed"
    TITRATION_CANCELLED = "titration_cancelled"
    BOLUS_STARTED = "bolus_started"
    BOLUS_COMPLETED = "bolus_completed"
    SECONDARY_STARTED = "secondary_started"
    SECONDARY_COMPLETED = "secondary_completed"  # the primary resumes (OI-PROG-5)
    VTBI_COMPLETE = "vtbi_complete"  # the programmed volume was delivered (PCD-10 DELIV_COMP)
    KVO_STARTED = "kvo_started"
    PCA_DEMAND = "pca_demand"  # a patient demand, delivered or denied; data: delivered, reason
    PATIENT_CHANGED = "patient_changed"  # patient id or parameters changed; data: weight, bsa, patient_id if known
    # alarms (openinfusion.pump.alarms)
    ALARM_RAISED = "alarm_raised"
    ALARM_LATCHED = "alarm_latched"  # condition gone, latching signal continues until reset
    ALARM_CLEARED = "alarm_cleared"  # the alarm ended because its condition ended
    ALARM_ACKNOWLEDGED = "alarm_acknowledged"  # operator reset while the condition persists
    ALARM_RESET = "alarm_reset"  # operator reset of a latched alarm
    ALARM_ESCALATED = "alarm_escalated"
    AUDIO_PAUSED = "audio_paused"
    AUDIO_PAUSE_ENDED = "audio_pause_ended"
    ALARM_REANNOUNCED = "alarm_reannounced"
    EVENT_REFUSED = "event_refused"  # any refused request; data: event, reason
    # device
    SELF_TEST = "self_test"  # power-on self-test result per item
    WATCHDOG = "watchdog"
    FAILSAFE = "failsafe"  # the safety monitor forced the failsafe state; data: cause
    POWER_CHANGED = "power_changed"  # mains/battery transitions and fuel gauge steps
    # drug library and dose error reduction
    LIBRARY_LOADED = "library_loaded"
    LIBRARY_REJECTED = "library_rejected"
    LIBRARY_STAGED = "library_staged"
    LIBRARY_ACTIVATED = "library_activated"
    DERS_CHECK = "ders_check"  # a limit check and its outcome; data: program, library, limit, outcome
    DERS_OVERRIDE = "ders_override"  # soft limit overridden; data: reason
    DERS_CANCEL = "ders_cancel"  # the clinician reprogrammed after a limit alert
    # simulation only: a fault a scenario injected (never written by a real pump)
    FAULT_INJECTED = "fault_injected"


@dataclass(frozen=True, slots=True)
class LibraryIdentity:
    """The drug library a log starts with (OI-DERS-5): owner, version and content hash."""

    owner: str
    version: str
    hash: str

    def __post_init__(self) -> None:
        for name in ("owner", "version", "hash"):
            if not getattr(self, name).strip():
                raise InputError(f"library.{name}", "must not be empty")

    def to_json(self) -> dict[str, JsonValue]:
        return {"owner": self.owner, "version": self.version, "hash": self.hash}


def _freeze(value: object, where: str) -> JsonValue:
    """A read-only deep copy of a JSON value; anything else (floats included) is refused."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, list | tuple):
        return tuple(_freeze(item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(value, Mapping):
        items: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(where, f"object keys must be strings, got {key!r}")
            items[key] = _freeze(item, f"{where}.{key}")
        return MappingProxyType(items)
    if isinstance(value, float):
        raise InputError(where, "floats are not logged; encode quantities exactly (encode_quantity)")
    raise InputError(where, f"not a JSON value: {type(value).__name__}")


def _thaw(value: JsonValue) -> Any:
    """Plain lists and dicts for :mod:`json`."""
    if isinstance(value, tuple | list):
        return [_thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One logged event: sequence number (from 1), pump time, kind, channel (None = pump) and data."""

    seq: int
    t: Instant
    kind: EventKind
    channel: int | None
    data: Mapping[str, JsonValue]

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise InputError("event.seq", f"must be an integer >= 1, got {self.seq!r}")
        if not isinstance(self.t, Instant):
            raise InputError("event.t", f"not an Instant: {self.t!r}")
        if not isinstance(self.kind, EventKind):
            raise InputError("event.kind", f"not an EventKind: {self.kind!r}")
        if self.channel is not None and (
            isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0
        ):
            raise InputError("event.channel", f"must be None or an integer >= 0, got {self.channel!r}")
        if not isinstance(self.data, Mapping):
            raise InputError("event.data", "must be a mapping")
        object.__setattr__(self, "data", _freeze(self.data, "event.data"))

    def to_json(self) -> dict[str, Any]:
        """The event as one JSON Lines object (``t_us``: microseconds since power-on; ``channel`` from 1)."""
        return {
            "seq": self.seq,
            "t_us": self.t.us,
            "kind": self.kind.value,
            "channel": None if self.channel is None else self.channel + 1,
            "data": _thaw(self.data),
        }


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class EventLog:
    """Append-only, gapless, time-ordered event log of one pump since power-on.

    ``pump_id`` (e.g. the EUI-64 the interop layer reports), ``time_origin`` (ISO 8601 wall-clock time
    of instant 0, with UTC offset) and ``library`` (the library in use when the log starts) go into the
    JSON Lines header when given.
    """

    __slots__ = ("_events", "_header")

    def __init__(
        self, pump_id: str | None = None, time_origin: str | None = None, library: LibraryIdentity | None = None
    ) -> None:
        header: dict[str, JsonValue] = {"schema": SCHEMA}
        if pump_id is not None:
            if not pump_id.strip():
                raise InputError("pump_id", "must not be empty")
            header["pump_id"] = pump_id
        if time_origin is not None:
            _check_time_origin(time_origin)
            header["time_origin"] = time_origin
        if library is not None:
            header["library"] = library.to_json()
        self._header: Mapping[str, JsonValue] = MappingProxyType(header)
        self._events: list[LoggedEvent] = []

    @property
    def header(self) -> Mapping[str, JsonValue]:
        """The header fields (read-only): ``schema`` and whichever of pump_id, time_origin, library were given."""
        return self._header

    def __len__(self) -> int:
        return len(self._events)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event (0 when empty)."""
        return len(self._events)

    @property
    def last_time(self) -> Instant | None:
        return self._events[-1].t if self._events else None

    def append(self, t: Instant, kind: EventKind, channel: int | None = None, /, **data: JsonValue) -> LoggedEvent:
        """Append one event at pump time ``t`` (not earlier than the last one) and return it.

        ``t``, ``kind`` and ``channel`` are positional, so ``data`` may use any key.
        The sequence number is the next integer. Raises :class:`InputError` if ``t`` is earlier than
        the last event's time or ``data`` is not JSON (floats included); nothing is appended then.
        """
        last = self.last_time
        if last is not None and t < last:
            raise InputError("t", f"{t} is earlier than the last event ({last}); the log is time-ordered")
        event = LoggedEvent(len(self._events) + 1, t, kind, channel, data)
        self._events.append(event)
        return event

    def events(self, since_seq: int = 0) -> tuple[LoggedEvent, ...]:
        """The events with ``seq > since_seq``, in order (a snapshot: later appends do not show)."""
        return tuple(self._events[max(since_seq, 0) :])

    def to_jsonl(self) -> str:
        """JSON Lines: the header, then one event per line; sorted keys, so the bytes are deterministic."""
        lines = [_dumps(_thaw(self._header))]
        lines.extend(_dumps(event.to_json()) for event in self._events)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_jsonl(cls, text: str, where: str = "eventlog") -> EventLog:
        """Parse and validate an exported log. Raises :class:`InputError` naming ``where`` and the line.

        Refused: a wrong or missing schema, malformed JSON, unknown or missing fields, an unknown
        kind, a sequence number that is not the previous plus one, a time earlier than the previous
        one, float values, blank lines.
        """
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if not lines:
            raise InputError(f"{where}: line 1", "empty log: the header line is missing")
        header = _HeaderLine.parse(lines[0], f"{where}: line 1")
        try:
            library = None if header.library is None else LibraryIdentity(**header.library.model_dump())
            log = cls(header.pump_id, header.time_origin, library)
        except InputError as error:
            raise InputError(f"{where}: line 1", f"{error.where}: {error.why}") from None
        for number, line in enumerate(lines[1:], start=2):
            at = f"{where}: line {number}"
            row = _EventLine.parse(line, at)
            if row.seq != log.last_seq + 1:
                raise InputError(at, f"seq {row.seq} follows {log.last_seq}: sequence numbers must have no gaps")
            try:
                kind = EventKind(row.kind)
            except ValueError:
                raise InputError(at, f"unknown event kind {row.kind!r}") from None
            if row.channel is not None and row.channel < 1:
                raise InputError(at, f"channel {row.channel}: channels are numbered from 1")
            try:
                log.append(Instant(row.t_us), kind, None if row.channel is None else row.channel - 1, **row.data)
            except InputError as error:
                raise InputError(at, f"{error.where}: {error.why}") from None
        return log


def _check_time_origin(text: str) -> None:
    try:
        origin = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("time_origin", f"not an ISO 8601 date-time: {text!r}") from None
    if origin.tzinfo is None:
        raise InputError("time_origin", "needs a UTC offset (e.g. '2025-01-31T08:00:00+00:00')")


# --- the JSON Lines edge (pydantic validates each line's shape) --------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def _load_line(line: str, at: str) -> Any:
    if not line.strip():
        raise InputError(at, "blank line")
    try:
        return json.loads(line, object_pairs_hook=_no_duplicate_keys, parse_float=_refuse_float)
    except ValueError as error:
        raise InputError(at, f"not valid JSON: {error}") from None


def _refuse_float(text: str) -> Any:
    raise ValueError(f"float {text} is not allowed (quantities are exact strings)")


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}" if location else first["msg"]


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _LibraryFields(_Line):
    owner: str
    version: str
    hash: str


class _HeaderLine(_Line):
    pump_id: str | None = None
    time_origin: str | None = None
    library: _LibraryFields | None = None

    @classmethod
    def parse(cls, line: str, at: str) -> _HeaderLine:
        raw = _load_line(line, at)
        found = raw.get("schema") if isinstance(raw, dict) else None
        if found != SCHEMA:
            raise InputError(at, f"not an event log header: schema must be {SCHEMA!r}, got {found!r}")
        try:
            return cls.model_validate({key: value for key, value in raw.items() if key != "schema"})
        except ValidationError as error:
            raise InputError(at, _first_error(error)) from None


class _EventLine(_Line):
    seq: int
    t_us: int
    kind: str
    channel: int | None
    data: dict[str, Any]

    @classmethod
    def parse(cls, line: str, at: str) -> _EventLine:
        raw = _load_line(line, at)
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise InputError(at, _first_error(error)) from None


# --- exact encodings of quantities ------------------------------------------------------------


_EXACT_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?|-?[0-9]+/[1-9][0-9]*")


def exact_decimal(value: Fraction) -> str:
    """``value`` as an exact decimal string (``"0.125"``, ``"-30"``), or ``"n/d"`` if it has none (``"1/3"``)."""
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = value.numerator * 10**places // value.denominator  # exact: 10**places is a multiple
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(places + 1, "0")
    if places == 0:
        return sign + digits
    whole, fraction = digits[:-places], digits[-places:].rstrip("0")
    return f"{sign}{whole}.{fraction}" if fraction else sign + whole


def encode_quantity(q: Quantity) -> dict[str, JsonValue]:
    """``{"value": <exact decimal string>, "unit": <UCUM code>}``, e.g. ``{"value": "0.5", "unit": "ug/kg/min"}``."""
    return {"value": exact_decimal(q.value), "unit": q.unit.code}


def encode_volume(v: Volume) -> dict[str, JsonValue]:
    """A volume in mL, exact (``Volume(1500)`` -> ``{"value": "0.0015", "unit": "mL"}``)."""
    return encode_quantity(v.quantity())


def encode_rate(r: FlowRate) -> dict[str, JsonValue]:
    """A flow rate in mL/h, exact."""
    return encode_quantity(r.quantity())


def encode_duration(d: Duration) -> dict[str, JsonValue]:
    """A duration in seconds, exact to the microsecond."""
    return {"value": exact_decimal(d.seconds), "unit": "s"}


def decode_quantity(obj: JsonValue, where: str = "quantity") -> Quantity:
    """Inverse of :func:`encode_quantity` (also reads ``"n/d"`` values). Raises InputError naming ``where``."""
    if not isinstance(obj, Mapping) or set(obj) != {"value", "unit"}:
        raise InputError(where, 'expected {"value": "<decimal>", "unit": "<UCUM>"}')
    value, code = obj["value"], obj["unit"]
    if not isinstance(value, str) or not isinstance(code, str):
        raise InputError(where, "value and unit must be strings")
    if not _EXACT_NUMBER.fullmatch(value):
        raise InputError(f"{where}.value", f"not an exact decimal or fraction: {value!r}")
    return Quantity(Fraction(value), parse_unit(code, f"{where}.unit"))
