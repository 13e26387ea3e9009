"""The channel lifecycle, declared as data.

Theory of operation
-------------------
All lifecycle logic of a channel lives in this table: nowhere else may a channel change state.
A row reads "in ``source``, on ``event``, if ``guard`` holds, go to ``target`` and perform
``actions``". Rows are tried in order; the first whose guard holds fires. An event with no row
for the current state is refused with a reason naming the state and the event (OI-CHAN-1), and
an event whose rows all have failing guards is refused with the failing guard's reason; a refused
event leaves everything untouched. ``FAILSAFE`` has no outgoing row: only a power cycle leaves it
(OI-SAFE-3).

Guards are named pure predicates over a :class:`GuardContext` snapshot; actions are names the
channel runtime executes in order.

Some events are not actions of anyone but conditions the channel finds (after h11's
``STATE_TRIGGERED_TRANSITIONS``): a failsafe alarm, a stopping alarm, the last stopping alarm gone, the
segment or the plan done. :data:`CONDITION_TRIGGERED_TRANSITIONS` declares, beside the table, in which
states each condition fires which event, in priority order; every service the channel fires them
until none holds (:func:`triggered`). The conditions themselves come from two more tables: sensor
conditions -> alarms (:data:`openinfusion.pump.sensor_alarms.SENSOR_ALARMS`) and clinical timers ->
alarms (:data:`openinfusion.pump.timers.TIMER_ALARMS`). Those three tables and :data:`TRANSITIONS`
are a channel's whole behaviour. Because the machine is data, the diagram in
``docs/statechart.md`` is generated from it (``openinfusion statechart``) and the tests explore
every (state, event) pair.

States that deliver fluid: ``INFUSING`` and ``KVO``. In every other state the motor is stopped
(UMN-GPCA-REQ-06).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final


class ChannelState(Enum):
    """Lifecycle states of one channel."""

    IDLE = "idle"  # no program
    PROGRAMMING = "programming"  # a program is being entered
    READY = "ready"  # a validated program waits for start
    INFUSING = "infusing"  # delivering the plan (primary, loading, bolus, secondary, steps, PCA)
    PAUSED = "paused"  # stopped by the clinician; program kept
    ALARM = "alarm"  # stopped by a stopping alarm; program kept
    KVO = "kvo"  # VTBI complete, keep-vein-open rate running
    COMPLETE = "complete"  # VTBI complete, delivery ended (KVO off)
    FAILSAFE = "failsafe"  # motor off, high-priority alarm; only a power cycle leaves it


DELIVERING: Final = frozenset({ChannelState.INFUSING, ChannelState.KVO})


class ChannelEvent(Enum):
    """Everything that can move a channel: clinician actions and conditions the core detects."""

    BEGIN_PROGRAMMING = "begin_programming"
    ENTER_PROGRAM = "enter_program"  # a validated program is accepted (DERS passed or overridden)
    CANCEL_PROGRAMMING = "cancel_programming"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CLEAR = "clear"  # discard the program and return to idle
    TITRATE = "titrate"  # a new rate/dose is entered, pending confirmation
    CONFIRM_TITRATION = "confirm_titration"
    CANCEL_TITRATION = "cancel_titration"
    BOLUS = "bolus"  # clinician bolus from a running infusion
    SECONDARY = "secondary"  # piggyback infusion, returns to primary
    PCA_DEMAND = "pca_demand"  # patient presses the demand button
    SEGMENT_DONE = "segment_done"  # a plan segment ended and another follows
    PLAN_DONE = "plan_done"  # the last segment ended (VTBI complete)
    STOPPING_ALARM = "stopping_alarm"  # an alarm that stops delivery became active
    ALARMS_RESOLVED = "alarms_resolved"  # no stopping alarm remains active
    FAULT = "fault"  # safety monitor, self-test or watchdog failure


class Action(Enum):
    """Named steps the channel runtime performs when a transition fires."""

    LOAD_PROGRAM = "load_program"
    DISCARD_PROGRAM = "discard_program"
    START_DELIVERY = "start_delivery"
    STOP_MOTOR = "stop_motor"
    LATCH_MOTOR = "latch_motor"  # trip the channel's safety latch: the motor cannot move until power-off
    BACK_OFF = "back_off"  # relieve line pressure after an occlusion stop
    HOLD_TITRATION = "hold_titration"  # keep the old rate, start the confirmation timer
    APPLY_TITRATION = "apply_titration"
    DROP_TITRATION = "drop_titration"
    INSERT_BOLUS = "insert_bolus"
    INSERT_SECONDARY = "insert_secondary"
    DECIDE_DEMAND = "decide_demand"
    NEXT_SEGMENT = "next_segment"
    RETURN_TO_PRIMARY = "return_to_primary"  # a secondary ran to the end: the primary program is back
    START_KVO = "start_kvo"
    ANNOUNCE_COMPLETE = "announce_complete"
    FAILSAFE = "failsafe"


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What guards may look at: a snapshot the channel runtime takes before trying an event."""

    loaded: bool  # door closed and set loaded (or syringe clamped)
    stopping_alarm: bool  # a stopping alarm is active on this channel or the pump
    kvo_enabled: bool
    titration_pending: bool
    is_pca: bool
    titratable: bool


