"""Hardware abstraction layer: the only way the pump core touches the world.

One small :class:`typing.Protocol` per device. A real driver implements these over registers and
DMA buffers; :mod:`openinfusion.sim` implements them over modelled physics. The core never reads a
wall clock, never blocks and never waits: it reads what the devices have buffered since its last
call, commands the motor, and tells its driver when it next needs attention (ARCHITECTURE rule 5).

Conventions:

* time is the pump's monotonic clock, :class:`~openinfusion.units.Instant` (integer microseconds);
* motor positions are integer **steps** (signed: positive = forward, towards the patient);
  encoder positions are integer **counts** (``counts_per_step`` per step, from the mechanism's
  calibration), both cumulative since power-on so a missed read loses nothing;
* pressures are mmHg gauge, sampled at a fixed period and delivered in batches as float64 arrays;
* bubble volumes are integer nanolitres (:class:`~openinfusion.units.Volume`).

Commanded-but-not-confirmed motion is explicit: :meth:`Motor.issued_steps` counts the step pulses
the driver actually issued, :meth:`Encoder.counts` what the shaft did. Delivery accounting uses the
encoder; the safety monitor compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from openinfusion.units import Duration, Instant, Volume


class SensorHealth(Enum):
    """A device's own view of its health (its built-in diagnostics)."""

    OK = "ok"
    FAULT = "fault"  # the device reports a failure (open circuit, ADC out of range, no echo, ...)


@dataclass(frozen=True, slots=True)
class MotorStatus:
    """What the motor driver reports: whether a move is executing and its fault flags."""

    moving: bool
    stalled: bool = False  # driver's stall detection (back-EMF / current)
    overcurrent: bool = False


class Motor(Protocol):
    """A stepper motor behind a step/direction driver with a one-entry move queue."""

    def move(self, steps: int, over: Duration) -> None:
        """Issue ``steps`` step pulses (negative = reverse) evenly spaced over ``over``.

        Replaces any move in progress (the steps of the old move not yet issued are dropped).
        ``over`` must be positive; ``steps == 0`` idles the motor for ``over``.
        """
        ...

    def stop(self) -> None:
        """Stop at once: no further pulses until the next :meth:`move`."""
        ...

    def issued_steps(self) -> int:
        """Signed step pulses issued by the driver since power-on (what was commanded and sent)."""
        ...

    def status(self) -> MotorStatus:
        """Current driver status."""
        ...


class SafetyLatch(Protocol):
    """The safety monitor's own path to a channel's motor power stage (OI-SAFE-5).

    Independent of the step/direction driver the delivery controller commands: on real hardware a gate
    that removes the power stage's enable line, driven from the monitor's own output pin. Once tripped it
    stays tripped until power-off, and every later :meth:`Motor.move` is refused by the hardware.
    """

    def trip(self) -> None:
        """Disable the motor now, latched until power-off. Must not raise and must not block."""
        ...

    def tripped(self) -> bool:
        """True once :meth:`trip` has taken effect."""
        ...


class Encoder(Protocol):
    """Shaft encoder on the pumping mechanism (independent of the driver's pulse counter)."""

    def counts(self) -> int:
        """Signed cumulative counts since power-on (what the shaft actually did)."""
        ...

    def health(self) -> SensorHealth: ...


@dataclass(frozen=True, slots=True)
class PressureBatch:
    """Pressure samples buffered since the last read.

    Sample ``i`` was taken at ``first + period * i``. ``samples_mmhg`` is a float64 array in mmHg
    (gauge), already quantised by the ADC. An empty batch has ``len(samples_mmhg) == 0``.
    """

    first: Instant
    period: Duration
    samples_mmhg: npt.NDArray[np.float64]
    health: SensorHealth = SensorHealth.OK

    @property
    def count(self) -> int:
        return int(self.samples_mmhg.shape[0])

    @property
    def last_time(self) -> Instant:
        """Time of the last sample (``first`` for an empty batch)."""
        return self.first + self.period * max(self.count - 1, 0)


class PressureSensor(Protocol):
    """A line pressure transducer (one upstream, one downstream per channel)."""

    def read(self) -> PressureBatch:
        """All samples taken since the previous read, oldest first."""
        ...

    def arm_wake(self, threshold_mmhg: float | None, below_mmhg: float | None = None) -> None:
        """Ask the driver to wake the core at the first sample above ``threshold_mmhg`` or below ``below_mmhg``.

        This is the ADC's analogue watchdog (a window): it lets the core sleep through steady infusion and
        still see a pressure rise (downstream occlusion) or a vacuum (upstream occlusion) at once. It is
        one-shot: after it fires it stays off until armed again. ``None`` disarms that side.
        """
        ...


@dataclass(frozen=True, slots=True)
class AirBubble:
    """One bubble seen by the ultrasonic air-in-line detector, with its estimated volume."""

    at: Instant
    volume: Volume


