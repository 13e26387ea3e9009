"""Run a scenario: the pump core on virtual hardware, event to event.

Theory of operation
-------------------
The run keeps SimPy's shape (STYLE.md §3): a heap of ``(time, sequence, event)`` where the sequence
number breaks ties first-in first-out, and three verbs, :meth:`Simulation.peek`,
:meth:`Simulation.step` and :meth:`Simulation.run`. Two kinds of thing are due: the scenario's timeline
events, and the pump core's next attention time (from :meth:`Pump.service`). Between them the
virtual hardware integrates its physics in vectorised blocks (:meth:`VirtualPump.advance`), which
stops early at the first device interrupt (an armed pressure threshold, a bubble, the door, mains); the
core is serviced at that instant, as firmware would be by the interrupt.

Scenario time 0 is one second after power-on, so the power-on self-test has finished when the
timeline starts. Everything random comes from one ``numpy.random.Generator`` seeded by the scenario,
so the same scenario and seed give the same outputs, byte for byte.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.druglib.package import simulation_release
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import DoseLimitError, InputError, ScenarioError, TransitionRefusedError
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.pump.programs import Program
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.sim import build
from openinfusion.sim.driver import Driver
from openinfusion.sim.faults import (
    AirDetectorFailure,
    AnnunciatorFailure,
    BatteryCellFailure,
    ClockJump,
    DriftingPressureSensor,
    EncoderSlip,
    Fault,
    MissedTimerTick,
    MotorStall,
    StorageCorruption,
    StuckPressureSensor,
)
from openinfusion.sim.line import nominal_compliance_nl_per_mmhg
from openinfusion.sim.params import BatteryParams, ChannelConfig, FlowSensorParams, PatientParams, VirtualPumpConfig
from openinfusion.sim.scenario import (
    ActionEvent,
    AirEvent,
    BolusEvent,
    ChannelSpec,
    DoorEvent,
    FaultEvent,
    FillEvent,
    FreeFlowEvent,
    HeadHeightEvent,
    LoadEvent,
    MainsEvent,
    OcclusionEvent,
    PartialOcclusionEvent,
    PowerEvent,
    ProgramEvent,
    PumpActionEvent,
    ResetAlarmEvent,
    Scenario,
    SecondaryEvent,
    TemperatureEvent,
    TimelineEvent,
    TitrateEvent,
    syringe_size,
)
from openinfusion.sim.series import NAMES, SeriesMode, SeriesRecorder, bucket_samples
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, Instant, Quantity, Volume

START: Final = Instant(1_000_000)  # scenario time 0, after the power-on self-test
# The core sleeps up to 5 min between services in steady flow (the ADC watchdog and device interrupts wake
# it at once for anything that changes), so the hardware watchdog's window is twice that.
WATCHDOG_WINDOW: Final = Duration.min(10)

FAULTS: Final[dict[str, Callable[..., Fault]]] = {
    "stuck_pressure": StuckPressureSensor,
    "drifting_pressure": DriftingPressureSensor,
    "air_detector_failure": AirDetectorFailure,
    "motor_stall": MotorStall,
    "encoder_slip": EncoderSlip,
    "missed_timer_tick": MissedTimerTick,
    "clock_jump": ClockJump,
    "battery_cell_failure": BatteryCellFailure,
    "storage_corruption": StorageCorruption,
    "annunciator_failure": AnnunciatorFailure,
}


def _fault(event: FaultEvent) -> Fault:
    """The fault a timeline event names, with its parameters (``jump_s`` for a clock jump, in seconds)."""
    params: dict[str, object] = dict(event.params)
    if "jump_s" in params:
        params["jump"] = Duration.s(str(params.pop("jump_s")))
    try:
        return FAULTS[event.fault](**params)
    except TypeError:
        cls = FAULTS[event.fault]
        fields = ", ".join(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else "none"
        raise InputError("params", f"{event.fault} takes {fields}; got {', '.join(sorted(params))}") from None


def _field_of(where: str) -> str:
    """A core error's field path without the core's own prefix (``program.rate`` -> ``rate``)."""
    for prefix in ("program.", "bolus.", "titration.", "secondary."):
        if where.startswith(prefix):
            return where.removeprefix(prefix)
    return where


def world_config(scenario: Scenario) -> VirtualPumpConfig:
    """The virtual hardware a scenario describes."""
    spec = scenario.pump
    who = scenario.patient
    patient = PatientParams(venous_mmhg=who.venous_mmhg, spike_rate_per_h=who.movement_per_hour)
    channels = []
    for ch in scenario.channels:
        if spec.mechanism == "syringe":
            assert spec.syringe is not None  # checked by the scenario model
            size = syringe_size(spec.syringe)
            assert size is not None  # checked by the scenario model
            base = ChannelConfig.syringe_pump(size)
        else:
            base = ChannelConfig()
        if ch.fill is not None and spec.mechanism == "syringe":
            base = replace(base, syringe=replace(base.syringe, fill=Volume.of(ch.fill)))
        elif ch.fill is not None:
            base = replace(base, container=Volume.of(ch.fill))
        flow = FlowSensorParams() if ch.flow_sensor else None
        channels.append(
            replace(
                base, patient=patient, pump_height_m=ch.head_height_m, flow_sensor=flow,
                temperature_sensor=ch.temperature_sensor,
            )
        )  # fmt: skip
    battery = BatteryParams(
        initial_charge_fraction=spec.battery_charge_percent / 100,
        state_of_health=max(0.05, 1.0 - 0.08 * spec.battery_age_years),
    )
    config = VirtualPumpConfig(
        channels=tuple(channels), battery=battery, on_mains=spec.on_mains, watchdog_window=WATCHDOG_WINDOW
    )
    if scenario.sample_period is not None:
        config = replace(config, sample_period=Duration.of(scenario.sample_period))
    return config


def _told_container(config: ChannelConfig, spec: ChannelSpec) -> Volume | None:
    """The container volume the pump knows: a syringe's from its plunger position (its fill, or full), an LVP
    bag's only if the nurse entered it (``container``)."""
    if config.mechanism is MechanismKind.SYRINGE:
        return config.syringe.fill if config.syringe.fill is not None else config.syringe.spec.capacity
    return None if spec.container is None else Volume.of(spec.container)


