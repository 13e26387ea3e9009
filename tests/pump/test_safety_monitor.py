"""The safety monitor is independent: it catches a delivery controller (or driver) that misbehaves.

A misbehaving controller is simulated by commanding the real virtual motor behind the core's back, as
a firmware bug in the controller would; the monitor sees it only through its own sensor reads.
"""

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration

from rig import Rig


def _runaway(rig: Rig, steps: int) -> None:
    rig.world.hardware.channels[0].motor.move(steps, Duration.s(10))
    rig.driver.run_until(rig.now + Duration.s(15))


@pytest.mark.req("OI-SAFE-2", "OI-SAFE-3")
def test_over_infusion_by_a_runaway_controller_forces_failsafe() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(3))
    _runaway(rig, 40_000)  # 2.5 mL in 10 s, far above the authorised 25 mL/h
    rig.run_for(Duration.min(1))
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE
    assert not rig.moving_forward(0)


@pytest.mark.req("UMN-GPCA-REQ-22", "OI-SAFE-3")
def test_reverse_delivery_beyond_back_off_forces_failsafe() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(3))
    rig.run_for(Duration.s(1))  # the monitor has just seen the furthest point reached
    _runaway(rig, -20_000)  # withdraws about 1.25 mL from the patient line
    rig.run_for(Duration.min(1))
    assert rig.raised(AlarmCode.REVERSE_DELIVERY)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OI-SAFE-2")
def test_under_infusion_by_a_controller_that_stops_commanding_forces_failsafe() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(2))
    motor = rig.world.hardware.channels[0].motor
    for _ in range(8):  # the controller's moves are cancelled right after each service
        rig.run_for(Duration.s(1))
        motor.stop()
        rig.driver.run_until(rig.now + Duration.min(1))
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OI-SAFE-1")
def test_normal_delivery_never_trips_the_monitor() -> None:
    rig = Rig()
    rig.start("250", "20")
    rig.run_for(Duration.min(10))
    assert rig.pump.channels[0].state is ChannelState.KVO
    assert not [e for e in rig.pump.log.events() if e.data.get("code") in {"delivery_accuracy", "motion_mismatch"}]