@dataclass(frozen=True, slots=True)
class AirBatch:
    """Bubbles detected since the last read, oldest first, and the detector's health."""

    bubbles: tuple[AirBubble, ...]
    health: SensorHealth = SensorHealth.OK


class AirDetector(Protocol):
    """Ultrasonic air-in-line detector below the pumping mechanism. A bubble wakes the core."""

    def read(self) -> AirBatch: ...

    def self_test(self) -> bool:
        """Inject the detector's test signal; True if it was seen (detector alive)."""
        ...

    def simulate_air(self) -> bool:
        """Mute the transmitter for one test burst; True if the receiver then reported air, as it must.

        The dynamic half of the test: :meth:`self_test` shows the receiver hears a signal, this shows it
        reports its absence. A detector stuck at "liquid" (it sees no bubble, yet passes :meth:`self_test`)
        fails it. The driver masks the burst: it is never reported as a bubble.
        """
        ...


@dataclass(frozen=True, slots=True)
class LoadState:
    """Door / administration-set state. For a syringe pump, ``set_loaded`` means syringe clamped."""

    door_closed: bool
    set_loaded: bool


class DoorSwitch(Protocol):
    """Door switch and set-loaded (or syringe-clamp) sensor. A change wakes the core."""

    def state(self) -> LoadState: ...


@dataclass(frozen=True, slots=True)
class PowerStatus:
    """Power supply and battery fuel gauge.

    ``charge_permille`` is the fuel gauge's state of charge (0..1000). ``remaining`` is the gauge's
    estimate of run time at the present load. ``cell_fault`` is the gauge's own cell-fault flag.
    ``supply_mv`` is the supply-rail (battery terminal) voltage in millivolts measured by the pump's own
    ADC, independent of the gauge, and ``brownout_mv`` the rail voltage below which the electronics stop
    (None when the supply has no such monitor): the firmware can see depletion coming from the voltage
    even when the gauge's learned capacity is wrong (open-pca-requirements.md R7.3.0(6)).
    """

    on_mains: bool
    charge_permille: int
    remaining: Duration
    cell_fault: bool = False
    supply_mv: int | None = None
    brownout_mv: int | None = None


class PowerSupply(Protocol):
    """Mains detection and the battery fuel gauge, shared by all channels."""

    def status(self) -> PowerStatus: ...


@dataclass(frozen=True, slots=True)
class FlowReading:
    """What an in-line flow sensor measured from ``start`` to ``end``: the ``volume`` that passed it
    (nanolitres, signed: negative is backflow)."""

    start: Instant
    end: Instant
    volume: Volume
    health: SensorHealth = SensorHealth.OK


class FlowSensor(Protocol):
    """An optional in-line flow sensor below the pumping mechanism (the Open PCA pump's flow-rate checker,
    open-pca-requirements.md §10.8.3). It measures what went to the patient, independently of the motor."""

    def read(self) -> FlowReading:
        """The volume that passed since the previous read (the first read covers the time since power-on)."""
        ...


class TemperatureSensor(Protocol):
    """An optional temperature sensor in the pump housing, by the mechanism."""

    def read_millicelsius(self) -> int:
        """The present temperature in thousandths of a degree Celsius."""
        ...


class Clock(Protocol):
    """The pump's monotonic clock."""

    def now(self) -> Instant: ...


class Annunciator(Protocol):
    """Loudspeaker and alarm lights (IEC 60601-1-8 signals), shared by all channels."""

    def signal(self, priority: str | None, audible: bool) -> None:
        """Show the signal of ``priority`` ("high", "medium", "low"; None = none); sound it if audible."""
        ...

    def self_test(self) -> bool:
        """Play the test tone and check it through the feedback microphone; True if heard."""
        ...


class Watchdog(Protocol):
    """Hardware watchdog: if not kicked within its window, it cuts motor power and alarms."""

    def kick(self, now: Instant) -> None: ...

    def bitten(self) -> bool:
        """True once the watchdog has expired (latched until power-off; motor power is already cut).

        On real hardware this is the reset-cause register read after the watchdog reset.
        """
        ...

    @property
    def window(self) -> Duration:
        """The longest allowed gap between kicks."""
        ...


class Storage(Protocol):
    """Non-volatile storage of configuration and the drug library (read at power-on)."""

    def read_config(self) -> bytes: ...

    def config_digest(self) -> bytes:
        """The SHA-256 digest recorded when the configuration was written."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelHardware:
    """The devices of one pumping channel; ``flow`` and ``temperature`` are optional (None: not fitted)."""

    motor: Motor
    encoder: Encoder
    upstream: PressureSensor
    downstream: PressureSensor
    air: AirDetector
    door: DoorSwitch
    latch: SafetyLatch
    flow: FlowSensor | None = None
    temperature: TemperatureSensor | None = None


@dataclass(frozen=True, slots=True)
class PumpHardware:
    """Devices shared by the whole pump, and its 1 to 4 channels."""

    clock: Clock
    power: PowerSupply
    annunciator: Annunciator
    watchdog: Watchdog
    storage: Storage
    channels: tuple[ChannelHardware, ...]
