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

One guarded entry (OI-SAFE-9): every public method (service, power-on, each clinician action, library
receive) runs inside :func:`_entry`. An error a user can cause (:class:`~openinfusion.errors.InputError`,
:class:`~openinfusion.errors.TransitionRefusedError`) reaches the caller unchanged and fails nothing.
Any other exception is a defect or a failed device: every motor is latched off through its safety latch
(a path that cannot raise), a SYSTEM_FAULT alarm names the entry and the exception, and every channel goes
to FAILSAFE through the FAULT row of its table; an action then raises
:class:`~openinfusion.errors.CoreFaultError`, ``service`` returns its next due time.

The safety monitor runs on its own cadence: while the pump runs, :meth:`Pump.service` returns no later
than the monitor's next check (at most 1 s ahead), whatever the channels need (OI-SAFE-7).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Concatenate, Final, ParamSpec, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.druglib.package import LibraryIdentity as DrugLibraryIdentity
from openinfusion.errors import (
    ConfigError,
    CoreFaultError,
    DoseLimitError,
    InputError,
    InvariantError,
    ProgramError,
    TransitionRefusedError,
)
from openinfusion.pump.alarms import AlarmCode, AlarmEvent, AlarmManager
from openinfusion.pump.channel import Channel, ChannelSettings, describe, selection_json
from openinfusion.pump.ders import LibraryEvent, LibraryEventKind, LibrarySlot, StoredLibraries, Verdict
from openinfusion.pump.dosing import Patient
from openinfusion.pump.eventlog import EventKind, EventLog, JsonValue, LibraryIdentity, encode_quantity
from openinfusion.pump.hal import PumpHardware
from openinfusion.pump.library import LibrarySelection, bolus_request, check_context, request_for
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.programs import Bolus, Program, SecondaryProgram, Titration
from openinfusion.pump.safety import SafetyMonitor, Tolerances
from openinfusion.pump.safety import Verdict as MonitorVerdict
from openinfusion.pump.selftest import PowerOnSelfTest, watchdog_missed
from openinfusion.pump.sensing.occlusion import Sensitivity
from openinfusion.pump.statechart import ChannelEvent, ChannelState
from openinfusion.units import Duration, Instant, Volume

MAX_CHANNELS: Final = 4
#: Errors a user can cause: they reach the caller unchanged and fail nothing safe.
EXPECTED_ERRORS: Final = (InputError, TransitionRefusedError)

P = ParamSpec("P")
R = TypeVar("R")


