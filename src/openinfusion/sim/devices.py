"""Pump-wide virtual devices: clock, watchdog, annunciator and non-volatile storage (HAL protocols)."""

from __future__ import annotations

import hashlib
from typing import Final

from openinfusion.errors import ConfigError
from openinfusion.sim.faults import StorageCorruption
from openinfusion.sim.motor import SimTime
from openinfusion.units import Duration, Instant

PRIORITIES: Final = ("high", "medium", "low")
CLOCK_TOLERANCE_US: Final = 1_000  # the watchdog's own oscillator: +-1 ms ...
CLOCK_TOLERANCE_FRACTION: Final = 0.02  # ... plus 2 % of the time since the previous kick


class VirtualClock:
    """The pump's monotonic clock: true time plus any jump a ClockJump fault added."""

    def __init__(self, time: SimTime) -> None:
        self._time = time
        self.offset_us = 0

    def now(self) -> Instant:
        return Instant(self._time.us + self.offset_us)


class VirtualWatchdog:
    """Windowed hardware watchdog on its own oscillator (true time).

    Disarmed until the first kick (the firmware starts it at boot). It bites when no kick arrives within
    ``window`` of the previous one, or when a kick carries a time that disagrees with its own oscillator by
    more than 1 ms + 2 % of the interval (a clock fault). A bite latches: ``expired_at`` and ``cause`` say
    when and why; the pump then cuts motor power and sounds its hardware alarm.
    """

    def __init__(self, time: SimTime, window: Duration) -> None:
        self._time = time
        self._window = window
        self._last_kick_us: int | None = None
        self.lost_kicks = 0
        self.expired_at: Instant | None = None
        self.cause: str | None = None

    def kick(self, now: Instant) -> None:
        if self.expired_at is not None:
            return
        if self.lost_kicks > 0:
            self.lost_kicks -= 1
            return
        true_us = self._time.us
        since = 0 if self._last_kick_us is None else true_us - self._last_kick_us
        if abs(now.us - true_us) > CLOCK_TOLERANCE_US + CLOCK_TOLERANCE_FRACTION * since:
            self.bite(true_us, f"kick at {now} disagrees with the watchdog oscillator ({Instant(true_us)})")
            return
        self._last_kick_us = true_us

    def power_off(self) -> None:
        """The pump lost power: a bite is forgotten and the watchdog is disarmed until the first kick after boot."""
        self._last_kick_us = None
        self.expired_at = None
        self.cause = None

    def bitten(self) -> bool:
        """True once the watchdog has expired (the firmware reads it as the reset cause)."""
        return self.expired_at is not None

    @property
    def window(self) -> Duration:
        return self._window

    @property
    def deadline_us(self) -> int | None:
        """True time at which the watchdog bites unless kicked (None while disarmed or expired)."""
        if self._last_kick_us is None or self.expired_at is not None:
            return None
        return self._last_kick_us + self._window.us

    def bite(self, at_us: int, cause: str) -> None:
        self.expired_at = Instant(at_us)
        self.cause = cause


class VirtualAnnunciator:
    """Loudspeaker and alarm lights. Records every signal request; a failed speaker stays silent."""

    def __init__(self, time: SimTime) -> None:
        self._time = time
        self.requests: list[tuple[Instant, str | None, bool]] = []
        self.priority: str | None = None
        self.audible = False
        self.failed = False
        self.hardware_alarm = False  # sounded by the watchdog circuit, independent of the firmware

    def signal(self, priority: str | None, audible: bool) -> None:
        if priority is not None and priority not in PRIORITIES:
            raise ConfigError("annunciator.priority", f"must be one of {PRIORITIES} or None, got {priority!r}")
        self.requests.append((Instant(self._time.us), priority, audible))
        self.priority, self.audible = priority, audible

    def self_test(self) -> bool:
        return not self.failed

    @property
    def sounding(self) -> bool:
        """True if a tone is actually audible now."""
        return not self.failed and (self.hardware_alarm or (self.audible and self.priority is not None))


class VirtualStorage:
    """Non-volatile configuration bytes and the SHA-256 digest recorded when they were written."""

    def __init__(self, data: bytes) -> None:
        self._written = bytes(data)
        self._data = self._written
        self._digest = hashlib.sha256(self._written).digest()

    def read_config(self) -> bytes:
        return self._data

    def config_digest(self) -> bytes:
        return self._digest

    def corrupt(self, fault: StorageCorruption) -> None:
        """Flip ``fault.xor_mask`` at byte ``fault.offset`` (modulo the size) of the stored bytes."""
        data = bytearray(self._data)
        data[fault.offset % len(data)] ^= fault.xor_mask
        self._data = bytes(data)

    def repair(self) -> None:
        """Restore the bytes as written (a re-flash)."""
        self._data = self._written
