"""Alarm system of the pump (IEC 60601-1-8): the catalogue as data, and the alarm manager.

All alarm logic lives in this file. The *catalogue* (:data:`CATALOGUE`) says, for each alarm
condition, its priority, whether its signal latches, whether it stops delivery, whether it is a
failsafe, its scope (one channel or the whole pump), how it escalates and which requirement asks for
it (OI-ALM-1). The *manager* (:class:`AlarmManager`) is a pure state object for the whole pump
(channels and pump scope); time comes in as an argument and every change comes out as
:class:`AlarmEvent` values the caller appends to the event log (UMN-GPCA-REQ-80).

Theory of operation
-------------------
* Priorities follow IEC 60601-1-8: LOW < MEDIUM < HIGH, plus INFO for *information signals*, which
  the standard distinguishes from alarm signals (standards-and-safety.md §2.4, "Alarm vs alert"):
  an INFO row ("running on battery") is listed and logged but never sounds, lights no alarm
  indicator and never stops delivery. GPCA's "Frequent Bolus Requests" is LOW and visual only
  (gpca-requirements.yaml UMN-GPCA-NOTIF-14), hence the ``audible`` column.
* An alarm is raised when its condition appears (:meth:`AlarmManager.activate`, idempotent while it
  persists). When the condition goes (:meth:`AlarmManager.condition_cleared`) a non-latching alarm
  ends; a latching one keeps signalling until the operator resets it (IEC 60601-1-8 latching signal,
  standards-and-safety.md §2.4 "Latching"), so delivery does not resume by itself (OI-ALM-12).
* Operator reset (:meth:`AlarmManager.reset`): a latched alarm ends. While the condition persists,
  a row with ``reset_requires_clear`` refuses (door still open, air still in line); other rows are
  *acknowledged*: the alarm stays listed (and still stops delivery if its row says so) but is silent
  and does not escalate until its condition ends. Failsafe alarms are never reset: only a power cycle
  clears them (OI-SAFE-3). Every refusal is an event with its reason.
* Audio pause (:meth:`AlarmManager.audio_pause`) silences the speaker for :data:`AUDIO_PAUSE` (2 min,
  the figure used by Alaris GP, Plum 360 and Sigma Spectrum, standards-and-safety.md §2.4). A new
  alarm condition (or an escalation) of priority equal to or higher than the highest paused one ends
  the pause at once; when the pause runs out, every alarm still signalling is re-announced (an event
  each). GPCA's 30-minute silence (UMN-GPCA-CONST-18) is deliberately not used: commercial pumps
  re-announce after 2 minutes.
* Escalation: an alarm left unattended (neither acknowledged nor audio-paused) for its row's
  ``escalate_after`` rises once to ``escalate_to``. The escalation durations are this project's
  choice (no public figure was found); they are shown in docs/alarms.md.
* Arbitration: :meth:`AlarmManager.annunciation` lists the alarms by priority, then most recent
  onset first (UMN-GPCA-REQ-60, 63, 64, 68); the signal shown and sounded is that of the first.
* Time-driven changes (a pause running out, an escalation falling due) take effect at the instant
  they fall due: :meth:`AlarmManager.annunciation` shows them whenever it is asked. Their events are
  made by the next call, in the order they fell due, stamped with that call's time (when the core
  acted on them, so the caller's log stays time-ordered) and carrying the ``due`` instant.
  :meth:`AlarmManager.next_attention` says when the next one is due, so the core can sleep until then.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType
from typing import Final

from openinfusion.errors import ConfigError, InputError, OpenInfusionError
from openinfusion.pump.eventlog import EventKind, JsonValue
from openinfusion.units import Duration, Instant

AUDIO_PAUSE: Final = Duration.min(2)
"""Audio pause length: 2 min (Alaris GP, Plum 360, Sigma Spectrum; standards-and-safety.md §2.4)."""

MAX_CHANNELS: Final = 4


class AlarmError(InputError):
    """A call the alarm manager cannot take: unknown channel, wrong scope, time running backwards."""


class Priority(Enum):
    """IEC 60601-1-8 priority, ordered INFO < LOW < MEDIUM < HIGH. INFO is an information signal."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: Priority) -> bool:
        return self.rank < other.rank

    def __le__(self, other: Priority) -> bool:
        return self.rank <= other.rank

    def __gt__(self, other: Priority) -> bool:
        return self.rank > other.rank

    def __ge__(self, other: Priority) -> bool:
        return self.rank >= other.rank


_RANK: Final = MappingProxyType({p: i for i, p in enumerate(Priority)})


class Scope(Enum):
    """Whether an alarm concerns one channel or the whole pump (OI-CHAN-2)."""

    CHANNEL = "channel"
    PUMP = "pump"