def _entry(
    *, fails_to_due: bool = False
) -> Callable[[Callable[Concatenate[Pump, P], R]], Callable[Concatenate[Pump, P], R]]:
    """The one guard around every public entry of the core (OI-SAFE-9); see the module docstring.

    ``fails_to_due``: after failing safe, return the next due time (``service``, ``power_on``) instead of
    raising :class:`CoreFaultError`. Nested entries (an action services the pump first) pass through to
    the outermost guard.
    """

    def wrap(method: Callable[Concatenate[Pump, P], R]) -> Callable[Concatenate[Pump, P], R]:
        @functools.wraps(method)
        def guarded(self: Pump, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if self._depth:
                return method(self, *args, **kwargs)
            self._depth += 1
            try:
                return method(self, *args, **kwargs)
            except EXPECTED_ERRORS:
                raise
            except Exception as error:
                due = self._fail_safe(method.__name__, error)
                if fails_to_due:
                    return due  # type: ignore[return-value]  # only on methods returning Instant
                raise CoreFaultError(method.__name__, f"{type(error).__name__}: {error}") from error
            finally:
                self._depth -= 1

        return guarded

    return wrap


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpConfig:
    """Pump-wide configuration.

    Battery: BATTERY_LOW when the fuel gauge's remaining time at present load falls to
    ``battery_low``; delivery stops (BATTERY_DEPLETED) at ``battery_stop``. IEC 60601-2-24 asks for an
    alarm at least 3 min before delivery ceases, and the usual reading is a first alarm >= 30 min
    before (standards-and-safety.md §2.3); with the defaults the low alarm comes 37 min before.
    The gauge's learned capacity can be wrong by several per cent (tens of minutes), so the supply rail
    is watched too, independently of the gauge: BATTERY_LOW at ``battery_low_mv`` and BATTERY_DEPLETED
    at ``battery_stop_mv`` (defaults for the 2-cell Li-ion pack: 3.55 V per cell, about 15 % of charge,
    and 3.15 V per cell, just above the 3.0 V cut-off; open-pca-requirements.md R7.3.0(4), R7.3.0(6)).
    """

    pump_id: str = "openinfusion-sim-1"
    channels: tuple[ChannelSettings, ...]
    care_area: str | None = None  # the library care area (profile) the pump is set to
    time_origin: str | None = None  # ISO 8601 wall-clock time of pump time 0, for EHR documentation
    battery_low: Duration = Duration.min(40)
    battery_stop: Duration = Duration.min(3)
    battery_low_mv: int = 7100
    battery_stop_mv: int = 6300
    tolerances: Tolerances = Tolerances()

    def __post_init__(self) -> None:
        if not 1 <= len(self.channels) <= MAX_CHANNELS:
            raise ConfigError("pump.channels", f"a pump has 1 to {MAX_CHANNELS} channels, got {len(self.channels)}")
        if self.battery_stop >= self.battery_low:
            raise ConfigError("pump.battery_low", "must be longer than battery_stop")
        if not 0 < self.battery_stop_mv < self.battery_low_mv:
            raise ConfigError("pump.battery_low_mv", "need 0 < battery_stop_mv < battery_low_mv")


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
        trusted_keys: Sequence[Ed25519PublicKey] = (),
        library_package: bytes | StoredLibraries | None = None,
        *,
        log: EventLog | None = None,
        monitor_calibrations: tuple[MechanismCalibration, ...] | None = None,
    ) -> None:
        """``calibrations`` are the controller's; ``monitor_calibrations`` the safety monitor's own copy (read
        from its own storage on a real pump; by default a copy of the controller's), checked equal at POST.
        ``log`` is the event log kept in non-volatile memory by an earlier boot (a new one if None)."""
        if not (len(hw.channels) == len(calibrations) == len(config.channels)):
            raise ConfigError("pump.channels", "hardware, calibrations and settings must list the same channels")
        self.hw = hw
        self.config = config
        self.cal = calibrations
        now = hw.clock.now()
        self.trusted_keys = tuple(trusted_keys)
        # the libraries stored on the pump (OI-LIB-PKG-4), verified again as they load; bytes: an active package alone
        stored = library_package if isinstance(library_package, StoredLibraries) else StoredLibraries(library_package)
        self.library, self._stored_events = LibrarySlot.power_on(stored, self.trusted_keys, config.care_area)
        active = self.library.active
        identity = None if active is None else _log_identity(active.identity)
        self.log = log if log is not None else EventLog(config.pump_id, config.time_origin, identity)
        self.alarms = AlarmManager(len(hw.channels), now)
        own = monitor_calibrations if monitor_calibrations is not None else tuple(replace(c) for c in calibrations)
        self.monitor = SafetyMonitor(hw.channels, own, config.tolerances)
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
        self._apply_care_area()  # settings come from the stored library's care area from power-on
        self._post: PowerOnSelfTest | None = None
        self._post_due: Instant | None = None
        self._last_service = now
        self._due = [now for _ in self.channels]  # when each channel next needs its own service
        self._on_battery_logged = False  # the supply last logged was the battery
        self._battery_warned = self._battery_empty = False  # latched on battery until mains returns
        self._depth = 0  # nesting of guarded entries (an action services the pump first)
        self.next_full_due = now  # the next service the channels, alarms or watchdog need (not the monitor's)

    # --- power ------------------------------------------------------------------------------------

    @_entry(fails_to_due=True)
    def power_on(self) -> Instant:
        """Start the power-on self-test; returns when the pump next needs service.

        Logs the boot (``power_changed``, state on) and the stored drug library it loaded or refused.
        """
        now = self.hw.clock.now()
        status = self.hw.power.status()
        self.log.append(
            now, EventKind.POWER_CHANGED, None, state="on", on_mains=status.on_mains,
            charge_permille=status.charge_permille,
        )  # fmt: skip
        self.phase = Phase.SELF_TEST
        self._post = PowerOnSelfTest(self.hw, self.cal, self.monitor.calibrations)
        ok, detail = self._library_integrity()
        self._post_due = self._post.begin(now, ok, detail)
        self._last_service = now
        self.hw.watchdog.kick(now)
        return self._post_due

    @_entry()
    def power_fail(self, *, key: bool) -> None:
        """The supply is going: stop every motor and record why (the supply supervisor's early-warning interrupt,
        run on hold-up energy). ``key`` is True for an orderly switch-off with the power key.

        Without the key on battery, BATTERY_DEPLETED is raised and logged so the record says why delivery
        stopped (the power-fail buzzer sounds it); the firmware runs no more until the next boot.
        """
        now = self.hw.clock.now()
        for ch in self.channels:
            ch.hw.motor.stop()
        status = self.hw.power.status()
        if key:
            cause = "power key"
        elif status.cell_fault:
            cause = "battery cell fault"
        elif status.on_mains:
            cause = "power supply failure"
        else:
            cause = "battery exhausted" + ("" if status.supply_mv is None else f" (supply {status.supply_mv} mV)")
        data: dict[str, JsonValue] = {"state": "off", "cause": cause, "on_mains": status.on_mains}
        if not key and not status.on_mains:
            self._record(self.alarms.activate(AlarmCode.BATTERY_DEPLETED, None, now, cause))
        self.log.append(now, EventKind.POWER_CHANGED, None, **data, channels=self._statuses())
        self.phase = Phase.OFF

    def _library_integrity(self) -> tuple[bool, str]:
        """The POST item for the stored drug library: verified (or absent), the last known good one in its place
        (logged, with a LIBRARY_FALLBACK alarm; OI-LIB-PKG-4), or why it was refused."""
        now = self.hw.clock.now()
        for event in self._stored_events:
            self._log_library(now, event)
        kinds = {e.kind for e in self._stored_events}
        if LibraryEventKind.FALLBACK in kinds:
            detail = "; ".join(e.reason for e in self._stored_events)
            self._record(self.alarms.activate(AlarmCode.LIBRARY_FALLBACK, None, now, detail[:200]))
            return True, f"last known good library {self.library_identity}"
        if self.library.active is not None:  # a refused last known good copy alone is logged, not a failure
            return True, str(self.library_identity)
        if LibraryEventKind.REJECTED in kinds:
            return False, next(e.reason for e in self._stored_events if e.kind is LibraryEventKind.REJECTED)
        return True, "no library stored"

    def _finish_post(self, now: Instant) -> None:
        if self._post is None:
            raise InvariantError("the self-test finishes only after it began")
        report = self._post.finish(now)
        self._post = self._post_due = None
        for item in report.items:
            self.log.append(now, EventKind.SELF_TEST, None, item=item.name, passed=item.passed, detail=item.detail)
        if report.passed:
            self.phase = Phase.RUNNING
            self.monitor.arm(now)
            return
        self.phase = Phase.OUT_OF_SERVICE
        failed = "; ".join(f"{i.name}: {i.detail}" if i.detail else i.name for i in report.failures)
        self._record(self.alarms.activate(AlarmCode.SELF_TEST_FAILED, None, now, failed))

    # --- the service loop -------------------------------------------------------------------------

    @_entry(fails_to_due=True)
    def service(self, interrupted: Collection[int] | None = None) -> Instant:
        """Bring the pump up to the clock's present; returns when it next needs service.

        ``interrupted`` names the channels whose devices raised the interrupt that woke the core: only
        those, and channels whose own time has come, are serviced (cost follows events, per channel).
        ``None`` (a timer, a clinician action, a pump-wide interrupt) services every channel. An empty
        ``interrupted`` before :attr:`next_full_due` is the safety monitor's own tick: only the monitor runs
        (its own sensor handles), and the watchdog is kicked (OI-SAFE-7).
        """
        now = self.hw.clock.now()
        if self.phase is Phase.OFF:
            return self.power_on()
        if interrupted is not None and not interrupted and self._monitor_only(now):
            return self._monitor_tick(now)
        window = self.hw.watchdog.window
        gap = now.since(self._last_service)
        missed = watchdog_missed(self._last_service, now, window)
        already = any(a.code is AlarmCode.WATCHDOG_FAULT for a in self.alarms.active())
        if missed or (self.hw.watchdog.bitten() and not already):
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
        self._activate_library(now)
        due = [now + Duration(window.us // 2)]
        for ch in self.channels:
            i = ch.index
            if interrupted is None or i in interrupted or self._due[i] <= now:
                self._due[i] = ch.service(now)
        due += self._due
        for verdict in self._verdicts(now):  # the monitor has latched the motor; FAILSAFE follows
            self._due[verdict.channel] = self.channels[verdict.channel].service(now)
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
        self.next_full_due = min(due)
        check = self.monitor.next_check(now)
        return self.next_full_due if check is None else min(self.next_full_due, check)

    def _monitor_only(self, now: Instant) -> bool:
        """True when a timer woke the pump for nothing but the safety monitor's own cadence."""
        return (
            now.us < self.next_full_due.us
            and self._post_due is None
            and now.us - self._last_service.us <= self.hw.watchdog.window.us  # not watchdog_missed (OI-POST-2)
        )

    def _monitor_tick(self, now: Instant) -> Instant:
        """The monitor's own check between full services (OI-SAFE-7): it reads only its own encoder and
        pulse-counter handles. A trip has latched the motor already; the channels are then due at once. Each
        pumping channel's air detector is checked too (OI-SAFE-10); a failed one makes its channel due at once."""
        self._last_service = now
        if self._verdicts(now):
            self.next_full_due = now
        for ch in self.channels:
            if ch.check_air():  # a failed air detector (OI-SAFE-10): its channel's service raises the alarm now
                self._due[ch.index] = self.next_full_due = now
        self.hw.watchdog.kick(now)
        check = self.monitor.next_check(now)
        full = self.next_full_due
        return check if check is not None and check.us < full.us else full

    def _verdicts(self, now: Instant) -> tuple[MonitorVerdict, ...]:
        """Run the monitor; raise the alarm of each trip (the channel goes to FAILSAFE at its service)."""
        verdicts = self.monitor.update(now)
        for verdict in verdicts:
            detail = f"{verdict.check.id}: {verdict.detail}"
            self._record(self.alarms.activate(AlarmCode[verdict.check.alarm], verdict.channel, now, detail))
            self._due[verdict.channel] = now
        return verdicts

    def _fail_safe(self, entry: str, error: Exception) -> Instant:
        """An unexpected exception in ``entry``: latch every motor off, alarm, FAILSAFE through the table.

        Every step is independent of the others: the latches first (they cannot raise), then the alarm and
        the FAULT transitions, each of which commits even if one of its actions fails (logged).
        """
        for ch in self.channels:
            with contextlib.suppress(Exception):
                ch.hw.latch.trip()
        now = self._last_service
        with contextlib.suppress(Exception):
            now = max(self.hw.clock.now(), now)
        detail = f"{entry}: {type(error).__name__}: {error}"[:200]
        with contextlib.suppress(Exception):
            self._record(self.alarms.activate(AlarmCode.SYSTEM_FAULT, None, now, detail))
        for ch in self.channels:
            with contextlib.suppress(Exception):  # the state commits before anything that could fail (logging)
                ch.fail_safe(now)
        return now + Duration(self.hw.watchdog.window.us // 2)

    def _power(self, now: Instant) -> None:
        """Battery alarms from the gauge and, independently, from the supply rail (OI-ALM-8, R7.3.0(4)).

        Once raised on battery, BATTERY_LOW and BATTERY_DEPLETED hold until mains returns: a battery whose load
        fell when delivery stopped recovers a little, and that is no reason to clear them.
        """
        status = self.hw.power.status()
        on_battery = not status.on_mains
        if on_battery != self._on_battery_logged:
            self._on_battery_logged = on_battery
            self.log.append(now, EventKind.POWER_CHANGED, None, state="battery" if on_battery else "mains",
                            charge_permille=status.charge_permille)  # fmt: skip
        self._condition(AlarmCode.ON_BATTERY, now, on_battery, f"battery {status.charge_permille / 10:.0f} %")
        volts = status.supply_mv
        by_voltage = on_battery and volts is not None and volts <= self.config.battery_low_mv
        low = on_battery and (status.remaining <= self.config.battery_low or by_voltage or self._battery_warned)
        self._battery_warned = low
        detail = f"{status.remaining} of battery left" + (f", supply {volts} mV" if volts is not None else "")
        self._condition(AlarmCode.BATTERY_LOW, now, low, detail)
        gauge_empty = status.remaining <= self.config.battery_stop or status.charge_permille <= 0
        rail_empty = volts is not None and volts <= self.config.battery_stop_mv
        empty = on_battery and (gauge_empty or rail_empty or self._battery_empty)
        self._battery_empty = empty
        failed = status.cell_fault and on_battery
        detail = "battery cell fault" if failed else detail
        self._condition(AlarmCode.BATTERY_DEPLETED, now, empty or failed, detail)

    def _condition(self, code: AlarmCode, now: Instant, present: bool, detail: str) -> None:
        if present:
            self._record(self.alarms.activate(code, None, now, detail))
        else:
            self._record(self.alarms.condition_cleared(code, None, now))

    def _record(self, events: list[AlarmEvent] | tuple[AlarmEvent, ...]) -> None:
        """Log alarm events; each carries the state and remaining volume of the channels it concerns
        (UMN-GPCA-REQ-80): its own channel's, or every channel's for a pump-wide alarm."""
        for e in events:
            if e.channel is not None:
                self.log.append(e.t, e.log_kind, e.channel, **e.log_data(), **self.channels[e.channel].status())
            else:
                self.log.append(e.t, e.log_kind, None, **e.log_data(), channels=self._statuses())

    def _statuses(self) -> list[JsonValue]:
        """Every channel's status, numbered from 1 as people number them."""
        return [{"channel": ch.index + 1, **ch.status()} for ch in self.channels]

    # --- the drug library ---------------------------------------------------------------------------

    @property
    def library_identity(self) -> DrugLibraryIdentity | None:
        """The active library's owner, name, version and hash (shown on the pump's screen; OI-DERS-5)."""
        return None if self.library.active is None else self.library.active.identity

    @_entry()
    def receive_library(self, package: bytes) -> LibraryEvent:
        """A library package from the server: verified and staged, or refused and logged while the active one stays
        (OI-DERS-2)."""
        self.service()
        now = self.hw.clock.now()
        self.library, event = self.library.receive(package, self.trusted_keys)
        self._log_library(now, event)
        self._activate_library(now)
        return event

    def _activate_library(self, now: Instant) -> None:
        # Only when no channel holds a program (OI-DERS-6): a completed, failed or paused program is still checked
        # against, and its channel's care-area settings cannot change under it.
        busy = any(ch.program is not None or ch.state not in _LIBRARY_FREE for ch in self.channels)
        self.library, event = self.library.activate(infusing=busy)
        if event is not None:
            self._log_library(now, event)
            self._apply_care_area()

    def _apply_care_area(self) -> None:
        """Take the pump's settings from its care area in the active library (centrally managed); the channels
        log the active library's identity with their programs."""
        active, area_id = self.library.active, self.config.care_area
        identity: JsonValue = None if active is None else dict(active.identity.to_json())
        for ch in self.channels:
            ch.library_identity = identity
        area = None if active is None or area_id is None else active.index.care_areas.get(area_id)
        if area is None:
            return
        for ch in self.channels:
            settings = replace(
                ch.settings,
                sensitivity=Sensitivity[area.occlusion.name],
                callback=Duration.of(area.callback),
                air_single=min(Volume.of(area.air_in_line), ch.settings.air_cumulative),
            )
            ch.configure(settings)

    def _log_library(self, now: Instant, event: LibraryEvent) -> None:
        """Log a library transition; a refusal carries the version, hash and key ids refused (OI-LIB-PKG-5)."""
        kind = {
            LibraryEventKind.REJECTED: EventKind.LIBRARY_REJECTED,
            LibraryEventKind.STAGED: EventKind.LIBRARY_STAGED,
            LibraryEventKind.ACTIVATED: EventKind.LIBRARY_ACTIVATED,
            LibraryEventKind.LOADED: EventKind.LIBRARY_LOADED,
            LibraryEventKind.FALLBACK: EventKind.LIBRARY_ACTIVATED,
        }[event.kind]
        identity: JsonValue = None if event.identity is None else dict(event.identity.to_json())
        facts = event.refused
        refused: JsonValue = None
        if facts is not None:
            key_ids: list[JsonValue] = list(facts.key_ids)
            refused = {"version": facts.version, "hash": facts.content_sha256, "key_ids": key_ids}
        self.log.append(now, kind, None, library=identity, reason=event.reason, refused=refused)

    def _gate(self, ch: Channel, now: Instant, request: Request, action: str) -> None:
        """Run the DERS check for ``request`` on ``ch``; log it; raise if it may not proceed (OI-DERS-3/4)."""
        active = self.library.active
        library: JsonValue = None if active is None else dict(active.identity.to_json())
        context: dict[str, JsonValue] = {"action": action, "library": library}
        if request.program is not None:
            context["program"] = describe(request.program)
        if request.selection is None:
            self._basic(ch, now, request, context)
            return
        if active is None:
            raise ProgramError("program.selection", "no drug library is active on this pump")
        try:
            if request.bolus is not None:
                ders = bolus_request(request.selection, request.bolus, ch.patient, ch.active, active.index)
            else:
                if request.program is None:
                    raise InvariantError("a DERS request has a program or a bolus")
                ders = request_for(request.selection, request.program, request.patient or ch.patient, active.index)
            result = active.index.check(ders)
        except ProgramError as e:
            self.log.append(now, EventKind.EVENT_REFUSED, ch.index, event=action, reason=f"{e.where}: {e.why}")
            raise
        decision = active.index.authorize(result, request.override_reason)
        outcome = "proceed" if decision.proceed else ("blocked" if result.verdict is Verdict.HARD else "needs_override")
        after_alert = ch.alerted
        self.log.append(
            now, EventKind.DERS_CHECK, ch.index, **context, **check_context(ders, result),
            outcome=outcome, after_alert=after_alert, why=decision.why,
        )  # fmt: skip
        if not decision.proceed:
            ch.alerted = True
            field = result.findings[0].field.value if result.findings else "program"
            raise DoseLimitError(f"program.{field}", decision.why)
        if decision.override_reason is not None:
            checked = check_context(ders, result)
            self.log.append(
                now, EventKind.DERS_OVERRIDE, ch.index, **context, reason=decision.override_reason,
                selection=checked["selection"], findings=checked["findings"],
            )  # fmt: skip
        ch.alerted = False

    def _basic(self, ch: Channel, now: Instant, request: Request, context: dict[str, JsonValue]) -> None:
        """A program without a library entry: allowed only where the care area allows it, with a reason."""
        active = self.library.active
        if active is not None:
            area = self.config.care_area
            if area is None or area not in active.index.basic_areas:
                raise DoseLimitError("program.selection", f"basic infusions are disabled in care area {area!r}")
            if not request.basic_reason or not request.basic_reason.strip():
                raise ProgramError("program.basic_reason", "a basic (no-library) infusion needs a reason")
        area = self.config.care_area
        self.log.append(now, EventKind.BASIC_INFUSION, ch.index, **context, area=area, reason=request.basic_reason)

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

    @_entry()
    def program(
        self,
        channel: int,
        program: Program,
        *,
        selection: LibrarySelection | None = None,
        patient: Patient | None = None,
        override_reason: str | None = None,
        basic_reason: str | None = None,
        order: str | None = None,
    ) -> None:
        """Enter ``program`` on ``channel``; the channel becomes READY.

        With a library ``selection`` the DERS check runs first: a hard limit blocks, a soft limit needs
        ``override_reason`` from the library's list (:class:`DoseLimitError` otherwise). Without one it is a
        basic infusion: allowed only where the care area allows it, with ``basic_reason``. ``order`` is the
        remote order (auto-programming) the program carries into its PROGRAM_CONFIRMED event.
        """
        ch = self._channel(channel)
        self._ensure_programming(channel)
        self.log.append(
            self.hw.clock.now(), EventKind.PROGRAM_ENTERED, ch.index, program=describe(program),
            selection=None if selection is None else selection_json(selection),
        )  # fmt: skip
        self._gate(
            ch, self.hw.clock.now(),
            Request(program, selection, patient, override_reason, basic_reason), "program",
        )  # fmt: skip
        now = self.hw.clock.now()
        if patient is not None and patient != ch.patient:
            weight = None if patient.weight is None else encode_quantity(patient.weight)
            bsa = None if patient.bsa is None else encode_quantity(patient.bsa)
            known = {} if patient.id is None else {"patient_id": patient.id}  # logs without ids stay as they were
            self.log.append(now, EventKind.PATIENT_CHANGED, ch.index, weight=weight, bsa=bsa, **known)
        previous = ch.selection, ch.patient, ch.order
        ch.selection, ch.patient, ch.order = selection, patient, order  # logged when the program is confirmed
        try:
            self._act(channel, ChannelEvent.ENTER_PROGRAM, program)
        except Exception:
            ch.selection, ch.patient, ch.order = previous
            raise

    def _ensure_programming(self, channel: int) -> None:
        if self._channel(channel).state is not ChannelState.PROGRAMMING:
            self._act(channel, ChannelEvent.BEGIN_PROGRAMMING)

    def _channel(self, channel: int) -> Channel:
        if not 0 <= channel < len(self.channels):
            raise ConfigError("channel", f"this pump has channels 1..{len(self.channels)}, not {channel + 1}")
        return self.channels[channel]

    @_entry()
    def begin_programming(self, channel: int) -> None:
        self._act(channel, ChannelEvent.BEGIN_PROGRAMMING)

    @_entry()
    def cancel_programming(self, channel: int) -> None:
        """Abandon the program being entered; after a limit alert this is an averted error (DERS_CANCEL)."""
        ch = self._channel(channel)
        self._act(channel, ChannelEvent.CANCEL_PROGRAMMING)
        if ch.alerted:
            self.log.append(self.hw.clock.now(), EventKind.DERS_CANCEL, channel)
            ch.alerted = False

    @_entry()
    def start(self, channel: int) -> None:
        self._act(channel, ChannelEvent.START)

    @_entry()
    def pause(self, channel: int) -> None:
        self._act(channel, ChannelEvent.PAUSE)

    @_entry()
    def resume(self, channel: int) -> None:
        self._act(channel, ChannelEvent.RESUME)

    @_entry()
    def clear(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CLEAR)

    @_entry()
    def titrate(self, channel: int, change: Titration, *, override_reason: str | None = None) -> None:
        """Enter a new rate or dose; checked against the library, effective only on :meth:`confirm_titration`.

        Until confirmed the old rate keeps running and an unconfirmed change alerts (OI-PROG-9, OI-ALM-10).
        """
        ch = self._channel(channel)
        self.service()
        selection = ch.active_selection  # the secondary's own entry while a secondary runs
        if selection is not None and ch.active is not None:
            new = ch.active.titrated(change)
            self._gate(ch, self.hw.clock.now(), Request(new, selection, None, override_reason, None), "titration")
        self._act(channel, ChannelEvent.TITRATE, change)

    @_entry()
    def confirm_titration(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CONFIRM_TITRATION)

    @_entry()
    def cancel_titration(self, channel: int) -> None:
        self._act(channel, ChannelEvent.CANCEL_TITRATION)

    @_entry()
    def bolus(self, channel: int, bolus: Bolus, *, override_reason: str | None = None) -> None:
        """A clinician bolus from the running infusion, checked against the library's bolus limits.

        Refused while a secondary runs: the bolus would come from the primary container while the secondary's
        plan is running, so neither container's volume would be right.
        """
        ch = self._channel(channel)
        self.service()
        if isinstance(ch.active, SecondaryProgram):
            reason = "no clinician bolus while a secondary infusion runs: wait until the primary resumes"
            self.log.append(self.hw.clock.now(), EventKind.EVENT_REFUSED, ch.index, event="bolus", reason=reason)
            raise TransitionRefusedError(ch.state.value, "bolus", reason)
        if ch.selection is not None:
            request = Request(None, ch.selection, None, override_reason, None, bolus)
            self._gate(ch, self.hw.clock.now(), request, "bolus")
        self._act(channel, ChannelEvent.BOLUS, bolus)

    @_entry()
    def secondary(
        self,
        channel: int,
        program: SecondaryProgram,
        *,
        selection: LibrarySelection | None = None,
        override_reason: str | None = None,
        basic_reason: str | None = None,
    ) -> None:
        """A piggyback infusion (its own drug, checked against its own library entry)."""
        ch = self._channel(channel)
        self.service()
        request = Request(program, selection, ch.patient, override_reason, basic_reason)
        self._gate(ch, self.hw.clock.now(), request, "secondary")
        previous, ch.secondary_selection = ch.secondary_selection, selection  # logged with SECONDARY_STARTED
        try:
            self._act(channel, ChannelEvent.SECONDARY, program)
        except Exception:
            ch.secondary_selection = previous
            raise

    @_entry()
    def pca_demand(self, channel: int) -> None:
        """The patient pressed the demand button; given or denied, it is logged (OI-PCA-1)."""
        self._act(channel, ChannelEvent.PCA_DEMAND)

    @_entry()
    def audio_pause(self) -> None:
        """Silence alarm signals for 2 minutes (re-announced if the conditions persist)."""
        self.service()
        self._record(self.alarms.audio_pause(self.hw.clock.now()))

    @_entry()
    def reset_alarm(self, channel: int | None, code: AlarmCode) -> bool:
        """Operator reset of a latched alarm; False (and logged) if refused."""
        self.service()
        now = self.hw.clock.now()
        result = self.alarms.reset(code, channel, now)
        self._record(result.events)  # a refusal is among them, with its reason
        self.service()
        return result.accepted


@dataclass(frozen=True, slots=True)
class Request:
    """What a DERS gate checks: a program (or a bolus) with its library selection and the clinician's answers."""

    program: Program | None
    selection: LibrarySelection | None
    patient: Patient | None
    override_reason: str | None
    basic_reason: str | None
    bolus: Bolus | None = None


# A new library may activate only when every channel is in one of these states (OI-DERS-6).
_LIBRARY_FREE: Final = frozenset({ChannelState.IDLE, ChannelState.COMPLETE, ChannelState.FAILSAFE})


def _log_identity(identity: DrugLibraryIdentity) -> LibraryIdentity:
    return LibraryIdentity(owner=identity.owner, version=identity.version, hash=identity.hash)