@dataclass(frozen=True, slots=True)
class Guard:
    """A named pure predicate, with the reason given when it fails."""

    name: str
    test: Callable[[GuardContext], bool]
    refusal: str

    def __str__(self) -> str:
        return self.name


CAN_DELIVER: Final = Guard(
    "loaded and no stopping alarm",
    lambda c: c.loaded and not c.stopping_alarm,
    "door open, set not loaded or a stopping alarm is active",
)
KVO_ON: Final = Guard("kvo enabled", lambda c: c.kvo_enabled, "KVO is off")
KVO_OFF: Final = Guard("kvo disabled", lambda c: not c.kvo_enabled, "KVO is on")
PENDING: Final = Guard("titration pending", lambda c: c.titration_pending, "no titration is pending")
NOT_PENDING: Final = Guard(
    "no titration pending", lambda c: not c.titration_pending, "a titration is pending confirmation"
)
TITRATABLE: Final = Guard(
    "program titratable", lambda c: c.titratable and not c.titration_pending, "program cannot be titrated now"
)
PCA: Final = Guard("PCA program", lambda c: c.is_pca, "not a PCA program")
NO_ALARM: Final = Guard("no stopping alarm", lambda c: not c.stopping_alarm, "a stopping alarm is still active")


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the lifecycle: source, event, guard, target, actions."""

    source: ChannelState
    event: ChannelEvent
    guard: Guard | None
    target: ChannelState
    actions: tuple[Action, ...] = ()


S = ChannelState
E = ChannelEvent
A = Action

#: The channel lifecycle. Order matters only between rows with the same (source, event).
TRANSITIONS: Final[tuple[Transition, ...]] = (
    # programming
    Transition(S.IDLE, E.BEGIN_PROGRAMMING, None, S.PROGRAMMING),
    Transition(S.COMPLETE, E.BEGIN_PROGRAMMING, None, S.PROGRAMMING, (A.DISCARD_PROGRAM,)),
    Transition(S.KVO, E.BEGIN_PROGRAMMING, None, S.PROGRAMMING, (A.STOP_MOTOR, A.DISCARD_PROGRAM)),
    Transition(S.PROGRAMMING, E.ENTER_PROGRAM, None, S.READY, (A.LOAD_PROGRAM,)),
    Transition(S.PROGRAMMING, E.CANCEL_PROGRAMMING, None, S.IDLE),
    Transition(S.READY, E.BEGIN_PROGRAMMING, None, S.PROGRAMMING, (A.DISCARD_PROGRAM,)),
    Transition(S.READY, E.CLEAR, None, S.IDLE, (A.DISCARD_PROGRAM,)),
    # running
    Transition(S.READY, E.START, CAN_DELIVER, S.INFUSING, (A.START_DELIVERY,)),
    Transition(S.INFUSING, E.PAUSE, None, S.PAUSED, (A.STOP_MOTOR,)),
    Transition(S.PAUSED, E.RESUME, CAN_DELIVER, S.INFUSING, (A.START_DELIVERY,)),
    Transition(S.PAUSED, E.CLEAR, None, S.IDLE, (A.DISCARD_PROGRAM,)),
    Transition(S.COMPLETE, E.CLEAR, None, S.IDLE, (A.DISCARD_PROGRAM,)),
    Transition(S.KVO, E.CLEAR, None, S.IDLE, (A.STOP_MOTOR, A.DISCARD_PROGRAM)),
    # changes to a running infusion
    Transition(S.INFUSING, E.TITRATE, TITRATABLE, S.INFUSING, (A.HOLD_TITRATION,)),
    Transition(S.PAUSED, E.TITRATE, TITRATABLE, S.PAUSED, (A.HOLD_TITRATION,)),
    Transition(S.INFUSING, E.CONFIRM_TITRATION, PENDING, S.INFUSING, (A.APPLY_TITRATION,)),
    Transition(S.PAUSED, E.CONFIRM_TITRATION, PENDING, S.PAUSED, (A.APPLY_TITRATION,)),
    Transition(S.INFUSING, E.CANCEL_TITRATION, PENDING, S.INFUSING, (A.DROP_TITRATION,)),
    Transition(S.PAUSED, E.CANCEL_TITRATION, PENDING, S.PAUSED, (A.DROP_TITRATION,)),
    Transition(S.INFUSING, E.BOLUS, NOT_PENDING, S.INFUSING, (A.INSERT_BOLUS,)),
    Transition(S.INFUSING, E.SECONDARY, NOT_PENDING, S.INFUSING, (A.INSERT_SECONDARY,)),
    Transition(S.INFUSING, E.PCA_DEMAND, PCA, S.INFUSING, (A.DECIDE_DEMAND,)),
    Transition(S.PAUSED, E.PCA_DEMAND, PCA, S.PAUSED, (A.DECIDE_DEMAND,)),
    Transition(S.ALARM, E.PCA_DEMAND, PCA, S.ALARM, (A.DECIDE_DEMAND,)),
    # the plan advances
    Transition(S.INFUSING, E.SEGMENT_DONE, None, S.INFUSING, (A.NEXT_SEGMENT,)),
    Transition(S.INFUSING, E.PLAN_DONE, KVO_ON, S.KVO, (A.RETURN_TO_PRIMARY, A.START_KVO, A.ANNOUNCE_COMPLETE)),
    Transition(S.INFUSING, E.PLAN_DONE, KVO_OFF, S.COMPLETE, (A.RETURN_TO_PRIMARY, A.STOP_MOTOR, A.ANNOUNCE_COMPLETE)),
    # alarms
    Transition(S.INFUSING, E.STOPPING_ALARM, None, S.ALARM, (A.STOP_MOTOR, A.BACK_OFF)),
    Transition(S.KVO, E.STOPPING_ALARM, None, S.ALARM, (A.STOP_MOTOR, A.BACK_OFF)),
    Transition(S.ALARM, E.ALARMS_RESOLVED, NO_ALARM, S.PAUSED),
    Transition(S.ALARM, E.CLEAR, NO_ALARM, S.IDLE, (A.DISCARD_PROGRAM,)),
    # faults: from every state but FAILSAFE
    *(
        Transition(s, E.FAULT, None, S.FAILSAFE, (A.LATCH_MOTOR, A.STOP_MOTOR, A.FAILSAFE))
        for s in ChannelState
        if s is not ChannelState.FAILSAFE
    ),
)


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the channel found this service: the inputs of the condition-triggered transitions."""

    failsafe_alarm: bool  # a failsafe alarm holds the channel (its own or a pump-wide one)
    stopping_alarm: bool  # a stopping alarm is active on the channel or the pump
    segment_done: bool  # the segment in progress reached its volume or its time
    more_segments: bool  # another segment follows (in the plan or in what was interrupted)


