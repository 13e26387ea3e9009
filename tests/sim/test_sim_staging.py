"""What the simulator stages beyond a healthy line: back pressure, partial occlusion, free flow, an empty
container, the optional flow and temperature sensors, the power key and a brown-out, and decimated series."""

from __future__ import annotations

import numpy as np
import pytest
from simkit import drive, lvp, make_pump, syringe, wait

from openinfusion.pump.hal import SensorHealth
from openinfusion.sim.params import FlowSensorParams, SyringeParams
from openinfusion.sim.series import MAX_ROWS, SeriesMode, SeriesRecorder, bucket_samples
from openinfusion.units import Duration, Instant, Volume

MMHG_PER_M = 997 * 9.80665 / 133.322387415  # a metre of water in mmHg


def delivered_ml(rate_ml_h: float, seconds: float, **channel: object) -> float:
    pump = make_pump(lvp(**channel))
    drive(pump, 0, rate_ml_h, 600)
    before = pump.truth().channels[0].patient_ml
    drive(pump, 0, rate_ml_h, seconds)
    return pump.truth().channels[0].patient_ml - before


def test_lvp_back_pressure_changes_the_stroke_volume() -> None:
    # IEC 60601-2-24's back-pressure test: the outlet raised or lowered by about 100 mmHg (1.5 m of water).
    level = delivered_ml(25.0, 3600)
    above = delivered_ml(25.0, 3600, pump_height_m=-1.5)  # the outlet 1.5 m above the pump: +110 mmHg
    below = delivered_ml(25.0, 3600, pump_height_m=1.5)  # the pump above the outlet: negative back pressure
    assert above / level == pytest.approx(1.0 - 0.01 * 1.5 * MMHG_PER_M / 100, abs=0.002)  # 1 %/100 mmHg
    assert below / level == pytest.approx(1.0 + 0.01 * 1.5 * MMHG_PER_M / 100, abs=0.002)


def test_partial_occlusion_raises_the_line_pressure_by_the_added_resistance() -> None:
    pump = make_pump(lvp())
    ch = pump.channel(0)
    drive(pump, 0, 100.0, 300)
    ch.set_partial_occlusion(200.0)
    drive(pump, 0, 100.0, 600)  # many R C (about 7 s now)
    pump.drain_series()
    before_ml = pump.truth().channels[0].patient_ml
    drive(pump, 0, 100.0, 300)
    series = pump.drain_series().channels[0]
    flow_m3_s = (pump.truth().channels[0].patient_ml - before_ml) * 1e-6 / 300
    expected = 8.0 + 200.0 * ch.line.resistance_pa_s_m3 * flow_m3_s / 133.322387415  # venous + k R Q
    assert float(np.mean(series.downstream_mmhg)) == pytest.approx(expected, rel=0.02)
    assert 150 < expected < 300  # a restriction the occlusion detector must judge, not a closed line
    ch.set_partial_occlusion(1.0)
    with pytest.raises(Exception, match="partial_occlusion"):
        ch.set_partial_occlusion(0.5)


def test_free_flow_drains_the_bag_by_gravity_with_the_motor_stopped() -> None:
    pump = make_pump(lvp())
    ch = pump.channel(0)
    ch.set_free_flow(True)
    assert not ch.door.engaged
    wait(pump, 1)  # the door interrupt
    wait(pump, 60)
    flow_ml_h = pump.truth().channels[0].patient_ml * 60
    bag_mmhg = 0.5 * MMHG_PER_M  # the bag 0.5 m above the pump, the pump level with the vein at 8 mmHg
    path = ch.line.resistance_pa_s_m3 + ch.upstream.resistance_pa_s_m3  # type: ignore[union-attr]
    expected = (bag_mmhg - 8.0) * 133.322387415 / path * 3.6e9
    assert flow_ml_h == pytest.approx(expected, rel=0.05)
    assert flow_ml_h > 1000  # uncontrolled: litres per hour through an open LVP set
    ch.set_free_flow(False)  # the clamp is closed
    before = pump.truth().channels[0].patient_ml
    wait(pump, 60)
    assert pump.truth().channels[0].patient_ml - before < 0.05  # only what the line stored


def test_an_lvp_container_running_dry_collapses_and_the_segment_pulls_a_vacuum() -> None:
    pump = make_pump(lvp(container=Volume.ml(2)))
    drive(pump, 0, 100.0, 3600)
    truth = pump.truth().channels[0]
    assert truth.patient_ml == pytest.approx(2.0, abs=0.35)  # the bag, plus what the collapsed set yields
    assert truth.upstream_pressure_mmhg < -100  # what the upstream occlusion detector sees
    pump.channel(0).fill(Volume.ml(100))  # a new bag
    drive(pump, 0, 100.0, 600)
    assert pump.truth().channels[0].patient_ml - truth.patient_ml == pytest.approx(100 / 6, rel=0.05)


