"""End to end on the virtual bench: the pump core on simulated hardware, measured by the bench's instruments."""

from __future__ import annotations

import pytest

from openinfusion.errors import ConfigError
from openinfusion.lab.accuracy import CLAIMS, run_accuracy
from openinfusion.lab.occlusion import ECRI_BOLUS_ML, OcclusionResult, OcclusionSetup, run_occlusion
from openinfusion.lab.rig import Rig, Setup
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.pump.sensing.occlusion import Sensitivity
from openinfusion.units import Duration, FlowRate

LVP_25 = Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(25))


def occlusion_at(ml_h: int, settle: Duration) -> OcclusionResult:
    setup = Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(ml_h), sensitivity=Sensitivity.HIGH)
    return run_occlusion(OcclusionSetup(setup=setup, settle=settle, limit=Duration.h(1)), seed=3)


@pytest.fixture(scope="module")
def slow_and_fast() -> tuple[OcclusionResult, OcclusionResult]:
    return occlusion_at(1, Duration.min(30)), occlusion_at(25, Duration.min(5))


@pytest.mark.req("OI-DEL-1")
def test_the_lvp_at_25_ml_h_draws_a_trumpet_within_the_published_accuracy() -> None:
    result = run_accuracy(LVP_25, seed=2)
    first, last = result.trumpet.points[0], result.trumpet.points[-1]
    assert first.spread_percent > last.spread_percent  # short windows see the pulsation, long ones average it
    assert first.spread_percent > 0.5  # not flat: the mechanism's cycle is visible at 2 min
    assert abs(result.trumpet.mean_error_percent) <= CLAIMS[MechanismKind.PERISTALTIC].limit_percent
    assert result.final_state == "infusing" and result.alarms == ()
    # 2 h at 25 mL/h is 50 mL; the balance and the pump's own counter agree with it and with each other
    assert result.balance_ml == pytest.approx(50.0, rel=0.05)
    assert result.balance_ml == pytest.approx(result.pump_counted_ml, rel=0.02)


@pytest.mark.req("OI-DEL-1", "OI-DEL-3")
def test_the_50_ml_syringe_at_1_ml_h_runs_the_whole_test_within_its_published_accuracy() -> None:
    result = run_accuracy(Setup(mechanism=MechanismKind.SYRINGE, rate=FlowRate.ml_h(1)), seed=1)
    assert result.final_state == "infusing" and result.alarms == ()
    assert abs(result.trumpet.mean_error_percent) <= CLAIMS[MechanismKind.SYRINGE].limit_percent


def test_the_same_seed_gives_the_same_results_and_another_seed_another_pump() -> None:
    one, again, other = (run_accuracy(LVP_25, seed=s).to_json() for s in (5, 5, 6))
    assert one == again
    assert one != other


@pytest.mark.req("OI-ALM-2")
def test_a_downstream_occlusion_alarms_later_at_1_ml_h_than_at_25_ml_h(
    slow_and_fast: tuple[OcclusionResult, OcclusionResult],
) -> None:
    slow, fast = slow_and_fast
    assert slow.time_to_alarm_s is not None and fast.time_to_alarm_s is not None
    assert slow.time_to_alarm_s > 3 * fast.time_to_alarm_s  # the pressure rises at Q / C
    for result in slow_and_fast:
        assert result.final_state == "alarm"  # delivery stopped, waiting for the operator
        assert result.other_alarms == ()
        # No later than the threshold allows: the pressure rises Q/C per second; the core looks every second while
        # it rises and its 1-s median filter lags, so allow 2 s of rise plus 10 mmHg of transducer error (offset
        # sd 2 mmHg, gain sd 1 %).
        rise_mmhg_s = float(result.occlusion.setup.rate.in_ml_h) * 1e3 / 3600 / result.compliance_ul_per_mmhg
        assert result.pressure_at_alarm_mmhg is not None
        assert result.pressure_at_alarm_mmhg <= result.threshold_mmhg + 2 * rise_mmhg_s + 10


@pytest.mark.req("OI-ALM-3")
def test_after_back_off_the_release_bolus_is_what_the_line_still_held_and_a_fraction_of_what_it_held_at_the_alarm(
    slow_and_fast: tuple[OcclusionResult, OcclusionResult],
) -> None:
    _, fast = slow_and_fast
    assert fast.bolus_ml is not None and fast.stored_at_release_ml is not None
    assert fast.pressure_at_alarm_mmhg is not None and fast.backed_off_ml is not None
    assert fast.bolus_ml > 0
    assert fast.bolus_ml == pytest.approx(fast.stored_at_release_ml, abs=1e-6)  # measured at the outlet
    held_at_alarm_ml = fast.compliance_ul_per_mmhg * (fast.pressure_at_alarm_mmhg - fast.pressure_before_mmhg) / 1e3
    assert fast.bolus_ml < 0.1 * held_at_alarm_ml
    assert fast.backed_off_ml > 0.5 * held_at_alarm_ml
    for result in slow_and_fast:
        assert result.bolus_ml is not None and result.bolus_ml <= ECRI_BOLUS_ML


def test_a_channel_that_stopped_before_the_stopcock_closes_voids_the_occlusion_test() -> None:
    # 50 mL at 100 mL/h runs out after 30 min: by 40 min the channel is no longer infusing.
    emptied = Setup(mechanism=MechanismKind.SYRINGE, rate=FlowRate.ml_h(100))
    result = run_occlusion(OcclusionSetup(setup=emptied, settle=Duration.min(40)), seed=1)
    assert result.void and result.state_at_occlusion != "infusing" and result.settle_alarms
    assert result.time_to_alarm_s is None and result.bolus_ml is None and result.passes_ecri is None


def test_a_rig_refuses_an_impossible_setup() -> None:
    with pytest.raises(ConfigError, match="positive FlowRate"):
        Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate(0))
    with pytest.raises(ConfigError, match="non-negative"):
        Rig(LVP_25, seed=-1)
