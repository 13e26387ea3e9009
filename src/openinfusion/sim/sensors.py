"""Virtual sensors as the firmware sees them: pressure transducers, air detector, door switch.

Each implements its :mod:`openinfusion.pump.hal` protocol structurally. The channel feeds them true
values block by block (:meth:`VirtualPressureSensor.convert`, then :meth:`~VirtualPressureSensor.store`
for the samples it keeps); the firmware reads what they buffered. Measurement noise is indexed by
sample number, so it does not depend on how a run is cut into blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from openinfusion.pump.hal import AirBatch, AirBubble, FlowReading, LoadState, PressureBatch, SensorHealth
from openinfusion.sim.arrays import F64, I64
from openinfusion.sim.faults import AirDetectorFailure, DriftingPressureSensor, StuckPressureSensor
from openinfusion.sim.line import PA_PER_MMHG
from openinfusion.sim.mechanisms import tolerance_draws
from openinfusion.sim.params import FlowSensorParams, PressureSensorParams
from openinfusion.units import Duration, Instant, Volume

NOISE_PAGE: Final = 1 << 14  # samples drawn at a time
BUFFER_CAP: Final = 1 << 20  # samples a sensor holds unread before the oldest are lost (29 h at 10 Hz)
US_PER_H: Final = 3.6e9


class NoiseStream:
    """Standard normal noise ``z[k]`` for sample numbers ``k``, drawn page by page in order from one generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._pages: dict[int, F64] = {}
        self._next = 0

    def take(self, k0: int, n: int) -> F64:
        """``z[k0 : k0 + n]``; ``k0`` never goes below an earlier call's ``k0``."""
        p0, p1 = k0 // NOISE_PAGE, (k0 + n - 1) // NOISE_PAGE
        while self._next <= p1:
            self._pages[self._next] = self._rng.standard_normal(NOISE_PAGE)
            self._next += 1
        for old in [p for p in self._pages if p < p0]:
            del self._pages[old]
        off = k0 - p0 * NOISE_PAGE
        if p0 == p1:
            return self._pages[p0][off : off + n]
        return np.concatenate([self._pages[p] for p in range(p0, p1 + 1)])[off : off + n]


class VirtualPressureSensor:
    """A line pressure transducer and its 12-bit ADC (HAL ``PressureSensor``).

    Reading = quantise(offset + gain * true + noise [+ drift]); the offset and gain error are this unit's own,
    drawn once. A sample at the ADC's top code flags the batch FAULT (over-range). The analogue watchdog
    (:meth:`arm_wake`) is one-shot: once it fires it disarms until the firmware re-arms it.
    """

    def __init__(self, params: PressureSensorParams, rng: np.random.Generator, period: Duration) -> None:
        self.params = params
        e_offset, e_gain = tolerance_draws(rng, 2)
        self.offset_mmhg = params.offset_sd_mmhg * e_offset
        self.gain = 1.0 + params.gain_sd_fraction * e_gain
        self._noise = NoiseStream(rng)
        self._period = period
        self._top_code = (1 << params.adc_bits) - 1
        self._chunks: list[F64] = []
        self._count = 0
        self._first_k = 0
        self._faulty = False
        self._threshold: float | None = None
        self._low: float | None = None
        self.last_mmhg = 0.0
        self.stuck: StuckPressureSensor | None = None
        self._stuck_mmhg = 0.0
        self.drift: DriftingPressureSensor | None = None
        self._drift_since_us = 0

    # --- HAL ---------------------------------------------------------------------------------------

    def read(self) -> PressureBatch:
        """All samples buffered since the previous read, oldest first."""
        if not self._chunks:
            samples = np.zeros(0, dtype=np.float64)
        else:
            samples = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        health = SensorHealth.FAULT if self._faulty else SensorHealth.OK
        batch = PressureBatch(Instant(self._first_k * self._period.us), self._period, samples, health)
        self._first_k += self._count
        self._chunks, self._count, self._faulty = [], 0, False
        return batch

    def arm_wake(self, threshold_mmhg: float | None, below_mmhg: float | None = None) -> None:
        """Wake the core at the first sample above ``threshold_mmhg`` or below ``below_mmhg`` (None: off)."""
        self._threshold = None if threshold_mmhg is None else float(threshold_mmhg)
        self._low = None if below_mmhg is None else float(below_mmhg)

    @property
    def armed_threshold_mmhg(self) -> float | None:
        return self._threshold

    # --- simulator side ----------------------------------------------------------------------------

    def set_stuck(self, fault: StuckPressureSensor | None) -> None:
        self.stuck = fault
        if fault is not None:
            self._stuck_mmhg = self.last_mmhg if fault.value_mmhg is None else fault.value_mmhg

    def set_drift(self, fault: DriftingPressureSensor | None, now_us: int) -> None:
        self.drift = fault
        self._drift_since_us = now_us

    def convert(self, k0: int, true_pa: F64, t_us: I64) -> F64:
        """What the ADC reports (mmHg) for samples ``k0..`` of true pressure ``true_pa`` taken at ``t_us``."""
        p = self.params
        if self.stuck is not None:
            return np.full(true_pa.shape, self._stuck_mmhg)
        lsb = p.lsb_mmhg
        # In ADC codes, in place (this runs for every sample of every block).
        codes = true_pa * (self.gain / PA_PER_MMHG / lsb)
        codes += (self.offset_mmhg - p.range_low_mmhg) / lsb
        if p.noise_sd_mmhg > 0:
            codes += (p.noise_sd_mmhg / lsb) * self._noise.take(k0, true_pa.shape[0])
        if self.drift is not None:
            codes += (self.drift.rate_mmhg_per_h / lsb) * ((t_us - self._drift_since_us) / US_PER_H)
        np.rint(codes, out=codes)
        np.maximum(codes, 0.0, out=codes)
        np.minimum(codes, self._top_code, out=codes)
        codes *= lsb
        codes += p.range_low_mmhg
        return codes

    def wake_index(self, readings: F64) -> int | None:
        """Index of the first reading outside the armed window, or None."""
        if self._threshold is None and self._low is None:
            return None
        outside = np.zeros(readings.shape, dtype=bool)
        if self._threshold is not None:
            outside |= readings > self._threshold
        if self._low is not None:
            outside |= readings < self._low
        i = int(np.argmax(outside))
        return i if outside[i] else None

    def store(self, k0: int, readings: F64, fired: bool) -> None:
        """Buffer the kept samples ``k0..``; ``fired`` disarms the analogue watchdog that woke the core."""
        if readings.shape[0] == 0:
            return
        if not self._chunks:
            self._first_k = k0
        self._chunks.append(readings)
        self._count += readings.shape[0]
        top = self.params.range_low_mmhg + self._top_code * self.params.lsb_mmhg
        self._faulty |= bool(readings.max() >= top) or (self.stuck is not None and self.stuck.self_detected)
        self.last_mmhg = float(readings[-1])
        if fired:
            self._threshold = self._low = None
        while self._count > BUFFER_CAP:
            dropped = self._chunks.pop(0)
            self._count -= dropped.shape[0]
            self._first_k += dropped.shape[0]