class AlarmCode(Enum):
    """One member per alarm condition; the value is the code written to the event log."""

    OCCLUSION_DOWNSTREAM = "occlusion_downstream"
    OCCLUSION_UPSTREAM = "occlusion_upstream"
    AIR_IN_LINE = "air_in_line"
    AIR_CUMULATIVE = "air_cumulative"
    DOOR_OPEN = "door_open"
    SET_NOT_LOADED = "set_not_loaded"
    VTBI_COMPLETE_KVO = "vtbi_complete_kvo"
    VTBI_COMPLETE = "vtbi_complete"
    NEAR_END = "near_end"
    BATTERY_LOW = "battery_low"
    BATTERY_DEPLETED = "battery_depleted"
    ON_BATTERY = "on_battery"
    MOTOR_FAULT = "motor_fault"
    ENCODER_FAULT = "encoder_fault"
    PRESSURE_SENSOR_FAULT = "pressure_sensor_fault"
    AIR_SENSOR_FAULT = "air_sensor_fault"
    DELIVERY_ACCURACY = "delivery_accuracy"
    MOTION_MISMATCH = "motion_mismatch"
    REVERSE_DELIVERY = "reverse_delivery"
    CALLBACK_PAUSED = "callback_paused"
    CALLBACK_PROGRAMMING = "callback_programming"
    UNCONFIRMED_TITRATION = "unconfirmed_titration"
    PCA_FREQUENT_DEMANDS = "pca_frequent_demands"
    MAX_DOSE = "max_dose"
    OVER_INFUSION = "over_infusion"
    UNDER_INFUSION = "under_infusion"
    OVERHEATED = "overheated"
    RESERVOIR_LOW = "reservoir_low"
    RESERVOIR_EMPTY = "reservoir_empty"
    SELF_TEST_FAILED = "self_test_failed"
    WATCHDOG_FAULT = "watchdog_fault"
    SYSTEM_FAULT = "system_fault"
    LIBRARY_FALLBACK = "library_fallback"


_REQUIREMENT_ID: Final = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmSpec:
    """One catalogue row. Invariants are checked when built, so an inconsistent row cannot exist.

    ``reset_requires_clear``: an operator reset is refused while the condition persists.
    ``audible``: the alarm sounds (INFO rows never do). ``escalate_after`` and ``escalate_to`` are
    both set or both None; ``escalate_to`` is above ``priority``. A failsafe row is HIGH, latching,
    stopping and never escalates. ``requirement`` is an ID of safety/requirements.yaml.
    """

    code: AlarmCode
    priority: Priority
    latching: bool
    stops_delivery: bool
    scope: Scope
    reset_requires_clear: bool
    requirement: str
    text: str
    failsafe: bool = False
    audible: bool = True
    escalate_after: Duration | None = None
    escalate_to: Priority | None = None

    def __post_init__(self) -> None:
        where = f"alarm catalogue[{self.code.name}]"
        if not _REQUIREMENT_ID.fullmatch(self.requirement):
            raise ConfigError(f"{where}.requirement", f"not a requirement ID: {self.requirement!r}")
        if not self.text.strip():
            raise ConfigError(f"{where}.text", "must not be empty")
        if (self.escalate_after is None) != (self.escalate_to is None):
            raise ConfigError(where, "escalate_after and escalate_to go together")
        if self.escalate_after is not None and self.escalate_after.us <= 0:
            raise ConfigError(f"{where}.escalate_after", "must be positive")
        if self.escalate_to is not None and self.escalate_to <= self.priority:
            raise ConfigError(f"{where}.escalate_to", "must be above the row's priority")
        if self.failsafe and not (
            self.priority is Priority.HIGH and self.latching and self.stops_delivery and self.escalate_to is None
        ):
            raise ConfigError(where, "a failsafe alarm is high priority, latching, stopping and never escalates")
        if self.priority is Priority.INFO and (self.audible or self.latching or self.stops_delivery):
            raise ConfigError(where, "an information signal is silent, non-latching and never stops delivery")
        if self.stops_delivery and self.priority < Priority.MEDIUM:
            raise ConfigError(where, "an alarm that stops delivery is at least medium priority")


def _failsafe(code: AlarmCode, scope: Scope, requirement: str, text: str) -> AlarmSpec:
    """A failsafe row: high, latching, stopping; cleared only by a power cycle after service (OI-SAFE-3)."""
    return AlarmSpec(
        code=code,
        priority=Priority.HIGH,
        latching=True,
        stops_delivery=True,
        scope=scope,
        reset_requires_clear=True,
        failsafe=True,
        requirement=requirement,
        text=text,
    )


def _stopping(code: AlarmCode, scope: Scope, requirement: str, text: str) -> AlarmSpec:
    """A high-priority, latching, stopping row that cannot be reset while its condition persists."""
    return AlarmSpec(
        code=code,
        priority=Priority.HIGH,
        latching=True,
        stops_delivery=True,
        scope=scope,
        reset_requires_clear=True,
        requirement=requirement,
        text=text,
    )


def _warning(code: AlarmCode, requirement: str, text: str) -> AlarmSpec:
    """A low-priority channel warning: not latching, delivery goes on (its rate is the channel's business)."""
    return AlarmSpec(
        code=code,
        priority=Priority.LOW,
        latching=False,
        stops_delivery=False,
        scope=Scope.CHANNEL,
        reset_requires_clear=False,
        requirement=requirement,
        text=text,
    )


