"""Pharmacy CQI analytics from pump event logs (issue 5, item 6; ISMP guideline 3, CQI data).

Theory of operation
-------------------
The pump's event log is its record of truth (ARCHITECTURE rule 6): every DERS check carries the selection,
the values checked, the limits crossed, the verdict and the library identity (OI-DERS-5), so these analytics
read the logs and nothing else. :func:`read_logs` loads a directory of ``*.jsonl`` logs (or one file);
:func:`analyse` walks each log once, channel by channel, and turns its events into records; the metric
functions (:func:`summarise`, :func:`by_area`, :func:`by_entry`, ...) only count records. Nothing here reads
a clock or a library: a report on the same logs is the same report.

Definitions (``docs/pharmacy-analytics.md`` gives them with examples)
---------------------------------------------------------------------
* **Infusion**: a program the clinician confirmed (``program_confirmed``) or a secondary infusion started
  (``secondary_started``). It is *library* if the gating event the pump logged for it on that channel was a
  DERS check that let it proceed, *basic* if it was a ``basic_infusion`` record, *unknown* otherwise.
* **Library compliance** = library infusions / infusions (ISMP target >= 95 %,
  ``shared/reference/standards-and-safety.md`` §4, statements 1.4-1.6).
* **Alert**: a DERS check whose verdict is soft or hard. A check that repeats the open alert's request on the
  same channel (the clinician confirming it with an override reason, or retrying it) is the answer to that
  alert, not a new one. **Alerts per 100 infusions** = 100 x alerts / infusions.
* **Resolution** of an alert: the next thing that happened on its channel (:class:`Resolution`).
* **Averted error** (our published definition, ``docs/pharmacy-analytics.md``): an alert after which the
  clinician cancelled the programming, dropped the change (the earlier program kept), or re-entered it with
  values the check passed *and* the value that crossed the limit changed by at least ``MATERIAL_CHANGE``
  (10 %). A re-entry closer than that is the intended order re-entered near the limit (``NEAR_LIMIT``), not
  an averted error. Each averted error has a **severity band** by how many times the limit the alerted
  value was (:data:`BANDS`: below 1.5x, 1.5-2x, 2-10x, 10x and more: the tenfold class of decimal and unit
  errors).
* **Override**: a ``ders_override`` event (a soft limit passed with a reason from the library's list),
  attributed to the DERS check logged just before it on the same channel. **Override rate** = alerts
  resolved by an override / *soft* alerts: a hard alert cannot be overridden, so it is not in the denominator.
* **Partial days and weeks**: a day (week) the logs do not cover from its start to its end; the report marks
  them, as their counts are not comparable with whole ones.
* **Care area** of a library infusion, check or override: the selection's care area. A basic infusion has no
  selection; its care area is that of the nearest library check on the same pump (before it, else after it),
  or ``unknown``.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Final, TypeVar

from openinfusion.errors import InputError
from openinfusion.pump.eventlog import EventKind, EventLog, JsonValue, LibraryIdentity, LoggedEvent, decode_quantity
from openinfusion.units import US_PER_H, Instant, Quantity

UNKNOWN_AREA: Final = "unknown"
MATERIAL_CHANGE: Final = Fraction(1, 10)
BANDS: Final = ((Fraction(3, 2), "< 1.5x the limit"), (Fraction(2), "1.5-2x"), (Fraction(10), "2-10x"))
TENFOLD: Final = "10x or more"
ISMP_COMPLIANCE_TARGET: Final = Fraction(95, 100)
_US_PER_DAY: Final = 24 * US_PER_H
T = TypeVar("T")
EntryKey = tuple[str, str, str | None]  # a library entry: (care area, drug, therapy)


# --- reading logs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PumpLog:
    """One pump's validated event log and the file it came from (named in every error)."""

    source: str
    log: EventLog

    @property
    def pump(self) -> str:
        pump_id = self.log.header.get("pump_id")
        return pump_id if isinstance(pump_id, str) else self.source

    @property
    def origin(self) -> datetime | None:
        """Wall-clock time of the pump's instant 0, when the log's header gives it."""
        origin = self.log.header.get("time_origin")
        return datetime.fromisoformat(origin) if isinstance(origin, str) else None


