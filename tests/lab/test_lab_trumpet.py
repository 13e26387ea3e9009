"""The trumpet-curve analysis (IEC 60601-2-24, standards-and-safety.md §2.2) on synthetic data with known answers.

These verify the measuring method, not the pump: the requirement markers are on the bench tests that use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.lab.errors import AnalysisError
from openinfusion.lab.trumpet import (
    BALANCE_INTERVAL,
    IEC_WINDOWS,
    Trumpet,
    TrumpetPoint,
    balance_readings_g,
    flow_from_balance_ml_h,
    mean_error_percent,
    sample_at,
    trumpet,
    window_errors_percent,
    window_samples,
)
from openinfusion.sim.arrays import F64
from openinfusion.units import Duration, FlowRate

RATE = FlowRate.ml_h(25)
N = 120  # the second hour: 120 intervals of 0.5 min
DT_MIN = 0.5


def sinusoid_flows(rate_ml_h: float, amplitude_ml_h: float, period_min: float, n: int = N) -> F64:
    """What a balance sees of q(t) = r + a sin(2 pi t / T): the exact mean of q over each 0.5-min interval."""
    t_min = np.arange(n + 1, dtype=np.float64) * DT_MIN
    volume_ml_min = rate_ml_h * t_min + amplitude_ml_h * period_min / (2 * math.pi) * (
        1 - np.cos(2 * math.pi * t_min / period_min)
    )
    flow_ml_h: F64 = np.diff(volume_ml_min) / DT_MIN
    return flow_ml_h


def brute_force_window_errors(flow_ml_h: list[float], rate_ml_h: float, p: int) -> list[float]:
    """The reference's formula, term by term: (100/p) sum_{i=j}^{j+p-1} (Q_i - r) / r for j = 1..n-p+1."""
    return [
        100.0 / p * sum((flow_ml_h[i] - rate_ml_h) / rate_ml_h for i in range(j, j + p))
        for j in range(len(flow_ml_h) - p + 1)
    ]


def test_the_iec_windows_are_4_10_22_38_and_62_balance_intervals() -> None:
    assert [window_samples(w) for w in IEC_WINDOWS] == [4, 10, 22, 38, 62]


def test_a_constant_flow_at_the_set_rate_has_no_error_in_any_window() -> None:
    result = trumpet(np.full(N, 25.0), RATE)
    assert result.mean_error_percent == 0.0
    assert all(p.ep_max_percent == 0.0 and p.ep_min_percent == 0.0 for p in result.points)
    assert result.narrows


def test_a_known_offset_gives_that_mean_error_and_a_flat_trumpet_at_it() -> None:
    result = trumpet(np.full(N, 25.0 * 1.03), RATE)  # 3 % over
    assert result.mean_error_percent == pytest.approx(3.0, abs=1e-9)
    for point in result.points:
        assert point.ep_max_percent == pytest.approx(3.0, abs=1e-9)
        assert point.ep_min_percent == pytest.approx(3.0, abs=1e-9)


def test_a_sinusoidal_ripple_gives_the_analytic_trumpet_narrowing_with_the_window() -> None:
    # Mean error of a window w of q = r + a sin(2 pi t/T): (100 a/r) (T/(pi w)) sin(pi w/T) sin(phase). With T = 8 min
    # (16 intervals) and p even the sliding windows hit phase +-pi/2 exactly, so Ep(max) = -Ep(min) = 100 a/r |K(w)|.
    a, period = 5.0, 8.0
    result = trumpet(sinusoid_flows(25.0, a, period), RATE)
    for point in result.points:
        w = float(point.window.seconds) / 60
        envelope = 100 * a / 25.0 * abs(period * math.sin(math.pi * w / period) / (math.pi * w))
        assert point.ep_max_percent == pytest.approx(envelope, abs=1e-9)
        assert point.ep_min_percent == pytest.approx(-envelope, abs=1e-9)
    spreads = [p.spread_percent for p in result.points]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 10 * spreads[-1]
    assert result.narrows
    # 60 min is 7.5 periods: A = (100 a/r) (T/(60 pi)) sin(7.5 pi)^2
    assert result.mean_error_percent == pytest.approx(100 * a / 25.0 * period / (60 * math.pi), abs=1e-9)


def test_a_trumpet_that_widens_with_the_window_is_not_said_to_narrow() -> None:
    points = (
        TrumpetPoint(Duration.min(2), 1.0, -1.0),
        TrumpetPoint(Duration.min(5), 2.0, -2.0),
    )
    assert not Trumpet(points, 0.0).narrows