C, P = Scope.CHANNEL, Scope.PUMP

_ROWS: Final[tuple[AlarmSpec, ...]] = (
    _stopping(
        AlarmCode.OCCLUSION_DOWNSTREAM, C, "OI-ALM-2", "Downstream occlusion: check clamps, kinks and the patient line"
    ),
    _stopping(
        AlarmCode.OCCLUSION_UPSTREAM,
        C,
        "OI-ALM-4",
        "Upstream occlusion: check the container, spike and clamps above the pump",
    ),
    _stopping(AlarmCode.AIR_IN_LINE, C, "UMN-GPCA-REQ-21", "Air in line: remove the air before restarting"),
    AlarmSpec(
        code=AlarmCode.AIR_CUMULATIVE,
        priority=Priority.HIGH,
        latching=True,
        stops_delivery=True,
        scope=C,
        # The accumulated air only drops out of its window once the operator has purged the line, so
        # this reset must be possible while the accumulator is still over its limit.
        reset_requires_clear=False,
        requirement="OI-ALM-5",
        text="Accumulated air in line: purge the line before restarting",
    ),
    _stopping(AlarmCode.DOOR_OPEN, C, "OI-ALM-6", "Door open: close the door, then restart"),
    _stopping(
        AlarmCode.SET_NOT_LOADED, C, "OI-ALM-6", "Set not loaded: load the set (or clamp the syringe), then restart"
    ),
    AlarmSpec(
        code=AlarmCode.VTBI_COMPLETE_KVO,
        priority=Priority.LOW,  # GPCA "Infusion Complete" is low (UMN-GPCA-NOTIF-13)
        latching=False,
        stops_delivery=False,
        scope=C,
        reset_requires_clear=False,
        escalate_after=Duration.min(10),
        escalate_to=Priority.MEDIUM,
        requirement="OI-ALM-7",
        text="Volume to be infused complete: KVO running",
    ),
    AlarmSpec(
        code=AlarmCode.VTBI_COMPLETE,
        priority=Priority.MEDIUM,  # no KVO: the vein is no longer kept open
        latching=False,
        stops_delivery=True,
        scope=C,
        reset_requires_clear=False,
        requirement="OI-ALM-7",
        text="Volume to be infused complete: delivery ended",
    ),
    _warning(AlarmCode.NEAR_END, "OI-ALM-7", "Infusion near end"),
    AlarmSpec(
        code=AlarmCode.BATTERY_LOW,
        priority=Priority.MEDIUM,
        latching=False,
        stops_delivery=False,
        scope=P,
        reset_requires_clear=False,
        escalate_after=Duration.min(10),  # raised >= 30 min before depletion (OI-ALM-8): 20 min still left
        escalate_to=Priority.HIGH,
        requirement="OI-ALM-8",
        text="Battery low: connect mains power",
    ),
    _stopping(AlarmCode.BATTERY_DEPLETED, P, "OI-ALM-8", "Battery depleted: delivery stopped, connect mains power"),
    AlarmSpec(
        code=AlarmCode.ON_BATTERY,
        priority=Priority.INFO,
        latching=False,
        stops_delivery=False,
        scope=P,
        reset_requires_clear=False,
        audible=False,
        requirement="OI-ALM-8",
        text="Running on battery",
    ),
    _failsafe(AlarmCode.MOTOR_FAULT, C, "OI-ALM-9", "Motor fault: channel out of service"),
    # The Open PCA pump's flow-rate checker and temperature sensor (open-pca-requirements.md Table 4, EC7-EC9);
    # over-infusion halts (EC7's postcondition; Table 4 says KVO, which cannot stop a free flow).
    _stopping(AlarmCode.OVER_INFUSION, C, "OPENPCA-R6-4-0-2", "Over-infusion: measured flow above the rate"),
    # Table 4's warnings are low priority: under-infusion (the rate continues), low reservoir, max dose (KVO).
    _warning(AlarmCode.UNDER_INFUSION, "OPENPCA-R6-4-0-3", "Under-infusion: measured flow below the rate"),
    AlarmSpec(
        code=AlarmCode.OVERHEATED,
        priority=Priority.MEDIUM,  # Table 4: pump overheated alarm, medium, pump off
        latching=True,
        stops_delivery=True,
        scope=C,
        reset_requires_clear=True,
        requirement="OPENPCA-R6-4-0-8",
        text="Pump overheated: delivery stopped",
    ),
    _warning(AlarmCode.RESERVOIR_LOW, "OPENPCA-R6-8-0-9", "Container nearly empty"),
    AlarmSpec(
        code=AlarmCode.RESERVOIR_EMPTY,
        priority=Priority.MEDIUM,  # Table 4: empty-reservoir alarm, medium, pump off
        latching=True,
        stops_delivery=True,
        scope=C,
        reset_requires_clear=False,
        requirement="OPENPCA-R6-8-0-10",
        text="Container (syringe) empty: delivery stopped",
    ),
    _failsafe(AlarmCode.ENCODER_FAULT, C, "OI-ALM-9", "Encoder fault: channel out of service"),
    _stopping(AlarmCode.PRESSURE_SENSOR_FAULT, C, "OI-ALM-9", "Pressure sensor fault: occlusion cannot be detected"),
    _stopping(AlarmCode.AIR_SENSOR_FAULT, C, "OI-ALM-9", "Air sensor fault: air in line cannot be detected"),
    _failsafe(
        AlarmCode.DELIVERY_ACCURACY, C, "OI-SAFE-2", "Delivered volume differs from the program: channel out of service"
    ),
    _failsafe(
        AlarmCode.MOTION_MISMATCH, C, "OI-SAFE-1", "Motor motion not confirmed by the encoder: channel out of service"
    ),
    _failsafe(AlarmCode.REVERSE_DELIVERY, C, "UMN-GPCA-REQ-22", "Reverse delivery: channel out of service"),
    AlarmSpec(
        code=AlarmCode.CALLBACK_PAUSED,
        priority=Priority.MEDIUM,
        latching=False,
        stops_delivery=False,
        scope=C,
        reset_requires_clear=False,
        escalate_after=Duration.min(5),
        escalate_to=Priority.HIGH,
        requirement="OI-ALM-10",
        text="Channel paused: resume or stop the infusion",
    ),
    AlarmSpec(
        code=AlarmCode.CALLBACK_PROGRAMMING,
        priority=Priority.MEDIUM,  # Medfusion 3500 "User Callback" is medium (standards-and-safety.md §3)
        latching=False,
        stops_delivery=False,
        scope=C,
        reset_requires_clear=False,
        escalate_after=Duration.min(5),
        escalate_to=Priority.HIGH,
        requirement="OI-ALM-10",
        text="Programming not finished: complete or cancel the program",
    ),
    AlarmSpec(
        code=AlarmCode.UNCONFIRMED_TITRATION,
        priority=Priority.MEDIUM,
        latching=False,
        stops_delivery=False,
        scope=C,
        reset_requires_clear=False,
        escalate_after=Duration.min(2),
        escalate_to=Priority.HIGH,
        requirement="OI-ALM-10",
        text="Rate change not confirmed: the previous rate is still running",
    ),
    AlarmSpec(
        code=AlarmCode.PCA_FREQUENT_DEMANDS,
        priority=Priority.LOW,  # low, visual only (UMN-GPCA-NOTIF-14)
        latching=False,
        stops_delivery=False,
        scope=C,
        reset_requires_clear=False,
        audible=False,
        requirement="UMN-GPCA-REQ-26",
        text="Frequent patient demands during lockout",
    ),
    # "max dose warning", delayed onset, low; the pump runs at KVO while it is in effect (Table 4, EC13).
    _warning(AlarmCode.MAX_DOSE, "OPENPCA-R5-2-0-5", "Maximum dose reached: running at KVO"),
    _failsafe(AlarmCode.SELF_TEST_FAILED, P, "OI-POST-1", "Self-test failed: pump out of service"),
    _failsafe(AlarmCode.WATCHDOG_FAULT, P, "OI-POST-2", "Watchdog fault: pump out of service"),
    _failsafe(AlarmCode.SYSTEM_FAULT, P, "OI-SAFE-3", "System fault: pump out of service"),
    AlarmSpec(
        code=AlarmCode.LIBRARY_FALLBACK,
        priority=Priority.MEDIUM,
        latching=True,
        stops_delivery=False,
        scope=P,
        reset_requires_clear=False,
        requirement="OI-LIB-PKG-4",
        text="Stored drug library corrupt: last known good library in use, call pharmacy",
    ),
)