def read_logs(path: Path) -> tuple[PumpLog, ...]:
    """Every ``*.jsonl`` log in directory ``path`` (sorted by name), or the one file ``path``.

    Raises :class:`InputError` naming the file (and line) for an unreadable or invalid log, or if there is none.
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".jsonl" and p.is_file())
        if not files:
            raise InputError(str(path), "no event logs (*.jsonl) in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(str(path), "no such file or directory")
    logs = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(str(file), f"cannot read: {e}") from None
        logs.append(PumpLog(str(file), EventLog.from_jsonl(text, str(file))))
    return tuple(logs)


# --- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    """Where a record comes from: the log file and pump, the event's sequence number, pump time and channel."""

    source: str
    pump: str
    seq: int
    t: Instant
    wall: datetime | None
    channel: int | None

    @property
    def where(self) -> str:
        """``FILE: line N`` (the header is line 1, so event ``seq`` is line ``seq + 1``)."""
        return f"{self.source}: line {self.seq + 1}"

    @property
    def day(self) -> str:
        """The calendar day (in the log's time-origin offset), or ``pump day N`` when the log has no origin."""
        if self.wall is not None:
            return self.wall.date().isoformat()
        return f"pump day {self.t.us // _US_PER_DAY + 1}"


@dataclass(frozen=True, slots=True)
class LimitCrossed:
    """One limit a checked value crossed, as logged: field, soft/hard, lower/upper, entered value and limit."""

    field: str
    kind: str
    bound: str
    entered: Quantity
    limit: Quantity

    @property
    def label(self) -> str:
        """``"dose above soft max"``: the limit type a pharmacist reviews."""
        side = "above" if self.bound == "upper" else "below"
        extreme = "max" if self.bound == "upper" else "min"
        return f"{self.field} {side} {self.kind} {extreme}"

    def __str__(self) -> str:
        return f"{self.label}: {self.entered} (limit {self.limit})"


@dataclass(frozen=True, slots=True)
class Check:
    """One logged DERS check (``ders_check``): what was checked, against which library, and its verdict."""

    at: Place
    action: str  # program, titration, bolus, secondary
    area: str
    drug: str
    therapy: str | None
    concentration: str | None
    values: Mapping[str, JsonValue]
    findings: tuple[LimitCrossed, ...]
    verdict: str  # ok, soft, hard
    outcome: str  # proceed, needs_override, blocked
    after_alert: bool
    library: LibraryIdentity | None

    @property
    def alerted(self) -> bool:
        return self.verdict != "ok"

    @property
    def proceeded(self) -> bool:
        return self.outcome == "proceed"

    @property
    def entry(self) -> EntryKey:
        """The library entry checked: (care area, drug, therapy)."""
        return self.area, self.drug, self.therapy

    @property
    def request(self) -> tuple[str, str, str, str | None, str | None, str]:
        """The request as the clinician entered it; equal for a check that repeats another."""
        values = json.dumps(_plain(self.values), sort_keys=True)
        return self.action, self.area, self.drug, self.therapy, self.concentration, values


class Resolution(Enum):
    """What followed an alert on its channel."""

    OVERRIDDEN = "overridden"  # proceeded past a soft limit with a reason
    REPROGRAMMED = "reprogrammed within limits"  # re-entered with values the check passed, materially changed
    NEAR_LIMIT = "re-entered near the limit"  # re-entered within limits, but less than 10 % from the alerted value
    CANCELLED = "cancelled"  # programming cancelled (ders_cancel)
    ALERTED_AGAIN = "re-entered, alerted again"  # re-entered with other values that alerted too
    SWITCHED_TO_BASIC = "switched to basic infusion"  # the library was bypassed after the alert
    DROPPED = "change dropped"  # titration or bolus not re-entered; the program was kept, or later cleared
    OPEN = "no further action logged"


AVERTED: Final = frozenset({Resolution.REPROGRAMMED, Resolution.CANCELLED, Resolution.DROPPED})


@dataclass(frozen=True, slots=True)
class Alert:
    """An alerting check, how it was resolved, and the override reason when it was overridden."""

    check: Check
    resolution: Resolution
    reason: str | None = None

    @property
    def averted(self) -> bool:
        return self.resolution in AVERTED

    @property
    def times_limit(self) -> Fraction:
        """How many times the limit the alerted value was (the largest over the limits crossed): entered / limit
        for an upper limit, limit / entered for a lower one."""
        return max((_times(f) for f in self.check.findings), default=Fraction(1))

    @property
    def band(self) -> str:
        """The severity band of :attr:`times_limit` (:data:`BANDS`)."""
        return next((label for top, label in BANDS if self.times_limit < top), TENFOLD)


