"""Line compliance and the flow that reached the patient."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import ConfigError, InputError
from openinfusion.pump.sensing import FlowEstimator, LineCompliance
from openinfusion.units import Duration, FlowRate, Volume


def test_steady_pressure_means_everything_displaced_reached_the_patient() -> None:
    estimator = FlowEstimator(LineCompliance(1000))
    estimate = estimator.update(Volume(25_000), 20.0, 20.0, Duration.s(3.6))
    assert estimate.to_patient == Volume(25_000)
    assert estimate.rate == FlowRate.ml_h(25)  # 25 uL in 3.6 s is 25 mL/h


def test_a_blocked_line_stores_what_is_displaced() -> None:
    estimator = FlowEstimator(LineCompliance(1000))
    # 5 uL into a 1 uL/mmHg line raises it 5 mmHg: nothing reaches the patient.
    estimate = estimator.update(Volume(5_000), 40.0, 45.0, Duration.s(18))
    assert estimate.to_patient == Volume(0)
    assert estimate.rate == FlowRate(0)


def test_a_released_line_delivers_more_than_is_displaced() -> None:
    estimator = FlowEstimator(LineCompliance(1000))
    estimate = estimator.update(Volume(1_000), 300.0, 20.0, Duration.s(10))
    assert estimate.to_patient == Volume(281_000)


def test_back_off_against_a_blocked_line_gives_nothing_back_to_the_patient() -> None:
    estimator = FlowEstimator(LineCompliance(2000))
    estimate = estimator.update(Volume(-400_000), 300.0, 100.0, Duration.s(2))
    assert estimate.to_patient == Volume(0)


@given(
    compliance=st.integers(min_value=1, max_value=20_000).map(LineCompliance),
    first_mmhg=st.floats(min_value=-50, max_value=1000, allow_nan=False),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=-50_000, max_value=200_000),
            st.floats(min_value=-50, max_value=1000, allow_nan=False),
            st.integers(min_value=1, max_value=10**9),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_the_estimate_conserves_volume(
    compliance: LineCompliance, first_mmhg: float, steps: list[tuple[int, float, int]]
) -> None:
    estimator = FlowEstimator(compliance)
    pressure_mmhg = first_mmhg
    total_nl = 0
    for displaced_nl, next_mmhg, dt_us in steps:
        estimate = estimator.update(Volume(displaced_nl), pressure_mmhg, next_mmhg, Duration(dt_us))
        total_nl += estimate.to_patient.nl
        pressure_mmhg = next_mmhg
    displaced_nl = sum(d for d, _, _ in steps)
    stored_change_nl = compliance.nl_per_mmhg * (Fraction(pressure_mmhg) - Fraction(first_mmhg))
    # Delivered = displaced - change of stored volume, to within the rounding of the two end states.
    assert abs(total_nl - (displaced_nl - stored_change_nl)) <= 1
    assert estimator.delivered == Volume(total_nl)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError):
        LineCompliance(0)
    with pytest.raises(ConfigError):
        LineCompliance(2_000_000)
    with pytest.raises(ConfigError):
        LineCompliance(1.5)  # type: ignore[arg-type]
    estimator = FlowEstimator(LineCompliance(1000))
    with pytest.raises(InputError) as error:
        estimator.update(Volume(1), 0.0, 0.0, Duration(0))
    assert error.value.where == "dt"
    with pytest.raises(InputError) as error:
        estimator.update(Volume(1), float("nan"), 0.0, Duration(1))
    assert error.value.where == "pressure_start_mmhg"


def test_blocked_slope_is_rate_over_compliance() -> None:
    # 3.6 mL/h is 1 uL/s; into 2 uL/mmHg that is 0.5 mmHg/s.
    assert LineCompliance(2000).blocked_slope_mmhg_s(FlowRate.ml_h("3.6")) == pytest.approx(0.5)
