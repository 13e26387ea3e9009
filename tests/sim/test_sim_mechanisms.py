"""Mechanisms: LVP cam pulsatility, true stroke volume and tube wear; syringe start-up, compliance, backlash,
lead-screw error and end stop; calibrations versus truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from simkit import drive, lvp, make_pump, sim_compliance_ul_per_mmhg, syringe, wait

from openinfusion.pump.mechanism import MechanismKind
from openinfusion.sim import SyringeSize, WakeReason
from openinfusion.sim.mechanisms import PeristalticMechanism, SyringeMechanism
from openinfusion.sim.params import SYRINGES, PeristalticParams, SyringeParams
from openinfusion.units import Duration, Volume


def test_lvp_flow_is_pulsatile_with_the_cam_period() -> None:
    pump = make_pump(lvp())
    drive(pump, 0, 25.0, 120)
    pump.drain_series()
    drive(pump, 0, 25.0, 600)
    flow = pump.drain_series().channels[0].patient_flow_ml_h
    cal = pump.calibrations[0]
    rev_s = cal.cumulative_nl[-1] / 1e6 / 25.0 * 3600  # one cam revolution at the calibrated step rate
    period = round(rev_s / 0.1)  # in samples
    x = flow - flow.mean()

    def correlation(lag: int) -> float:
        return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])

    assert correlation(period) > 0.95
    assert correlation(period // 2) < 0.5
    assert flow.min() < 0  # back-flow where the last finger lifts
    assert flow.max() > 1.2 * 25.0  # finger peaks above the mean rate


def test_lvp_volume_over_whole_revolutions_is_the_true_stroke_volume() -> None:
    pump = make_pump(lvp())
    mechanism = pump.channel(0).mechanism
    assert isinstance(mechanism, PeristalticMechanism)
    motor = pump.hardware.channels[0].motor
    motor.move(10 * 1600, Duration.s(144))
    wait(pump, 150)
    wear = mechanism.stroke_factor(np.arange(10.0)).sum()
    expected_ml = mechanism.volume_per_rev_m3 * 1e6 * wear
    assert pump.truth().channels[0].displaced_ml == pytest.approx(expected_ml, rel=1e-3)


def test_lvp_calibration_is_the_monotone_envelope_within_tolerance_of_the_truth() -> None:
    params = PeristalticParams()
    sd = math.hypot(params.set_sd_fraction, params.calibration_sd_fraction)
    # draws are clipped to 3 sd: the set's and the factory's errors can at worst add up to this
    worst = (1 + 3 * params.calibration_sd_fraction) / (1 - 3 * params.set_sd_fraction) - 1
    errors = []
    for seed in range(20):
        mechanism = PeristalticMechanism(params, np.random.default_rng(seed))
        table = np.array(mechanism.calibration().cumulative_nl)
        assert np.all(np.diff(table) >= 0)
        true_nl = mechanism.volume_per_rev_m3 * 1e12
        errors.append(table[-1] / true_nl - 1)
        # the back-flow zone reads as flat; the truth overshoots there and comes back
        assert mechanism.profile.max() > 1.0
    assert max(abs(e) for e in errors) <= worst
    assert np.std(errors) > 0.2 * sd  # the tolerance is really drawn


def test_tube_wear_lowers_the_volume_per_revolution_by_a_few_percent_per_day() -> None:
    mechanism = PeristalticMechanism(PeristalticParams(), np.random.default_rng(0))
    day_at_25_ml_h = 25 * 24 / 0.1  # revolutions
    loss = 1 - mechanism.stroke_factor(np.array([day_at_25_ml_h]))[0]
    assert 0.01 < loss < 0.05
    pump = make_pump(lvp())
    per_rev = []
    for _ in range(3):  # 3 h at 500 mL/h, measuring one revolution each hour
        start = pump.truth().channels[0].displaced_ml
        drive(pump, 0, 500.0, 0.72, chunk_s=0.72)
        per_rev.append(pump.truth().channels[0].displaced_ml - start)
        drive(pump, 0, 500.0, 3600)
    assert per_rev[0] > per_rev[1] > per_rev[2]


def test_syringe_start_up_delays_flow_until_the_slack_is_taken_up() -> None:
    pump = make_pump(syringe(SyringeSize.ML50))
    drive(pump, 0, 1.0, 180)
    assert pump.truth().channels[0].patient_ml < 0.05 * 1.0 * 180 / 3600
    drive(pump, 0, 1.0, 1620)
    pump.drain_series()
    drive(pump, 0, 1.0, 1800)
    series = pump.drain_series()
    steady_ml_h = np.polyfit(series.t_s, series.channels[0].cumulative_patient_ml, 1)[0] * 3600
    assert steady_ml_h == pytest.approx(1.0, rel=0.05)
    cal = pump.calibrations[0]
    assert cal.slack_steps > 0
    assert cal.container == Volume.ml(50)


def test_syringe_compliance_adds_to_the_line_and_grows_with_size() -> None:
    small = make_pump(syringe(SyringeSize.ML10))
    large = make_pump(syringe(SyringeSize.ML50))
    line = syringe().tubing.compliance_ul_per_mmhg
    for pump, size in ((small, SyringeSize.ML10), (large, SyringeSize.ML50)):
        spec = SYRINGES[size]
        area_m2 = math.pi / 4 * (spec.inner_diameter_mm / 1e3) ** 2
        syringe_ul_mmhg = area_m2**2 / (spec.stiffness_n_per_mm * 1e3) * 133.322 * 1e9
        assert sim_compliance_ul_per_mmhg(pump) == pytest.approx(line + syringe_ul_mmhg, rel=0.02)
    assert sim_compliance_ul_per_mmhg(large) > 3 * sim_compliance_ul_per_mmhg(small)


def test_syringe_reversal_first_takes_up_backlash() -> None:
    pump = make_pump(syringe(SyringeSize.ML50))
    drive(pump, 0, 5.0, 600)
    motor = pump.hardware.channels[0].motor
    before = pump.truth().channels[0].displaced_ml
    backlash_steps = round(SyringeParams().backlash_mm / SyringeParams().pitch_mm * 3200)
    motor.move(-backlash_steps // 2, Duration.s(1))
    wait(pump, 2)
    assert pump.truth().channels[0].displaced_ml == pytest.approx(before, abs=1e-9)
    motor.move(-3200, Duration.s(5))  # a whole millimetre back: the plunger follows
    wait(pump, 6)
    assert pump.truth().channels[0].displaced_ml < before - 0.3


def test_syringe_lead_screw_error_is_periodic_per_turn() -> None:
    params = SyringeParams(lead_error_fraction=0.02)
    mechanism = SyringeMechanism(params, np.random.default_rng(0))
    turn = np.arange(0, 3201, dtype=np.int64)
    local_rate = np.diff(mechanism.screw_m(turn)) / (mechanism.pitch_m / 3200)
    assert local_rate.max() == pytest.approx(1.02, abs=1e-3)
    assert local_rate.min() == pytest.approx(0.98, abs=1e-3)
    assert mechanism.screw_m(np.array([3200]))[0] == pytest.approx(mechanism.pitch_m)


def test_empty_syringe_hits_its_end_stop_and_the_driver_flags_a_stall() -> None:
    fill = Volume.ml("0.1")
    pump = make_pump(syringe(SyringeSize.ML10, syringe=SyringeParams(size=SyringeSize.ML10, fill=fill)))
    motor = pump.hardware.channels[0].motor
    motor.move(round(0.3 / (math.pi / 4 * 14.5**2 * 1.0 / 1e3) * 3200), Duration.s(600))  # 0.3 mL of travel
    reached = wait(pump, 700)
    assert WakeReason.MOTOR_FAULT in {w.reason for w in pump.last_wakes}
    assert reached.us < 700_000_000
    assert motor.status().stalled
    shaft = pump.channel(0).shaft_now()
    wait(pump, 60)
    assert pump.channel(0).shaft_now() == shaft  # the pusher cannot go further
    assert pump.truth().channels[0].displaced_ml == pytest.approx(fill.in_ml, rel=1e-6)


@pytest.mark.parametrize("size", list(SyringeSize))
def test_syringe_calibration_matches_the_syringe_library(size: SyringeSize) -> None:
    cal = SyringeMechanism(SyringeParams(size=size), np.random.default_rng(1)).calibration()
    spec = SYRINGES[size]
    per_rev_ml = math.pi / 4 * spec.inner_diameter_mm**2 * 1.0 / 1e3  # mm^3 per mm of travel -> mL
    assert cal.kind is MechanismKind.SYRINGE
    assert cal.cumulative_nl[-1] / 1e6 == pytest.approx(per_rev_ml, abs=1e-6)  # rounded to the nL
    assert cal.min_rate <= cal.max_rate