def _times(f: LimitCrossed) -> Fraction:
    entered, limit = f.entered.value, f.limit.to(f.entered.unit).value
    if f.bound == "upper":
        return entered / limit if limit else Fraction(1)
    return limit / entered if entered else Fraction(10**6)


def _value_of(check: Check, field: str) -> Quantity | None:
    """The value ``check`` logged for limit ``field`` (None if it logged none)."""
    encoded = check.values.get("custom_concentration" if field == "concentration" else field)
    try:
        return None if encoded is None else decode_quantity(encoded, field)
    except InputError:
        return None


def material(alerted: Check, reentered: Check) -> bool:
    """True if the re-entry changed a value that crossed a limit by at least MATERIAL_CHANGE (10 %); an alert
    logged without its limits cannot be judged and counts as changed."""
    if not alerted.findings:
        return True
    for f in alerted.findings:
        new = _value_of(reentered, f.field)
        if new is None or new.unit.dim != f.entered.unit.dim:
            return True  # the crossed value was not re-entered as such: a different program
        old = f.entered.value
        if old == 0 or abs(new.to(f.entered.unit).value - old) / abs(old) >= MATERIAL_CHANGE:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Override:
    """A soft-limit override (``ders_override``): its reason and the check it let proceed."""

    at: Place
    check: Check
    reason: str
    findings: tuple[LimitCrossed, ...]


class Mode(Enum):
    """How an infusion was programmed."""

    LIBRARY = "library"
    BASIC = "basic"
    UNKNOWN = "unknown"  # no DERS check or basic-infusion record before it (counted as not compliant)


@dataclass(frozen=True, slots=True)
class Infusion:
    """A confirmed program or started secondary infusion, with how it was programmed."""

    at: Place
    mode: Mode
    area: str
    drug: str | None
    therapy: str | None
    secondary: bool
    basic_reason: str | None = None
    library: LibraryIdentity | None = None  # the library active when it was programmed

    @property
    def entry(self) -> EntryKey | None:
        """The library entry it was programmed from (None for a basic or unclassified infusion)."""
        return None if self.drug is None else (self.area, self.drug, self.therapy)


@dataclass(frozen=True, slots=True)
class CqiData:
    """Everything :func:`analyse` found in a set of logs, in log order."""

    pumps: tuple[str, ...]
    infusions: tuple[Infusion, ...]
    checks: tuple[Check, ...]
    alerts: tuple[Alert, ...]
    overrides: tuple[Override, ...]
    repeats: frozenset[tuple[str, int]] = field(default_factory=frozenset)  # (source, seq) of repeated checks
    spans: tuple[Span, ...] = ()  # what each log covers


@dataclass(frozen=True, slots=True)
class Span:
    """The time one pump log covers: from power-on (its time origin) to its last event."""

    pump: str
    start: datetime | None
    end: datetime | None
    end_us: int  # pump time of the last event


# --- walking a log -----------------------------------------------------------------------------------


class _Fields:
    """Typed reads of one event's ``data``: a missing or mistyped field is an InputError at ``FILE: line N``."""

    def __init__(self, data: Mapping[str, JsonValue], at: str, path: str = "data") -> None:
        self.data = data
        self.at = at
        self.path = path

    def _fail(self, key: str, why: str) -> InputError:
        return InputError(self.at, f"{self.path}.{key}: {why}")

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "expected a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "expected a string or null")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self._fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "expected true or false")
        return value

    def mapping(self, key: str) -> Mapping[str, JsonValue]:
        value = self.data.get(key)
        if not isinstance(value, Mapping):
            raise self._fail(key, "expected an object")
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.mapping(key), self.at, f"{self.path}.{key}")

    def quantity(self, key: str) -> Quantity:
        try:
            return decode_quantity(self.data.get(key), key)
        except InputError as e:
            raise InputError(self.at, f"{self.path}.{e.where}: {e.why}") from None

    def findings(self, key: str) -> tuple[LimitCrossed, ...]:
        value = self.data.get(key)
        if not isinstance(value, list | tuple):
            raise self._fail(key, "expected a list")
        found = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self._fail(f"{key}[{i}]", "expected an object")
            one = _Fields(item, self.at, f"{self.path}.{key}[{i}]")
            kind, bound = one.choice("kind", ("soft", "hard")), one.choice("bound", ("lower", "upper"))
            found.append(LimitCrossed(one.text("field"), kind, bound, one.quantity("entered"), one.quantity("limit")))
        return tuple(found)

    def library(self) -> LibraryIdentity | None:
        if self.data.get("library") is None:
            return None
        lib = self.sub("library")
        return LibraryIdentity(lib.text("owner"), lib.text("version"), lib.text("hash"))