def _library_package(scenario: Scenario, file: str, signer: str) -> tuple[tuple[Ed25519PublicKey, ...], bytes | None]:
    """The scenario's library, validated, compiled and signed with simulated keys derived from ``signer``.

    A simulated pump trusts the simulation's own keys; a real pump trusts only its hospital's.
    """
    if scenario.library is None:
        return (), None
    path = Path(file).parent / scenario.library
    try:
        content = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        content = ""  # read_yaml says what is wrong with the file (an error is never cached)
    return _release(str(path), content, signer)


@functools.lru_cache(maxsize=8)
def _release(path: str, content_sha256: str, signer: str) -> tuple[tuple[Ed25519PublicKey, ...], bytes]:
    """The release of the library file at ``path`` (whose bytes hash to ``content_sha256``) signed by the keys of
    ``signer``, built once per process: a campaign's runs share one (decision record 0039)."""
    return simulation_release(read_yaml(Path(path)).require(), signer)


@dataclass(order=True, slots=True)
class _Due:
    t_us: int
    seq: int
    event: TimelineEvent = field(compare=False)
    where: str = field(compare=False, default="")  # where the event is in the file, for errors


@dataclass(slots=True)
class _Steps:
    """Per-channel step series recorded from the pump at every service (for the report)."""

    t_s: list[float] = field(default_factory=list)
    rate_ml_h: list[float] = field(default_factory=list)
    counted_ml: list[float] = field(default_factory=list)
    state: list[str] = field(default_factory=list)