@dataclass(frozen=True, slots=True)
class Trigger:
    """A condition that fires ``event`` by itself while the channel is in one of ``sources``."""

    sources: frozenset[ChannelState]
    name: str
    holds: Callable[[Conditions], bool]
    event: ChannelEvent


_NOT_FAILSAFE: Final = frozenset(s for s in ChannelState if s is not ChannelState.FAILSAFE)

#: Condition-triggered transitions, in priority order: the first that holds fires, then the table is
#: tried again on the new state until none holds. The event then follows :data:`TRANSITIONS`.
CONDITION_TRIGGERED_TRANSITIONS: Final[tuple[Trigger, ...]] = (
    Trigger(_NOT_FAILSAFE, "a failsafe alarm is active", lambda c: c.failsafe_alarm, E.FAULT),
    Trigger(DELIVERING, "a stopping alarm is active", lambda c: c.stopping_alarm, E.STOPPING_ALARM),
    Trigger(frozenset({S.ALARM}), "no stopping alarm is left", lambda c: not c.stopping_alarm, E.ALARMS_RESOLVED),
    Trigger(
        frozenset({S.INFUSING}), "the segment is done and another follows",
        lambda c: c.segment_done and c.more_segments, E.SEGMENT_DONE,
    ),
    Trigger(
        frozenset({S.INFUSING}), "the last segment is done",
        lambda c: c.segment_done and not c.more_segments, E.PLAN_DONE,
    ),
)  # fmt: skip