def _plain(value: JsonValue) -> object:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check(event: LoggedEvent, at: Place) -> Check:
    data = _Fields(event.data, at.where)
    sel = data.sub("selection")
    return Check(
        at=at,
        action=data.text("action"),
        area=sel.text("area"),
        drug=sel.text("drug"),
        therapy=sel.optional_text("therapy"),
        concentration=sel.optional_text("concentration"),
        values=data.mapping("values"),
        findings=data.findings("findings"),
        verdict=data.choice("verdict", ("ok", "soft", "hard")),
        outcome=data.choice("outcome", ("proceed", "needs_override", "blocked")),
        after_alert=data.flag("after_alert"),
        library=data.library(),
    )


@dataclass(slots=True)
class _Open:
    """An alert and, once known, its resolution."""

    check: Check
    resolution: Resolution = Resolution.OPEN
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Basic:
    """A ``basic_infusion`` record: the gate of a program without the library."""

    at: Place
    action: str
    reason: str | None


@dataclass(slots=True)
class _Channel:
    """Per-channel state while walking a log."""

    open: _Open | None = None  # the alert waiting for its resolution
    last_check: Check | None = None
    gate: Check | _Basic | None = None  # what let the next program or secondary proceed


class _Walk:
    """One pass over one pump's log (see the module's definitions)."""

    def __init__(self, pump_log: PumpLog) -> None:
        self.log = pump_log
        self.origin = pump_log.origin
        self.channels: dict[int | None, _Channel] = {}
        self.checks: list[Check] = []
        self.alerts: list[_Open] = []
        self.overrides: list[Override] = []
        self.infusions: list[tuple[Place, Check | _Basic | None, bool]] = []
        self.repeats: set[tuple[str, int]] = set()

    def place(self, event: LoggedEvent) -> Place:
        wall = None if self.origin is None else self.origin + timedelta(microseconds=event.t.us)
        return Place(self.log.source, self.log.pump, event.seq, event.t, wall, event.channel)

    def run(self) -> None:
        handlers: dict[EventKind, Callable[[LoggedEvent, _Channel], None]] = {
            EventKind.DERS_CHECK: self.on_check,
            EventKind.DERS_OVERRIDE: self.on_override,
            EventKind.DERS_CANCEL: lambda e, ch: self.resolve(ch, Resolution.CANCELLED),
            EventKind.BASIC_INFUSION: self.on_basic,
            EventKind.PROGRAM_CLEARED: lambda e, ch: self.resolve(ch, Resolution.DROPPED),
            EventKind.PROGRAM_CONFIRMED: lambda e, ch: self.on_infusion(e, ch, secondary=False),
            EventKind.SECONDARY_STARTED: lambda e, ch: self.on_infusion(e, ch, secondary=True),
        }
        for event in self.log.log.events():
            handler = handlers.get(event.kind)
            if handler is not None:
                handler(event, self.channels.setdefault(event.channel, _Channel()))

    def span(self) -> Span:
        events = self.log.log.events()
        end_us = events[-1].t.us if events else 0
        end = None if self.origin is None else self.origin + timedelta(microseconds=end_us)
        return Span(self.log.pump, self.origin, end, end_us)

    def resolve(self, ch: _Channel, resolution: Resolution) -> None:
        if ch.open is not None:
            ch.open.resolution = resolution
            ch.open = None

    def on_check(self, event: LoggedEvent, ch: _Channel) -> None:
        check = _check(event, self.place(event))
        self.checks.append(check)
        ch.last_check = check
        pending = ch.open
        if pending is not None:
            if check.request == pending.check.request:  # the answer to the open alert, not a new alert
                self.repeats.add((check.at.source, check.at.seq))
                if check.proceeded:
                    self.resolve(ch, Resolution.OVERRIDDEN)
                    self.gate(ch, check)
                return
            if check.action != pending.check.action:
                self.resolve(ch, Resolution.DROPPED)
            elif check.alerted:
                self.resolve(ch, Resolution.ALERTED_AGAIN)
            else:
                near = not material(pending.check, check)
                self.resolve(ch, Resolution.NEAR_LIMIT if near else Resolution.REPROGRAMMED)
        if check.alerted:
            alert = _Open(check)
            self.alerts.append(alert)
            if check.proceeded:  # overridden as it was entered
                alert.resolution = Resolution.OVERRIDDEN
            else:
                ch.open = alert
        if check.proceeded:
            self.gate(ch, check)

    def gate(self, ch: _Channel, check: Check) -> None:
        if check.action in {"program", "secondary"}:
            ch.gate = check

    def on_override(self, event: LoggedEvent, ch: _Channel) -> None:
        at = self.place(event)
        data = _Fields(event.data, at.where)
        reason = data.text("reason")
        check = ch.last_check
        if check is None or not check.proceeded:
            raise InputError(at.where, "a ders_override without the DERS check it overrides on this channel")
        self.overrides.append(Override(at, check, reason, data.findings("findings")))
        for alert in reversed(self.alerts):
            if alert.check.at.channel == check.at.channel:
                if alert.resolution is Resolution.OVERRIDDEN and alert.reason is None:
                    alert.reason = reason
                break

    def on_basic(self, event: LoggedEvent, ch: _Channel) -> None:
        self.resolve(ch, Resolution.SWITCHED_TO_BASIC)
        at = self.place(event)
        data = _Fields(event.data, at.where)
        ch.gate = _Basic(at, data.text("action"), data.optional_text("reason"))

    def on_infusion(self, event: LoggedEvent, ch: _Channel, *, secondary: bool) -> None:
        action = "secondary" if secondary else "program"
        gate = ch.gate if ch.gate is not None and ch.gate.action == action else None
        self.infusions.append((self.place(event), gate, secondary))
        ch.gate = None