class Simulation:
    """One scenario run. ``file`` names the scenario in errors."""

    def __init__(
        self,
        scenario: Scenario,
        file: str = "scenario",
        series: SeriesMode = SeriesMode.DECIMATED,
        signer: str | None = None,
    ) -> None:
        """``signer`` seeds the simulated library signers' keys (default ``sim:<seed>``: keys for this run only);
        runs given one signer share one compiled, signed library package."""
        self.scenario = scenario
        self.file = file
        self.rng = np.random.default_rng(scenario.seed)
        world = replace(world_config(scenario), record_series=series is not SeriesMode.OFF)
        self.world = VirtualPump(world, self.rng)
        cals = self.world.calibrations
        settings = tuple(
            build.channel_settings(scenario.pump, nominal_compliance_nl_per_mmhg(c), _told_container(c, spec))
            for c, spec in zip(world.channels, scenario.channels, strict=True)
        )
        origin = None if scenario.start is None else (scenario.start - timedelta(microseconds=START.us)).isoformat()
        config = PumpConfig(
            pump_id=scenario.pump.id, channels=settings, care_area=scenario.pump.care_area, time_origin=origin
        )
        keys, package = _library_package(scenario, file, f"sim:{scenario.seed}" if signer is None else signer)

        def boot(previous: Pump | None) -> Pump:
            """A freshly booted core; the event log and the stored library survive in non-volatile memory."""
            log = None if previous is None else previous.log
            return Pump(self.world.hardware, cals, config, trusted_keys=keys, library_package=package, log=log)

        first = boot(None)
        self.end = START + Duration.of(scenario.duration)
        self.refusals: list[tuple[float, int | None, str]] = []
        self.steps = [_Steps() for _ in cals]
        duration = Duration.of(scenario.duration) + START.since(Instant(0))
        period = world.sample_period
        self.series = SeriesRecorder(len(cals), series, bucket_samples(duration, period), period.us / 1e6)
        self._queue: list[_Due] = []
        self._seq = 0
        self.driver = Driver(self.world, first, self._record, boot=boot)
        zero = Quantity.of(0, "s")
        for i, ch in enumerate(scenario.channels):  # channel programs are entered at time 0, before the timeline
            if ch.program is not None:
                entered = ProgramEvent(at=zero, channel=i + 1, do="program", program=ch.program)
                self._check(entered, f"channels[{i}]")
                self._push(START, entered, f"channels[{i}].program")
        for i, event in enumerate(scenario.timeline):
            self._check(event, f"timeline[{i}]")
            self._push(START + Duration.of(event.at), event, f"timeline[{i}]")
        self._programs: list[Program | None] = [None] * len(cals)

    @property
    def pump(self) -> Pump:
        """The core running now (a power cycle boots a new one)."""
        return self.driver.pump

    # --- the engine -------------------------------------------------------------------------------

    def _push(self, t: Instant, event: TimelineEvent, where: str) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Due(t.us, self._seq, event, where))

    def peek(self) -> Instant:
        """Time of the next scenario event (the end of the scenario if none is due before it)."""
        return Instant(min(self._queue[0].t_us, self.end.us)) if self._queue else self.end

    def step(self) -> None:
        """Run the pump on its hardware up to the next scenario event, then apply it."""
        self.driver.run_until(self.peek())
        if self._queue and self._queue[0].t_us <= self.world.now.us:
            due = heapq.heappop(self._queue)
            self._apply(due.event, due.where)
            self.driver.service()

    def run(self, progress: Callable[[float], None] | None = None) -> None:
        """Run to the end of the scenario; ``progress`` gets the fraction done."""
        span = self.end.us - START.us
        while self.world.now < self.end:
            self.step()
            if progress is not None:
                progress(max(0.0, (self.world.now.us - START.us) / span))
        self._record()
        self.series.flush()

    # --- recording ----------------------------------------------------------------------------------

    def _record(self) -> None:
        t_s = (self.world.now.us - START.us) / 1e6
        for i, ch in enumerate(self.pump.channels):
            s = self.steps[i]
            live = ch.live_counters()
            counted = float(live.total.nl / 1e6)
            rate = float(ch.rate().nl_per_h / 1e6)
            if s.t_s and s.t_s[-1] == t_s:
                s.rate_ml_h[-1], s.counted_ml[-1], s.state[-1] = rate, counted, ch.state.value
            else:
                s.t_s.append(t_s)
                s.rate_ml_h.append(rate)
                s.counted_ml.append(counted)
                s.state.append(ch.state.value)
        block = self.world.drain_series()
        for i, per_channel in enumerate(block.channels):
            arrays = {name: getattr(per_channel, name) for name in NAMES if name != "t_s"}
            self.series.add(i, {"t_s": block.t_s, **arrays})

    # --- scenario events ----------------------------------------------------------------------------

    def _apply(self, event: TimelineEvent, where: str) -> None:
        index = getattr(event, "channel", None)
        ch = (index - 1) if isinstance(index, int) else None
        try:
            self._apply_to(event, ch)
        except (TransitionRefusedError, DoseLimitError) as e:  # the pump said no: part of the story, not an error
            self.refusals.append(((self.world.now.us - START.us) / 1e6, ch, str(e)))
        except InputError as e:
            field_ = _field_of(e.where)
            raise ScenarioError(f"{self.file}: {where}{'.' + field_ if field_ else ''}", e.why) from None

    def _apply_to(self, event: TimelineEvent, ch: int | None) -> None:
        pump, world, cal = self.pump, self.world, self.world.calibrations
        who = self.scenario.patient
        match event:
            case ProgramEvent():
                assert ch is not None
                spec = event.program
                program = build.program(spec, cal[ch], who)
                self._programs[ch] = program
                pump.program(
                    ch, program,
                    selection=build.selection(spec, self.scenario.pump.care_area, f"{self.file}: program"),
                    patient=build.patient(who), override_reason=spec.override_reason, basic_reason=spec.basic_reason,
                )  # fmt: skip
            case ActionEvent():
                assert ch is not None
                self._clinician(event.do, ch)
            case TitrateEvent():
                assert ch is not None
                pump.titrate(ch, build.titration(event), override_reason=event.override_reason)
                if event.confirm_after is not None:
                    self._push(world.now + Duration.of(event.confirm_after), _confirm(event), "confirm_after")
            case BolusEvent():
                assert ch is not None
                bolus = build.bolus(event, cal[ch], pump.channels[ch].program, who)
                pump.bolus(ch, bolus, override_reason=event.override_reason)
            case SecondaryEvent():
                assert ch is not None
                spec2 = event.secondary
                pump.secondary(
                    ch, build.secondary(spec2, cal[ch]),
                    selection=build.selection(spec2, self.scenario.pump.care_area, f"{self.file}: secondary"),
                    override_reason=spec2.override_reason, basic_reason=spec2.basic_reason,
                )  # fmt: skip
            case PumpActionEvent():
                pump.audio_pause()
            case ResetAlarmEvent():
                pump.reset_alarm(None if event.pump_scope else ch, event.code)
            case OcclusionEvent():
                assert ch is not None
                world.channel(ch).set_occlusion(event.side, event.on)
            case PartialOcclusionEvent():
                assert ch is not None
                world.channel(ch).set_partial_occlusion(event.factor)
            case FreeFlowEvent():
                assert ch is not None
                world.channel(ch).set_free_flow(event.on)
            case FillEvent():
                assert ch is not None
                world.channel(ch).fill(Volume.of(event.volume))
            case TemperatureEvent():
                assert ch is not None
                world.channel(ch).set_temperature(event.celsius)
            case PowerEvent():
                world.set_power(event.on)
            case AirEvent():
                assert ch is not None
                world.channel(ch).inject_air(Volume.of(event.volume))
            case DoorEvent():
                assert ch is not None
                world.channel(ch).set_door(event.closed)
            case LoadEvent():
                assert ch is not None
                world.channel(ch).set_loaded(event.loaded)
            case MainsEvent():
                world.set_mains(event.on)
            case HeadHeightEvent():
                assert ch is not None
                world.channel(ch).set_head_height(event.metres)
            case FaultEvent():
                fault = _fault(event)
                target = (event.channel - 1) if event.channel is not None and fault.kind.per_channel else None
                world.inject(fault, target)
                self.pump.log.append(world.now, EventKind.FAULT_INJECTED, target, fault=event.fault)

    def _check(self, event: TimelineEvent, where: str) -> None:
        """Build what a timeline event builds before the run, so bad input fails at load, located."""
        cals, who, file = self.world.calibrations, self.scenario.patient, self.file
        ch = getattr(event, "channel", 1) or 1
        match event:
            case ProgramEvent():
                build.located(file, f"{where}.program", lambda: build.program(event.program, cals[ch - 1], who))
            case SecondaryEvent():
                build.located(file, f"{where}.secondary", lambda: build.secondary(event.secondary, cals[ch - 1]))
            case FaultEvent():
                build.located(file, where, lambda: _fault(event))
            case BolusEvent():
                spec = self.scenario.channels[ch - 1].program
                running = build.program(spec, cals[ch - 1], who) if spec is not None else None
                bolus = build.located(file, where, lambda: build.bolus(event, cals[ch - 1], running, who))
                vtbi = running.planned_vtbi() if running is not None else None
                if vtbi is not None:  # a bolus can never be more than the whole VTBI (OI-PROG-4)
                    build.located(file, where, lambda: bolus.check_against(vtbi))
            case _:
                pass

    def _clinician(self, action: str, ch: int) -> None:
        pump = self.pump
        actions: dict[str, Callable[[int], None]] = {
            "start": pump.start,
            "pause": pump.pause,
            "resume": pump.resume,
            "clear": pump.clear,
            "confirm_titration": pump.confirm_titration,
            "cancel_titration": pump.cancel_titration,
            "pca_demand": pump.pca_demand,
            "begin_programming": pump.begin_programming,
        }
        actions[action](ch)

    # --- results ------------------------------------------------------------------------------------

    def summary(self, scenario_sha256: str) -> dict[str, Any]:
        """The run's summary: per channel delivered volume, final state and alarms; seed and file hash."""
        channels = []
        for i, ch in enumerate(self.pump.channels):
            alarms = [
                {"seq": e.seq, "t_us": e.t.us, "code": e.data["code"], "priority": e.data["priority"]}
                for e in self.pump.log.events()
                if e.kind is EventKind.ALARM_RAISED and e.channel in (i, None)
            ]
            live = ch.live_counters()
            delivered = live.total.nl
            channels.append(
                {
                    "channel": i + 1,
                    "delivered_ml": round(delivered / 1e6, 6),
                    "into_patient_ml": round(self.world.channel(i).truth().patient_ml, 6),
                    "final_state": ch.state.value if self.world.powered else "no power",
                    "alarms": alarms,
                }
            )
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "scenario_sha256": scenario_sha256,
            "duration_s": round((self.end.us - START.us) / 1e6, 3),
            "start_us": START.us,  # scenario time 0 in pump time; every t_us is pump time, as in events.jsonl
            "start": None if self.scenario.start is None else self.scenario.start.isoformat(),
            "channels": channels,
            "refused": [
                {"t_us": START.us + round(t * 1e6), "channel": None if c is None else c + 1, "reason": r}
                for t, c, r in self.refusals
            ],
        }


def _confirm(event: TitrateEvent) -> ActionEvent:
    return ActionEvent(at=event.at, channel=event.channel, do="confirm_titration")


def threshold_mmhg(pump: Pump, channel: int) -> float:
    """The downstream occlusion threshold the channel runs with (for the report)."""
    settings = pump.channels[channel].settings
    return float(settings.occlusion.threshold_mmhg(settings.sensitivity))


def write_json(path: Path, obj: object) -> None:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline."""
    path.write_text(json.dumps(obj, sort_keys=True, indent=2) + "\n", encoding="utf-8")