del C, P


def build_catalogue(rows: Iterable[AlarmSpec]) -> Mapping[AlarmCode, AlarmSpec]:
    """Index ``rows`` by code; every :class:`AlarmCode` must have exactly one row (checked at import)."""
    catalogue: dict[AlarmCode, AlarmSpec] = {}
    for row in rows:
        if row.code in catalogue:
            raise OpenInfusionError(f"alarm catalogue: duplicate row for {row.code.name}")
        catalogue[row.code] = row
    missing = [code.name for code in AlarmCode if code not in catalogue]
    if missing:
        raise OpenInfusionError(f"alarm catalogue: no row for {', '.join(missing)}")
    return MappingProxyType(catalogue)


CATALOGUE: Final = build_catalogue(_ROWS)
"""The alarm catalogue (OI-ALM-1): one :class:`AlarmSpec` per :class:`AlarmCode`, read-only."""


class AlarmState(Enum):
    """Where a listed alarm is in its life."""

    ACTIVE = "active"  # the condition is present
    LATCHED = "latched"  # the condition has gone; the latching signal continues until reset
    ACKNOWLEDGED = "acknowledged"  # reset while the condition persists: silent, listed until it ends


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """A listed alarm. ``onset`` is its first onset, ``last_onset`` the latest (a latched alarm whose
    condition returns); ``attended_at`` starts its escalation clock (onset, audio pause). ``instance``
    is unique since power-on, so every event of one alarm can be linked (the PCD-04 alert instance)."""

    instance: int
    code: AlarmCode
    channel: int | None
    priority: Priority
    state: AlarmState
    onset: Instant
    last_onset: Instant
    attended_at: Instant
    escalated: bool = False
    detail: str = ""

    @property
    def spec(self) -> AlarmSpec:
        return CATALOGUE[self.code]

    @property
    def text(self) -> str:
        return self.spec.text

    @property
    def sounding(self) -> bool:
        """True if this alarm calls for the speaker (audio pause aside)."""
        return self.spec.audible and self.state is not AlarmState.ACKNOWLEDGED

    @property
    def escalation_due(self) -> Instant | None:
        """When this alarm escalates if nobody attends to it (None: it will not)."""
        after = self.spec.escalate_after
        if after is None or self.escalated or self.state is AlarmState.ACKNOWLEDGED:
            return None
        return self.attended_at + after


