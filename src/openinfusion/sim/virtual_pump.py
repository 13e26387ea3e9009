"""The whole virtual pump: its HAL devices for the firmware, its physics, and the simulator's controls.

``hardware`` is what the pump core gets (``openinfusion.pump.hal.PumpHardware``); ``calibrations`` are
what its factory measured. The engine alternates: firmware reads devices and commands the motors, then
``advance(to)`` integrates the physics in vectorised blocks on the pressure sample grid and stops early
at the first interrupt the firmware would get (``last_wakes`` says which). Scenario controls
(``channel(i)``, ``set_mains``) and faults (``inject``/``clear``) act between calls and never go
through the HAL. Everything random comes from the generator given at construction, split with
``spawn``: the same configuration and seed give bit-identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from openinfusion.errors import ScenarioError
from openinfusion.pump.hal import PumpHardware
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.sim.arrays import F64, I64
from openinfusion.sim.channel import ChannelSeries, ChannelTruth, VirtualChannel, Wake, WakeReason
from openinfusion.sim.devices import VirtualAnnunciator, VirtualClock, VirtualStorage, VirtualWatchdog
from openinfusion.sim.faults import (
    AnnunciatorFailure,
    BatteryCellFailure,
    ClockJump,
    Fault,
    FaultKind,
    MissedTimerTick,
    StorageCorruption,
)
from openinfusion.sim.motor import SimTime
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.power import Battery, VirtualPowerSupply
from openinfusion.units import Instant

MAX_BLOCK: Final = 1 << 15  # samples integrated at once (55 min at 10 Hz): bounds temporary memory


@dataclass(frozen=True, slots=True)
class Truth:
    """What lab instruments see, per channel and for the power system, at the last integrated sample."""

    at: Instant
    channels: tuple[ChannelTruth, ...]
    battery_permille: float
    battery_voltage_v: float
    on_mains: bool
    powered: bool
    watchdog_expired: bool


@dataclass(frozen=True, slots=True)
class SeriesBlock:
    """Per-sample true series recorded since the last drain: times (s since power-on), per channel, battery."""

    t_s: F64
    channels: tuple[ChannelSeries, ...]
    battery_permille: F64
    battery_voltage_v: F64


class Ticker(Protocol):
    """A driver that wants timer ticks between the physics' interrupts (the safety monitor's cadence)."""

    def tick_due_us(self) -> int:
        """When the next tick is due (us of true time)."""
        ...

    def tick(self) -> bool:
        """Run the tick at the present clock; True if the pump now needs a full service (keep no later physics)."""
        ...


class VirtualPump:
    """A pump of 1 to 4 channels with real physics behind the HAL (see the module docstring)."""

    def __init__(self, config: VirtualPumpConfig, rng: np.random.Generator) -> None:
        self.config = config
        pump_rng, *channel_rngs = rng.spawn(1 + len(config.channels))
        self._time = SimTime()
        self._period_us = config.sample_period.us
        self._pending: list[Wake] = []
        self._channels = tuple(
            VirtualChannel(i, c, r, self._time, config.sample_period, interrupt=self._interrupt)
            for i, (c, r) in enumerate(zip(config.channels, channel_rngs, strict=True))
        )
        for ch in self._channels:
            ch.record = config.record_series
        self.battery = Battery(config.battery, pump_rng)
        self.power = VirtualPowerSupply(self.battery, config.on_mains)
        self.clock = VirtualClock(self._time)
        self.watchdog = VirtualWatchdog(self._time, config.watchdog_window)
        self.annunciator = VirtualAnnunciator(self._time)
        self.storage = VirtualStorage(config.stored_config)
        self.hardware = PumpHardware(
            clock=self.clock,
            power=self.power,
            annunciator=self.annunciator,
            watchdog=self.watchdog,
            storage=self.storage,
            channels=tuple(ch.hardware for ch in self._channels),
        )
        self.calibrations: tuple[MechanismCalibration, ...] = tuple(ch.calibration for ch in self._channels)
        self.powered = True  # the electronics run (switched on, and mains or a battery above cut-off)
        self.switched_on = True  # the power key
        self._was_powered = True
        self.last_wakes: tuple[Wake, ...] = ()
        self._k = 0  # index of the last integrated sample (sample k is at k * sample_period)
        self._voltage_v = float(self.battery.voltage(np.array([self.battery.charge_c]), np.array([0.0]))[0])
        self._faults: dict[tuple[FaultKind, int | None], Fault] = {}
        self._t_series: list[F64] = []
        self._permille_series: list[F64] = []
        self._voltage_series: list[F64] = []

    @property
    def now(self) -> Instant:
        """True simulated time (the firmware's clock may differ under a ClockJump fault)."""
        return Instant(self._time.us)

    def channel(self, i: int) -> VirtualChannel:
        """Scenario controls and physics of channel ``i``."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self._channels):
            raise ScenarioError("channel", f"no channel {i!r}; the pump has {len(self._channels)}")
        return self._channels[i]

    # --- time --------------------------------------------------------------------------------------

    def advance(self, to: Instant, ticker: Ticker | None = None) -> Instant:
        """Integrate the physics up to ``to``; stop early at the first interrupt and return the time reached.

        An interrupt raised by a control since the last call (door, mains, power fault) returns at once
        without moving time. Otherwise samples ``k * period <= to`` are integrated; the hydraulic state is on
        that grid, the motors and clock are exact at the returned time. ``last_wakes`` lists the interrupts.

        ``ticker`` (the driver) gets its ticks on the way, each at its exact time (see :class:`Ticker`): a block
        is simulated tentatively, the ticks due within it run against the motors and encoders (exact at any
        time between commands), and the block is kept up to the first tick that needs a full service (which
        returns with no ``last_wakes``) or the first interrupt.
        """
        if to.us < self._time.us:
            raise ScenarioError("advance.to", f"{to} is before now ({self.now})")
        if self._pending:
            self.last_wakes, self._pending = tuple(self._pending), []
            return self.now
        self.last_wakes = ()
        last_k = to.us // self._period_us
        while self._k < last_k:
            wakes = self._integrate(self._k + 1, min(last_k, self._k + MAX_BLOCK), ticker)
            if wakes is None or wakes:
                self.last_wakes = wakes or ()
                return self.now
        if ticker is not None and self._tick_until(to.us, ticker):
            return self.now
        self._time.us = to.us
        return self.now

    def _tick_until(self, limit_us: int, ticker: Ticker) -> bool:
        """Run the ticks due at or before ``limit_us`` (and before the watchdog would bite); True (clock at that
        tick) if one needs a full service."""
        time = self._time
        while (due := ticker.tick_due_us()) <= limit_us:
            deadline = self.watchdog.deadline_us
            if deadline and due > deadline:
                return False
            time.us = max(time.us, due)
            if ticker.tick():
                return True
        return False

    def _integrate(self, k0: int, k1: int, ticker: Ticker | None = None) -> tuple[Wake, ...] | None:
        """Simulate samples ``k0..k1``; keep them up to the first interrupt (its wakes) or the first tick that
        needs a full service (None), else all of them (no wakes)."""
        t_us = np.arange(k0, k1 + 1, dtype=np.int64) * self._period_us
        candidates: list[tuple[int, Wake]] = []
        for ch in self._channels:
            candidates += [(i, Wake(reason, ch.index)) for i, reason in ch.simulate(k0, t_us)]
        dt_s = self._period_us / 1e6
        current_a = self._load_a(t_us, dt_s)
        on_mains = self.power.on_mains
        charge_c = self.battery.charge_after(current_a, on_mains, dt_s)
        voltage_v = self.battery.voltage(charge_c, np.zeros_like(current_a) if on_mains else current_a)
        if self.powered and not on_mains:
            brownout = np.flatnonzero(voltage_v < self.battery.cutoff_v)
            if brownout.size:
                candidates.append((int(brownout[0]), Wake(WakeReason.POWER)))
        j = min((i for i, _ in candidates), default=t_us.shape[0] - 1)
        stopped = ticker is not None and self._tick_until(int(t_us[j]), ticker)
        if stopped:  # keep the samples up to the tick (the clock stays at the tick)
            j = int(np.searchsorted(t_us, self._time.us, side="right")) - 1
            candidates = []
            if j < 0:  # the tick came before the first sample of the block: keep none of it
                for ch in self._channels:
                    ch.discard()
                return None
        deadline = self.watchdog.deadline_us  # after the ticks: they kick the watchdog
        if deadline is not None and deadline <= t_us[j]:
            candidates.append((int(np.searchsorted(t_us, deadline)), Wake(WakeReason.WATCHDOG)))
            stopped = False
        j = min((i for i, _ in candidates), default=j)
        wakes = tuple(w for i, w in candidates if i == j)
        self._time.us = max(int(t_us[j]), self._time.us)
        self._k = k0 + j
        for ch in self._channels:
            ch.commit(j)
        self.battery.commit(float(charge_c[j]), float(current_a[: j + 1].mean()), (j + 1) * dt_s)
        self._voltage_v = float(voltage_v[j])
        if self.config.record_series:
            self._t_series.append(t_us[: j + 1] / 1e6)
            self._permille_series.append(charge_c[: j + 1] * (1000.0 / self.battery.capacity_c))
            self._voltage_series.append(voltage_v[: j + 1])
        for wake in wakes:
            if wake.reason is WakeReason.WATCHDOG:
                self.watchdog.bite(self._time.us, f"not kicked within {self.watchdog.window}")
            if wake.reason is WakeReason.POWER:
                self.powered = False
        self._update_motor_power()
        return None if stopped else wakes

    def _load_a(self, t_us: I64, dt_s: float) -> F64:
        """System load current (A) over each sample interval: base, running channels, motor steps."""
        p = self.battery.params
        if not self.powered:
            return np.zeros(t_us.shape)
        current = np.full(t_us.shape, p.base_current_ma * 1e-3)
        for ch in self._channels:
            current += (p.channel_current_ma * 1e-3) * ch.motor.energised(t_us)
            current += (p.motor_charge_per_step_uc * 1e-6 / dt_s) * ch.pulses()
        return current

    def _update_motor_power(self) -> None:
        if not self.powered:
            self.watchdog.power_off()
        elif not self._was_powered:
            for ch in self._channels:  # counters are "since power-on" (pump/hal.py)
                ch.motor.power_on()
                ch.encoder.power_on()
        self._was_powered = self.powered
        enabled = self.powered and self.watchdog.expired_at is None
        # The watchdog circuit, and the power-fail buzzer on its hold-up capacitor when the supply dies while the
        # pump is switched on (IEC 60601-2-24's alarm for a failure of the supply), sound without the firmware.
        power_failed = self.switched_on and not self.powered
        self.annunciator.hardware_alarm = self.watchdog.expired_at is not None or power_failed
        for ch in self._channels:
            if not enabled:
                ch.motor.halt()
            ch.motor.enabled = enabled

    # --- controls ----------------------------------------------------------------------------------

    def set_mains(self, on: bool) -> None:
        """Plug in or unplug the pump (an interrupt when it changes)."""
        if bool(on) == self.power.on_mains:
            return
        self.power.on_mains = bool(on)
        self._interrupt(Wake(WakeReason.MAINS))
        if on:
            self.powered = self.switched_on
        self._check_supply()

    def set_power(self, on: bool) -> None:
        """Press the power key: off stops the electronics and the motors; on boots them if there is supply."""
        self.switched_on = bool(on)
        self.powered = self.switched_on
        self._interrupt(Wake(WakeReason.POWER))
        self._check_supply()

    def _check_supply(self) -> None:
        """Brown out at once if the pack cannot hold the supply up without mains."""
        if self.powered and not self.power.on_mains:
            load = np.array([self.battery.load_a])
            volts = float(self.battery.voltage(np.array([self.battery.charge_c]), load)[0])
            if volts < self.battery.cutoff_v:
                self.powered = False
                self._interrupt(Wake(WakeReason.POWER))
        self._update_motor_power()

    def _interrupt(self, wake: Wake) -> None:
        """Latch an interrupt raised by a control; the next ``advance`` returns at once."""
        if wake not in self._pending:
            self._pending.append(wake)

    # --- faults ------------------------------------------------------------------------------------

    @property
    def faults(self) -> dict[tuple[FaultKind, int | None], Fault]:
        """Active faults by (kind, channel)."""
        return dict(self._faults)

    def inject(self, fault: Fault, channel: int | None = None) -> None:
        """Apply ``fault`` now (a channel fault needs ``channel``; a pump fault takes None)."""
        self._check_scope(fault.kind, channel)
        if channel is not None:
            self.channel(channel).inject(fault)
        else:
            self._inject_pump_fault(fault)
        self._faults[(fault.kind, channel)] = fault

    def _inject_pump_fault(self, fault: Fault) -> None:
        match fault:
            case MissedTimerTick():
                self.watchdog.lost_kicks += fault.kicks
            case ClockJump():
                self.clock.offset_us += fault.jump.us
            case BatteryCellFailure():
                self.battery.cell_failure = fault
                if fault.detected_by_gauge:
                    self._interrupt(Wake(WakeReason.POWER))  # the gauge raises its cell-fault flag
                self._check_supply()
            case StorageCorruption():
                self.storage.corrupt(fault)
            case AnnunciatorFailure():
                self.annunciator.failed = True

    def clear(self, kind: FaultKind, channel: int | None = None) -> None:
        """Remove the fault of ``kind``. A clock jump has happened and stays; lost kicks not yet lost are restored."""
        self._check_scope(kind, channel)
        if channel is not None:
            self.channel(channel).clear(kind)
        elif kind is FaultKind.MISSED_TIMER_TICK:
            self.watchdog.lost_kicks = 0
        elif kind is FaultKind.BATTERY_CELL_FAILURE:
            self.battery.cell_failure = None
        elif kind is FaultKind.STORAGE_CORRUPTION:
            self.storage.repair()
        elif kind is FaultKind.ANNUNCIATOR_FAILURE:
            self.annunciator.failed = False
        self._faults.pop((kind, channel), None)

    def _check_scope(self, kind: FaultKind, channel: int | None) -> None:
        if kind.per_channel and channel is None:
            raise ScenarioError("fault.channel", f"{kind.value} hits one channel: give its index")
        if not kind.per_channel and channel is not None:
            raise ScenarioError("fault.channel", f"{kind.value} is pump-wide: channel must be None")
        if channel is not None:
            self.channel(channel)

    # --- instruments -------------------------------------------------------------------------------

    def truth(self) -> Truth:
        """What lab instruments see now (at the last integrated sample)."""
        return Truth(
            at=Instant(self._k * self._period_us),
            channels=tuple(ch.truth() for ch in self._channels),
            battery_permille=1000.0 * self.battery.charge_c / self.battery.capacity_c,
            battery_voltage_v=self._voltage_v,
            on_mains=self.power.on_mains,
            powered=self.powered,
            watchdog_expired=self.watchdog.expired_at is not None,
        )

    def drain_series(self) -> SeriesBlock:
        """The per-sample series recorded since the last drain (empty when ``record_series`` is off)."""

        def cat(parts: list[F64]) -> F64:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

        block = SeriesBlock(
            cat(self._t_series),
            tuple(ChannelSeries.join(ch.series) for ch in self._channels),
            cat(self._permille_series),
            cat(self._voltage_series),
        )
        self._t_series, self._permille_series, self._voltage_series = [], [], []
        for ch in self._channels:
            ch.series = []
        return block
