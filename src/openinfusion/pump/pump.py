"""The pump: 1 to 4 channels sharing power, clock, alarms, the safety monitor and the event log.

Theory of operation
-------------------
A driver (real hardware or :mod:`openinfusion.sim`) calls :meth:`Pump.power_on` once and then
:meth:`Pump.service` whenever the previous call's returned instant arrives or a device interrupt
fires (an armed pressure threshold, a bubble, the door, mains). Clinician actions are methods
(:meth:`start`, :meth:`titrate`, ...): each first services the pump at the present instant, then
fires the channel event, then drives the motors again, so an action never acts on stale state.
A refused action is logged and raised as :class:`~openinfusion.errors.TransitionRefusedError`.

Pump-wide duties of :meth:`service`, in order: watchdog gap check (OI-POST-2), power and battery
alarms (OI-ALM-8), each channel's service, the independent safety monitor (OI-SAFE-1/2), time-driven
alarm changes (audio pause end, escalation), the annunciator, and the watchdog kick.

Until the power-on self-test passes, every channel action is refused; a failed self-test leaves
every channel in FAILSAFE with a SELF_TEST_FAILED alarm naming the failed items (OI-POST-1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from openinfusion.errors import ConfigError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode, AlarmEvent, AlarmManager
from openinfusion.pump.channel import Channel, ChannelSettings
from openinfusion.pump.eventlog import EventKind, EventLog, LibraryIdentity
from openinfusion.pump.hal import PumpHardware
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.programs import Bolus, Program, SecondaryProgram, Titration
from openinfusion.pump.safety import SafetyMonitor, Tolerances
from openinfusion.pump.selftest import PowerOnSelfTest, watchdog_missed
from openinfusion.pump.statechart import ChannelEvent, ChannelState
from openinfusion.units import Duration, Instant

MAX_CHANNELS: Final = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpConfig:
    """Pump-wide configuration.

    Battery: BATTERY_LOW when the fuel gauge's remaining time at present load falls to
    ``battery_low``; delivery stops (BATTERY_DEPLETED) at ``battery_stop``. IEC 60601-2-24 asks for an
    alarm at least 3 min before delivery ceases, and the usual reading is a first alarm >= 30 min
    before (standards-and-safety.md §2.3); with the defaults the low alarm comes 37 min before.
    """

    pump_id: str = "openinfusion-sim-1"
    channels: tuple[ChannelSettings, ...]
    battery_low: Duration = Duration.min(40)
    battery_stop: Duration = Duration.min(3)
    tolerances: Tolerances = Tolerances()

    def __post_init__(self) -> None:
        if not 1 <= len(self.channels) <= MAX_CHANNELS:
            raise ConfigError("pump.channels", f"a pump has 1 to {MAX_CHANNELS} channels, got {len(self.channels)}")
        if self.battery_stop >= self.battery_low:
            raise ConfigError("pump.battery_low", "must be longer than battery_stop")


class Phase(Enum):
    """Where the pump is in its power-on sequence."""

    OFF = "off"
    SELF_TEST = "self_test"
    RUNNING = "running"
    OUT_OF_SERVICE = "out_of_service"


class Pump:
    """The firmware core of one pump. Pure: time and devices come only through ``hw``."""

    def __init__(
        self,
        hw: PumpHardware,
        calibrations: tuple[MechanismCalibration, ...],
        config: PumpConfig,
        library: LibraryIdentity | None = None,
        library_check: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        if not (len(hw.channels) == len(calibrations) == len(config.channels)):
            raise ConfigError("pump.channels", "hardware, calibrations and settings must list the same channels")
        self.hw = hw
        self.config = config
        self.cal = calibrations
        now = hw.clock.now()
        self.log = EventLog(pump_id=config.pump_id, library=library)
        self.alarms = AlarmManager(len(hw.channels), now)
        self.monitor = SafetyMonitor(hw.channels, calibrations, config.tolerances)
        self.channels = tuple(
            Channel(
                index=i,
                hw=ch,
                calibration=calibrations[i],
                settings=config.channels[i],
                alarms=self.alarms,
                log=self.log,
                monitor=self.monitor,
                now=now,
            )
            for i, ch in enumerate(hw.channels)
        )
        self.phase = Phase.OFF
        self._library_check = library_check or (lambda: (True, "no library installed"))
        self._post: PowerOnSelfTest | None = None
        self._post_due: Instant | None = None
        self._last_service = now

    # --- power-on ---------------------------------------------------------------------------------

    def power_on(self) -> Instant:
        """Start the power-on self-test; returns when the pump next needs service."""
        now = self.hw.clock.now()
        self.phase = Phase.SELF_TEST
        self._post = PowerOnSelfTest(self.hw, self.cal)
        ok, detail = self._library_check()
        self._post_due = self._post.begin(now, ok, detail)
        self._last_service = now
        self.hw.watchdog.kick(now)
        return self._post_due

    def _finish_post(self, now: Instant) -> None:
        assert self._post is not None
        report = self._post.finish(now)
        self._post = self._post_due = None
        for item in report.items:
            self.log.append(now, EventKind.SELF_TEST, None, item=item.name, passed=item.passed, detail=item.detail)
        if report.passed:
            self.phase = Phase.RUNNING
            return
        self.phase = Phase.OUT_OF_SERVICE
        failed = "; ".join(f"{i.name}: {i.detail}" if i.detail else i.name for i in report.failures)
        self._record(self.alarms.activate(AlarmCode.SELF_TEST_FAILED, None, now, failed))

    # --- the service loop -------------------------------------------------------------------------

    def service(self) -> Instant:
        """Bring the whole pump up to the clock's present; returns when it next needs service."""
        now = self.hw.clock.now()
        if self.phase is Phase.OFF:
            return self.power_on()
        window = self.hw.watchdog.window
        gap = now.since(self._last_service)
        missed = watchdog_missed(self._last_service, now, window)
        if missed or self.hw.watchdog.bitten():
            detail = f"no service for {gap}" if missed else "hardware watchdog expired"
            self.log.append(now, EventKind.WATCHDOG, None, gap_us=gap.us, window_us=window.us, detail=detail)
            self._record(self.alarms.activate(AlarmCode.WATCHDOG_FAULT, None, now, detail))
        self._last_service = now
        if self._post_due is not None:
            if now < self._post_due:  # the self-test's motor move is running: leave the channels alone
                self.hw.watchdog.kick(now)
                return self._post_due
            self._finish_post(now)
        self._power(now)
        due = [now + Duration(window.us // 2)]
        for ch in self.channels:
            due.append(self._guarded(ch, now))
        for verdict in self.monitor.update(now):
            ch = self.channels[verdict.channel]
            detail = f"{verdict.check.id}: {verdict.detail}"
            self._record(self.alarms.activate(AlarmCode[verdict.check.alarm], verdict.channel, now, detail))
            ch.service(now)
        if self.phase is Phase.OUT_OF_SERVICE:
            for ch in self.channels:
                if ch.state is not ChannelState.FAILSAFE:
                    ch.fire(ChannelEvent.FAULT, now)
        self._record(self.alarms.advance(now))
        ann = self.alarms.annunciation(now)
        self.hw.annunciator.signal(ann.signal, ann.audible)
        self.hw.watchdog.kick(now)
        attention = self.alarms.next_attention(now)
        if attention is not None:
            due.append(attention)
        if self._post_due is not None:
            due.append(self._post_due)
        return min(due)

    def _guarded(self, ch: Channel, now: Instant) -> Instant:
        """Service ``ch``; a failure inside the core or a device driver is a SYSTEM_FAULT (failsafe),
        never an exception that leaves the motor running."""
        try:
            return ch.service(now)
        except Exception as e:
            ch.hw.motor.stop()
            detail = f"channel {ch.index + 1}: {type(e).__name__}: {e}"
            self._record(self.alarms.activate(AlarmCode.SYSTEM_FAULT, None, now, detail[:200]))
            if ch.state is not ChannelState.FAILSAFE:
                try:
                    ch.fire(ChannelEvent.FAULT, now)
                except Exception:
                    ch.state = ChannelState.FAILSAFE
            return now + Duration(self.hw.watchdog.window.us // 2)

    def _power(self, now: Instant) -> None:
        status = self.hw.power.status()
        on_battery = not status.on_mains
        self._condition(AlarmCode.ON_BATTERY, now, on_battery, f"battery {status.charge_permille / 10:.0f} %")
        low = on_battery and status.remaining <= self.config.battery_low
        self._condition(AlarmCode.BATTERY_LOW, now, low, f"{status.remaining} of battery left")
        empty = on_battery and (status.remaining <= self.config.battery_stop or status.charge_permille <= 0)
        failed = status.cell_fault and on_battery
        detail = "battery cell fault" if failed else f"{status.remaining} of battery left"
        self._condition(AlarmCode.BATTERY_DEPLETED, now, empty or failed, detail)

    def _condition(self, code: AlarmCode, now: Instant, present: bool, detail: str) -> None:
        if present:
            self._record(self.alarms.activate(code, None, now, detail))
        else:
            self._record(self.alarms.condition_cleared(code, None, now))

    def _record(self, events: list[AlarmEvent] | tuple[AlarmEvent, ...]) -> None:
        for e in events:
            self.log.append(e.t, e.log_kind, e.channel, **e.log_data())

    # --- clinician actions ------------------------------------------------------------------------

    def _act(self, channel: int, event: ChannelEvent, payload: Program | Titration | Bolus | None = None) -> None:
        if not 0 <= channel < len(self.channels):
            raise ConfigError("channel", f"this pump has channels 1..{len(self.channels)}, not {channel + 1}")
        self.service()
        now = self.hw.clock.now()
        ch = self.channels[channel]
        if self.phase is not Phase.RUNNING:
            reason = f"pump is {self.phase.value.replace('_', ' ')}"
            self.log.append(now, EventKind.EVENT_REFUSED, channel, event=event.value, reason=reason)
            raise TransitionRefusedError(ch.state.value, event.value, reason)
        ch.fire(event, now, payload)
        ch.service(now)

    def program(self, channel: int, program: Program) -> None:
        """Enter ``program`` on ``channel`` (begins programming if needed); the channel becomes READY."""
        ch = self.channels[channel] if 0 <= channel < len(self.channels) else None
        if ch is not None and ch.state is not ChannelState.PROGRAMMING:
            self._act(channel, ChannelEvent.BEGIN_PROGRAMMING)
        self._act(channel, ChannelEvent.ENTER_PROGRAM, program)

    def begin_programming(self, channel: int) -> None:
        self._act(channel, ChannelEvent.BEGIN_PROGRAMMING)

    def start(self, channel: int) -> None:
        self._act(channel, ChannelEvent.START)

    def pause(self, channel: int) -> None:
        self._act(channel, ChannelEvent.PAUSE)

    def resume(self, channel: int) -> None:
        self._act(channel, ChannelEvent.RESUME)

    def clear(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CLEAR)

    def titrate(self, channel: int, change: Titration) -> None:
        """Enter a new rate or dose; it takes effect only on :meth:`confirm_titration` (OI-PROG-9)."""
        self._act(channel, ChannelEvent.TITRATE, change)

    def confirm_titration(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CONFIRM_TITRATION)

    def cancel_titration(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CANCEL_TITRATION)

    def bolus(self, channel: int, bolus: Bolus) -> None:
        self._act(channel, ChannelEvent.BOLUS, bolus)

    def secondary(self, channel: int, program: SecondaryProgram) -> None:
        self._act(channel, ChannelEvent.SECONDARY, program)

    def pca_demand(self, channel: int) -> None:
        """The patient pressed the demand button; given or denied, it is logged (OI-PCA-1)."""
        self._act(channel, ChannelEvent.PCA_DEMAND)

    def audio_pause(self) -> None:
        """Silence alarm signals for 2 minutes (re-announced if the conditions persist)."""
        self.service()
        self._record(self.alarms.audio_pause(self.hw.clock.now()))

    def reset_alarm(self, channel: int | None, code: AlarmCode) -> bool:
        """Operator reset of a latched alarm; False (and logged) if refused."""
        self.service()
        now = self.hw.clock.now()
        result = self.alarms.reset(code, channel, now)
        self._record(result.events)  # a refusal is among them, with its reason
        self.service()
        return result.accepted