def _arbitration_key(alarm: ActiveAlarm) -> tuple[int, int, int]:
    """Priority first, then most recent onset first (UMN-GPCA-REQ-68); instance breaks exact ties."""
    return (-alarm.priority.rank, -alarm.last_onset.us, -alarm.instance)


class AlarmEventKind(Enum):
    """What happened, with the event-log kind it is recorded as."""

    RAISED = EventKind.ALARM_RAISED
    LATCHED = EventKind.ALARM_LATCHED
    CLEARED = EventKind.ALARM_CLEARED
    ACKNOWLEDGED = EventKind.ALARM_ACKNOWLEDGED
    RESET = EventKind.ALARM_RESET
    RESET_REFUSED = EventKind.EVENT_REFUSED
    ESCALATED = EventKind.ALARM_ESCALATED
    AUDIO_PAUSED = EventKind.AUDIO_PAUSED
    AUDIO_PAUSE_ENDED = EventKind.AUDIO_PAUSE_ENDED
    REANNOUNCED = EventKind.ALARM_REANNOUNCED


_PUMP_WIDE_KINDS: Final = frozenset({AlarmEventKind.AUDIO_PAUSED, AlarmEventKind.AUDIO_PAUSE_ENDED})
_ENDING_KINDS: Final = frozenset({AlarmEventKind.CLEARED, AlarmEventKind.RESET})


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmEvent:
    """A change of the alarm system at pump time ``t``, for the event log.

    Alarm events name the ``code``, ``channel``, ``instance`` and the alarm's ``priority`` and
    ``state`` after the change (``state`` is None once it has ended); ``detail`` is the condition's
    detail or, for RESET_REFUSED, the reason. Audio-pause events name no alarm; AUDIO_PAUSED gives
    ``until``. A time-driven event (escalation, pause running out, re-announcement) gives ``due``, the
    instant it fell due; ``t`` is when the core acted on it (``t >= due``).
    """

    kind: AlarmEventKind
    t: Instant
    code: AlarmCode | None = None
    channel: int | None = None
    instance: int | None = None
    priority: Priority | None = None
    state: AlarmState | None = None
    detail: str = ""
    until: Instant | None = None
    due: Instant | None = None

    def __post_init__(self) -> None:
        if self.kind in _PUMP_WIDE_KINDS:
            if self.code is not None or self.channel is not None:
                raise OpenInfusionError(f"{self.kind.name} names no alarm")
            if (self.until is not None) != (self.kind is AlarmEventKind.AUDIO_PAUSED):
                raise OpenInfusionError("only AUDIO_PAUSED carries an end time")
        elif self.code is None:
            raise OpenInfusionError(f"{self.kind.name} names an alarm code")
        elif self.kind is not AlarmEventKind.RESET_REFUSED and (self.instance is None or self.priority is None):
            raise OpenInfusionError(f"{self.kind.name} names the alarm instance and priority")

    @property
    def log_kind(self) -> EventKind:
        return self.kind.value

    def log_data(self) -> dict[str, JsonValue]:
        """The event's fields for :meth:`EventLog.append` (the caller adds the channel's context)."""
        data: dict[str, JsonValue] = {}
        if self.code is not None:
            spec = CATALOGUE[self.code]
            data.update(code=self.code.value, text=spec.text, stops_delivery=spec.stops_delivery)
        if self.instance is not None:
            data["instance"] = self.instance
        if self.priority is not None:
            data["priority"] = self.priority.value
        if self.state is not None:
            data["alarm_state"] = self.state.value
        elif self.kind in _ENDING_KINDS:
            data["alarm_state"] = "ended"
        if self.kind is AlarmEventKind.RESET_REFUSED:
            data.update(event="alarm_reset", reason=self.detail)
        elif self.detail:
            data["detail"] = self.detail
        if self.until is not None:
            data["until_us"] = self.until.us
        if self.due is not None:
            data["due_us"] = self.due.us
        return data


def _alarm_event(
    kind: AlarmEventKind, t: Instant, alarm: ActiveAlarm, state: AlarmState | None, due: Instant | None = None
) -> AlarmEvent:
    return AlarmEvent(
        kind=kind,
        t=t,
        code=alarm.code,
        channel=alarm.channel,
        instance=alarm.instance,
        priority=alarm.priority,
        state=state,
        detail=alarm.detail,
        due=due,
    )