def _nearest_check(checks: Sequence[Check]) -> Callable[[Place], Check | None]:
    """The library check nearest before ``at`` on the same pump log (else after), or None."""
    by_source: dict[str, tuple[list[int], list[Check]]] = {}
    for c in checks:  # in log order, so each list is sorted by sequence number
        seqs, found = by_source.setdefault(c.at.source, ([], []))
        seqs.append(c.at.seq)
        found.append(c)

    def find(at: Place) -> Check | None:
        seqs, found = by_source.get(at.source, ([], []))
        if not seqs:
            return None
        before = bisect.bisect_left(seqs, at.seq)
        return found[before - 1] if before else found[0]

    return find


def analyse(logs: Iterable[PumpLog]) -> CqiData:
    """Records of every infusion, DERS check, alert (with its resolution) and override in ``logs``.

    Raises :class:`InputError` naming the file and line of an event whose data is not what the pump logs.
    """
    infusions: list[Infusion] = []
    checks: list[Check] = []
    alerts: list[Alert] = []
    overrides: list[Override] = []
    repeats: set[tuple[str, int]] = set()
    pumps = []
    walks = []
    for pump_log in logs:
        walk = _Walk(pump_log)
        walk.run()
        walks.append(walk)
        pumps.append(pump_log.pump)
        checks.extend(walk.checks)
        alerts.extend(Alert(a.check, a.resolution, a.reason) for a in walk.alerts)
        overrides.extend(walk.overrides)
        repeats |= walk.repeats
    nearest = _nearest_check(checks)
    for walk in walks:
        for at, gate, secondary in walk.infusions:
            if isinstance(gate, Check):
                infusions.append(
                    Infusion(at, Mode.LIBRARY, gate.area, gate.drug, gate.therapy, secondary, library=gate.library)
                )
                continue
            near = nearest(at)
            area, library = (UNKNOWN_AREA, None) if near is None else (near.area, near.library)
            mode, reason = (Mode.UNKNOWN, None) if gate is None else (Mode.BASIC, gate.reason)
            infusions.append(Infusion(at, mode, area, None, None, secondary, reason, library))
    spans = tuple(walk.span() for walk in walks)
    return CqiData(
        tuple(pumps), tuple(infusions), tuple(checks), tuple(alerts), tuple(overrides), frozenset(repeats), spans
    )


