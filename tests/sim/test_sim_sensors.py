"""Sensors as the firmware sees them: ADC quantisation and noise, batches, the analogue watchdog, the air
detector and the door switch."""

from __future__ import annotations

import numpy as np
import pytest
from simkit import IDEAL_SENSOR, drive, lvp, make_pump, wait

from openinfusion.pump.hal import SensorHealth
from openinfusion.sim import WakeReason
from openinfusion.sim.params import AirDetectorParams, PressureSensorParams
from openinfusion.units import Duration, Instant, Volume


def test_readings_are_adc_codes_with_the_configured_noise() -> None:
    params = PressureSensorParams()
    pump = make_pump(lvp(downstream_sensor=params))
    wait(pump, 600)
    batch = pump.hardware.channels[0].downstream.read()
    assert batch.count == 6000
    codes = (batch.samples_mmhg - params.range_low_mmhg) / params.lsb_mmhg
    assert np.allclose(codes, np.round(codes))
    assert params.lsb_mmhg == pytest.approx(0.5)  # 12 bits over -760..1288 mmHg
    expected_sd = np.hypot(params.noise_sd_mmhg, params.lsb_mmhg / np.sqrt(12))
    assert np.std(batch.samples_mmhg) == pytest.approx(expected_sd, rel=0.1)
    offset_bound = 3 * params.offset_sd_mmhg + 3 * params.gain_sd_fraction * 10 + 0.1
    assert abs(np.mean(batch.samples_mmhg) - 8.0) < offset_bound  # venous 8 mmHg, pump at heart level


def test_batches_are_contiguous_and_timed_on_the_sample_grid() -> None:
    pump = make_pump(lvp())
    sensor = pump.hardware.channels[0].downstream
    wait(pump, 1.05)
    first = sensor.read()
    wait(pump, 2)
    second = sensor.read()
    empty = sensor.read()
    assert first.first == Instant(100_000)
    assert first.period == Duration.s("0.1")
    assert first.count == 10
    assert second.first == first.last_time + first.period
    assert second.count == 20
    assert empty.count == 0


def test_advance_stops_at_the_first_sample_above_the_armed_threshold() -> None:
    pump = make_pump(lvp(downstream_sensor=IDEAL_SENSOR))
    sensor = pump.hardware.channels[0].downstream
    pump.channel(0).set_occlusion("downstream", True)
    sensor.arm_wake(100.0)
    motor = pump.hardware.channels[0].motor
    motor.move(16_000, Duration.s(600))  # 10 revolutions, 1 mL over 10 minutes
    reached = pump.advance(Instant(600_000_000))
    assert reached < Instant(600_000_000)
    assert [w.reason for w in pump.last_wakes] == [WakeReason.PRESSURE]
    batch = sensor.read()
    assert batch.samples_mmhg[-1] > 100.0 >= batch.samples_mmhg[-2]
    assert batch.last_time == reached
    assert pump.advance(Instant(reached.us + 1_000_000)) == Instant(reached.us + 1_000_000)  # one-shot


def test_disarmed_watchdog_does_not_stop_advance() -> None:
    pump = make_pump(lvp())
    sensor = pump.hardware.channels[0].downstream
    sensor.arm_wake(100.0)
    sensor.arm_wake(None)
    pump.channel(0).set_occlusion("downstream", True)
    drive(pump, 0, 100.0, 60)
    assert pump.now == Instant(60_000_000)
    assert sensor.read().samples_mmhg.max() > 100.0


def test_over_range_pressure_reads_at_the_top_code_and_flags_the_batch() -> None:
    pump = make_pump(lvp())
    pump.channel(0).set_occlusion("downstream", True)
    drive(pump, 0, 500.0, 20)  # 2.8 mL into ~1 uL/mmHg: far beyond the 1288 mmHg range
    batch = pump.hardware.channels[0].downstream.read()
    assert batch.health is SensorHealth.FAULT
    assert batch.samples_mmhg.max() == pytest.approx(1287.5)


def test_bubble_is_seen_after_it_travels_to_the_detector() -> None:
    air = AirDetectorParams()
    pump = make_pump(lvp(air=air))
    drive(pump, 0, 25.0, 30)
    start_ml = pump.truth().channels[0].displaced_ml
    pump.channel(0).inject_air(Volume.ml("0.05"))
    motor = pump.hardware.channels[0].motor
    motor.move(16_000, Duration.s(144))  # 1 mL at 25 mL/h
    reached = pump.advance(Instant(pump.now.us + 144_000_000))
    assert [w.reason for w in pump.last_wakes] == [WakeReason.AIR]
    travelled_ml = pump.truth().channels[0].displaced_ml - start_ml
    assert travelled_ml == pytest.approx(air.travel_volume.in_ml, abs=0.003)  # one 0.1 s sample at most
    batch = pump.hardware.channels[0].air.read()
    assert len(batch.bubbles) == 1
    assert batch.bubbles[0].at == reached
    assert abs(batch.bubbles[0].volume.nl / 50_000 - 1) <= 3 * air.estimate_sd_fraction
    assert pump.truth().channels[0].air_past_detector == Volume.ml("0.05")


def test_bubble_below_the_detection_limit_passes_unseen() -> None:
    pump = make_pump(lvp())
    pump.channel(0).inject_air(Volume.ml("0.005"))
    drive(pump, 0, 25.0, 144)
    assert pump.hardware.channels[0].air.read().bubbles == ()
    assert pump.truth().channels[0].air_past_detector == Volume.ml("0.005")


def test_opening_the_door_interrupts_and_disengages_the_mechanism() -> None:
    pump = make_pump(lvp())
    drive(pump, 0, 25.0, 60)
    pump.channel(0).set_door(False)
    assert pump.hardware.channels[0].door.state().door_closed is False
    now = pump.now
    assert pump.advance(Instant(now.us + 10_000_000)) == now
    assert [(w.reason, w.channel) for w in pump.last_wakes] == [(WakeReason.DOOR, 0)]
    displaced = pump.truth().channels[0].displaced_ml
    drive(pump, 0, 25.0, 60)
    assert pump.truth().channels[0].displaced_ml == displaced  # the fingers no longer press the tube
    assert pump.hardware.channels[0].encoder.counts() > 0  # but the shaft turned
    pump.channel(0).set_door(True)
    pump.advance(pump.now)
    drive(pump, 0, 25.0, 60)
    assert pump.truth().channels[0].displaced_ml == pytest.approx(displaced + 25.0 / 60, rel=0.1)


def test_unloading_the_set_is_a_door_interrupt_but_an_unchanged_state_is_not() -> None:
    pump = make_pump(lvp())
    pump.channel(0).set_loaded(True)
    assert pump.advance(Instant(1_000_000)) == Instant(1_000_000)
    pump.channel(0).set_loaded(False)
    assert pump.advance(Instant(2_000_000)) == Instant(1_000_000)
    assert pump.hardware.channels[0].door.state().set_loaded is False