def _reset_refusal(alarm: ActiveAlarm | None) -> str | None:
    """Why an operator reset of ``alarm`` is refused, or None if it is accepted (the reset guard)."""
    if alarm is None:
        return "no such alarm is active"
    if alarm.spec.failsafe:
        return "failsafe: cleared only by a power cycle after service"
    if alarm.state is AlarmState.ACKNOWLEDGED:
        return "already acknowledged; it ends when its condition ends"
    if alarm.state is AlarmState.ACTIVE and alarm.spec.reset_requires_clear:
        return f"condition still present: {alarm.spec.text}"
    return None


@dataclass(frozen=True, slots=True)
class ResetResult:
    """Outcome of an operator reset: ``accepted``, the ``reason`` if refused, and the events to log."""

    accepted: bool
    reason: str
    events: tuple[AlarmEvent, ...]


@dataclass(frozen=True, slots=True)
class Annunciation:
    """What the pump signals now: the highest priority, whether the speaker sounds, and the list.

    ``active`` is ordered by priority, then most recent onset first; ``top`` is its first entry.
    ``priority`` is the highest listed priority (INFO if only information signals are listed).
    """

    priority: Priority | None
    audible: bool
    top: ActiveAlarm | None
    active: tuple[ActiveAlarm, ...]
    paused_until: Instant | None

    @property
    def signal(self) -> str | None:
        """The priority for :meth:`openinfusion.pump.hal.Annunciator.signal` (None: no alarm signal)."""
        if self.priority is None or self.priority is Priority.INFO:
            return None
        name: str = self.priority.value
        return name


_Key = tuple[AlarmCode, int | None]