flows = st.lists(st.floats(min_value=0.0, max_value=2000.0, allow_nan=False), min_size=62, max_size=160)
rates = st.integers(min_value=1, max_value=1_200_000).map(lambda n: FlowRate(n * 1000))  # 0.001..1200 mL/h


@settings(max_examples=40)
@given(flows, rates, st.sampled_from([1, 4, 10, 22, 38, 62]))
def test_window_errors_match_the_formula_term_by_term(flow: list[float], rate: FlowRate, p: int) -> None:
    expected = brute_force_window_errors(flow, float(rate.in_ml_h), p)
    got = window_errors_percent(np.array(flow), rate, p)
    scale = max(1.0, *(abs(x) for x in expected))
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=40)
@given(flows, st.floats(min_value=-50.0, max_value=50.0))
def test_an_offset_of_the_flows_shifts_every_figure_by_the_same_percentage(flow: list[float], c: float) -> None:
    base = trumpet(np.array(flow), RATE)
    shifted = trumpet(np.array(flow) + 25.0 * c / 100, RATE)
    assert shifted.mean_error_percent == pytest.approx(base.mean_error_percent + c, abs=1e-6)
    for b, s in zip(base.points, shifted.points, strict=True):
        assert s.ep_max_percent == pytest.approx(b.ep_max_percent + c, abs=1e-6)
        assert s.ep_min_percent == pytest.approx(b.ep_min_percent + c, abs=1e-6)
        assert s.ep_min_percent <= s.ep_max_percent


@settings(max_examples=40)
@given(flows)
def test_the_mean_error_is_the_window_error_of_the_whole_period(flow: list[float]) -> None:
    array = np.array(flow)
    (whole,) = window_errors_percent(array, RATE, array.shape[0])
    assert mean_error_percent(array, RATE) == pytest.approx(whole, abs=1e-6)


def test_the_balance_chain_recovers_a_constant_flow_within_its_resolution() -> None:
    # 1 mL/h for 2 h read every 0.5 min at 0.1 mg: each flow is off by at most two half-resolutions.
    t_min = np.arange(241, dtype=np.float64) * DT_MIN
    mass_g = balance_readings_g(t_min / 60.0)
    assert np.all(np.abs(mass_g / 1e-4 - np.rint(mass_g / 1e-4)) < 1e-6)  # whole 0.1 mg steps
    flow = flow_from_balance_ml_h(mass_g, BALANCE_INTERVAL)
    bound_ml_h = 60 * 1e-4 / (0.998 * DT_MIN)
    assert flow.shape == (240,)
    assert np.max(np.abs(flow - 1.0)) <= bound_ml_h + 1e-12


def test_flows_come_from_mass_differences_over_density_and_interval() -> None:
    # 0.5 g in 2 min at 1 g/mL is 15 mL/h
    flow = flow_from_balance_ml_h(np.array([0.0, 0.5, 1.0]), Duration.min(2), density_g_per_ml=1.0)
    assert flow.tolist() == pytest.approx([15.0, 15.0])


def test_sample_at_interpolates_within_the_record_only() -> None:
    t, v = np.array([0.0, 1.0, 2.0]), np.array([0.0, 10.0, 30.0])
    assert sample_at(t, v, np.array([0.5, 2.0])).tolist() == [5.0, 30.0]
    with pytest.raises(AnalysisError, match="outside the record"):
        sample_at(t, v, np.array([2.5]))


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: window_samples(Duration.s(45)), "window"),
        (lambda: window_errors_percent(np.ones(10), RATE, 11), "window"),
        (lambda: window_errors_percent(np.array([1.0, math.nan]), RATE, 1), "flow_ml_h"),
        (lambda: window_errors_percent(np.ones(10), FlowRate(0), 1), "set_rate"),
        (lambda: flow_from_balance_ml_h(np.ones(1)), "mass_g"),
        (lambda: balance_readings_g(np.ones(3), resolution_g=0.0), "resolution_g"),
        (lambda: trumpet(np.ones(120), RATE, windows=(Duration.min(5), Duration.min(2))), "windows"),
        (lambda: trumpet(np.ones(40), RATE), "window"),
    ],
)
def test_what_cannot_be_measured_is_refused_with_where_and_why(call: object, where: str) -> None:
    with pytest.raises(AnalysisError) as info:
        call()  # type: ignore[operator]
    assert info.value.where == where and info.value.why
