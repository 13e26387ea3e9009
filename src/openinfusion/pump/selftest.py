"""Power-on self-test (POST) and watchdog supervision (OI-POST-1, OI-POST-2).

POST runs in two phases because the core never waits: :meth:`PowerOnSelfTest.begin` performs the
static checks (stored configuration digest, drug library integrity, the controller's calibration against
the safety monitor's own copy by checksum (OI-SAFE-6), battery, audio, air detectors)
and starts a small forward motor move on every channel; :meth:`PowerOnSelfTest.finish`, called once
the move has had time to complete, checks that each encoder followed its motor, reverses the move,
and judges the pressure sensors on the samples taken meanwhile (healthy, within a plausible range,
and not stuck: a live transducer always shows a few LSB of noise). A failed item names the device;
the pump then stays in a safe, alarmed state (all channels FAILSAFE) until it is serviced.

The watchdog rule: the core must service the hardware watchdog at least once per window. A gap
longer than the window (a hung core, a missed timer tick) is itself a failure, detected at the next
service and answered with FAILSAFE naming the watchdog.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import numpy as np

from openinfusion.pump.hal import PressureBatch, PumpHardware, SensorHealth
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.units import Duration, Instant

TEST_STEPS: Final = 8  # forward then back: moves a few nanolitres at most
MOVE_TIME: Final = Duration(200_000)
SETTLE: Final = Duration(500_000)  # finish() is due this long after begin()
PLAUSIBLE_MMHG: Final = (-300.0, 300.0)  # a pump at rest with a primed set: near atmospheric


@dataclass(frozen=True, slots=True)
class PostItem:
    """One self-test item: which device, passed or not, and what was seen."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PostReport:
    """The result of POST: every item, in the order tested."""

    items: tuple[PostItem, ...]

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    @property
    def failures(self) -> tuple[PostItem, ...]:
        return tuple(i for i in self.items if not i.passed)


class PowerOnSelfTest:
    """Two-phase POST over the pump's hardware."""

    def __init__(
        self,
        hw: PumpHardware,
        calibrations: tuple[MechanismCalibration, ...],
        monitor_calibrations: tuple[MechanismCalibration, ...],
    ) -> None:
        self.hw = hw
        self.cal = calibrations
        self.monitor_cal = monitor_calibrations
        self._items: list[PostItem] = []
        self._start: list[int] = []

    def begin(self, now: Instant, library_ok: bool, library_detail: str) -> Instant:
        """Static checks and the motor test move; returns when :meth:`finish` is due."""
        hw = self.hw
        digest_ok = hashlib.sha256(hw.storage.read_config()).digest() == hw.storage.config_digest()
        self._items.append(PostItem("configuration", digest_ok, "" if digest_ok else "stored digest mismatch"))
        self._items.append(PostItem("drug library", library_ok, library_detail))
        for i, (mine, theirs) in enumerate(zip(self.cal, self.monitor_cal, strict=True)):
            a, b = mine.checksum(), theirs.checksum()
            detail = f"checksum {a[:12]}" if a == b else f"controller {a[:12]} != monitor {b[:12]}"
            self._items.append(PostItem(f"channel {i + 1} calibration", a == b, detail))
        power = hw.power.status()
        battery_ok = not power.cell_fault and (power.on_mains or power.charge_permille > 0)
        self._items.append(
            PostItem("battery", battery_ok, f"charge {power.charge_permille / 10:.1f} %, cell fault {power.cell_fault}")
        )
        audio = hw.annunciator.self_test()
        self._items.append(PostItem("audio", audio, "" if audio else "test tone not heard"))
        for i, ch in enumerate(hw.channels):
            air = ch.air.self_test() and ch.air.read().health is SensorHealth.OK
            self._items.append(PostItem(f"channel {i + 1} air detector", air, "" if air else "no test echo"))
            ch.upstream.read()  # discard samples from before the test
            ch.downstream.read()
            self._start.append(ch.encoder.counts())
            ch.motor.move(TEST_STEPS, MOVE_TIME)
        return now + SETTLE

    def finish(self, now: Instant) -> PostReport:
        """Judge motor/encoder and pressure sensors, reverse the test move, and report."""
        for i, ch in enumerate(self.hw.channels):
            moved = ch.encoder.counts() - self._start[i]
            want = TEST_STEPS * self.cal[i].counts_per_step
            ok = ch.encoder.health() is SensorHealth.OK and abs(moved - want) <= self.cal[i].counts_per_step
            self._items.append(PostItem(f"channel {i + 1} motor/encoder", ok, f"encoder moved {moved}/{want} counts"))
            ch.motor.move(-TEST_STEPS, MOVE_TIME)
            for side, sensor in (("upstream", ch.upstream), ("downstream", ch.downstream)):
                self._items.append(_judge_pressure(f"channel {i + 1} {side} pressure", sensor.read()))
        return PostReport(tuple(self._items))


def _judge_pressure(name: str, batch: PressureBatch) -> PostItem:
    s = batch.samples_mmhg
    if batch.health is not SensorHealth.OK:
        return PostItem(name, False, "sensor reports a fault")
    if s.shape[0] < 3:
        return PostItem(name, False, f"only {s.shape[0]} samples in {SETTLE}")
    lo, hi = float(np.min(s)), float(np.max(s))
    if lo < PLAUSIBLE_MMHG[0] or hi > PLAUSIBLE_MMHG[1]:
        return PostItem(name, False, f"reading {lo:.0f}..{hi:.0f} mmHg at rest")
    if lo == hi:
        return PostItem(name, False, f"stuck at {lo:.1f} mmHg")
    return PostItem(name, True, f"{lo:.1f}..{hi:.1f} mmHg")


def watchdog_missed(last_service: Instant, now: Instant, window: Duration) -> bool:
    """True if the gap between two services exceeded the watchdog window (OI-POST-2)."""
    return now.since(last_service) > window
