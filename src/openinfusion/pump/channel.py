"""One pumping channel at run time: it runs the statechart's tables against its hardware.

Theory of operation
-------------------
A channel's behaviour is declared as data: the lifecycle in :data:`~openinfusion.pump.statechart.TRANSITIONS`,
the conditions that fire events by themselves in
:data:`~openinfusion.pump.statechart.CONDITION_TRIGGERED_TRANSITIONS`, sensor conditions -> alarms in
:data:`~openinfusion.pump.sensor_alarms.SENSOR_ALARMS` and clinical timers -> alarms in
:data:`~openinfusion.pump.timers.TIMER_ALARMS`. This module executes them. It changes state only through
:meth:`Channel.fire`, which looks the event up in the table, refuses it with a reason (logged) or runs the
row's actions in order. The plan stack lives in :mod:`~openinfusion.pump.plan`, the volume counters in
:mod:`~openinfusion.pump.accounting`, the targets and moves in :mod:`~openinfusion.pump.delivery`.

Everything time-driven happens in :meth:`Channel.service`, which the pump calls on every wake-up, in a
fixed order:

1. accrue infusing time to the segment in progress and book the volume moved since the last service;
2. sense: read every sensor batch, run the software sensors, apply the sensor-alarm table;
3. fire the condition-triggered transitions until none holds (failsafe, stopping alarm, alarms
   resolved, segment done, plan done);
4. timers: apply the timer-alarm table (callback, unconfirmed titration, near end);
5. drive: command the motor for the next interval, or stop it;
6. tell the pump when this channel next needs attention.

Clinician actions (start, pause, titrate, bolus, ...) are events fired between services; the pump
services the channel first so that every action sees the present.

The motor is stopped in every state but INFUSING and KVO; it never moves forward while a stopping
alarm is active, the door is open or air was detected (OI-ALM-12). The one motion allowed then is
the bounded reverse back-off after an occlusion stop (OI-ALM-3), authorised to the safety monitor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

from openinfusion.errors import InputError, InvariantError, ProgramError, TransitionRefusedError
from openinfusion.pump.accounting import PCA_LEDGER_KINDS, Accounting, Bucket, Counters, bucket_for
from openinfusion.pump.alarms import AlarmCode, AlarmEvent, AlarmManager
from openinfusion.pump.confirmation import confirmed_bolus, confirmed_program, confirmed_titration
from openinfusion.pump.confirmed import ConfirmedBolus
from openinfusion.pump.delivery import MIN_MOVE, DeliveryController, SegmentTracker
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, EventLog, JsonValue, encode_quantity, encode_rate, encode_volume
from openinfusion.pump.hal import ChannelHardware, SensorHealth
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.pca import DoseKind, PcaLedger, PcaProgram, decide_demand, frequent_requests
from openinfusion.pump.plan import PlanStack, Suspended, remainder, titrated_kinds
from openinfusion.pump.programs import (
    Bolus,
    DoseProgram,
    IntermittentProgram,
    KvoSettings,
    MultistepProgram,
    NearEndSettings,
    Program,
    RampTaperProgram,
    SecondaryProgram,
    Segment,
    SegmentKind,
    Titration,
    VolumeOverTimeProgram,
    kvo_rate_for,
)
from openinfusion.pump.safety import MAX_PERIOD, SafetyMonitor
from openinfusion.pump.sensing.air import (
    DEFAULT_CUMULATIVE_LIMIT,
    DEFAULT_SINGLE_LIMIT,
    DEFAULT_WINDOW,
    AirMonitor,
    air_check_interval,
)
from openinfusion.pump.sensing.backoff import backoff_volume
from openinfusion.pump.sensing.flowcheck import FlowChecker, FlowVerdict
from openinfusion.pump.sensing.occlusion import (
    DownstreamOcclusionDetector,
    OcclusionConfig,
    OcclusionVerdict,
    Sensitivity,
    UpstreamOcclusionDetector,
    UpstreamVerdict,
)
from openinfusion.pump.sensor_alarms import SENSOR_ALARMS, Clear, Findings
from openinfusion.pump.statechart import (
    DELIVERING,
    Action,
    ChannelEvent,
    ChannelState,
    Conditions,
    GuardContext,
    Refusal,
    fire,
    triggered,
)
from openinfusion.pump.timers import TIMER_ALARMS, Timers, TimerView, timer_due
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume

BACKOFF_TIME: Final = Duration.s(2)
SLACK_TIME: Final = Duration.s(2)
PRESSURE_WATCH: Final = Duration.s(1)  # service period while the line pressure is above the wake level
IDLE_CHECK: Final = Duration.min(5)  # an idle channel still looks at its sensors this often
MAX_TRIGGERED: Final = 64  # condition-triggered events in one service; more means the table loops (a defect)
_NO_OCCLUSION: Final = OcclusionVerdict(False, None, None, None, None, None)
_NO_UPSTREAM: Final = UpstreamVerdict(False, None, None)
_FIXED_PROGRAMS: Final = (VolumeOverTimeProgram, MultistepProgram, RampTaperProgram, IntermittentProgram)

#: How often a stopped channel with a flow sensor looks for free flow (R6.4.0(2): "immediately").
FLOW_WATCH: Final = Duration.s(5)

#: The shortest wait for a volume to be reached (a container limit, a dose limit): a wake every few ms would
#: replan the motor's move before it issued a step, and delivery would stall.
VOLUME_WATCH: Final = Duration.s(1)

#: Container limits: the low warning (Vlra) and the empty alarm (Vers), open-pca-requirements.md R6.8.0(9), (10).
CONTAINER_LOW: Final = Volume.ml(1)
CONTAINER_EMPTY: Final = Volume.ml("0.5")

#: PCA warnings during which the pump runs at KVO (open-pca-requirements.md Table 4).
_KVO_WARNINGS: Final = frozenset({AlarmCode.BATTERY_LOW, AlarmCode.RESERVOIR_LOW})

#: PCA segments Stop ends for good and a dose cap halts: a patient demand, a clinician bolus, a loading dose.
_PCA_BOLUSES: Final = frozenset({SegmentKind.PCA_DEMAND, SegmentKind.BOLUS, SegmentKind.LOADING})
#: The guard context FAULT is looked up with (its rows have no guard: it fires from every state but FAILSAFE).
_ANY_CONTEXT: Final = GuardContext(
    loaded=False, stopping_alarm=True, kvo_enabled=False, titration_pending=False, is_pca=False, titratable=False
)

#: What an event may carry: the program entered, a titration, a bolus request (a secondary is a Program).
Payload = Program | Titration | Bolus | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSettings:
    """Per-channel configuration (from the pump's configuration and, later, the care area)."""

    kvo: KvoSettings
    near_end: NearEndSettings = NearEndSettings(Duration.min(15))
    callback: Duration = Duration.min(2)
    titration_timeout: Duration = Duration.s(30)
    sensitivity: Sensitivity = Sensitivity.MEDIUM
    occlusion: OcclusionConfig = OcclusionConfig()
    air_single: Volume = DEFAULT_SINGLE_LIMIT
    air_cumulative: Volume = DEFAULT_CUMULATIVE_LIMIT
    air_window: Volume = DEFAULT_WINDOW
    service_interval: Duration = Duration.min(5)  # the longest a move runs before the core looks again
    container: Volume | None = None  # what the bag or syringe held when loaded (None: not known)
    max_carry: Volume = Volume.ml("0.05")


class Channel:
    """The runtime of one channel. All mutation goes through :meth:`fire` and :meth:`service`."""

    def __init__(
        self,
        *,
        index: int,
        hw: ChannelHardware,
        calibration: MechanismCalibration,
        settings: ChannelSettings,
        alarms: AlarmManager,
        log: EventLog,
        monitor: SafetyMonitor,
        now: Instant,
    ) -> None:
        self.index = index
        self.hw = hw
        self.cal = calibration
        self.settings = settings
        self.alarms = alarms
        self.log = log
        self.monitor = monitor
        self.state = ChannelState.IDLE
        self.controller = DeliveryController(calibration, settings.max_carry)
        self.down = DownstreamOcclusionDetector(settings.occlusion, settings.sensitivity)
        self.up = UpstreamOcclusionDetector(settings.occlusion)
        self.air = AirMonitor(settings.air_single, settings.air_cumulative, settings.air_window)
        self.program: Program | None = None
        self.active: Program | None = None  # the program titrations apply to (secondary while it runs)
        self.pending: Program | None = None
        self.pending_change: Titration | None = None  # the titration entered, as confirmed (for the monitor)
        self.segment: Segment | None = None
        self.tracker: SegmentTracker | None = None
        self.plans = PlanStack()
        self.books = Accounting(now)
        self.pca: PcaLedger | None = None
        self.dose_capped = False  # at the PCA dose limit: KVO until the window has room (OPENPCA-R5-2-0-5)
        self.kvo_held = False  # a PCA warning Table 4 runs at KVO is active (low battery, low container)
        self.selection: LibrarySelection | None = None  # the library entry the program came from
        self.secondary_selection: LibrarySelection | None = None  # the running secondary's own entry
        self.order: str | None = None  # the remote order the program came from (logged when it is confirmed)
        self.line_pressure_mmhg: float | None = None  # downstream, filtered, gauge; None: unknown or sensor fault
        self.library_identity: JsonValue = None  # the pump's active library, for the log
        self.patient: Patient | None = None
        self.alerted = False  # the last DERS check on this channel alerted (for edits and cancels after it)
        self.timers = Timers(state_since=now)
        self.last_service = now
        self.fixed_move_until: Instant | None = None  # a slack take-up or back-off move runs until then
        self._occlusion_pressure: tuple[float, float] | None = None
        self.flow_check = FlowChecker()
        self._sensed_volume = Volume(0)  # the measured volume at the last look at the sensors
        self._rising = False
        self._air_check_failed = False  # the detector's last simulated-air check, run while pumping (OI-SAFE-10)

    def configure(self, settings: ChannelSettings) -> None:
        """New settings (a care area's, from the drug library); only while the channel has no program."""
        if self.program is not None:
            raise ProgramError("settings", "a channel's settings change only while it has no program")
        self.settings = settings
        self.down = DownstreamOcclusionDetector(settings.occlusion, settings.sensitivity)
        self.air = AirMonitor(settings.air_single, settings.air_cumulative, settings.air_window)

    @property
    def counters(self) -> Counters:
        """The volume counters as of the last service (exact nL)."""
        return self.books.counters

    @property
    def active_selection(self) -> LibrarySelection | None:
        """The library entry of what runs now: the secondary's own while a secondary runs, else the program's."""
        return self.secondary_selection if isinstance(self.active, SecondaryProgram) else self.selection

    # --- events -----------------------------------------------------------------------------------

    def guard_context(self) -> GuardContext:
        """The snapshot the statechart's guards see."""
        load = self.hw.door.state()
        titratable = self.active is not None and not isinstance(self.active, _FIXED_PROGRAMS)
        return GuardContext(
            loaded=load.door_closed and load.set_loaded,
            stopping_alarm=self.alarms.stops_delivery(self.index),
            kvo_enabled=self.settings.kvo.enabled,
            titration_pending=self.pending is not None,
            is_pca=isinstance(self.program, PcaProgram),
            titratable=titratable,
        )

    def fire(self, event: ChannelEvent, now: Instant, payload: Payload = None) -> None:
        """Apply ``event`` through the statechart, or log and raise the refusal (state untouched).

        Validate, then act, then commit (decision record 0008): everything a user can get wrong in the
        payload is checked before the first action runs, so an expected error (``ProgramError``) changes
        nothing; an exception once actions have begun is a defect (:class:`InvariantError`), which the
        pump's guard answers by failing safe.
        """
        outcome = fire(self.state, event, self.guard_context())
        if isinstance(outcome, Refusal):
            self._log(now, EventKind.EVENT_REFUSED, event=event.value, state=self.state.value, reason=outcome.reason)
            raise TransitionRefusedError(self.state.value, event.value, outcome.reason)
        for action in outcome.actions:
            self._validate(action, payload)
        for action in outcome.actions:
            try:
                self._act(action, now, payload)
            except Exception as e:
                raise InvariantError(f"{action.value} failed mid-transition: {type(e).__name__}: {e}") from e
        self._commit(event, outcome.target, now)

    def fail_safe(self, now: Instant) -> None:
        """FAULT through the table, committed even if one of the row's actions fails (each is tried). OI-SAFE-9.

        The pump's guard calls this after an unexpected exception, having tripped the latch already.
        """
        if self.state is ChannelState.FAILSAFE:
            return
        outcome = fire(self.state, ChannelEvent.FAULT, _ANY_CONTEXT)  # FAULT rows have no guard
        if isinstance(outcome, Refusal):
            raise InvariantError(f"the table has no FAULT row from {self.state.value}")
        for action in outcome.actions:
            with contextlib.suppress(Exception):
                self._act(action, now, None)
        self._commit(ChannelEvent.FAULT, outcome.target, now)

    def _commit(self, event: ChannelEvent, target: ChannelState, now: Instant) -> None:
        """The one place a channel's state is assigned: the target of the row that fired (OI-SAFE-9)."""
        source, self.state = self.state, target
        if source is not target:
            self.timers.state_since = now
            self._log(now, EventKind.STATE_CHANGED, source=source.value, event=event.value, target=target.value)
            self._state_left(source, now)

    def _validate(self, action: Action, payload: Payload) -> None:
        """Raise the user's error for a payload ``action`` cannot take, before anything changes."""
        match action:
            case Action.LOAD_PROGRAM:
                if payload is None or isinstance(payload, Titration | Bolus):
                    raise ProgramError("program", "enter_program needs a program")
                self.monitor.check(self.index, confirmed_program(payload, self.settings.kvo))
            case Action.HOLD_TITRATION:
                if not isinstance(payload, Titration) or self.active is None:
                    raise ProgramError("titration", "titrate needs a Titration of the running program")
                self.active.titrated(payload)  # raises if this program cannot take this change
                self.monitor.check(self.index, confirmed_titration(payload))
            case Action.INSERT_BOLUS:
                if not isinstance(payload, Bolus):
                    raise ProgramError("bolus", "bolus needs a Bolus request")
                remaining = self.remaining()
                if remaining is not None:
                    payload.check_against(remaining)
                self.monitor.check(self.index, self._confirmed_bolus(payload))
            case Action.INSERT_SECONDARY:
                if not isinstance(payload, SecondaryProgram):
                    raise ProgramError("secondary", "secondary needs a SecondaryProgram")
                self.monitor.check(self.index, confirmed_program(payload, self.settings.kvo))

    def _act(self, action: Action, now: Instant, payload: Payload) -> None:
        match action:
            case Action.LOAD_PROGRAM:
                self._load(payload, now)
            case Action.DISCARD_PROGRAM:
                self._discard(now)
            case Action.START_DELIVERY:
                self._start_delivery(now)
            case Action.STOP_MOTOR:
                self._stop_motor(now)
            case Action.LATCH_MOTOR:
                self.hw.latch.trip()
            case Action.BACK_OFF:
                self._back_off(now)
            case Action.HOLD_TITRATION:
                self._hold_titration(payload, now)
            case Action.APPLY_TITRATION:
                self._apply_titration(now)
            case Action.DROP_TITRATION:
                self.pending = self.pending_change = None
                self.timers.titration_since = None
                self._clear(AlarmCode.UNCONFIRMED_TITRATION, now)
                self._log(now, EventKind.TITRATION_CANCELLED)
            case Action.INSERT_BOLUS:
                self._insert_bolus(payload, now)
            case Action.INSERT_SECONDARY:
                self._insert_secondary(payload, now)
            case Action.DECIDE_DEMAND:
                self._decide_demand(now)
            case Action.NEXT_SEGMENT:
                self._next_segment(now)
            case Action.RETURN_TO_PRIMARY:
                while self.plans.interrupted():  # a secondary that ran to the end of everything
                    self._unwind(now)
            case Action.START_KVO:
                self._start_kvo(now)
            case Action.ANNOUNCE_COMPLETE:
                self._clear(AlarmCode.NEAR_END, now)
                code = AlarmCode.VTBI_COMPLETE_KVO if self.settings.kvo.enabled else AlarmCode.VTBI_COMPLETE
                self._alarm(code, now, f"{self.counters.delivered} delivered")
                self._log(now, EventKind.VTBI_COMPLETE, delivered=encode_volume(self.counters.delivered))
            case Action.FAILSAFE:
                causes = "; ".join(a.code.value for a in self.alarms.active(self.index))
                self._log(now, EventKind.FAILSAFE, cause=causes)

    # --- actions ----------------------------------------------------------------------------------

    def _load(self, payload: Payload, now: Instant) -> None:
        if payload is None or isinstance(payload, Titration | Bolus):
            raise InvariantError("load_program without a program (validated before)")
        program: Program = payload
        self.monitor.confirm(self.index, now, confirmed_program(program, self.settings.kvo))
        self.program = self.active = program
        self.plans.load(program.plan())
        self.segment = self.tracker = None
        self.books.restart(now)
        self.pca = PcaLedger.for_program(program) if isinstance(program, PcaProgram) else None
        self.dose_capped = self.kvo_held = False
        self.controller.set_origin(self.controller.position(self.hw.encoder.counts()))
        self.timers.near_end_raised = False
        ordered = {} if self.order is None else {"order": self.order}
        self._log(now, EventKind.PROGRAM_CONFIRMED, program=describe(program), **self.context(), **ordered)

    def _discard(self, now: Instant) -> None:
        listed = {a.code for a in self.alarms.active(self.index)}
        for code in (AlarmCode.VTBI_COMPLETE, AlarmCode.VTBI_COMPLETE_KVO, AlarmCode.NEAR_END):
            if code in listed:
                self._clear(code, now)
                reset = self.alarms.reset(code, self.index, now)
                if reset.accepted:  # a notice already ended by its cleared condition needs no reset (nor a refusal)
                    self._record(reset.events)
        if self.program is not None:
            self._log(now, EventKind.PROGRAM_CLEARED, **volumes(self.counters))
        self.program = self.active = self.pending = self.pending_change = None
        self.plans.clear()
        self.segment = self.tracker = None
        self.pca = None
        self.monitor.clear(self.index, now)

    def _start_delivery(self, now: Instant) -> None:
        steps = self.controller.position(self.hw.encoder.counts())
        if self.tracker is None:  # first start of this program
            if self.cal.slack_steps:
                move = self.controller.slack_move(SLACK_TIME)
                self.hw.motor.move(move.steps, move.over)
                self.controller.set_origin(steps + move.steps)
                self.fixed_move_until = now + move.over
            self._begin(now, self.plans.pop_next(), Volume(0))  # volume counts from the origin, after the slack
        elif self.segment is not None:
            # Resume from what was measured: volume withdrawn by a back-off or lost in a stop is not
            # "caught up" as a bolus; the rest of the segment runs at its programmed rate.
            # After Stop, Start resumes the basal: the rest of a PCA bolus is dropped (OPENPCA-R6-5-0-3).
            dropped = isinstance(self.program, PcaProgram) and self.segment.kind in _PCA_BOLUSES
            rest = None if dropped else self._remainder(self.segment, self.tracker)
            base = self._measured()
            self.segment = None
            if rest is not None:
                self._begin(now, rest, base)
            elif self.plans.has_more():
                self._next_segment_from(now, base)
            if (
                self.books.reverse_slack.nl
            ):  # take the play up again, quickly, before delivery resumes (it moves no fluid)
                self.books.reverse_slack = Volume(0)
                move = self.controller.reverse_slack_move(SLACK_TIME)
                self.hw.motor.move(move.steps, move.over)
                self.fixed_move_until = now + move.over
        self.monitor.run(self.index, now)
        self._log(now, EventKind.INFUSION_STARTED, rate=encode_rate(self._rate()))

    def _stop_motor(self, now: Instant) -> None:
        self.hw.motor.stop()
        self.fixed_move_until = None
        self.monitor.hold(self.index, now)
        data: dict[str, JsonValue] = {"delivered": encode_volume(self.counters.delivered), **volumes(self.counters)}
        segment, tracker = self.segment, self.tracker
        if isinstance(self.program, PcaProgram) and segment is not None and segment.kind in _PCA_BOLUSES:
            rest = None if tracker is None else self._remainder(segment, tracker)
            data["dropped"] = encode_volume(Volume(0) if rest is None or rest.volume is None else rest.volume)
        self._log(now, EventKind.INFUSION_STOPPED, **data)

    def _back_off(self, now: Instant) -> None:
        """Relieve the line after the occlusion alarm that stopped it (OI-ALM-3), from that occlusion's pressure.

        The pressure is used once, and only while that occlusion's alarm is active: a later stop (a door opened
        after the occlusion cleared) is not answered with a back-off from a stale pressure.
        """
        answered, self._occlusion_pressure = self._occlusion_pressure, None
        occluded = any(a.code is AlarmCode.OCCLUSION_DOWNSTREAM for a in self.alarms.active(self.index))
        if answered is None or not occluded or self.cal.max_backoff.nl == 0:
            return
        pressure, baseline = answered
        volume = backoff_volume(pressure, baseline, self.settings.occlusion.compliance, self.cal.max_backoff)
        volume = min(volume, self.counters.displaced)  # never withdraw more than was pushed in
        if volume.nl == 0:
            return
        steps = self.controller.position(self.hw.encoder.counts())
        move = self.controller.backoff_move(volume, steps, BACKOFF_TIME)
        dead = self.cal.reverse_slack_steps  # reversing first crosses the drive's play: no fluid moves
        self.hw.motor.move(move.steps - dead, move.over)
        end = steps + move.steps
        self.books.reverse_slack = self.cal.volume_at(end) - self.cal.volume_at(end - dead)
        withdrawn = self.cal.volume_at(steps) - self.cal.volume_at(end)  # the fluid: the play moved none
        self.fixed_move_until = now + move.over
        self._log(now, EventKind.INFUSION_STOPPED, reason="occlusion back-off", withdrawn=encode_volume(withdrawn))

    def _hold_titration(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, Titration) or self.active is None:
            raise InvariantError("hold_titration without a titration (validated before)")
        self.pending = self.active.titrated(payload)
        self.pending_change = payload
        self.timers.titration_since = now
        self._log(
            now, EventKind.TITRATION_PENDING, program=describe(self.pending), rate=encode_rate(self._rate()),
            old_rate=encode_rate(self._rate()), new_rate=encode_rate(self.pending.primary_rate()), **self.context(),
        )  # fmt: skip

    def _apply_titration(self, now: Instant) -> None:
        pending, active, change = self.pending, self.active, self.pending_change
        if pending is None or active is None or change is None:  # PENDING admits this action only with all
            raise InvariantError("apply_titration without a pending titration of an active program")
        self.monitor.titrate(self.index, now, confirmed_titration(change))
        new_rate, old_rate = pending.primary_rate(), self._rate()
        kinds = titrated_kinds(active)
        if active is self.program:
            self.program = pending
        self.active = pending
        self.pending = self.pending_change = None
        self.timers.titration_since = None
        self._clear(AlarmCode.UNCONFIRMED_TITRATION, now)
        self.plans.retitrate(kinds, new_rate)
        if self.segment is not None and self.segment.kind in kinds and self.tracker is not None:
            rest = self._remainder(self.segment, self.tracker)
            self.segment = None
            if rest is not None:
                base = self.controller.carry_into(self.tracker, self._measured())
                self._begin(now, replace(rest, rate=new_rate), base)
        self._log(
            now, EventKind.TITRATION_CONFIRMED, program=describe(pending), rate=encode_rate(new_rate),
            old_rate=encode_rate(old_rate), new_rate=encode_rate(new_rate), **self.context(),
        )  # fmt: skip

    def _insert_bolus(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, Bolus):
            raise InvariantError("insert_bolus without a bolus (validated before)")
        remaining = self.remaining()
        if remaining is not None:
            payload.check_against(remaining)
        program = self.program
        # A PCA's clinician (square) bolus runs on top of the basal (OPENPCA-R5-3-0-2); elsewhere instead of it.
        segment = program.clinician_segment(payload.volume, payload.rate) if isinstance(program, PcaProgram) else None
        self.monitor.bolus(self.index, now, self._confirmed_bolus(payload))
        self._interrupt(now, (segment or payload.segment(),), None)
        self.plans.deduct(payload.volume)  # the bolus comes from the same container: it counts towards VTBI
        self._log(
            now, EventKind.BOLUS_STARTED, volume=encode_volume(payload.volume), rate=encode_rate(self._rate()),
            requested_rate=encode_rate(payload.rate),
        )  # fmt: skip

    def _insert_secondary(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, SecondaryProgram):
            raise InvariantError("insert_secondary without a secondary program (validated before)")
        self.monitor.secondary(self.index, now, confirmed_program(payload, self.settings.kvo))
        self._interrupt(now, payload.plan(), self.active)
        self.active = payload
        self._log(now, EventKind.SECONDARY_STARTED, program=describe(payload), **self.context())

    def _decide_demand(self, now: Instant) -> None:
        program, ledger = self.program, self.pca
        if not isinstance(program, PcaProgram) or ledger is None:  # the PCA guard admits only PCA programs
            raise InvariantError("decide_demand on a channel without a PCA program")
        infusing = self.state is ChannelState.INFUSING
        busy = self.segment is not None and self.segment.kind is SegmentKind.PCA_DEMAND
        self.monitor.demand(self.index, now)  # the press itself: the monitor applies its own lockout
        decision = decide_demand(program, ledger, now, inhibited=busy, infusing=infusing)
        self.pca = ledger.with_demand(now, decision)
        reason = decision.reason.value if decision.reason else None
        self._log(now, EventKind.PCA_DEMAND, given=decision.given, reason=reason, amount=str(decision.amount))
        if decision.given:
            self._interrupt(now, (program.demand_segment(),), None)
        elif frequent_requests(self.pca.demands, now, Duration.h(1)) >= 3:
            self._alarm(AlarmCode.PCA_FREQUENT_DEMANDS, now, "3 or more denied demands in 1 h")

    def _next_segment(self, now: Instant) -> None:
        tracker, ended = self._running()
        base = self.controller.carry_into(tracker, self._measured())
        self.segment = None
        if ended.kind is SegmentKind.BOLUS:
            self._log(
                now, EventKind.BOLUS_COMPLETED, volume=encode_volume(Volume(base.nl - tracker.base.nl)),
                delivered=encode_volume(self.counters.delivered),
            )  # fmt: skip
        self._next_segment_from(now, base)

    def _confirmed_bolus(self, bolus: Bolus) -> ConfirmedBolus:
        """A bolus as confirmed, with the running program's drug and patient (a bolus by amount is of it)."""
        active = self.active
        if isinstance(active, DoseProgram):
            return confirmed_bolus(bolus, active.concentration, active.patient)
        if isinstance(active, PcaProgram):
            return confirmed_bolus(bolus, active.concentration, self.patient)
        return confirmed_bolus(bolus, None, None)

    def _start_kvo(self, now: Instant) -> None:
        if self.program is None:  # PLAN_DONE fires only while a program runs
            raise InvariantError("start_kvo without a program")
        rate = kvo_rate_for(self.program, self.settings.kvo)
        measured = self._measured()
        base = self.controller.carry_into(self.tracker, measured) if self.tracker else measured
        self.segment = Segment(kind=SegmentKind.PRIMARY, rate=rate, label="KVO")
        self.tracker = SegmentTracker(rate=rate, limit=None, duration=None, base=base)
        self._log(now, EventKind.KVO_STARTED, rate=encode_rate(rate))

    # --- plan mechanics ---------------------------------------------------------------------------

    def _running(self) -> tuple[SegmentTracker, Segment]:
        """The tracker and segment in progress (an action that needs them runs only while INFUSING)."""
        if self.tracker is None or self.segment is None:
            raise InvariantError("no segment in progress")
        return self.tracker, self.segment

    def _next_segment_from(self, now: Instant, base: Volume) -> None:
        """Start what follows: the rest of the plan, or what a bolus or secondary interrupted."""
        while not self.plans.plan and self.plans.interrupted():
            held = self._unwind(now)
            if held.segment is not None:
                self._begin(now, held.segment, base)
                return
        self._begin(now, self.plans.pop_next(), base)

    def _unwind(self, now: Instant) -> Suspended:
        """Return to what the last bolus or secondary interrupted (restoring the primary program)."""
        held = self.plans.unwind()
        if held.program is not None:
            self.active = held.program
            self._log(now, EventKind.SECONDARY_COMPLETED, rate=encode_rate(held.program.primary_rate()))
        return held

    def _interrupt(self, now: Instant, inserted: tuple[Segment, ...], program: Program | None) -> None:
        """Run ``inserted`` now; what was running resumes after it (bolus, secondary, PCA demand)."""
        tracker, segment = self._running()
        base = self.controller.carry_into(tracker, self._measured())
        first = self.plans.suspend(self._remainder(segment, tracker), inserted, program)
        self._begin(now, first, base)

    def _begin(self, now: Instant, segment: Segment, base: Volume) -> None:
        previous = self.tracker.rate if self.tracker else None
        rate = segment.rate
        if segment.kind is SegmentKind.WAIT and self.program is not None:  # between intermittent doses: KVO
            rate = kvo_rate_for(self.program, self.settings.kvo)
        if (self.dose_capped or self.kvo_held) and self.program is not None:  # KVO: OPENPCA-R5-2-0-5, Table 4
            rate = min(rate, kvo_rate_for(self.program, self.settings.kvo))
        self.segment = segment
        self.tracker = SegmentTracker(rate=rate, limit=segment.volume, duration=segment.duration, base=base)
        if previous != rate:
            self._log(now, EventKind.RATE_CHANGED, rate=encode_rate(rate), segment=segment.label)

    def _remainder(self, segment: Segment, tracker: SegmentTracker) -> Segment | None:
        """What is left of ``segment`` (None if nothing)."""
        done = Volume(self._measured().nl - tracker.base.nl)
        return remainder(segment, done, tracker.elapsed, self.controller.step_volume_max)

    # --- volumes ----------------------------------------------------------------------------------

    def _measured(self) -> Volume:
        """Fluid displaced since the origin: the encoder's volume, plus any play a back-off reversed through."""
        shaft = self.controller.delivered(self.controller.position(self.hw.encoder.counts()))
        return shaft + self.books.reverse_slack

    def _bucket_now(self) -> Bucket:
        return bucket_for(self.segment, self.state is ChannelState.KVO)

    def live_counters(self) -> Counters:
        """The counters as the encoder stands now (between services too), exact in nL.

        Motion since the last service belongs to what was running then: segments change only at services.
        """
        return self.books.live(self._measured(), self._bucket_now())

    def remaining(self) -> Volume | None:
        """Programmed volume still to infuse (None when the program has no VTBI)."""
        if self.program is None:
            return None
        vtbi = self.program.planned_vtbi()
        return None if vtbi is None else Volume(max(vtbi.nl - self.counters.delivered.nl, 0))

    def _rate(self) -> FlowRate:
        return self.tracker.rate if self.tracker is not None else FlowRate(0)

    def rate(self) -> FlowRate:
        """The rate the channel is delivering now (0 unless INFUSING or KVO)."""
        return self._rate() if self.state in DELIVERING else FlowRate(0)

    def time_left(self) -> Duration | None:
        """Infusing time until the plan ends at the programmed rates (None: runs until stopped)."""
        if self.tracker is None or self.state is ChannelState.KVO:
            return None
        total = self.tracker.time_to_end()
        for segment in self.plans.later():
            d = segment.planned_duration()
            if total is None or d is None:
                return None
            total = total + d
        return total

    # --- service ----------------------------------------------------------------------------------

    def service(self, now: Instant) -> Instant:
        """Bring the channel up to ``now`` (steps 1-6 of the module docstring); returns its next wake-up."""
        if self.state in DELIVERING and self.tracker is not None:
            self.tracker.elapsed = self.tracker.elapsed + now.since(self.last_service)
        self.last_service = now
        self._account(now)
        self._sense(now)
        self._follow_table_4(now)
        self._fire_triggered(now)
        self._check_timers(now)
        self._drive(now)
        return self._next_attention(now)

    def _account(self, now: Instant) -> None:
        grown = self.books.account(now, self._measured(), self._bucket_now())
        if self.pca is not None and grown.nl > 0 and self.segment is not None:
            # Everything that counts towards the PCA limits (OI-PCA-1); a demand was counted when given, the
            # basal that runs alongside it as it is delivered.
            kind = PCA_LEDGER_KINDS.get(self.segment.kind)
            if kind is not None:
                self.pca = self.pca.with_volume(now, grown, kind)
            elif isinstance(self.program, PcaProgram):
                share = self.program.basal_share(self.segment, grown)
                if share.nl:
                    self.pca = self.pca.with_volume(now, share, DoseKind.BASAL)
        if self.state in DELIVERING:
            self._limit_dose(now)

    def _limit_dose(self, now: Instant) -> None:
        """At the PCA dose limit, the max dose warning and KVO until the window has room again (OPENPCA-R5-2-0-5).

        Every source counts (basal, demand, clinician, loading). A bolus or demand running then is halted
        (R5.3.0(7)); the basal runs at the KVO rate while the warning is in effect (Table 4, EC13), and resumes
        when the drug counted in the window has fallen to 90 % of the limit (hysteresis: no flapping at it).
        """
        program, ledger = self.program, self.pca
        if not isinstance(program, PcaProgram) or ledger is None:
            return
        if not self.dose_capped:
            reached = program.limit_reached(ledger, now)
            if reached is None:
                return
            self.dose_capped = True
            self._alarm(AlarmCode.MAX_DOSE, now, reached)
        elif program.limit_reached(ledger, now, Fraction(9, 10)) is None:
            self.dose_capped = False
            self._clear(AlarmCode.MAX_DOSE, now)
        else:
            return
        self.monitor.dose_limit(self.index, now, self.dose_capped or self.kvo_held)
        self._restart_segment(now)

    def _follow_table_4(self, now: Instant) -> None:
        """A PCA runs at KVO while a warning Table 4 gives the KVO rate is active: low battery, low container
        (open-pca-requirements.md Table 4, R5.1.0(4)); the basal resumes when it ends (OPENPCA-R5-2-0-5)."""
        held = isinstance(self.program, PcaProgram) and any(
            a.code in _KVO_WARNINGS for a in self.alarms.active(self.index)
        )
        if held == self.kvo_held:
            return
        self.kvo_held = held
        self.monitor.dose_limit(self.index, now, self.dose_capped or self.kvo_held)
        if self.state in DELIVERING and self.tracker is not None and self.segment is not None:
            self._restart_segment(now)

    def _restart_segment(self, now: Instant) -> None:
        """Begin again what runs now (its rate may have changed); a PCA bolus under a dose cap ends at once."""
        tracker, segment = self._running()
        base = self.controller.carry_into(tracker, self._measured())
        self.segment = None
        bolus = segment.kind in _PCA_BOLUSES
        halted = bolus and (self.dose_capped or self.kvo_held)  # any alarm stops a PCA bolus (R5.2.0(6))
        rest = None if halted else self._remainder(segment, tracker)
        if halted:
            self._log(now, EventKind.BOLUS_COMPLETED, volume=encode_volume(Volume(base.nl - tracker.base.nl)),
                      halted="dose limit" if self.dose_capped else "alarm")  # fmt: skip
        if rest is not None:
            self._begin(now, rest, base)
        else:
            self._next_segment_from(now, base)

    def _sense(self, now: Instant) -> None:
        """Read every sensor batch, run the software sensors and apply :data:`SENSOR_ALARMS`."""
        hw = self.hw
        pumping = self.state in DELIVERING and self._rate().nl_per_h > 0
        down, up, air, load = hw.downstream.read(), hw.upstream.read(), hw.air.read(), hw.door.state()
        self.check_air()
        try:
            measured = self._measured()
            pumped = Volume(max(measured.nl - self._sensed_volume.nl, 0))  # since the last look (volume test)
            self._sensed_volume = measured
            verdict = self.down.update(down, self._rate(), pumping, pumped)
            upv = self.up.update(up, pumping)
            implausible = ""
        except InputError as e:  # a non-finite sample from a sensor that calls itself healthy
            verdict, upv, implausible = _NO_OCCLUSION, _NO_UPSTREAM, e.why
        faulty = SensorHealth.FAULT in (down.health, up.health) or bool(implausible)
        if faulty or verdict.pressure_mmhg is not None:  # kept between looks without new samples
            self.line_pressure_mmhg = None if faulty else verdict.pressure_mmhg
        if verdict.occluded and pumping:
            p = verdict.pressure_mmhg or 0.0
            self._occlusion_pressure = (p, verdict.baseline_mmhg if verdict.baseline_mmhg is not None else 0.0)
        motor = hw.motor.status()
        findings = Findings(
            pumping=pumping,
            has_program=self.state in {*DELIVERING, ChannelState.ALARM},
            pressure_fault=(implausible or "pressure transducer fault") if faulty else None,
            occlusion=verdict,
            upstream=upv,
            air_fault=air.health is SensorHealth.FAULT,
            air_check_failed=self._air_check_failed,
            air=self.air.observe(air, self.books.trace(), now) if air.bubbles else None,
            air_single_limit=self.air.single_limit,
            air_window=self.air.window,
            door_closed=load.door_closed,
            set_loaded=load.set_loaded,
            motor_stalled=motor.stalled,
            motor_overcurrent=motor.overcurrent,
            encoder_fault=hw.encoder.health() is SensorHealth.FAULT,
            flow=self._check_flow(pumping),
            temperature_mc=None if hw.temperature is None else hw.temperature.read_millicelsius(),
            container_left=self._container_left(),
            container_low=CONTAINER_LOW,
            container_empty=CONTAINER_EMPTY,
        )
        for row in SENSOR_ALARMS:
            present = row.present(findings)
            self._apply(row.code, now, present, row.detail(findings) if present else "", row.clear)
        # The ADC watchdog is level-triggered: while the pressure is above the wake level the core
        # disarms it and looks every second instead, so a rise is followed without an interrupt storm.
        wake = self.down.wake_threshold_mmhg()
        filtered = verdict.pressure_mmhg
        raw_high = down.count > 0 and float(down.samples_mmhg[-1]) >= wake  # a spike (or a rise) in progress
        self._rising = self.state in DELIVERING and (raw_high or (filtered is not None and filtered >= wake))
        self.hw.downstream.arm_wake(wake if self.state in DELIVERING and not self._rising else None)
        vacuum = float(self.settings.occlusion.upstream_mmhg)
        self.hw.upstream.arm_wake(None, vacuum if pumping and not upv.occluded else None)

    def check_air(self) -> bool:
        """The air detector's simulated-air check while pumping (OI-SAFE-10); True while it fails.

        Run at every service and every monitor tick. A failed detector is checked again, pumping or not,
        until it passes: its alarm cannot be reset before.
        """
        if (self.state in DELIVERING and self._rate().nl_per_h > 0) or self._air_check_failed:
            self._air_check_failed = not self.hw.air.simulate_air()
        return self._air_check_failed

    def _check_flow(self, pumping: bool) -> FlowVerdict | None:
        """The flow sensor's reading judged against the rate (None without a sensor)."""
        if self.hw.flow is None:
            return None
        bolus = self.segment is not None and self.segment.kind in _PCA_BOLUSES
        return self.flow_check.update(self.hw.flow.read(), self._rate(), pumping, bolus)

    def _container_left(self) -> Volume | None:
        """What the container still holds by the count: loaded volume less everything delivered from it."""
        loaded = self.settings.container
        if loaded is None:
            return None
        used = self.counters.delivered + self.counters.kvo
        return Volume(max(loaded.nl - used.nl, 0))

    def conditions(self) -> Conditions:
        """The inputs of the condition-triggered transitions, as the channel stands."""
        done = self.tracker is not None and self.controller.complete(self.tracker, self._measured())
        return Conditions(
            failsafe_alarm=self.alarms.in_failsafe(self.index),
            stopping_alarm=self.alarms.stops_delivery(self.index),
            segment_done=done,
            more_segments=self.plans.has_more(),
        )

    def _fire_triggered(self, now: Instant) -> None:
        """Fire :data:`CONDITION_TRIGGERED_TRANSITIONS` until no condition holds in the new state."""
        for _ in range(MAX_TRIGGERED):
            event = triggered(self.state, self.conditions())
            if event is None:
                return
            self.fire(event, now)
        raise InvariantError(f"condition-triggered transitions did not settle in {MAX_TRIGGERED} events")

    def _timer_view(self, now: Instant) -> TimerView:
        s = self.settings
        return TimerView(
            now=now,
            timers=self.timers,
            waiting=self.state in {ChannelState.PROGRAMMING, ChannelState.READY},
            paused=self.state is ChannelState.PAUSED,
            infusing=self.state is ChannelState.INFUSING,
            left=self.time_left(),
            rate=self._rate(),
            callback=s.callback,
            titration_timeout=s.titration_timeout,
            near_end=s.near_end,
        )

    def _check_timers(self, now: Instant) -> None:
        """Apply :data:`TIMER_ALARMS`."""
        view = self._timer_view(now)
        for row in TIMER_ALARMS:
            present = row.present(view)
            self._apply(row.code, now, present, row.detail(view) if present else "", Clear.WHEN_ABSENT)
            if present and row.code is AlarmCode.NEAR_END:
                self.timers.near_end_raised = True  # announced once per program

    # --- drive scheduling -------------------------------------------------------------------------

    def _drive(self, now: Instant) -> None:
        """Command the motor for the next interval of the segment in progress, or stop it."""
        if self.fixed_move_until is not None and now < self.fixed_move_until:
            return  # a slack take-up or back-off move is running
        self.fixed_move_until = None
        tracker = self.tracker
        if self.state not in DELIVERING or tracker is None or tracker.rate.nl_per_h == 0:
            self.hw.motor.stop()
            return
        interval = self.controller.interval_for(tracker.rate, self.settings.service_interval)
        end = tracker.time_to_end()
        if end is not None and end < interval:
            interval = max(end, MIN_MOVE)
        move = self.controller.plan(self.controller.position(self.hw.encoder.counts()), tracker, interval)
        self.hw.motor.move(move.steps, move.over)

    def _next_attention(self, now: Instant) -> Instant:
        """The earliest of: the next move's end, the air detector's check (when due before the monitor's tick),
        a fixed move's end, the pressure watch, the segment's end, the container and dose limits, timers."""
        rate = self._rate() if self.state in DELIVERING else None
        longest = self.settings.service_interval
        due = [now + (IDLE_CHECK if rate is None else self.controller.interval_for(rate, longest))]
        if rate is not None and rate.nl_per_h > 0:  # the monitor's tick checks the air detector each MAX_PERIOD
            air_check = air_check_interval(rate, self.air.single_limit)
            if air_check < MAX_PERIOD:
                due.append(now + air_check)  # OI-SAFE-10
        if self.fixed_move_until is not None:
            due.append(self.fixed_move_until)
        if self._rising:
            due.append(now + PRESSURE_WATCH)
        if self.state in DELIVERING and self.tracker is not None:
            end = self.tracker.time_to_end()
            if end is not None:
                due.append(now + max(end, MIN_MOVE))
        if self.hw.flow is not None and rate is None and self.program is not None:
            due.append(now + FLOW_WATCH)  # stopped with a program: a free flow must be seen within seconds
        left = self._container_left()
        if rate is not None and rate.nl_per_h > 0 and left is not None:  # the container warnings come on time
            for limit in (CONTAINER_LOW, CONTAINER_EMPTY):
                if left > limit:
                    due.append(now + max(rate.time_for(left - limit), VOLUME_WATCH))
        if rate is not None and isinstance(self.program, PcaProgram) and self.pca is not None and not self.dose_capped:
            to_limit = self.program.time_to_limit(self.pca, now, rate)  # the cap comes on time (OPENPCA-R5-2-0-5)
            if to_limit is not None:
                due.append(now + max(to_limit, VOLUME_WATCH))
        due += timer_due(self._timer_view(now))
        return min(due)

    # --- helpers ----------------------------------------------------------------------------------

    def _apply(self, code: AlarmCode, now: Instant, present: bool | None, detail: str, clear: Clear) -> None:
        """One table row's verdict: raise the alarm, clear its condition, or leave it (``present`` None)."""
        if present:
            self._alarm(code, now, detail)
            if clear is Clear.AT_ONCE:
                self._clear(code, now)
        elif present is not None and clear is Clear.WHEN_ABSENT:
            self._clear(code, now)

    def _alarm(self, code: AlarmCode, now: Instant, detail: str) -> None:
        self._record(self.alarms.activate(code, self.index, now, detail))

    def _clear(self, code: AlarmCode, now: Instant) -> None:
        """The condition ``code`` is gone on this channel (a latching alarm stays until reset)."""
        self._record(self.alarms.condition_cleared(code, self.index, now))

    def _record(self, events: Iterable[AlarmEvent]) -> None:
        """Log alarm events with the channel's state and remaining volume (UMN-GPCA-REQ-80)."""
        for event in events:
            self.log.append(event.t, event.log_kind, event.channel, **event.log_data(), **self.status())

    def status(self) -> dict[str, JsonValue]:
        """The channel's mode and volumes as an alarm or power event records them (UMN-GPCA-REQ-80)."""
        remaining = self.remaining()
        return {
            "state": self.state.value,
            "rate": encode_rate(self.rate()),
            "remaining": None if remaining is None else encode_volume(remaining),
            "volumes": volumes(self.counters),
        }

    def context(self) -> dict[str, JsonValue]:
        """What a program event needs for a reader with nothing else: the library entry (drug, care area,
        concentration key), the patient's weight and the library in use (OI-LOG-1)."""
        selection = self.active_selection
        weight = None if self.patient is None or self.patient.weight is None else encode_quantity(self.patient.weight)
        return {
            "selection": None if selection is None else selection_json(selection),
            "weight": weight,
            "library": self.library_identity,
        }

    def _state_left(self, source: ChannelState, now: Instant) -> None:
        if source in {ChannelState.PROGRAMMING, ChannelState.READY}:
            self._clear(AlarmCode.CALLBACK_PROGRAMMING, now)
        if source is ChannelState.PAUSED:
            self._clear(AlarmCode.CALLBACK_PAUSED, now)

    def _log(self, now: Instant, kind: EventKind, **data: JsonValue) -> None:
        self.log.append(now, kind, self.index, **data)


def describe(program: Program) -> dict[str, JsonValue]:
    """The program context written to the event log: type, main rate, VTBI, plan length and, for a dose-based or
    PCA program, the dose with its unit and the concentration."""
    vtbi = program.planned_vtbi()
    context: dict[str, JsonValue] = {
        "type": type(program).__name__,
        "rate": encode_rate(program.primary_rate()),
        "vtbi": None if vtbi is None else encode_volume(vtbi),
        "segments": len(program.plan()),
    }
    for name in ("dose", "basal", "demand_dose", "limit_1h", "limit_4h"):
        value = getattr(program, name, None)
        if isinstance(value, Quantity):
            context[name] = encode_quantity(value)
    concentration = getattr(program, "concentration", None)
    if isinstance(concentration, Concentration):
        context["concentration"] = {
            "amount": encode_quantity(concentration.amount), "volume": encode_quantity(concentration.volume),
        }  # fmt: skip
    return context


def volumes(counters: Counters) -> dict[str, JsonValue]:
    """The volume counters as logged: primary, secondary, KVO and their total (all that went to the patient)."""
    return {
        "delivered": encode_volume(counters.delivered),
        "secondary": encode_volume(counters.secondary),
        "kvo": encode_volume(counters.kvo),
        "total": encode_volume(counters.total),
    }


def selection_json(selection: LibrarySelection) -> dict[str, JsonValue]:
    """A library selection as logged: care area, drug, therapy and concentration (key, or ``custom 2.5 mg/mL``)."""
    return {
        "care_area": selection.area, "drug": selection.drug, "therapy": selection.therapy,
        "concentration": selection.concentration_text,
    }  # fmt: skip
