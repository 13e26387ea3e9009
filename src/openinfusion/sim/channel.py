"""One virtual channel: mechanism, fluid path, patient and devices, integrated block by block.

Per block of samples (all numpy, no loop per sample or per step): driver pulses -> shaft position
(stall, end stop) -> mechanism swept volume -> filling efficiency (LVP upstream) -> volume pumped into
the line -> line pressure (compliance, resistance, occlusion, venous pressure, head height) -> what
the transducers report. :meth:`VirtualChannel.simulate` computes a block tentatively and returns the
interrupts found in it; :meth:`VirtualChannel.commit` keeps it up to the sample where the pump stops.
Scenario controls (occlusion, air, door, heights) act between blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from openinfusion.errors import ScenarioError
from openinfusion.pump.hal import AirBubble, ChannelHardware
from openinfusion.sim.arrays import F64, I64, diff_from, first_true, int_diff_from, running_sum
from openinfusion.sim.faults import (
    SIDES,
    AirDetectorFailure,
    DriftingPressureSensor,
    EncoderSlip,
    Fault,
    FaultKind,
    MotorStall,
    Side,
    StuckPressureSensor,
)
from openinfusion.sim.line import (
    M3_PER_UL,
    PA_PER_MMHG,
    DownstreamLine,
    UpstreamLine,
    head_pa,
    line_resistance_pa_s_m3,
    poiseuille_pa_s_m3,
    water_viscosity_pa_s,
)
from openinfusion.sim.mechanisms import NL_PER_M3, build_mechanism, tolerance_draws
from openinfusion.sim.motor import SimTime, VirtualEncoder, VirtualLatch, VirtualMotor
from openinfusion.sim.params import ChannelConfig
from openinfusion.sim.patient import VenousPressure
from openinfusion.sim.sensors import (
    VirtualAirDetector,
    VirtualDoorSwitch,
    VirtualFlowSensor,
    VirtualPressureSensor,
    VirtualTemperatureSensor,
)
from openinfusion.units import Duration, Instant, Volume

ML_PER_M3 = 1e6
ML_H_PER_M3_S = 3.6e9


class WakeReason(Enum):
    """Why :meth:`VirtualPump.advance` stopped early: the interrupt the firmware gets."""

    PRESSURE = "pressure"  # an armed pressure threshold was exceeded
    AIR = "air"  # the air detector saw a bubble
    DOOR = "door"  # door or set-loaded state changed
    MOTOR_FAULT = "motor_fault"  # the driver raised its stall flag
    MAINS = "mains"  # mains lost or restored
    POWER = "power"  # battery cell failure or brown-out
    WATCHDOG = "watchdog"  # the hardware watchdog bit
    RESERVOIR = "reservoir"  # the LVP container ran dry (physics: the bag collapses; the firmware is not told)


@dataclass(frozen=True, slots=True)
class Wake:
    """One interrupt: its reason and channel (None for pump-wide ones)."""

    reason: WakeReason
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelTruth:
    """What lab instruments would see on one channel at ``at`` (the last integrated sample).

    ``patient_ml`` went into the patient (a balance at the catheter tip; ``patient_nl`` rounded to the nL),
    ``displaced_ml`` was pushed into the line by the mechanism, ``stored_ml`` is held in the line's
    compliance (the bolus a release would give).
    """

    at: Instant
    patient_ml: float
    patient_nl: int
    displaced_ml: float
    stored_ml: float
    line_pressure_mmhg: float
    upstream_pressure_mmhg: float
    air_past_detector: Volume
    shaft_steps: int
    engaged: bool
    downstream_occluded: bool
    upstream_occluded: bool


@dataclass(frozen=True, slots=True)
class ChannelSeries:
    """Per-sample true series of one channel (same length as the block's ``t_s``)."""

    downstream_mmhg: F64
    upstream_mmhg: F64
    patient_flow_ml_h: F64
    cumulative_patient_ml: F64
    displaced_ml: F64
    motor_steps: I64

    @staticmethod
    def join(parts: list[ChannelSeries]) -> ChannelSeries:
        """Concatenate blocks in time order (an empty list gives empty arrays)."""
        if not parts:
            empty = np.zeros(0, dtype=np.float64)
            return ChannelSeries(empty, empty, empty, empty, empty, np.zeros(0, dtype=np.int64))
        if len(parts) == 1:
            return parts[0]
        return ChannelSeries(*(np.concatenate([getattr(p, f) for p in parts]) for f in _SERIES_FIELDS))

    def items(self) -> list[tuple[str, F64 | I64]]:
        """(name, array) pairs, in field order."""
        return [(f, getattr(self, f)) for f in _SERIES_FIELDS]


_SERIES_FIELDS = ChannelSeries.__dataclass_fields__.keys()


@dataclass(frozen=True, slots=True)
class _Bubble:
    target_m3: float  # cumulative pumped volume at which it reaches the detector
    volume_nl: int
    estimate_nl: int


@dataclass(slots=True)
class _Block:
    """A tentatively integrated block: arrays at the sample times ``t_us``."""

    k0: int
    t_us: I64
    issued: I64
    shaft: I64
    mech_pos: I64
    swept: F64
    pumped_cum: F64
    p_up: F64
    p_down: F64
    down_mmhg: F64
    up_mmhg: F64
    down_wake: int | None
    up_wake: int | None
    bubbles: tuple[tuple[int, _Bubble, bool], ...]  # (sample index, bubble, seen by the detector)
    flag_at: int | None  # driver stall flag raised at this sample


class VirtualChannel:
    """One channel's hardware (``hardware``: the HAL devices) and physics, with its scenario controls."""

    def __init__(
        self,
        index: int,
        config: ChannelConfig,
        rng: np.random.Generator,
        time: SimTime,
        period: Duration,
        *,
        interrupt: Callable[[Wake], None],
    ) -> None:
        mech_rng, down_rng, up_rng, patient_rng, air_rng = rng.spawn(5)
        self.index = index
        self.config = config
        self._time = time
        self._dt_s = period.us / 1e6
        self.mechanism = build_mechanism(config.mechanism, config.peristaltic, config.syringe, mech_rng)
        self.mechanism_params_loss = config.peristaltic.backpressure_loss_per_100mmhg
        self.calibration = self.mechanism.calibration()
        compliance = config.tubing.compliance_ul_per_mmhg * M3_PER_UL / PA_PER_MMHG
        compliance += self.mechanism.compliance_m3_per_pa
        resistance = line_resistance_pa_s_m3(config.tubing, config.catheter, config.fluid_temperature_c)
        self._pump_head_pa = head_pa(config.pump_height_m)
        self.patient = VenousPressure(config.patient, patient_rng)
        rest_pa = config.patient.venous_mmhg * PA_PER_MMHG - self._pump_head_pa
        self.line = DownstreamLine(resistance, compliance, rest_pa)
        self.upstream: UpstreamLine | None = None
        if self.mechanism.has_upstream:
            up = config.upstream_tubing
            self.upstream = UpstreamLine(
                poiseuille_pa_s_m3(up.inner_diameter_mm, up.length_m, water_viscosity_pa_s(config.fluid_temperature_c)),
                up.compliance_ul_per_mmhg * M3_PER_UL / PA_PER_MMHG,
                head_pa(config.peristaltic.calibration_bag_height_m),
                config.peristaltic.refill_pressure_mmhg * PA_PER_MMHG,
            )
            self.upstream.bag_pa = self.upstream.pressure_pa = head_pa(config.bag_height_m)
        self.motor = VirtualMotor(time)
        self.encoder = VirtualEncoder(self.calibration.counts_per_step, self.shaft_now)
        self.downstream_sensor = VirtualPressureSensor(config.downstream_sensor, down_rng, period)
        self.upstream_sensor = VirtualPressureSensor(config.upstream_sensor, up_rng, period)
        self.air = VirtualAirDetector()
        self.door = VirtualDoorSwitch()
        (flow_rng,) = rng.spawn(1)
        self.flow_sensor = (
            None if config.flow_sensor is None else VirtualFlowSensor(config.flow_sensor, flow_rng, self._patient_nl)
        )
        self.temperature_sensor = VirtualTemperatureSensor(22.0) if config.temperature_sensor else None
        self.hardware = ChannelHardware(
            self.motor, self.encoder, self.upstream_sensor, self.downstream_sensor, self.air, self.door,
            VirtualLatch(self.motor), self.flow_sensor, self.temperature_sensor,
        )  # fmt: skip
        self._upstream_clamped = False
        self.free_flow = False  # the set is out of the pump with its clamp open: gravity drives it
        self._air_rng = air_rng
        self._interrupt = interrupt
        # State at the last kept sample.
        self._t_us = 0
        self._issued = 0
        self._shaft = 0
        self._offset = 0  # issued - shaft, grown while the shaft could not follow the pulses
        self._stall: MotorStall | None = None
        self._stall_pos = 0
        self._mech_pos = 0
        self._shift = 0  # shaft - mechanism position, grown while the mechanism was disengaged
        self._swept_m3 = 0.0
        self._pumped_m3 = 0.0
        self._patient_m3 = 0.0
        self._bubbles: list[_Bubble] = []
        self._air_past_nl = 0
        self._empty_at_m3 = math.inf if config.container is None else config.container.nl / NL_PER_M3
        self._block: _Block | None = None
        self.record = True  # keep per-sample series for the pump's drain_series()
        self.series: list[ChannelSeries] = []

    # --- integration -------------------------------------------------------------------------------

    def simulate(self, k0: int, t_us: I64) -> list[tuple[int, WakeReason]]:
        """Integrate samples ``k0, k0+1, ...`` at ``t_us`` tentatively; return the interrupts (sample index, reason)."""
        issued = self.motor.issued_array(t_us)
        if self._stall is not None:
            shaft = np.full(t_us.shape, self._stall_pos, dtype=np.int64)
        else:
            shaft = issued - self._offset
        end = self.mechanism.end_stop_steps
        if not self.door.engaged:
            mech_pos = np.full(t_us.shape, self._mech_pos, dtype=np.int64)
        else:
            if end is not None:
                shaft = np.minimum(shaft, end + self._shift)
            mech_pos = shaft - self._shift
        swept = self.mechanism.sweep(mech_pos, t_us)
        if self.upstream is not None:
            pumped, p_up = self.upstream.fill(swept, self._swept_m3, self._dt_s)
        else:
            pumped, p_up = diff_from(swept, self._swept_m3), np.zeros(t_us.shape)
        outlet_pa = self.patient.pressure_pa(t_us) - self._pump_head_pa
        pumped = pumped * self._backpressure_factor(pumped, outlet_pa)
        if self.free_flow and not self.door.engaged:
            pumped = pumped + self._gravity_m3(outlet_pa)
        pumped_cum = running_sum(self._pumped_m3, pumped)
        p_down = self.line.pressures(pumped, outlet_pa, self._dt_s)
        down = self.downstream_sensor.convert(k0, p_down, t_us)
        up = self.upstream_sensor.convert(k0, p_up, t_us)
        block = _Block(
            k0,
            t_us,
            issued,
            shaft,
            mech_pos,
            swept,
            pumped_cum,
            p_up,
            p_down,
            down,
            up,
            self.downstream_sensor.wake_index(down),
            self.upstream_sensor.wake_index(up),
            self._bubbles_reaching(pumped_cum),
            None if self.motor.stall_flag else self._stall_flag_index(issued, shaft),
        )
        self._block = block
        wakes = [(i, WakeReason.PRESSURE) for i in (block.down_wake, block.up_wake) if i is not None]
        dry = first_true(pumped_cum >= self._empty_at_m3) if self.upstream is not None else None
        if dry is not None and not self.upstream_dry:
            wakes.append((dry, WakeReason.RESERVOIR))
        wakes += [(i, WakeReason.AIR) for i, _, seen in block.bubbles if seen]
        if block.flag_at is not None:
            wakes.append((block.flag_at, WakeReason.MOTOR_FAULT))
        return wakes

    def _backpressure_factor(self, pumped: F64, outlet_pa: F64) -> F64 | float:
        """Stroke volume relative to the calibration at the downstream back pressure (LVP only).

        A peristaltic segment leaks back past the fingers and its tube swells more against a higher outlet
        pressure, so the net stroke falls by ``backpressure_loss_per_100mmhg`` per 100 mmHg of back pressure
        (the outlet pressure plus the line's resistive drop). Syringes: none (their drive train's compliance
        is the line compliance, a transient only).
        """
        if self.upstream is None:
            return 1.0
        back_pa = outlet_pa + self.line.resistance_pa_s_m3 * self.line.restriction * pumped / self._dt_s
        loss = self.mechanism_params_loss * back_pa / (100.0 * PA_PER_MMHG)
        factor: F64 = np.clip(1.0 - loss, 0.0, 2.0)
        return factor

    def _gravity_m3(self, outlet_pa: F64) -> F64:
        """Volume per interval that gravity drives through an unclamped set out of the pump (free flow).

        The container (LVP bag above the pump, or the syringe itself) is ``P_bag + rho g h_pump`` above the
        catheter tip; the flow is that head less the venous pressure over the whole path's resistance.
        """
        bag_pa = 0.0 if self.upstream is None else self.upstream.bag_pa
        path = self.line.resistance_pa_s_m3 * self.line.restriction
        if self.upstream is not None:
            path += self.upstream.resistance_pa_s_m3
        if self.line.occluded or self.upstream_dry:
            return np.zeros(outlet_pa.shape)
        flow: F64 = np.maximum(bag_pa - outlet_pa, 0.0) / path * self._dt_s
        return flow

    @property
    def upstream_dry(self) -> bool:
        """True once the LVP container has run dry (its bag collapsed onto the set)."""
        return self.upstream is not None and self._pumped_m3 >= self._empty_at_m3

    def _patient_nl(self) -> tuple[Instant, float]:
        return Instant(self._t_us), self._patient_m3 * NL_PER_M3

    def _bubbles_reaching(self, pumped_cum: F64) -> tuple[tuple[int, _Bubble, bool], ...]:
        hits = []
        for bubble in self._bubbles:
            i = first_true(pumped_cum >= bubble.target_m3)
            if i is not None:
                seen = not self.air.blind and bubble.volume_nl >= self.config.air.min_detectable.nl
                hits.append((i, bubble, seen))
        return tuple(hits)

    def _stall_flag_index(self, issued: I64, shaft: I64) -> int | None:
        """First sample at which the driver pulses a shaft that cannot turn (stall fault or end stop)."""
        pulsed = int_diff_from(issued, self._issued) != 0
        if self._stall is not None:
            return first_true(pulsed) if self._stall.flagged else None
        if self.mechanism.end_stop_steps is None:
            return None
        return first_true(pulsed & (issued - self._offset > shaft))

    def pulses(self) -> I64:
        """Driver pulses issued in each interval of the block just simulated (for the battery load)."""
        if self._block is None:
            return np.zeros(0, dtype=np.int64)
        return np.abs(int_diff_from(self._block.issued, self._issued))

    def discard(self) -> None:
        """Forget the block simulated tentatively (nothing of it happened)."""
        self._block = None

    def commit(self, j: int) -> None:
        """Keep the last simulated block up to and including its sample ``j``."""
        b = self._block
        if b is None:
            return
        self._block = None
        self.mechanism.commit(j)
        self._t_us = int(b.t_us[j])
        self._issued = int(b.issued[j])
        self._shaft = int(b.shaft[j])
        if self._stall is None:
            self._offset = self._issued - self._shaft
        self._mech_pos = int(b.mech_pos[j])
        self._swept_m3 = float(b.swept[j])
        was_dry = self.upstream_dry
        self._pumped_m3 = float(b.pumped_cum[j])
        if self.upstream is not None and self.upstream_dry and not was_dry:
            self.upstream.occlude(True, self._swept_m3)  # the empty bag collapses: the segment pulls a vacuum
        self.line.pressure_pa = float(b.p_down[j])
        if self.upstream is not None:
            self.upstream.pressure_pa = float(b.p_up[j])
        n = j + 1
        self.downstream_sensor.store(b.k0, b.down_mmhg[:n], b.down_wake == j)
        self.upstream_sensor.store(b.k0, b.up_mmhg[:n], b.up_wake == j)
        for i, bubble, seen in b.bubbles:
            if i <= j:
                self._bubbles.remove(bubble)
                self._air_past_nl += bubble.volume_nl
                if seen:
                    self.air.record(AirBubble(Instant(int(b.t_us[i])), Volume(bubble.estimate_nl)))
        if b.flag_at is not None and b.flag_at <= j:
            self.motor.stall_flag = True
        patient_m3 = b.pumped_cum[:n] - self.line.stored_m3(b.p_down[:n])
        if self.record:
            flow = diff_from(patient_m3, self._patient_m3) * (ML_H_PER_M3_S / self._dt_s)
            self.series.append(
                ChannelSeries(
                    b.p_down[:n] / PA_PER_MMHG,
                    b.p_up[:n] / PA_PER_MMHG,
                    flow,
                    patient_m3 * ML_PER_M3,
                    b.pumped_cum[:n] * ML_PER_M3,
                    b.shaft[:n],
                )
            )
        self._patient_m3 = float(patient_m3[-1])

    # --- shaft -------------------------------------------------------------------------------------

    def shaft_now(self) -> int:
        """Shaft position (steps) now: the issued pulses less those it could not follow."""
        if self._stall is not None:
            return self._stall_pos
        shaft = self.motor.issued_at(self._time.us) - self._offset
        end = self.mechanism.end_stop_steps
        if end is not None and self.door.engaged:
            shaft = min(shaft, end + self._shift)
        return shaft

    # --- scenario controls -------------------------------------------------------------------------

    def set_occlusion(self, side: Side, on: bool) -> None:
        """Close (``on``) or open the line below the downstream sensor or above the upstream one."""
        if side == "downstream":
            self.line.occluded = on
        elif side == "upstream":
            if self.upstream is None:
                raise ScenarioError(f"channel[{self.index}].occlusion", "a syringe channel has no upstream line")
            self._upstream_clamped = on
            self.upstream.occlude(on or self.upstream_dry, self._swept_m3)
        else:
            raise ScenarioError(f"channel[{self.index}].occlusion.side", f"must be one of {SIDES}, got {side!r}")

    def set_partial_occlusion(self, factor: float) -> None:
        """Narrow the line below the sensor: its resistance becomes ``factor`` times the open line's (1 = open)."""
        ok = isinstance(factor, int | float) and not isinstance(factor, bool) and 1.0 <= factor <= 1e6
        if not ok:
            raise ScenarioError(
                f"channel[{self.index}].partial_occlusion", f"must be a factor within 1..1e6, got {factor!r}"
            )
        self.line.restriction = float(factor)

    def set_free_flow(self, on: bool) -> None:
        """Take the set out of the pump with its clamp open (``on``: gravity drives it), or close the clamp."""
        self.free_flow = bool(on)
        if on:
            self._set_load(False, False)

    def fill(self, volume: Volume) -> None:
        """Hang a new LVP container holding ``volume`` (the set is primed; a collapsed bag is replaced)."""
        if self.upstream is None:
            raise ScenarioError(
                f"channel[{self.index}].fill", "a syringe channel is filled by its syringe: set pump.fill"
            )
        if volume.nl < 0:
            raise ScenarioError(f"channel[{self.index}].fill", "volume must not be negative")
        self._empty_at_m3 = self._pumped_m3 + volume.nl / NL_PER_M3
        if self.upstream.occluded and not self._upstream_clamped:
            self.upstream.occlude(False, self._swept_m3)

    def set_temperature(self, celsius: float) -> None:
        """The pump housing's temperature (what its temperature sensor reads)."""
        if self.temperature_sensor is None:
            raise ScenarioError(f"channel[{self.index}].temperature", "this channel has no temperature sensor")
        ok = isinstance(celsius, int | float) and not isinstance(celsius, bool) and -40.0 <= celsius <= 125.0
        if not ok:
            raise ScenarioError(f"channel[{self.index}].temperature", f"must be within -40..125 C, got {celsius!r}")
        self.temperature_sensor.celsius = float(celsius)

    def inject_air(self, volume: Volume) -> None:
        """A bubble of ``volume`` enters the set at its inlet; it reaches the detector after ``air.travel_volume``
        of pumped fluid. Its volume estimate error is drawn now."""
        if volume.nl <= 0:
            raise ScenarioError(f"channel[{self.index}].air", "bubble volume must be positive")
        (z,) = tolerance_draws(self._air_rng, 1)
        estimate = max(round(volume.nl * (1.0 + self.config.air.estimate_sd_fraction * z)), 0)
        target = self._pumped_m3 + self.config.air.travel_volume.nl / NL_PER_M3
        self._bubbles.append(_Bubble(target, volume.nl, estimate))

    def set_door(self, closed: bool) -> None:
        """Open or close the door (an interrupt when it changes)."""
        self._set_load(closed, self.door.set_loaded)

    def set_loaded(self, loaded: bool) -> None:
        """Load or remove the set, or clamp or unclamp the syringe (an interrupt when it changes)."""
        self._set_load(self.door.door_closed, loaded)

    def _set_load(self, closed: bool, loaded: bool) -> None:
        before = (self.door.door_closed, self.door.set_loaded)
        was_engaged = self.door.engaged
        self.door.door_closed, self.door.set_loaded = bool(closed), bool(loaded)
        if self.door.engaged and not was_engaged:
            self._shift = self._shaft - self._mech_pos  # the mechanism resumes where it was left
        if before != (self.door.door_closed, self.door.set_loaded):
            self._interrupt(Wake(WakeReason.DOOR, self.index))

    def set_head_height(self, metres: float) -> None:
        """Height of the pump (its downstream sensor) above the catheter tip, in metres."""
        self._pump_head_pa = head_pa(_height(metres, f"channel[{self.index}].head_height"))

    def set_bag_height(self, metres: float) -> None:
        """Height of the LVP container above the pump, in metres."""
        if self.upstream is None:
            raise ScenarioError(f"channel[{self.index}].bag_height", "a syringe channel has no bag")
        self.upstream.bag_pa = head_pa(_height(metres, f"channel[{self.index}].bag_height"))

    def truth(self) -> ChannelTruth:
        stored_m3 = float(self.line.stored_m3(self.line.pressure_pa))
        return ChannelTruth(
            at=Instant(self._t_us),
            patient_ml=self._patient_m3 * ML_PER_M3,
            patient_nl=round(self._patient_m3 * NL_PER_M3),
            displaced_ml=self._pumped_m3 * ML_PER_M3,
            stored_ml=stored_m3 * ML_PER_M3,
            line_pressure_mmhg=self.line.pressure_pa / PA_PER_MMHG,
            upstream_pressure_mmhg=0.0 if self.upstream is None else self.upstream.pressure_pa / PA_PER_MMHG,
            air_past_detector=Volume(self._air_past_nl),
            shaft_steps=self._shaft,
            engaged=self.door.engaged,
            downstream_occluded=self.line.occluded,
            upstream_occluded=self.upstream is not None and self.upstream.occluded,
        )

    # --- faults ------------------------------------------------------------------------------------

    def _sensor(self, side: Side) -> VirtualPressureSensor:
        return self.downstream_sensor if side == "downstream" else self.upstream_sensor

    def inject(self, fault: Fault) -> None:
        """Apply a channel fault now."""
        match fault:
            case StuckPressureSensor():
                self._sensor(fault.side).set_stuck(fault)
            case DriftingPressureSensor():
                self._sensor(fault.side).set_drift(fault, self._time.us)
            case AirDetectorFailure():
                self.air.failure = fault
            case MotorStall():
                if self._stall is None:
                    self._stall_pos = self.shaft_now()
                self._stall = fault
            case EncoderSlip():
                self.encoder.set_slip(fault)
            case _:
                raise ScenarioError(f"channel[{self.index}].fault", f"{type(fault).__name__} is not a channel fault")

    def clear(self, kind: FaultKind) -> None:
        """Remove the channel fault of ``kind`` (both sides for a pressure sensor fault)."""
        if kind is FaultKind.STUCK_PRESSURE:
            for sensor in (self.downstream_sensor, self.upstream_sensor):
                sensor.set_stuck(None)
        elif kind is FaultKind.DRIFTING_PRESSURE:
            for sensor in (self.downstream_sensor, self.upstream_sensor):
                sensor.set_drift(None, self._time.us)
        elif kind is FaultKind.AIR_DETECTOR_FAILURE:
            self.air.failure = None
        elif kind is FaultKind.MOTOR_STALL and self._stall is not None:
            self._offset = self.motor.issued_at(self._time.us) - self._stall_pos
            self._stall = None
        elif kind is FaultKind.ENCODER_SLIP:
            self.encoder.set_slip(None)


def _height(metres: float, where: str) -> float:
    ok = isinstance(metres, int | float) and not isinstance(metres, bool) and -3.0 <= metres <= 3.0
    if not ok:
        raise ScenarioError(where, f"must be a height within -3..3 m, got {metres!r}")
    return float(metres)