class AlarmManager:
    """Alarm state of a whole pump: ``channels`` channels (1..4) and the pump scope (OI-ALM-11).

    A pure state object: no clock, no I/O. Every method takes the pump time ``now``, which must never
    go backwards (:class:`AlarmError`), first applies the time-driven changes due by ``now``
    (:meth:`advance`), and returns the :class:`AlarmEvent` values to append to the event log.
    A power cycle is a new manager: it is the only way a failsafe alarm goes away.
    """

    __slots__ = ("_alarms", "_channels", "_next_instance", "_now", "_paused_level", "_paused_until")

    def __init__(self, channels: int = MAX_CHANNELS, start: Instant = Instant(0)) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            raise ConfigError("channels", f"a pump has 1 to {MAX_CHANNELS} channels, got {channels!r}")
        self._channels = channels
        self._alarms: dict[_Key, ActiveAlarm] = {}
        self._now = start
        self._next_instance = 1
        self._paused_until: Instant | None = None
        self._paused_level = Priority.LOW

    # --- conditions --------------------------------------------------------------------------

    def activate(self, code: AlarmCode, channel: int | None, now: Instant, detail: str = "") -> list[AlarmEvent]:
        """The condition ``code`` is present on ``channel`` (None for a pump-scope alarm).

        Raises the alarm if it is not listed; a latched alarm whose condition returns becomes active
        again (a new onset). Idempotent while the condition persists. A new onset of priority equal
        to or above the paused one ends an audio pause.
        """
        key = self._key(code, channel)
        events = self.advance(now)
        alarm = self._alarms.get(key)
        if alarm is not None and alarm.state is not AlarmState.LATCHED:
            return events
        if alarm is None:
            alarm = ActiveAlarm(
                self._next_instance,
                code,
                channel,
                CATALOGUE[code].priority,
                AlarmState.ACTIVE,
                now,
                now,
                now,
                False,
                detail,
            )
            self._next_instance += 1
        else:
            alarm = replace(alarm, state=AlarmState.ACTIVE, last_onset=now, detail=detail)
        self._alarms[key] = alarm
        events.append(_alarm_event(AlarmEventKind.RAISED, now, alarm, alarm.state))
        events.extend(self._preempt_pause(alarm, now))
        return events

    def condition_cleared(self, code: AlarmCode, channel: int | None, now: Instant) -> list[AlarmEvent]:
        """The condition ``code`` on ``channel`` no longer exists.

        A non-latching or acknowledged alarm ends; a latching one stays listed, signalling, until it is
        reset. Nothing happens if the alarm is not listed or already latched.
        """
        key = self._key(code, channel)
        events = self.advance(now)
        alarm = self._alarms.get(key)
        if alarm is None or alarm.state is AlarmState.LATCHED:
            return events
        if alarm.state is AlarmState.ACTIVE and alarm.spec.latching:
            self._alarms[key] = replace(alarm, state=AlarmState.LATCHED)
            events.append(_alarm_event(AlarmEventKind.LATCHED, now, alarm, AlarmState.LATCHED))
        else:
            del self._alarms[key]
            events.append(_alarm_event(AlarmEventKind.CLEARED, now, alarm, None))
        return events

    # --- operator actions --------------------------------------------------------------------

    def reset(self, code: AlarmCode, channel: int | None, now: Instant) -> ResetResult:
        """Operator reset of alarm ``code`` on ``channel``.

        Accepted: a latched alarm ends (RESET); an alarm whose condition persists and whose row allows
        it is acknowledged (ACKNOWLEDGED: silent, no escalation, listed until the condition ends).
        Refused, with the reason and a RESET_REFUSED event, and nothing else changed: a failsafe alarm
        (only a power cycle clears it), a condition that persists on a ``reset_requires_clear`` row,
        an alarm already acknowledged, an alarm not listed.
        """
        key = self._key(code, channel)
        events = self.advance(now)
        alarm = self._alarms.get(key)
        refusal = _reset_refusal(alarm)
        if alarm is None or refusal is not None:
            refused = AlarmEvent(
                kind=AlarmEventKind.RESET_REFUSED,
                t=now,
                code=code,
                channel=channel,
                instance=None if alarm is None else alarm.instance,
                priority=None if alarm is None else alarm.priority,
                state=None if alarm is None else alarm.state,
                detail=refusal or "",
            )
            return ResetResult(False, refusal or "", (*events, refused))
        if alarm.state is AlarmState.LATCHED:
            del self._alarms[key]
            events.append(_alarm_event(AlarmEventKind.RESET, now, alarm, None))
        else:
            acknowledged = replace(alarm, state=AlarmState.ACKNOWLEDGED)
            self._alarms[key] = acknowledged
            events.append(_alarm_event(AlarmEventKind.ACKNOWLEDGED, now, acknowledged, acknowledged.state))
        return ResetResult(True, "", tuple(events))

    def audio_pause(self, now: Instant) -> list[AlarmEvent]:
        """AUDIO PAUSED for :data:`AUDIO_PAUSE` from ``now`` (a repeated pause restarts it).

        The paused level is the highest priority sounding now (LOW if none, so any new audible alarm
        ends a pause taken in advance). Pausing attends to every listed alarm: escalation clocks restart.
        """
        events = self.advance(now)
        sounding = [alarm.priority for alarm in self._alarms.values() if alarm.sounding]
        self._paused_level = max(sounding, default=Priority.LOW)
        self._paused_until = now + AUDIO_PAUSE
        for key, alarm in self._alarms.items():
            self._alarms[key] = replace(alarm, attended_at=now)
        events.append(AlarmEvent(kind=AlarmEventKind.AUDIO_PAUSED, t=now, until=self._paused_until))
        return events

    # --- time ----------------------------------------------------------------------------------

    def advance(self, now: Instant) -> list[AlarmEvent]:
        """Apply the changes due by ``now`` (pause running out, escalations) in the order they fell due.

        Their events are stamped ``now``, when the core acts on them, and carry their ``due`` time.
        """
        if now < self._now:
            raise AlarmError("now", f"time went backwards: {now} is before {self._now}")
        events: list[AlarmEvent] = []
        while (due := self._next_due()) is not None and due[0] <= now:
            at, alarm = due
            if alarm is None:
                events.extend(self._end_pause(now, "audio pause expired", due=at))
                events.extend(
                    _alarm_event(AlarmEventKind.REANNOUNCED, now, a, a.state, due=at)
                    for a in self._ordered()
                    if a.sounding
                )
            else:
                escalated = replace(alarm, priority=alarm.spec.escalate_to or alarm.priority, escalated=True)
                self._alarms[(alarm.code, alarm.channel)] = escalated
                events.append(_alarm_event(AlarmEventKind.ESCALATED, now, escalated, escalated.state, due=at))
                events.extend(self._preempt_pause(escalated, now))
        self._now = now
        return events

    def next_attention(self, now: Instant) -> Instant | None:
        """When the next time-driven change is due after ``now`` (pause end or escalation), or None."""
        future = self._projected(now)._next_due()
        return None if future is None else future[0]

    # --- queries -----------------------------------------------------------------------------

    def annunciation(self, now: Instant) -> Annunciation:
        """The signal at ``now`` (time-driven changes due by ``now`` included; nothing is changed)."""
        state = self._projected(now)
        ordered = state._ordered()
        paused = state._paused_until
        return Annunciation(
            priority=ordered[0].priority if ordered else None,
            audible=paused is None and any(alarm.sounding for alarm in ordered),
            top=ordered[0] if ordered else None,
            active=ordered,
            paused_until=paused,
        )

    def active(self, channel: int | None = None) -> tuple[ActiveAlarm, ...]:
        """Listed alarms in arbitration order: all of them, or those of ``channel`` and the pump scope."""
        if channel is None:
            return self._ordered()
        self._check_channel(channel)
        return tuple(alarm for alarm in self._ordered() if alarm.channel in (channel, None))

    def stops_delivery(self, channel: int) -> bool:
        """True if any listed alarm of ``channel`` or of the pump scope stops delivery."""
        return any(alarm.spec.stops_delivery for alarm in self.active(channel))

    def in_failsafe(self, channel: int) -> bool:
        """True if a failsafe alarm holds ``channel`` (its own or a pump-scope one)."""
        return any(alarm.spec.failsafe for alarm in self.active(channel))

    # --- internals -----------------------------------------------------------------------------

    def _check_channel(self, channel: int) -> None:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < self._channels:
            raise AlarmError("channel", f"no channel {channel!r} on a {self._channels}-channel pump")

    def _key(self, code: AlarmCode, channel: int | None) -> _Key:
        scope = CATALOGUE[code].scope
        if scope is Scope.PUMP and channel is not None:
            raise AlarmError("channel", f"{code.name} concerns the whole pump: channel must be None")
        if scope is Scope.CHANNEL:
            if channel is None:
                raise AlarmError("channel", f"{code.name} concerns one channel: give its number")
            self._check_channel(channel)
        return (code, channel)

    def _ordered(self) -> tuple[ActiveAlarm, ...]:
        return tuple(sorted(self._alarms.values(), key=_arbitration_key))

    def _next_due(self) -> tuple[Instant, ActiveAlarm | None] | None:
        """The earliest pending time-driven change: (time, alarm to escalate or None for pause end)."""
        candidates: list[tuple[Instant, int, ActiveAlarm | None]] = []
        if self._paused_until is not None:
            candidates.append((self._paused_until, 0, None))
        for alarm in self._alarms.values():
            due = alarm.escalation_due
            if due is not None:
                candidates.append((due, alarm.instance, alarm))
        if not candidates:
            return None
        t, _, first = min(candidates, key=lambda c: (c[0], c[1]))
        return t, first

    def _end_pause(self, t: Instant, cause: str, due: Instant | None = None) -> list[AlarmEvent]:
        self._paused_until = None
        return [AlarmEvent(kind=AlarmEventKind.AUDIO_PAUSE_ENDED, t=t, detail=cause, due=due)]

    def _preempt_pause(self, alarm: ActiveAlarm, t: Instant) -> list[AlarmEvent]:
        if self._paused_until is None or not alarm.sounding or alarm.priority < self._paused_level:
            return []
        return self._end_pause(t, f"{alarm.code.value} ({alarm.priority.value}) raised")

    def _projected(self, now: Instant) -> AlarmManager:
        """A copy advanced to ``now``: queries see due changes without making them."""
        copy = AlarmManager(self._channels, self._now)
        copy._alarms = dict(self._alarms)
        copy._next_instance = self._next_instance
        copy._paused_until = self._paused_until
        copy._paused_level = self._paused_level
        copy.advance(now)
        return copy