class VirtualAirDetector:
    """Ultrasonic air-in-line detector (HAL ``AirDetector``): bubbles found since the last read."""

    def __init__(self) -> None:
        self._bubbles: list[AirBubble] = []
        self.failure: AirDetectorFailure | None = None

    def read(self) -> AirBatch:
        failed = self.failure is not None and self.failure.self_test_fails
        batch = AirBatch(tuple(self._bubbles), SensorHealth.FAULT if failed else SensorHealth.OK)
        self._bubbles = []
        return batch

    def self_test(self) -> bool:
        return self.failure is None or not self.failure.self_test_fails

    def simulate_air(self) -> bool:
        """A failed detector sees no bubble, so it cannot see the muted burst either (silent or not)."""
        return self.failure is None

    @property
    def blind(self) -> bool:
        return self.failure is not None

    def record(self, bubble: AirBubble) -> None:
        self._bubbles.append(bubble)


class VirtualDoorSwitch:
    """Door switch and set-loaded (syringe clamp) sensor (HAL ``DoorSwitch``)."""

    def __init__(self) -> None:
        self.door_closed = True
        self.set_loaded = True

    def state(self) -> LoadState:
        return LoadState(self.door_closed, self.set_loaded)

    @property
    def engaged(self) -> bool:
        """True if the mechanism acts on the fluid (door closed and set loaded)."""
        return self.door_closed and self.set_loaded


class VirtualFlowSensor:
    """In-line flow sensor (HAL ``FlowSensor``): the true volume that reached the patient since the last read,
    times a per-unit gain error, plus a noise of ``noise_nl`` (one draw per read, rounded to the nL).

    ``truth`` returns the time of the last integrated sample and the cumulative true volume (nL) at it.
    """

    def __init__(
        self, params: FlowSensorParams, rng: np.random.Generator, truth: Callable[[], tuple[Instant, float]]
    ) -> None:
        (e_gain,) = tolerance_draws(rng, 1)
        self._gain = 1.0 + params.gain_sd_fraction * e_gain
        self._noise_nl = params.noise_nl
        self._rng = rng
        self._truth = truth
        self._last_t = Instant(0)
        self._last_nl = 0.0

    def read(self) -> FlowReading:
        t, total_nl = self._truth()
        volume_nl = (total_nl - self._last_nl) * self._gain + self._noise_nl * float(self._rng.standard_normal())
        reading = FlowReading(self._last_t, t, Volume(round(volume_nl)))
        self._last_t, self._last_nl = t, total_nl
        return reading


class VirtualTemperatureSensor:
    """Housing temperature sensor (HAL ``TemperatureSensor``): reads ``celsius`` (set by the scenario)."""

    def __init__(self, celsius: float) -> None:
        self.celsius = celsius

    def read_millicelsius(self) -> int:
        return round(self.celsius * 1000)
