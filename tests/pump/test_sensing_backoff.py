"""Occlusion back-off and the bolus released when an occlusion clears (OI-ALM-3)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import ConfigError, InputError
from openinfusion.pump.sensing import LineCompliance, backoff_volume, expected_release_bolus
from openinfusion.units import Volume

ECRI_MAX_RELEASE_BOLUS = Volume.ml("0.5")  # standards-and-safety.md §2.3

pressures = st.floats(min_value=-50.0, max_value=1100.0, allow_nan=False)
compliances = st.integers(min_value=1, max_value=1_000_000).map(LineCompliance)
bounds = st.integers(min_value=0, max_value=5_000_000).map(Volume)


@pytest.mark.req("OI-ALM-3")
def test_an_lvp_set_stopped_at_600_mmhg_would_release_more_than_ecri_allows_without_back_off() -> None:
    lvp = LineCompliance(1000)  # 1 uL/mmHg
    # 1000 nL/mmHg * (600 - 20) mmHg = 580,000 nL stored above the free-flow pressure.
    assert expected_release_bolus(600.0, 20.0, lvp, Volume(0)) == Volume(580_000)
    assert expected_release_bolus(600.0, 20.0, lvp, Volume(0)) > ECRI_MAX_RELEASE_BOLUS
    withdrawn = backoff_volume(600.0, 20.0, lvp, max_backoff=Volume.ml(1))
    assert withdrawn == Volume(580_000)
    assert expected_release_bolus(600.0, 20.0, lvp, withdrawn) == Volume(0)


@pytest.mark.req("OI-ALM-3")
def test_back_off_is_bounded_by_the_mechanism_and_the_residual_is_the_rest() -> None:
    syringe = LineCompliance(5000)  # 5 uL/mmHg: 5000 * (300 - 10) = 1,450,000 nL stored
    withdrawn = backoff_volume(300.0, 10.0, syringe, max_backoff=Volume.ml(1))
    assert withdrawn == Volume.ml(1)
    assert expected_release_bolus(300.0, 10.0, syringe, withdrawn) == Volume(450_000)
    assert expected_release_bolus(300.0, 10.0, syringe, withdrawn) <= ECRI_MAX_RELEASE_BOLUS


@pytest.mark.req("OI-ALM-3")
def test_nothing_to_withdraw_at_or_below_baseline() -> None:
    lvp = LineCompliance(1000)
    assert backoff_volume(15.0, 20.0, lvp, Volume.ml(1)) == Volume(0)
    assert backoff_volume(20.0, 20.0, lvp, Volume.ml(1)) == Volume(0)
    assert expected_release_bolus(15.0, 20.0, lvp, Volume(0)) == Volume(0)


@pytest.mark.req("OI-ALM-3")
@given(pressure=pressures, baseline=pressures, compliance=compliances, bound=bounds)
def test_back_off_is_never_negative_never_beyond_its_bound_and_never_below_baseline(
    pressure: float, baseline: float, compliance: LineCompliance, bound: Volume
) -> None:
    withdrawn = backoff_volume(pressure, baseline, compliance, bound)
    stored_nl = compliance.nl_per_mmhg * (pressure - baseline)  # float: independent of the exact path
    assert 0 <= withdrawn.nl <= bound.nl
    assert withdrawn.nl <= max(stored_nl, 0.0) + 1e-6 * abs(stored_nl) + 1
    residual = expected_release_bolus(pressure, baseline, compliance, withdrawn)
    assert residual.nl >= 0
    # What was withdrawn plus what remains is what the line stored (rounding: under 1 nL each way).
    if stored_nl > 0:
        assert math.isclose(withdrawn.nl + residual.nl, stored_nl, rel_tol=1e-9, abs_tol=1.0)
    if bound.nl >= stored_nl:
        assert residual.nl <= 1


@pytest.mark.req("OI-ALM-3")
def test_bad_arguments_are_refused() -> None:
    lvp = LineCompliance(1000)
    with pytest.raises(ConfigError):
        backoff_volume(300.0, 10.0, lvp, Volume(-1))
    with pytest.raises(ConfigError):
        expected_release_bolus(300.0, 10.0, lvp, Volume(-1))
    with pytest.raises(InputError) as error:
        backoff_volume(math.nan, 10.0, lvp, Volume.ml(1))
    assert error.value.where == "pressure_mmhg"
    with pytest.raises(InputError) as error:
        expected_release_bolus(300.0, math.inf, lvp, Volume(0))
    assert error.value.where == "baseline_mmhg"
