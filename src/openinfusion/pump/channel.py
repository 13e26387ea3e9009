"""One pumping channel at run time: lifecycle, plan, sensing, delivery and timers.

Theory of operation
-------------------
A channel owns its program, its plan (the program's constant-rate segments) and the runtime state
of the segment in progress. It changes state only through :mod:`~openinfusion.pump.statechart`:
:meth:`Channel.fire` looks the event up in the table, refuses it with a reason (logged) or runs the
row's actions in order. Everything time-driven happens in :meth:`Channel.service`, which the pump
calls on every wake-up, in a fixed order:

1. accrue infusing time to the segment in progress;
2. read every sensor batch and turn it into alarm conditions (occlusion, air, door, sensor and motor
   health) through the software sensors;
3. react: a failsafe alarm fires FAULT, a stopping alarm fires STOPPING_ALARM, and an ALARM state
   with no stopping alarm left fires ALARMS_RESOLVED;
4. advance the plan: segments whose volume or time is done give way to the next (SEGMENT_DONE), the
   last one to KVO or COMPLETE (PLAN_DONE); a bolus or secondary returns to what it interrupted;
5. timers: near end, callback, unconfirmed titration;
6. drive: command the motor for the next interval, or stop it;
7. tell the pump when this channel next needs attention.

Clinician actions (start, pause, titrate, bolus, ...) are events fired between services; the pump
services the channel first so that every action sees the present.

The motor is stopped in every state but INFUSING and KVO; it never moves forward while a stopping
alarm is active, the door is open or air was detected (OI-ALM-12). The one motion allowed then is
the bounded reverse back-off after an occlusion stop (OI-ALM-3), authorised to the safety monitor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from openinfusion.errors import InputError, ProgramError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode, AlarmEvent, AlarmManager
from openinfusion.pump.delivery import DeliveryController, SegmentTracker
from openinfusion.pump.dosing import Patient
from openinfusion.pump.eventlog import EventKind, EventLog, JsonValue, encode_rate, encode_volume
from openinfusion.pump.hal import ChannelHardware, SensorHealth
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.pca import DoseKind, PcaLedger, PcaProgram, decide_demand, frequent_requests
from openinfusion.pump.programs import (
    Bolus,
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
from openinfusion.pump.safety import SafetyMonitor
from openinfusion.pump.sensing.air import (
    DEFAULT_CUMULATIVE_LIMIT,
    DEFAULT_SINGLE_LIMIT,
    DEFAULT_WINDOW,
    AirMonitor,
    DeliveryTrace,
)
from openinfusion.pump.sensing.backoff import backoff_volume
from openinfusion.pump.sensing.occlusion import (
    DownstreamOcclusionDetector,
    OcclusionConfig,
    OcclusionVerdict,
    Sensitivity,
    UpstreamOcclusionDetector,
    UpstreamVerdict,
)
from openinfusion.pump.statechart import (
    DELIVERING,
    Action,
    ChannelEvent,
    ChannelState,
    GuardContext,
    Refusal,
    fire,
)
from openinfusion.units import Duration, FlowRate, Instant, Volume

MIN_MOVE: Final = Duration(1_000)  # shortest move the controller issues (1 ms)
BACKOFF_TIME: Final = Duration.s(2)
SLACK_TIME: Final = Duration.s(2)
PRESSURE_WATCH: Final = Duration.s(1)  # service period while the line pressure is above the wake level
IDLE_CHECK: Final = Duration.min(5)  # an idle channel still looks at its sensors this often
_NO_OCCLUSION: Final = OcclusionVerdict(False, None, None, None, None, None)
_NO_UPSTREAM: Final = UpstreamVerdict(False, None, None)
_PCA_LEDGER_KINDS: Final = {
    SegmentKind.BASAL: DoseKind.BASAL,
    SegmentKind.LOADING: DoseKind.LOADING,
    SegmentKind.BOLUS: DoseKind.CLINICIAN,
}
_FIXED_PROGRAMS: Final = (VolumeOverTimeProgram, MultistepProgram, RampTaperProgram, IntermittentProgram)

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
    max_carry: Volume = Volume.ml("0.05")


@dataclass(slots=True)
class _Suspended:
    """A segment interrupted by a bolus or secondary, with the plan that followed it."""

    segment: Segment | None
    rest: list[Segment]
    program: Program | None = None  # set when a secondary replaced the active program


@dataclass(frozen=True, slots=True)
class Counters:
    """Volumes since the program started, integer nL.

    ``delivered`` is the primary program's volume (loading, maintenance, steps, boluses and PCA doses: all
    from its container, so all count towards its VTBI); ``secondary`` came from the piggyback container;
    ``kvo`` ran after the VTBI completed; ``displaced`` is everything the mechanism moved, net of back-off.
    """

    delivered: Volume = Volume(0)
    secondary: Volume = Volume(0)
    kvo: Volume = Volume(0)
    displaced: Volume = Volume(0)

    @property
    def total(self) -> Volume:
        return self.delivered + self.secondary + self.kvo


@dataclass(slots=True)
class _Timers:
    state_since: Instant
    titration_since: Instant | None = None
    near_end_raised: bool = False
    backoff_until: Instant | None = None
    last_service: Instant = field(default_factory=lambda: Instant(0))


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
        self.segment: Segment | None = None
        self.tracker: SegmentTracker | None = None
        self.plan: list[Segment] = []
        self.stack: list[_Suspended] = []
        self.counters = Counters()
        self.pca: PcaLedger | None = None
        self.selection: LibrarySelection | None = None  # the library entry the program came from
        self.patient: Patient | None = None
        self.alerted = False  # the last DERS check on this channel alerted (for edits and cancels after it)
        self.timers = _Timers(state_since=now, last_service=now)
        self._trace: list[tuple[Instant, Volume]] = [(now, Volume(0))]
        self._occlusion_pressure: tuple[float, float] | None = None
        self._reverse_slack = Volume(0)  # play crossed by a back-off, not yet taken up again
        self._rising = False

    def configure(self, settings: ChannelSettings) -> None:
        """New settings (a care area's, from the drug library); only while the channel has no program."""
        if self.program is not None:
            raise ProgramError("settings", "a channel's settings change only while it has no program")
        self.settings = settings
        self.down = DownstreamOcclusionDetector(settings.occlusion, settings.sensitivity)
        self.air = AirMonitor(settings.air_single, settings.air_cumulative, settings.air_window)

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
        """Apply ``event`` through the statechart, or log and raise the refusal (state untouched)."""
        outcome = fire(self.state, event, self.guard_context())
        if isinstance(outcome, Refusal):
            self._log(now, EventKind.EVENT_REFUSED, event=event.value, state=self.state.value, reason=outcome.reason)
            raise TransitionRefusedError(self.state.value, event.value, outcome.reason)
        source = self.state
        for action in outcome.actions:
            self._act(action, now, payload)
        self.state = outcome.target
        if source is not outcome.target:
            self.timers.state_since = now
            self._log(now, EventKind.STATE_CHANGED, source=source.value, event=event.value, target=self.state.value)
            self._state_left(source, now)

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
            case Action.BACK_OFF:
                self._back_off(now)
            case Action.HOLD_TITRATION:
                self._hold_titration(payload, now)
            case Action.APPLY_TITRATION:
                self._apply_titration(now)
            case Action.DROP_TITRATION:
                self.pending = None
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
            raise ProgramError("program", "enter_program needs a program")
        program: Program = payload
        self.program = self.active = program
        self.plan = list(program.plan())
        self.segment = self.tracker = None
        self.stack = []
        self.counters = Counters()
        self.pca = PcaLedger.for_program(program) if isinstance(program, PcaProgram) else None
        self.controller.set_origin(self.controller.position(self.hw.encoder.counts()))
        self.monitor.start_program(self.index, now)
        self._trace = [(now, Volume(0))]
        self.timers.near_end_raised = False
        self._log(now, EventKind.PROGRAM_CONFIRMED, program=describe(program))

    def _discard(self, now: Instant) -> None:
        listed = {a.code for a in self.alarms.active(self.index)}
        for code in (AlarmCode.VTBI_COMPLETE, AlarmCode.VTBI_COMPLETE_KVO, AlarmCode.NEAR_END):
            if code in listed:
                self._clear(code, now)
                self._record(self.alarms.reset(code, self.index, now).events)
        if self.program is not None:
            self._log(now, EventKind.PROGRAM_CLEARED, delivered=encode_volume(self.counters.delivered))
        self.program = self.active = self.pending = None
        self.plan, self.stack = [], []
        self.segment = self.tracker = None
        self.pca = None

    def _start_delivery(self, now: Instant) -> None:
        steps = self.controller.position(self.hw.encoder.counts())
        if self.tracker is None:  # first start of this program
            if self.cal.slack_steps:
                move = self.controller.slack_move(SLACK_TIME)
                self.hw.motor.move(move.steps, move.over)
                self.controller.set_origin(steps + move.steps)
                self.monitor.authorise(self.index, now, FlowRate(0), self.cal.volume_at(move.steps))
                self.timers.backoff_until = now + SLACK_TIME
            self._begin_next(now, Volume(0))  # volume counts from the origin, after the slack
        elif self.segment is not None:
            # Resume from what was measured: volume withdrawn by a back-off or lost in a stop is not
            # "caught up" as a bolus; the rest of the segment runs at its programmed rate.
            rest = self._remainder(self.segment, self.tracker)
            base = self._measured()
            self.segment = None
            if rest is not None:
                self._begin(now, rest, base)
            elif self._has_more():
                self._next_segment_from(now, base)
            slack = self._reverse_slack
            self.monitor.authorise(self.index, now, self._rate(), slack)
            if slack.nl:  # take the play up again, quickly, before delivery resumes (it moves no fluid)
                self._reverse_slack = Volume(0)
                self.hw.motor.move(self.cal.reverse_slack_steps, SLACK_TIME)
                self.timers.backoff_until = now + SLACK_TIME
        self._log(now, EventKind.INFUSION_STARTED, rate=encode_rate(self._rate()))

    def _stop_motor(self, now: Instant) -> None:
        self.hw.motor.stop()
        self.timers.backoff_until = None
        self.monitor.authorise(self.index, now, FlowRate(0))
        self._log(now, EventKind.INFUSION_STOPPED, delivered=encode_volume(self.counters.delivered))

    def _back_off(self, now: Instant) -> None:
        if self._occlusion_pressure is None or self.cal.max_backoff.nl == 0:
            return
        pressure, baseline = self._occlusion_pressure
        volume = backoff_volume(pressure, baseline, self.settings.occlusion.compliance, self.cal.max_backoff)
        volume = min(volume, self.counters.displaced)  # never withdraw more than was pushed in
        if volume.nl == 0:
            return
        steps = self.controller.position(self.hw.encoder.counts())
        move = self.controller.backoff_move(volume, steps, BACKOFF_TIME)
        dead = self.cal.reverse_slack_steps  # reversing first crosses the drive's play: no fluid moves
        self.hw.motor.move(move.steps - dead, move.over)
        end = steps + move.steps
        self._reverse_slack = self.cal.volume_at(end) - self.cal.volume_at(end - dead)
        withdrawn = self.cal.volume_at(steps) - self.cal.volume_at(end - dead)
        self.monitor.authorise(self.index, now, FlowRate(0), Volume(-withdrawn.nl))
        self.timers.backoff_until = now + BACKOFF_TIME
        self._log(now, EventKind.INFUSION_STOPPED, reason="occlusion back-off", withdrawn=encode_volume(withdrawn))

    def _hold_titration(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, Titration) or self.active is None:
            raise ProgramError("titration", "titrate needs a Titration of the running program")
        self.pending = self.active.titrated(payload)
        self.timers.titration_since = now
        self._log(now, EventKind.TITRATION_PENDING, program=describe(self.pending), rate=encode_rate(self._rate()))

    def _apply_titration(self, now: Instant) -> None:
        assert self.pending is not None and self.active is not None  # guarded by PENDING
        new_rate = self.pending.primary_rate()
        kinds = _titrated_kinds(self.active)
        if self.active is self.program:
            self.program = self.pending
        self.active = self.pending
        self.pending = None
        self.timers.titration_since = None
        self._clear(AlarmCode.UNCONFIRMED_TITRATION, now)
        self.plan = [_with_rate(s, new_rate) if s.kind in kinds else s for s in self.plan]
        for held in self.stack:
            held.rest = [_with_rate(s, new_rate) if s.kind in kinds else s for s in held.rest]
            if held.segment is not None and held.segment.kind in kinds:
                held.segment = _with_rate(held.segment, new_rate)
        if self.segment is not None and self.segment.kind in kinds and self.tracker is not None:
            rest = self._remainder(self.segment, self.tracker)
            self.segment = None
            if rest is not None:
                self._begin(now, _with_rate(rest, new_rate), self.controller.carry_into(self.tracker, self._measured()))
        self._log(now, EventKind.TITRATION_CONFIRMED, program=describe(self.active), rate=encode_rate(new_rate))

    def _insert_bolus(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, Bolus):
            raise ProgramError("bolus", "bolus needs a Bolus request")
        remaining = self.remaining()
        if remaining is not None:
            payload.check_against(remaining)
        self._interrupt(now, (payload.segment(),), None)
        _deduct(self.stack[-1], payload.volume)  # the bolus comes from the same container: it counts towards VTBI
        self._log(now, EventKind.BOLUS_STARTED, volume=encode_volume(payload.volume), rate=encode_rate(payload.rate))

    def _insert_secondary(self, payload: Payload, now: Instant) -> None:
        if not isinstance(payload, SecondaryProgram):
            raise ProgramError("secondary", "secondary needs a SecondaryProgram")
        self._interrupt(now, payload.plan(), self.active)
        self.active = payload
        self._log(now, EventKind.SECONDARY_STARTED, program=describe(payload))

    def _decide_demand(self, now: Instant) -> None:
        program, ledger = self.program, self.pca
        assert isinstance(program, PcaProgram) and ledger is not None  # guarded by PCA
        infusing = self.state is ChannelState.INFUSING
        busy = self.segment is not None and self.segment.kind is SegmentKind.PCA_DEMAND
        decision = decide_demand(program, ledger, now, inhibited=busy, infusing=infusing)
        self.pca = ledger.with_demand(now, decision)
        reason = decision.reason.value if decision.reason else None
        self._log(now, EventKind.PCA_DEMAND, given=decision.given, reason=reason, amount=str(decision.amount))
        if decision.given:
            self._interrupt(now, (program.demand_segment(),), None)
        elif frequent_requests(self.pca.demands, now, Duration.h(1)) >= 3:
            self._alarm(AlarmCode.PCA_FREQUENT_DEMANDS, now, "3 or more denied demands in 1 h")

    def _next_segment(self, now: Instant) -> None:
        assert self.tracker is not None and self.segment is not None
        base = self.controller.carry_into(self.tracker, self._measured())
        ended = self.segment
        self.segment = None
        if ended.kind is SegmentKind.BOLUS:
            self._log(now, EventKind.BOLUS_COMPLETED, delivered=encode_volume(self.counters.delivered))
        self._next_segment_from(now, base)

    def _next_segment_from(self, now: Instant, base: Volume) -> None:
        """Start what follows: the rest of the plan, or what a bolus or secondary interrupted."""
        while not self.plan and self.stack:
            held = self._unwind(now)
            if held.segment is not None:
                self._begin(now, held.segment, base)
                return
        self._begin_next(now, base)

    def _unwind(self, now: Instant) -> _Suspended:
        """Return to what the last bolus or secondary interrupted (restoring the primary program)."""
        held = self.stack.pop()
        if held.program is not None:
            self.active = held.program
            self._log(now, EventKind.SECONDARY_COMPLETED, rate=encode_rate(held.program.primary_rate()))
        self.plan = held.rest
        return held

    def _has_more(self) -> bool:
        """True if a segment remains after the one running (in the plan or in what was interrupted)."""
        return bool(self.plan) or any(held.segment is not None or held.rest for held in self.stack)

    def _start_kvo(self, now: Instant) -> None:
        assert self.program is not None
        rate = kvo_rate_for(self.program, self.settings.kvo)
        measured = self._measured()
        base = self.controller.carry_into(self.tracker, measured) if self.tracker else measured
        self.segment = Segment(kind=SegmentKind.PRIMARY, rate=rate, label="KVO")
        self.tracker = SegmentTracker(rate=rate, limit=None, duration=None, base=base)
        self.monitor.authorise(self.index, now, rate)
        self._log(now, EventKind.KVO_STARTED, rate=encode_rate(rate))

    # --- plan mechanics ---------------------------------------------------------------------------

    def _begin_next(self, now: Instant, base: Volume) -> None:
        """Start the next planned segment (the plan is never empty when this is called)."""
        self._begin(now, self.plan.pop(0), base)

    def _begin(self, now: Instant, segment: Segment, base: Volume) -> None:
        previous = self.tracker.rate if self.tracker else None
        rate = segment.rate
        if segment.kind is SegmentKind.WAIT and self.program is not None:  # between intermittent doses: KVO
            rate = kvo_rate_for(self.program, self.settings.kvo)
        self.segment = segment
        self.tracker = SegmentTracker(rate=rate, limit=segment.volume, duration=segment.duration, base=base)
        self.monitor.authorise(self.index, now, rate)
        if previous != rate:
            self._log(now, EventKind.RATE_CHANGED, rate=encode_rate(rate), segment=segment.label)

    def _remainder(self, segment: Segment, tracker: SegmentTracker) -> Segment | None:
        """What is left of ``segment`` (None if nothing)."""
        if segment.volume is not None:
            done = max(self._measured().nl - tracker.base.nl, 0)
            left = segment.volume.nl - done
            return replace(segment, volume=Volume(left)) if left > self.controller.step_volume_max.nl else None
        if segment.duration is not None:
            left_t = segment.duration - tracker.elapsed
            return replace(segment, duration=left_t) if left_t.us > 0 else None
        return segment

    def _interrupt(self, now: Instant, inserted: tuple[Segment, ...], program: Program | None) -> None:
        """Run ``inserted`` now; what was running resumes after it (bolus, secondary, PCA demand)."""
        assert self.tracker is not None and self.segment is not None
        base = self.controller.carry_into(self.tracker, self._measured())
        self.stack.append(_Suspended(self._remainder(self.segment, self.tracker), self.plan, program))
        self.plan = list(inserted[1:])
        self._begin(now, inserted[0], base)

    # --- volumes ----------------------------------------------------------------------------------

    def _measured(self) -> Volume:
        """Fluid displaced since the origin: the encoder's volume, plus any play a back-off reversed through."""
        shaft = self.controller.delivered(self.controller.position(self.hw.encoder.counts()))
        return shaft + self._reverse_slack

    def _account(self, now: Instant) -> None:
        before = self.counters.delivered
        self.counters = self.live_counters()
        c = self.counters
        if self.pca is not None and c.delivered > before and self.segment is not None:
            # Everything that counts towards the PCA limits (OI-PCA-1); a demand was counted when given.
            kind = _PCA_LEDGER_KINDS.get(self.segment.kind)
            if kind is not None:
                self.pca = self.pca.with_volume(now, c.delivered - before, kind)
        last_t, last_v = self._trace[-1]
        if now > last_t:
            self._trace = [*self._trace[-63:], (now, Volume(max(c.displaced.nl, last_v.nl)))]

    def live_counters(self) -> Counters:
        """The counters as the encoder stands now (between services too), exact in nL.

        Motion since the last service belongs to what was running then: segments change only at services.
        """
        c = self.counters
        measured = Volume(max(self._measured().nl, 0))  # below the origin only while syringe slack is taken up
        delta = measured.nl - c.displaced.nl
        waiting = self.segment is not None and self.segment.kind is SegmentKind.WAIT
        if self.state is ChannelState.KVO or waiting:
            return replace(c, kvo=Volume(max(c.kvo.nl + delta, 0)), displaced=measured)
        if self.segment is not None and self.segment.kind is SegmentKind.SECONDARY:
            return replace(c, secondary=Volume(max(c.secondary.nl + delta, 0)), displaced=measured)
        return replace(c, delivered=Volume(max(c.delivered.nl + delta, 0)), displaced=measured)

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

    # --- service ----------------------------------------------------------------------------------

    def service(self, now: Instant) -> Instant:
        """Bring the channel up to ``now`` (steps 1-7 of the module docstring); returns its next wake-up."""
        if self.state in DELIVERING and self.tracker is not None:
            self.tracker.elapsed = self.tracker.elapsed + now.since(self.timers.last_service)
        self.timers.last_service = now
        self._account(now)
        self._sense(now)
        self._react(now)
        self._advance(now)
        self._check_timers(now)
        self._drive(now)
        return self._next_attention(now)

    def _sense(self, now: Instant) -> None:
        hw = self.hw
        pumping = self.state in DELIVERING and self._rate().nl_per_h > 0
        down, up, air, load = hw.downstream.read(), hw.upstream.read(), hw.air.read(), hw.door.state()
        try:
            verdict = self.down.update(down, self._rate(), pumping)
            upv = self.up.update(up, pumping)
            implausible = ""
        except InputError as e:  # a non-finite sample from a sensor that calls itself healthy
            verdict, upv, implausible = _NO_OCCLUSION, _NO_UPSTREAM, e.why
        faulty = SensorHealth.FAULT in (down.health, up.health) or bool(implausible)
        self._condition(AlarmCode.PRESSURE_SENSOR_FAULT, now, faulty, implausible or "pressure transducer fault")
        if verdict.occluded and pumping:
            p = verdict.pressure_mmhg or 0.0
            self._occlusion_pressure = (p, verdict.baseline_mmhg if verdict.baseline_mmhg is not None else 0.0)
            cause = verdict.cause.value if verdict.cause else ""
            self._alarm(AlarmCode.OCCLUSION_DOWNSTREAM, now, f"{p:.0f} mmHg ({cause})")
        elif not verdict.occluded:
            self._clear(AlarmCode.OCCLUSION_DOWNSTREAM, now)
        if upv.occluded and pumping:
            self._alarm(AlarmCode.OCCLUSION_UPSTREAM, now, f"{upv.pressure_mmhg or 0.0:.0f} mmHg")
        elif not upv.occluded:
            self._clear(AlarmCode.OCCLUSION_UPSTREAM, now)
        self._condition(AlarmCode.AIR_SENSOR_FAULT, now, air.health is SensorHealth.FAULT, "air detector fault")
        if air.bubbles:
            av = self.air.observe(air, DeliveryTrace(tuple(self._trace)), now)
            if av.single:
                self._alarm(AlarmCode.AIR_IN_LINE, now, f"bubble over {self.air.single_limit}")
                self._clear(AlarmCode.AIR_IN_LINE, now)  # latched until the line is cleared
            if av.cumulative:
                self._alarm(AlarmCode.AIR_CUMULATIVE, now, f"{av.air_in_window} of air in {self.air.window}")
                self._clear(AlarmCode.AIR_CUMULATIVE, now)
        has_program = self.state in {*DELIVERING, ChannelState.ALARM}
        self._condition(AlarmCode.DOOR_OPEN, now, has_program and not load.door_closed, "door opened")
        self._condition(
            AlarmCode.SET_NOT_LOADED, now, has_program and load.door_closed and not load.set_loaded, "set not loaded"
        )
        motor = hw.motor.status()
        if motor.stalled or motor.overcurrent:
            self._alarm(AlarmCode.MOTOR_FAULT, now, "stall" if motor.stalled else "overcurrent")
        if hw.encoder.health() is SensorHealth.FAULT:
            self._alarm(AlarmCode.ENCODER_FAULT, now, "encoder reports a fault")
        # The ADC watchdog is level-triggered: while the pressure is above the wake level the core
        # disarms it and looks every second instead, so a rise is followed without an interrupt storm.
        wake = self.down.wake_threshold_mmhg()
        filtered = verdict.pressure_mmhg
        raw_high = down.count > 0 and float(down.samples_mmhg[-1]) >= wake  # a spike (or a rise) in progress
        self._rising = self.state in DELIVERING and (raw_high or (filtered is not None and filtered >= wake))
        self.hw.downstream.arm_wake(wake if self.state in DELIVERING and not self._rising else None)
        vacuum = float(self.settings.occlusion.upstream_mmhg)
        self.hw.upstream.arm_wake(None, vacuum if pumping and not upv.occluded else None)

    def _react(self, now: Instant) -> None:
        if self.state is ChannelState.FAILSAFE:
            return
        if self.alarms.in_failsafe(self.index):
            self.fire(ChannelEvent.FAULT, now)
        elif self.state in DELIVERING and self.alarms.stops_delivery(self.index):
            self.fire(ChannelEvent.STOPPING_ALARM, now)
        elif self.state is ChannelState.ALARM and not self.alarms.stops_delivery(self.index):
            self.fire(ChannelEvent.ALARMS_RESOLVED, now)

    def _advance(self, now: Instant) -> None:
        while self.state is ChannelState.INFUSING and self.tracker is not None:
            if not self.controller.complete(self.tracker, self._measured()):
                break
            if self._has_more():
                self.fire(ChannelEvent.SEGMENT_DONE, now)
            else:
                while self.stack:  # a secondary that ran to the end of everything: the primary is back
                    self._unwind(now)
                self.fire(ChannelEvent.PLAN_DONE, now)

    def _check_timers(self, now: Instant) -> None:
        t, s = self.timers, self.settings
        waiting = self.state in {ChannelState.PROGRAMMING, ChannelState.READY}
        self._condition(
            AlarmCode.CALLBACK_PROGRAMMING, now, waiting and now.since(t.state_since) >= s.callback, "left unattended"
        )
        paused = self.state is ChannelState.PAUSED
        self._condition(AlarmCode.CALLBACK_PAUSED, now, paused and now.since(t.state_since) >= s.callback, "paused")
        if t.titration_since is not None and now.since(t.titration_since) >= s.titration_timeout:
            self._alarm(AlarmCode.UNCONFIRMED_TITRATION, now, f"still infusing at {self._rate()}")
        left = self.time_left()
        if self.state is ChannelState.INFUSING and left is not None and s.near_end.due(left) and not t.near_end_raised:
            t.near_end_raised = True
            self._alarm(AlarmCode.NEAR_END, now, f"{left} left")  # stays until the VTBI completes or is cleared

    def _drive(self, now: Instant) -> None:
        t = self.timers
        if t.backoff_until is not None and now < t.backoff_until:
            return  # a slack take-up or back-off move is running
        t.backoff_until = None
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
        t, s = self.timers, self.settings
        rate = self._rate() if self.state in DELIVERING else None
        due = [now + (IDLE_CHECK if rate is None else self.controller.interval_for(rate, s.service_interval))]
        if t.backoff_until is not None:
            due.append(t.backoff_until)
        if self._rising:
            due.append(now + PRESSURE_WATCH)
        if self.state in DELIVERING and self.tracker is not None:
            end = self.tracker.time_to_end()
            if end is not None:
                due.append(now + max(end, MIN_MOVE))
        waiting = self.state in {ChannelState.PROGRAMMING, ChannelState.READY, ChannelState.PAUSED}
        timers = [t.state_since + s.callback] if waiting else []
        if t.titration_since is not None:
            timers.append(t.titration_since + s.titration_timeout)
        due += [at for at in timers if at > now]  # a timer already due has raised its alarm
        left = self.time_left()
        if self.state is ChannelState.INFUSING and left is not None and not t.near_end_raised:
            due.append(now + max(left - s.near_end.lead, MIN_MOVE))
        return min(due)

    def time_left(self) -> Duration | None:
        """Infusing time until the plan ends at the programmed rates (None: runs until stopped)."""
        if self.tracker is None or self.state is ChannelState.KVO:
            return None
        total = self.tracker.time_to_end()
        later = [*self.plan, *(s for held in self.stack for s in [held.segment, *held.rest] if s is not None)]
        for segment in later:
            d = segment.planned_duration()
            if total is None or d is None:
                return None
            total = total + d
        return total

    # --- helpers ----------------------------------------------------------------------------------

    def _alarm(self, code: AlarmCode, now: Instant, detail: str) -> None:
        self._record(self.alarms.activate(code, self.index, now, detail))

    def _condition(self, code: AlarmCode, now: Instant, present: bool, detail: str) -> None:
        if present:
            self._alarm(code, now, detail)
        else:
            self._clear(code, now)

    def _clear(self, code: AlarmCode, now: Instant) -> None:
        """The condition ``code`` is gone on this channel (a latching alarm stays until reset)."""
        self._record(self.alarms.condition_cleared(code, self.index, now))

    def _record(self, events: Iterable[AlarmEvent]) -> None:
        for event in events:
            self.log.append(event.t, event.log_kind, event.channel, **event.log_data())

    def _state_left(self, source: ChannelState, now: Instant) -> None:
        if source in {ChannelState.PROGRAMMING, ChannelState.READY}:
            self._condition(AlarmCode.CALLBACK_PROGRAMMING, now, False, "")
        if source is ChannelState.PAUSED:
            self._condition(AlarmCode.CALLBACK_PAUSED, now, False, "")

    def _log(self, now: Instant, kind: EventKind, **data: JsonValue) -> None:
        self.log.append(now, kind, self.index, **data)


def _deduct(held: _Suspended, volume: Volume) -> None:
    """Take ``volume`` off what remains of an interrupted plan (its segment first, then the rest, in order)."""
    left = volume.nl

    def cut(segment: Segment | None) -> Segment | None:
        nonlocal left
        if segment is None or segment.volume is None or left == 0:
            return segment
        take = min(left, segment.volume.nl)
        left -= take
        return replace(segment, volume=Volume(segment.volume.nl - take)) if segment.volume.nl > take else None

    held.segment = cut(held.segment)
    held.rest = [kept for kept in map(cut, held.rest) if kept is not None]


def _titrated_kinds(program: Program) -> frozenset[SegmentKind]:
    """The segment kinds whose rate a titration of ``program`` changes."""
    if isinstance(program, SecondaryProgram):
        return frozenset({SegmentKind.SECONDARY})
    if isinstance(program, PcaProgram):
        return frozenset({SegmentKind.BASAL})
    return frozenset({SegmentKind.PRIMARY})


def _with_rate(segment: Segment, rate: FlowRate) -> Segment:
    return replace(segment, rate=rate)


def describe(program: Program) -> dict[str, JsonValue]:
    """The program context written to the event log: type, main rate, VTBI and plan length."""
    vtbi = program.planned_vtbi()
    return {
        "type": type(program).__name__,
        "rate": encode_rate(program.primary_rate()),
        "vtbi": None if vtbi is None else encode_volume(vtbi),
        "segments": len(program.plan()),
    }
