"""The air detector's periodic simulated-air check (OI-SAFE-10, campaign finding CF-6) on virtual hardware.

A detector that fails silently (it passes its power-on signal test but sees no bubble) must be caught while
delivering before a bubble over the care area's single-bubble limit can pass it; a healthy one never trips.
"""

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.safety import MAX_PERIOD
from openinfusion.pump.sensing.air import AIR_CHECK_MIN, air_check_interval
from openinfusion.sim.faults import AirDetectorFailure, FaultKind
from openinfusion.units import Duration, FlowRate, Instant, Volume

from rig import KVO, Rig

LD_SINGLE = Volume.ml("0.25")  # the LD care area's single-bubble limit (CF-6)


def _raised_at(rig: Rig, code: AlarmCode) -> list[Instant]:
    return [e.t for e in rig.raised(code)]


def test_the_check_interval_lets_half_the_single_limit_pass() -> None:
    at_max = FlowRate.ml_h(1200)
    assert air_check_interval(at_max, LD_SINGLE) == Duration.s("0.375")  # 0.125 mL at 1200 mL/h
    assert air_check_interval(FlowRate.ml_h(10), LD_SINGLE) == Duration.s(45)
    assert air_check_interval(at_max, Volume.ml("0.01")) == AIR_CHECK_MIN  # never a wake-up storm
    assert at_max.volume_in(AIR_CHECK_MIN) <= Volume.ml("0.034")  # under half of any limit from 0.067 mL


@pytest.mark.req("OI-SAFE-10", "OI-ALM-9", "UMN-GPCA-REQ-21")
@pytest.mark.parametrize("rate_ml_h", ["max", "100", "10"])
def test_a_silently_failed_detector_stops_delivery_before_an_over_limit_bubble_passes(rate_ml_h: str) -> None:
    rig = Rig(settings=ChannelSettings(kvo=KVO, air_single=LD_SINGLE))
    rate = rig.limits().max_rate if rate_ml_h == "max" else FlowRate.ml_h(rate_ml_h)
    rig.start(str(rate.in_ml_h))
    rig.run_for(Duration.min(1))
    failed_at, patient_before = rig.now, rig.patient_ml()
    rig.world.inject(AirDetectorFailure(self_test_fails=False), 0)
    assert rig.world.hardware.channels[0].air.self_test(), "the power-on signal test cannot see this failure"
    rig.world.channel(0).inject_air(Volume.ml("0.63"))  # CF-6's bubble, 2.5 times the limit, now in the set
    rig.driver.run_until(rig.now + air_check_interval(rate, LD_SINGLE) + Duration.s(30))  # no extra service

    (alarm,) = _raised_at(rig, AlarmCode.AIR_SENSOR_FAULT)
    assert alarm.since(failed_at) <= min(air_check_interval(rate, LD_SINGLE), MAX_PERIOD)  # a service or a tick
    pumped_unchecked = Volume.ml(round(rig.patient_ml() - patient_before, 6))
    assert pumped_unchecked <= Volume(LD_SINGLE.nl // 2) + Volume.ml("0.01"), "the stop came within the interval"
    assert rig.world.channel(0).truth().air_past_detector == Volume(0), "the bubble never passed the detector"
    assert not rig.moving_forward(), "delivery stays stopped"
    assert not rig.pump.reset_alarm(0, AlarmCode.AIR_SENSOR_FAULT), "no reset while the detector is failed"

    rig.world.clear(FaultKind.AIR_DETECTOR_FAILURE, channel=0)
    assert rig.pump.reset_alarm(0, AlarmCode.AIR_SENSOR_FAULT), "a repaired detector passes its check again"


@pytest.mark.req("OI-SAFE-10")
@pytest.mark.parametrize("rate_ml_h", ["1200", "100", "1"])
def test_a_healthy_detector_never_trips_its_check(rate_ml_h: str) -> None:
    rig = Rig(settings=ChannelSettings(kvo=KVO, air_single=LD_SINGLE))
    rig.start(rate_ml_h)
    for _ in range(4):
        rig.world.channel(0).inject_air(Volume.ml("0.02"))  # small bubbles the detector reports, under every limit
        rig.run_for(Duration.min(15))
    assert rig.delivered() > Volume(0)
    assert not rig.raised(AlarmCode.AIR_SENSOR_FAULT)
    assert not rig.raised(AlarmCode.AIR_IN_LINE)