# --- documentation ---------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _minutes(d: Duration) -> str:
    return f"{d.us // 60_000_000} min" if d.us % 60_000_000 == 0 else str(d)


def catalogue_markdown() -> str:
    """docs/alarms.md, generated from :data:`CATALOGUE` (a test checks the committed file matches)."""
    lines = [
        "# Alarm catalogue",
        "",
        "<!-- Generated from openinfusion.pump.alarms.CATALOGUE; do not edit. Regenerate with:",
        "     .venv/bin/python -c 'from openinfusion.pump.alarms import catalogue_markdown as m; "
        'print(m(), end="")\' > docs/alarms.md -->',
        "",
        "Priorities follow IEC 60601-1-8: **high** (immediate response), **medium** (prompt response),",
        "**low** (awareness); **info** is an information signal, shown and logged but never sounded.",
        "A *latching* alarm keeps signalling after its condition has gone, until the operator resets it.",
        "*Reset while present* says whether a reset is accepted (as an acknowledgement) while the",
        "condition persists. A *failsafe* alarm stops the channel (or pump) for good: only a power cycle",
        "after service clears it. *Scope* is one channel or the whole pump.",
        "",
        f"Audio pause silences the speaker for {_minutes(AUDIO_PAUSE)} (Alaris GP, Plum 360, Sigma Spectrum;",
        "standards-and-safety.md §2.4); a new alarm of equal or higher priority ends it, and alarms still",
        "signalling when it runs out are re-announced. An alarm left unattended for its escalation time",
        "rises to the priority shown (the times are this project's choice). The alarm shown first is the",
        "highest priority, then the most recent (GPCA REQ 60, 68).",
        "",
        "| Code | Priority | Audible | Latching | Stops delivery | Failsafe | Scope | Reset while present "
        "| Escalation | Requirement | Text |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in CATALOGUE.values():
        escalation = (
            "-"
            if spec.escalate_after is None or spec.escalate_to is None
            else f"{spec.escalate_to.value} after {_minutes(spec.escalate_after)}"
        )
        reset_while_present = "never" if spec.failsafe else _yes(not spec.reset_requires_clear)
        lines.append(
            f"| `{spec.code.value}` | {spec.priority.value} | {_yes(spec.audible)} | {_yes(spec.latching)} "
            f"| {_yes(spec.stops_delivery)} | {_yes(spec.failsafe)} | {spec.scope.value} | {reset_while_present} "
            f"| {escalation} | {spec.requirement} | {spec.text} |"
        )
    return "\n".join(lines) + "\n"
