"""Each injectable fault does what it says, through the sim-only interface, and clears."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from simkit import IDEAL_SENSOR, drive, lvp, make_pump, wait

from openinfusion.errors import ConfigError, ScenarioError
from openinfusion.pump.hal import SensorHealth
from openinfusion.sim import WakeReason
from openinfusion.sim.faults import (
    AirDetectorFailure,
    AnnunciatorFailure,
    ClockJump,
    DriftingPressureSensor,
    EncoderSlip,
    FaultKind,
    MissedTimerTick,
    MotorStall,
    StorageCorruption,
    StuckPressureSensor,
)
from openinfusion.units import Duration, Instant, Volume


def test_stuck_sensor_freezes_its_reading_while_the_pressure_rises() -> None:
    pump = make_pump(lvp())
    sensor = pump.hardware.channels[0].downstream
    wait(pump, 10)
    last = sensor.read().samples_mmhg[-1]
    pump.inject(StuckPressureSensor(), channel=0)
    pump.channel(0).set_occlusion("downstream", True)
    drive(pump, 0, 25.0, 60)
    batch = sensor.read()
    assert np.all(batch.samples_mmhg == last)
    assert batch.health is SensorHealth.OK  # undetected by its own diagnostics
    assert pump.truth().channels[0].line_pressure_mmhg > last + 100
    pump.clear(FaultKind.STUCK_PRESSURE, channel=0)
    wait(pump, 1)
    assert sensor.read().samples_mmhg[-1] > last + 100


def test_stuck_sensor_at_a_value_can_be_self_detected() -> None:
    pump = make_pump(lvp())
    pump.inject(StuckPressureSensor(side="upstream", value_mmhg=-50.0, self_detected=True), channel=0)
    wait(pump, 5)
    batch = pump.hardware.channels[0].upstream.read()
    assert np.all(batch.samples_mmhg == -50.0)
    assert batch.health is SensorHealth.FAULT
    assert pump.hardware.channels[0].downstream.read().health is SensorHealth.OK


def test_drifting_sensor_drifts_at_its_rate() -> None:
    pump = make_pump(lvp(downstream_sensor=IDEAL_SENSOR))
    sensor = pump.hardware.channels[0].downstream
    wait(pump, 10)
    sensor.read()
    pump.inject(DriftingPressureSensor(rate_mmhg_per_h=60.0), channel=0)
    wait(pump, 1800)
    samples = sensor.read().samples_mmhg
    assert samples[-1] - samples[0] == pytest.approx(30.0, abs=1.0)
    assert pump.truth().channels[0].line_pressure_mmhg == pytest.approx(8.0, abs=0.1)


def test_failed_air_detector_sees_no_bubble_and_fails_its_self_test() -> None:
    pump = make_pump(lvp())
    air = pump.hardware.channels[0].air
    pump.inject(AirDetectorFailure(), channel=0)
    pump.channel(0).inject_air(Volume.ml("0.2"))
    drive(pump, 0, 25.0, 144)
    batch = air.read()
    assert batch.bubbles == ()
    assert batch.health is SensorHealth.FAULT
    assert not air.self_test()
    assert pump.truth().channels[0].air_past_detector == Volume.ml("0.2")  # it went to the patient


def test_silently_failed_air_detector_passes_its_self_test() -> None:
    pump = make_pump(lvp())
    air = pump.hardware.channels[0].air
    pump.inject(AirDetectorFailure(self_test_fails=False), channel=0)
    pump.channel(0).inject_air(Volume.ml("0.2"))
    drive(pump, 0, 25.0, 144)
    assert air.self_test()
    batch = air.read()
    assert batch.bubbles == ()
    assert batch.health is SensorHealth.OK
    pump.clear(FaultKind.AIR_DETECTOR_FAILURE, channel=0)
    pump.channel(0).inject_air(Volume.ml("0.2"))
    drive(pump, 0, 25.0, 144)
    assert len(air.read().bubbles) == 1


def test_flagged_motor_stall_interrupts_stops_the_encoder_and_the_fluid() -> None:
    pump = make_pump(lvp())
    hw = pump.hardware.channels[0]
    drive(pump, 0, 25.0, 30)
    counts, displaced = hw.encoder.counts(), pump.truth().channels[0].displaced_ml
    pump.inject(MotorStall(), channel=0)
    issued = hw.motor.issued_steps()
    hw.motor.move(1600, Duration.s(60))
    reached = pump.advance(Instant(pump.now.us + 60_000_000))
    assert [w.reason for w in pump.last_wakes] == [WakeReason.MOTOR_FAULT]
    assert reached.us - 30_000_000 <= 200_000  # within two samples of the first pulse
    assert hw.motor.status().stalled
    wait(pump, 30)
    assert hw.motor.issued_steps() > issued + 700
    assert hw.encoder.counts() == counts
    assert pump.truth().channels[0].displaced_ml == pytest.approx(displaced, abs=1e-9)
    pump.clear(FaultKind.MOTOR_STALL, channel=0)
    drive(pump, 0, 25.0, 30)
    assert hw.encoder.counts() > counts
    assert not hw.motor.status().stalled  # a new move re-arms the driver's detection


def test_unflagged_motor_stall_is_silent_but_the_encoder_shows_it() -> None:
    pump = make_pump(lvp())
    hw = pump.hardware.channels[0]
    pump.inject(MotorStall(flagged=False), channel=0)
    drive(pump, 0, 25.0, 60)
    assert pump.now == Instant(60_000_000)
    assert not hw.motor.status().stalled
    assert hw.motor.issued_steps() > 0 == hw.encoder.counts()


def test_encoder_slip_loses_its_fraction_of_counts() -> None:
    pump = make_pump(lvp())
    hw = pump.hardware.channels[0]
    pump.inject(EncoderSlip(fraction=0.25), channel=0)
    hw.motor.move(4000, Duration.s(10))
    wait(pump, 10)
    assert hw.encoder.counts() == 3000  # 1 count per step, a quarter lost
    pump.clear(FaultKind.ENCODER_SLIP, channel=0)
    hw.motor.move(1000, Duration.s(10))
    wait(pump, 10)
    assert hw.encoder.counts() == 4000  # the lost counts stay lost
    assert pump.channel(0).shaft_now() == 5000


def test_missed_timer_tick_lets_the_watchdog_bite() -> None:
    pump = make_pump(lvp(), watchdog_window=Duration.s(5))
    hw = pump.hardware
    motor = hw.channels[0].motor
    hw.watchdog.kick(hw.clock.now())
    motor.move(1600, Duration.s(60))
    wait(pump, 3)
    pump.inject(MissedTimerTick())
    hw.watchdog.kick(hw.clock.now())  # lost
    reached = wait(pump, 60)
    assert [w.reason for w in pump.last_wakes] == [WakeReason.WATCHDOG]
    assert reached == Instant(5_000_000)
    assert hw.watchdog.bitten()
    assert not motor.status().moving
    assert pump.annunciator.sounding  # the hardware alarm, without the firmware
    issued = motor.issued_steps()
    motor.move(100, Duration.s(1))
    wait(pump, 2)
    assert motor.issued_steps() == issued  # motor power is cut


def test_watchdog_kicked_in_time_never_bites() -> None:
    pump = make_pump(lvp(), watchdog_window=Duration.s(5))
    for _ in range(20):
        pump.hardware.watchdog.kick(pump.hardware.clock.now())
        wait(pump, 4)
    assert not pump.hardware.watchdog.bitten()
    assert pump.last_wakes == ()


def test_clock_jump_is_caught_by_the_watchdog_at_the_next_kick() -> None:
    pump = make_pump(lvp())
    hw = pump.hardware
    hw.watchdog.kick(hw.clock.now())
    wait(pump, 10)
    pump.inject(ClockJump(Duration.s(5)))
    assert hw.clock.now() == Instant(15_000_000)
    assert pump.now == Instant(10_000_000)
    hw.watchdog.kick(hw.clock.now())
    assert hw.watchdog.bitten()
    assert "disagrees" in (pump.watchdog.cause or "")


def test_corrupted_storage_no_longer_matches_its_digest() -> None:
    pump = make_pump(lvp())
    storage = pump.hardware.storage
    assert hashlib.sha256(storage.read_config()).digest() == storage.config_digest()
    pump.inject(StorageCorruption(offset=3, xor_mask=0x40))
    corrupted = storage.read_config()
    assert hashlib.sha256(corrupted).digest() != storage.config_digest()
    assert corrupted[3] == pump.config.stored_config[3] ^ 0x40
    pump.clear(FaultKind.STORAGE_CORRUPTION)
    assert storage.read_config() == pump.config.stored_config


def test_failed_annunciator_is_silent_and_fails_its_tone_test() -> None:
    pump = make_pump(lvp())
    annunciator = pump.hardware.annunciator
    annunciator.signal("high", audible=True)
    assert pump.annunciator.sounding
    pump.inject(AnnunciatorFailure())
    assert not annunciator.self_test()
    assert not pump.annunciator.sounding
    assert pump.faults == {(FaultKind.ANNUNCIATOR_FAILURE, None): AnnunciatorFailure()}
    pump.clear(FaultKind.ANNUNCIATOR_FAILURE)
    assert annunciator.self_test()
    assert pump.faults == {}


def test_fault_scope_is_checked() -> None:
    pump = make_pump(lvp())
    with pytest.raises(ScenarioError, match="give its index"):
        pump.inject(MotorStall())
    with pytest.raises(ScenarioError, match="pump-wide"):
        pump.inject(ClockJump(), channel=0)
    with pytest.raises(ScenarioError, match="no channel 3"):
        pump.inject(MotorStall(), channel=3)


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: EncoderSlip(fraction=1.5), "fault.fraction"),
        (lambda: StuckPressureSensor(side="sideways"), "fault.side"),  # type: ignore[arg-type]
        (lambda: DriftingPressureSensor(rate_mmhg_per_h=float("nan")), "fault.rate_mmhg_per_h"),
        (lambda: MissedTimerTick(kicks=0), "fault.kicks"),
        (lambda: ClockJump(Duration(0)), "fault.jump"),
        (lambda: StorageCorruption(xor_mask=0), "fault.xor_mask"),
    ],
)
def test_invalid_faults_cannot_be_built(build: object, where: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build()  # type: ignore[operator]
    assert excinfo.value.where == where