# --- metrics -------------------------------------------------------------------------------------------


def ratio(part: int, whole: int) -> Fraction | None:
    """``part / whole`` exactly, or None when there is nothing to divide by."""
    return None if whole == 0 else Fraction(part, whole)


def per_100(part: int, whole: int) -> Fraction | None:
    """``100 x part / whole`` exactly (alerts per 100 infusions), or None when ``whole`` is 0."""
    return None if whole == 0 else Fraction(100 * part, whole)


@dataclass(frozen=True, slots=True)
class Counts:
    """The core counts of one group of records (all logs, one care area, one day)."""

    infusions: int
    library: int
    basic: int
    unknown: int
    alerts: int
    soft: int
    hard: int
    overridden: int  # alerts resolved by an override
    averted: int  # averted errors (see the module's definition)
    near_limit: int  # alerts followed by the order re-entered near the limit (not averted)
    switched_to_basic: int
    overrides: int  # ders_override events

    @property
    def compliance(self) -> Fraction | None:
        """Library infusions / infusions."""
        return ratio(self.library, self.infusions)

    @property
    def alerts_per_100(self) -> Fraction | None:
        return per_100(self.alerts, self.infusions)

    @property
    def overrides_per_100(self) -> Fraction | None:
        return per_100(self.overrides, self.infusions)

    @property
    def override_rate(self) -> Fraction | None:
        """Alerts resolved by an override / soft alerts (a hard alert cannot be overridden)."""
        return ratio(self.overridden, self.soft)

    @property
    def averted_share(self) -> Fraction | None:
        """Alerts resolved as averted errors / alerts."""
        return ratio(self.averted, self.alerts)


