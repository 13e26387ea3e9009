"""Line hydraulics: occlusion pressure slope Q/C, release bolus and its RC decay, R*Q, head heights, upstream."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simkit import QUIET, drive, lvp, make_pump, wait

from openinfusion.sim.line import poiseuille_pa_s_m3, water_viscosity_pa_s
from openinfusion.sim.params import CATHETERS, LVP_SET
from openinfusion.units import Duration

MMHG = 133.322  # Pa
RHO_G = 1000.0 * 9.81  # water column, Pa per metre (independent round figures)
# Water viscosity from the IAPWS 2008 formulation's tables (mPa s): an independent reference.
IAPWS_MPA_S = {20.0: 1.0016, 22.0: 0.9544, 25.0: 0.8900, 37.0: 0.6913}


@pytest.mark.parametrize(("temperature_c", "expected"), IAPWS_MPA_S.items())
def test_water_viscosity_matches_iapws_tables(temperature_c: float, expected: float) -> None:
    assert water_viscosity_pa_s(temperature_c) * 1e3 == pytest.approx(expected, rel=0.01)


@given(
    st.floats(0.2, 5.0),
    st.floats(0.01, 5.0),
    st.floats(0.5e-3, 1.2e-3),
)
def test_poiseuille_scales_with_length_and_fourth_power_of_bore(d_mm: float, length_m: float, mu: float) -> None:
    r = poiseuille_pa_s_m3(d_mm, length_m, mu)
    assert poiseuille_pa_s_m3(d_mm, 2 * length_m, mu) == pytest.approx(2 * r)
    assert poiseuille_pa_s_m3(d_mm / 2, length_m, mu) == pytest.approx(16 * r)
    assert poiseuille_pa_s_m3(d_mm, length_m, 2 * mu) == pytest.approx(2 * r)


@pytest.mark.parametrize(("rate_ml_h", "revolutions"), [(1.0, 5), (25.0, 10)])
def test_occluded_pressure_rises_at_flow_over_compliance(rate_ml_h: float, revolutions: int) -> None:
    pump = make_pump(lvp())
    drive(pump, 0, rate_ml_h, 600)
    pump.drain_series()
    pump.channel(0).set_occlusion("downstream", True)
    displaced0 = pump.truth().channels[0].displaced_ml
    seconds = revolutions * 0.1 / rate_ml_h * 3600  # whole revolutions of a 0.1 mL/rev cam
    drive(pump, 0, rate_ml_h, seconds)
    series = pump.drain_series()
    slope_mmhg_s = np.polyfit(series.t_s, series.channels[0].downstream_mmhg, 1)[0]
    c_ul_mmhg = LVP_SET.compliance_ul_per_mmhg  # from the configuration, not the simulator
    true_ul_s = (pump.truth().channels[0].displaced_ml - displaced0) * 1e3 / seconds
    assert slope_mmhg_s == pytest.approx(true_ul_s / c_ul_mmhg, rel=0.02)
    assert slope_mmhg_s == pytest.approx(rate_ml_h / 3.6 / c_ul_mmhg, rel=0.05)  # within mechanism tolerance


def picc_rc_s() -> tuple[float, float]:
    """R (Pa s/m^3) and R*C (s) of the LVP set with a PICC at 22 °C, from Poiseuille and IAPWS viscosity."""
    mu = IAPWS_MPA_S[22.0] * 1e-3
    picc = CATHETERS["picc-4Fr"]

    def bore(d_mm: float, length_m: float) -> float:
        return 8 * mu * length_m / (math.pi * (d_mm / 2e3) ** 4)

    r = bore(LVP_SET.inner_diameter_mm, LVP_SET.length_m) + bore(picc.inner_diameter_mm, picc.length_mm / 1e3)
    c_m3_pa = LVP_SET.compliance_ul_per_mmhg * 1e-9 / MMHG
    return r, r * c_m3_pa


def test_release_gives_the_stored_bolus_decaying_with_rc() -> None:
    pump = make_pump(lvp(catheter=CATHETERS["picc-4Fr"]), sample_period=Duration.s("0.01"))
    ch = pump.channel(0)
    ch.set_occlusion("downstream", True)
    drive(pump, 0, 100.0, 12)
    wait(pump, 1)
    truth = pump.truth().channels[0]
    p_occ, before_ml = truth.line_pressure_mmhg, truth.patient_ml
    assert p_occ > 250
    pump.drain_series()
    ch.set_occlusion("downstream", False)
    _, tau_s = picc_rc_s()
    wait(pump, 10 * tau_s)
    series = pump.drain_series()
    bolus_ul = (pump.truth().channels[0].patient_ml - before_ml) * 1e3
    assert bolus_ul == pytest.approx(LVP_SET.compliance_ul_per_mmhg * (p_occ - QUIET.venous_mmhg), rel=0.01)
    excess = series.channels[0].downstream_mmhg - QUIET.venous_mmhg
    early = series.t_s < series.t_s[0] + 2 * tau_s
    fitted_tau_s = -1 / np.polyfit(series.t_s[early], np.log(excess[early]), 1)[0]
    assert fitted_tau_s == pytest.approx(tau_s, rel=0.03)


def test_open_line_pressure_is_venous_plus_resistance_times_flow() -> None:
    pump = make_pump(lvp(catheter=CATHETERS["picc-4Fr"]))
    drive(pump, 0, 100.0, 60)
    pump.drain_series()
    drive(pump, 0, 100.0, 36)  # ten revolutions at 100 mL/h
    series = pump.drain_series()
    r, _ = picc_rc_s()
    flow_m3_s = np.mean(series.channels[0].patient_flow_ml_h) / 3.6e9
    expected = QUIET.venous_mmhg + r * flow_m3_s / MMHG
    assert np.mean(series.channels[0].downstream_mmhg) == pytest.approx(expected, rel=0.02)


def test_pump_above_patient_lowers_line_pressure_by_rho_g_h() -> None:
    pump = make_pump(lvp())
    wait(pump, 5)
    at_level = pump.truth().channels[0].line_pressure_mmhg
    pump.channel(0).set_head_height(0.5)
    wait(pump, 5)
    assert at_level - pump.truth().channels[0].line_pressure_mmhg == pytest.approx(0.5 * RHO_G / MMHG, abs=0.3)


def test_upstream_occlusion_draws_a_vacuum_and_starves_delivery() -> None:
    pump = make_pump(lvp())
    drive(pump, 0, 25.0, 120)
    bag_head = pump.truth().channels[0].upstream_pressure_mmhg
    assert bag_head == pytest.approx(0.5 * RHO_G / MMHG, abs=1.5)  # bag 0.5 m above the pump
    pump.channel(0).set_occlusion("upstream", True)
    start_ml = pump.truth().channels[0].displaced_ml
    drive(pump, 0, 25.0, 600)
    truth = pump.truth().channels[0]
    assert truth.upstream_pressure_mmhg < -400
    pumped_ml = truth.displaced_ml - start_ml
    cap_ml = 0.5e-3 * 600  # upstream compliance (0.5 uL/mmHg) x refill pressure (600 mmHg)
    assert pumped_ml <= cap_ml * 1.1
    assert pumped_ml < 0.2 * 25.0 * 600 / 3600
    pump.channel(0).set_occlusion("upstream", False)
    drive(pump, 0, 25.0, 60)
    assert pump.truth().channels[0].upstream_pressure_mmhg == pytest.approx(bag_head, abs=2.0)


def test_bag_height_changes_filling() -> None:
    def pumped_ml(bag_height_m: float) -> float:
        pump = make_pump(lvp(bag_height_m=bag_height_m))
        drive(pump, 0, 25.0, 576)  # 40 revolutions
        return pump.truth().channels[0].displaced_ml

    low, nominal, high = pumped_ml(0.1), pumped_ml(0.5), pumped_ml(1.0)
    assert low < nominal < high
    assert high / low - 1 == pytest.approx(0.9 * RHO_G / MMHG / 600, rel=0.1)  # head over refill pressure


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.5, 40.0)), min_size=1, max_size=5))
def test_volume_is_conserved_through_occlusions_and_releases(actions: list[tuple[bool, float]]) -> None:
    pump = make_pump(lvp())
    for occluded, seconds in actions:
        pump.channel(0).set_occlusion("downstream", occluded)
        drive(pump, 0, 50.0, seconds)
    truth = pump.truth().channels[0]
    assert truth.patient_ml + truth.stored_ml == pytest.approx(truth.displaced_ml, abs=1e-9)
    assert truth.patient_nl == round(truth.patient_ml * 1e6)