def test_a_syringe_filled_with_less_reaches_its_end_stop_at_that_volume() -> None:
    pump = make_pump(syringe(syringe=SyringeParams(fill=Volume.ml(1))))
    drive(pump, 0, 10.0, 1800)
    assert pump.truth().channels[0].patient_ml == pytest.approx(1.0, abs=0.05)


def test_flow_sensor_reads_the_volume_that_reached_the_patient_with_its_gain_error() -> None:
    pump = make_pump(lvp(flow_sensor=FlowSensorParams(gain_sd_fraction=0.02, noise_nl=0.0)))
    sensor = pump.hardware.channels[0].flow
    assert sensor is not None
    drive(pump, 0, 10.0, 600)
    first = sensor.read()
    before_ml = pump.truth().channels[0].patient_ml
    drive(pump, 0, 10.0, 3600)
    reading = sensor.read()
    true_ml = pump.truth().channels[0].patient_ml - before_ml
    assert reading.start == first.end and reading.end == Instant(pump.truth().at.us)
    assert reading.health is SensorHealth.OK
    assert reading.volume.nl / 1e6 == pytest.approx(true_ml, rel=0.061)  # 2 % sd gain, clipped at 3 sd
    assert reading.volume.nl / 1e6 != pytest.approx(true_ml, rel=1e-6)  # an instrument, not the truth
    assert make_pump(lvp()).hardware.channels[0].flow is None  # optional: not fitted by default


def test_temperature_sensor_reads_what_the_scenario_sets() -> None:
    pump = make_pump(lvp(temperature_sensor=True))
    sensor = pump.hardware.channels[0].temperature
    assert sensor is not None and sensor.read_millicelsius() == 22_000
    pump.channel(0).set_temperature(56.5)
    assert sensor.read_millicelsius() == 56_500


def test_power_key_stops_the_motor_and_the_supply_reports_its_rail_voltage() -> None:
    pump = make_pump(lvp(), on_mains=False)
    status = pump.power.status()
    assert status.supply_mv is not None and status.brownout_mv == 6000
    assert status.supply_mv > status.brownout_mv
    pump.set_power(False)
    assert not pump.powered and not pump.hardware.channels[0].motor.status().moving
    drive(pump, 0, 25.0, 60)
    assert pump.truth().channels[0].shaft_steps == 0  # the motor has no power
    pump.set_power(True)
    assert pump.powered


def test_decimated_series_keep_peaks_and_volumes_and_do_not_depend_on_blocks() -> None:
    period_s = 0.1
    t = np.arange(1, 1001) * period_s
    pressure = np.sin(t)
    pressure[517] = 50.0  # a peak inside a bucket
    block = {"t_s": t, "downstream_mmhg": pressure, "patient_flow_ml_h": np.ones(1000), "cumulative_patient_ml": t}
    whole = SeriesRecorder(1, SeriesMode.DECIMATED, 10, period_s)
    whole.add(0, block)
    whole.flush()
    cut = SeriesRecorder(1, SeriesMode.DECIMATED, 10, period_s)
    for a, b in ((0, 3), (3, 517), (517, 518), (518, 1000)):
        cut.add(0, {k: v[a:b] for k, v in block.items()})
    cut.flush()
    for name in ("t_s", "downstream_mmhg", "patient_flow_ml_h", "cumulative_patient_ml"):
        np.testing.assert_array_equal(whole.series(0, name), cut.series(0, name))
    assert whole.rows(0) == 101  # samples 1..1000 in buckets of 10 aligned on sample 0
    assert float(np.max(whole.series(0, "downstream_mmhg"))) == 50.0
    assert whole.series(0, "cumulative_patient_ml")[-1] == t[-1]
    off = SeriesRecorder(1, SeriesMode.OFF, 10, period_s)
    off.add(0, block)
    assert off.rows(0) == 0


def test_the_decimation_bucket_bounds_the_rows_whatever_the_duration() -> None:
    period = Duration.s("0.1")
    assert bucket_samples(Duration.h(2), period) == 1  # a short scenario keeps every sample
    thirty_days = Duration.h(24 * 30)
    assert -(-thirty_days.us // period.us) / bucket_samples(thirty_days, period) <= MAX_ROWS