def count(infusions: Iterable[Infusion], alerts: Iterable[Alert], overrides: Iterable[Override]) -> Counts:
    """The :class:`Counts` of these records."""
    modes = Counter(i.mode for i in infusions)
    alert_list = list(alerts)
    resolutions = Counter(a.resolution for a in alert_list)
    verdicts = Counter(a.check.verdict for a in alert_list)
    return Counts(
        infusions=sum(modes.values()),
        library=modes[Mode.LIBRARY],
        basic=modes[Mode.BASIC],
        unknown=modes[Mode.UNKNOWN],
        alerts=len(alert_list),
        soft=verdicts["soft"],
        hard=verdicts["hard"],
        overridden=resolutions[Resolution.OVERRIDDEN],
        averted=sum(resolutions[r] for r in AVERTED),
        near_limit=resolutions[Resolution.NEAR_LIMIT],
        switched_to_basic=resolutions[Resolution.SWITCHED_TO_BASIC],
        overrides=sum(1 for _ in overrides),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of a report."""

    pumps: int
    counts: Counts
    resolutions: Mapping[Resolution, int]
    first: datetime | None
    last: datetime | None
    libraries: tuple[LibraryIdentity, ...]


def summarise(data: CqiData) -> Summary:
    """All logs together: counts, how alerts were resolved, the period covered and the libraries seen."""
    walls = [i.at.wall for i in data.infusions if i.at.wall is not None]
    walls += [c.at.wall for c in data.checks if c.at.wall is not None]
    libraries = sorted({c.library for c in data.checks if c.library is not None}, key=lambda x: (x.version, x.hash))
    resolutions = Counter(a.resolution for a in data.alerts)
    return Summary(
        pumps=len(data.pumps),
        counts=count(data.infusions, data.alerts, data.overrides),
        resolutions={r: resolutions[r] for r in Resolution},
        first=min(walls) if walls else None,
        last=max(walls) if walls else None,
        libraries=tuple(libraries),
    )


def _grouped(
    data: CqiData, infusion_key: Callable[[Infusion], str], check_key: Callable[[Check], str]
) -> dict[str, Counts]:
    infusions: dict[str, list[Infusion]] = {}
    alerts: dict[str, list[Alert]] = {}
    overrides: dict[str, list[Override]] = {}
    for i in data.infusions:
        infusions.setdefault(infusion_key(i), []).append(i)
    for a in data.alerts:
        alerts.setdefault(check_key(a.check), []).append(a)
    for o in data.overrides:
        overrides.setdefault(check_key(o.check), []).append(o)
    keys = set(infusions) | set(alerts) | set(overrides)
    return {k: count(infusions.get(k, []), alerts.get(k, []), overrides.get(k, [])) for k in keys}


def by_area(data: CqiData) -> dict[str, Counts]:
    """Counts per care area, sorted by name."""
    groups = _grouped(data, lambda i: i.area, lambda c: c.area)
    return dict(sorted(groups.items()))


def by_day(data: CqiData) -> dict[str, Counts]:
    """Counts per calendar day (see :attr:`Place.day`), in date order."""
    groups = _grouped(data, lambda i: i.at.day, lambda c: c.at.day)
    return dict(sorted(groups.items(), key=lambda kv: _day_order(kv[0])))


def _day_order(day: str) -> tuple[int, str]:
    if day.startswith("pump day "):
        return int(day.removeprefix("pump day ")), day
    return date.fromisoformat(day).toordinal(), day


def week_of(day: str) -> str:
    """The ISO week of a day label (``2026-W45``), or ``pump week N`` for pump days."""
    if day.startswith("pump day "):
        return f"pump week {(int(day.removeprefix('pump day ')) - 1) // 7 + 1}"
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def by_week(data: CqiData) -> dict[str, Counts]:
    """Counts per ISO week (trends), in order."""
    groups = _grouped(data, lambda i: week_of(i.at.day), lambda c: week_of(c.at.day))
    return dict(sorted(groups.items(), key=lambda kv: _week_order(kv[0])))


def _week_order(week: str) -> tuple[int, int, str]:
    if week.startswith("pump week "):
        return 0, int(week.removeprefix("pump week ")), week
    year, number = week.split("-W")
    return int(year), int(number), week


def library_label(library: LibraryIdentity | None) -> str:
    return "no library" if library is None else f"{library.version} ({library.hash[:12]})"


def by_library(data: CqiData) -> dict[str, Counts]:
    """Counts per library version in use (before/after a release), in order of first use."""
    first: dict[str, int] = {}
    for i, c in enumerate(data.checks):
        first.setdefault(library_label(c.library), i)
    groups = _grouped(data, lambda i: library_label(i.library), lambda c: library_label(c.library))
    return dict(sorted(groups.items(), key=lambda kv: (first.get(kv[0], len(first)), kv[0])))


def by_pump(data: CqiData) -> dict[str, Counts]:
    """Counts per pump (compliance per pump), sorted by pump id."""
    return dict(sorted(_grouped(data, lambda i: i.at.pump, lambda c: c.at.pump).items()))


def partial_days(data: CqiData) -> frozenset[str]:
    """The days (labels as :attr:`Place.day`) the logs do not cover from midnight to midnight."""
    starts = [sp.start for sp in data.spans if sp.start is not None]
    ends = [sp.end for sp in data.spans if sp.end is not None]
    if starts and ends:
        first, last = min(starts), max(ends)
        days = {first.date().isoformat(), last.date().isoformat()}
        if first.time() == datetime.min.time():
            days.discard(first.date().isoformat())
        return frozenset(days)
    last_us = max((sp.end_us for sp in data.spans), default=0)
    whole = last_us % _US_PER_DAY == 0
    return frozenset() if whole else frozenset({f"pump day {last_us // _US_PER_DAY + 1}"})


def partial_weeks(data: CqiData, weeks: Iterable[str]) -> frozenset[str]:
    """The weeks not covered for all their seven days."""
    covered = Counter(week_of(d) for d in by_day(data) if d not in partial_days(data))
    return frozenset(w for w in weeks if covered[w] < 7)


def averted_by_band(data: CqiData) -> dict[str, int]:
    """Averted errors per severity band (how many times the limit), every band listed."""
    found = Counter(a.band for a in data.alerts if a.averted)
    return {label: found[label] for label in [*(label for _, label in BANDS), TENFOLD]}


@dataclass(frozen=True, slots=True)
class EntryRow:
    """Alert and override counts of one library entry (care area, drug, therapy)."""

    area: str
    drug: str
    therapy: str | None
    checks: int
    infusions: int
    alerts: int
    soft: int
    hard: int
    overrides: int
    averted: int
    limits: Mapping[str, int]  # alerts by the first limit crossed ("dose above soft max")

    @property
    def label(self) -> str:
        therapy = f" ({self.therapy})" if self.therapy else ""
        return f"{self.drug}{therapy}, {self.area}"

    @property
    def alerts_per_100(self) -> Fraction | None:
        """Alerts per 100 library infusions of this entry (use-normalised)."""
        return per_100(self.alerts, self.infusions)


ALL_AREAS: Final = "all care areas"


def by_entry(data: CqiData, per_drug: bool = False) -> tuple[EntryRow, ...]:
    """Per library entry (or per drug, all care areas and therapies together), most alerts first: the "top drugs
    by alerts" table, with alerts per 100 infusions of that entry or drug."""

    def key(entry: EntryKey) -> EntryKey:
        return (ALL_AREAS, entry[1], None) if per_drug else entry

    checks = Counter(key(c.entry) for c in data.checks if (c.at.source, c.at.seq) not in data.repeats)
    library = Counter(key(i.entry) for i in data.infusions if i.entry is not None)
    overrides = Counter(key(o.check.entry) for o in data.overrides)
    alerts: dict[EntryKey, list[Alert]] = {}
    for a in data.alerts:
        alerts.setdefault(key(a.check.entry), []).append(a)
    rows = []
    for k in checks:
        mine = alerts.get(k, [])
        limits = Counter(a.check.findings[0].label for a in mine if a.check.findings)
        rows.append(
            EntryRow(
                area=k[0],
                drug=k[1],
                therapy=k[2],
                checks=checks[k],
                infusions=library[k],
                alerts=len(mine),
                soft=sum(1 for a in mine if a.check.verdict == "soft"),
                hard=sum(1 for a in mine if a.check.verdict == "hard"),
                overrides=overrides[k],
                averted=sum(1 for a in mine if a.averted),
                limits=dict(limits.most_common()),
            )
        )
    return tuple(sorted(rows, key=lambda r: (-r.alerts, -r.overrides, r.drug, r.area, r.therapy or "")))


def tally(items: Iterable[T], key: Callable[[T], str | Iterable[str]]) -> tuple[tuple[str, int], ...]:
    """Counts of ``key(item)`` (a key may be several labels), most frequent first, then by label."""
    counter: Counter[str] = Counter()
    for item in items:
        labels = key(item)
        counter.update([labels] if isinstance(labels, str) else labels)
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def overrides_by_reason(data: CqiData) -> tuple[tuple[str, int], ...]:
    return tally(data.overrides, lambda o: o.reason)


def overrides_by_limit(data: CqiData) -> tuple[tuple[str, int], ...]:
    """Overrides by each limit they crossed (an override crossing two limits counts under both)."""
    return tally(data.overrides, lambda o: [f.label for f in o.findings])


def overrides_by_action(data: CqiData) -> tuple[tuple[str, int], ...]:
    return tally(data.overrides, lambda o: o.check.action)


def basic_reasons(data: CqiData) -> tuple[tuple[str, int], ...]:
    """Basic infusions by the reason the clinician gave."""
    basic = [i for i in data.infusions if i.mode is Mode.BASIC]
    return tally(basic, lambda i: i.basic_reason or "(no reason logged)")


@dataclass(frozen=True, slots=True)
class LibraryUse:
    """Which library version a pump checked against, how often, and when first and last (OI-DERS-5)."""

    pump: str
    library: LibraryIdentity | None
    checks: int
    first: Place
    last: Place


def library_use(data: CqiData) -> tuple[LibraryUse, ...]:
    """Per pump and library version: the checks run against it (a stale version shows here)."""
    groups: dict[tuple[str, LibraryIdentity | None], list[Check]] = {}
    for c in data.checks:
        groups.setdefault((c.at.pump, c.library), []).append(c)
    rows = [LibraryUse(pump, lib, len(cs), cs[0].at, cs[-1].at) for (pump, lib), cs in groups.items()]
    return tuple(sorted(rows, key=lambda r: (r.pump, r.first.seq)))