def triggered(state: ChannelState, conditions: Conditions) -> ChannelEvent | None:
    """The event a condition fires in ``state`` (the first row that holds), or None. Pure."""
    for row in CONDITION_TRIGGERED_TRANSITIONS:
        if state in row.sources and row.holds(conditions):
            return row.event
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an event was refused: state, event and reason."""

    state: ChannelState
    event: ChannelEvent
    reason: str


def _index(rows: tuple[Transition, ...]) -> dict[tuple[ChannelState, ChannelEvent], tuple[Transition, ...]]:
    table: dict[tuple[ChannelState, ChannelEvent], list[Transition]] = {}
    for row in rows:
        table.setdefault((row.source, row.event), []).append(row)
    return {key: tuple(value) for key, value in table.items()}


_TABLE: Final = _index(TRANSITIONS)


def fire(state: ChannelState, event: ChannelEvent, ctx: GuardContext) -> Transition | Refusal:
    """The transition ``event`` takes from ``state`` under ``ctx``, or why it is refused. Pure."""
    rows = _TABLE.get((state, event))
    if not rows:
        return Refusal(state, event, f"{event.value} is not allowed while {state.value}")
    for row in rows:
        if row.guard is None or row.guard.test(ctx):
            return row
    failed = rows[-1].guard
    return Refusal(state, event, failed.refusal if failed else "guard failed")


def allowed_events(state: ChannelState) -> tuple[ChannelEvent, ...]:
    """Events that have at least one row from ``state`` (guards not evaluated)."""
    return tuple(e for e in ChannelEvent if (state, e) in _TABLE)


def mermaid() -> str:
    """The lifecycle as a Mermaid ``stateDiagram-v2``, generated from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", f"    [*] --> {ChannelState.IDLE.name}"]
    merged: dict[tuple[ChannelState, ChannelState], list[str]] = {}
    for row in TRANSITIONS:
        label = row.event.value + (f" [{row.guard}]" if row.guard else "")
        if row.actions:
            label += " / " + ", ".join(a.value for a in row.actions)
        merged.setdefault((row.source, row.target), []).append(label)
    for (src, dst), labels in merged.items():
        lines.append(f"    {src.name} --> {dst.name}: {'<br/>'.join(labels)}")
    return "\n".join(lines) + "\n"


def graphviz() -> str:
    """The lifecycle as Graphviz DOT (for an SVG where ``dot`` is installed)."""
    out = ["digraph channel {", "  rankdir=LR; node [shape=box, style=rounded];"]
    for row in TRANSITIONS:
        label = row.event.value + (f"\\n[{row.guard}]" if row.guard else "")
        out.append(f'  {row.source.name} -> {row.target.name} [label="{label}"];')
    out.append("}")
    return "\n".join(out) + "\n"
