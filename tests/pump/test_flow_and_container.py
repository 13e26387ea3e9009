"""The optional flow and temperature sensors, and the container count: over-/under-infusion, free flow,
overheating, a low and an empty container (open-pca-requirements.md Table 4, EC7-EC9, EC20, EC21)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.hal import FlowReading
from openinfusion.pump.sensing.flowcheck import FlowChecker, FlowDeviation
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.params import ChannelConfig, FlowSensorParams, SyringeParams, SyringeSize, VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.units import Duration, FlowRate, Instant, Volume

from rig import KVO, Rig


def reading(start_s: int, end_s: int, ml: str) -> FlowReading:
    return FlowReading(Instant(start_s * 1_000_000), Instant(end_s * 1_000_000), Volume.ml(ml))


@pytest.mark.req("OPENPCA-R6-4-0-2")
def test_flow_while_stopped_is_free_flow_at_once() -> None:
    verdict = FlowChecker().update(reading(0, 10, "1"), FlowRate.ml_h(10), delivering=False, bolus=False)
    assert verdict.deviation is FlowDeviation.OVER and verdict.free_flow


@pytest.mark.req("OPENPCA-R6-4-0-2", "OPENPCA-R6-4-0-3")
@pytest.mark.parametrize(
    ("ml_per_min", "found"), [("0.2", FlowDeviation.OVER), ("0.1", None), ("0.05", FlowDeviation.UNDER)]
)
def test_a_deviation_is_judged_after_the_persistence(ml_per_min: str, found: FlowDeviation | None) -> None:
    checker = FlowChecker()  # 6 mL/h programmed is 0.1 mL/min; tolerance max(0.5 mL/h, 10 %)
    verdicts = [
        checker.update(reading(60 * i, 60 * (i + 1), ml_per_min), FlowRate.ml_h(6), delivering=True, bolus=False)
        for i in range(5)
    ]
    assert [v.decided for v in verdicts] == [False] * 4 + [True]  # 5 min for a basal rate
    assert verdicts[-1].deviation is found
    bolus = FlowChecker().update(reading(0, 60, "0.2"), FlowRate.ml_h(6), delivering=True, bolus=True)
    assert bolus.decided and bolus.deviation is FlowDeviation.OVER  # a bolus is judged after 1 min


def flow_rig(**channel: object) -> Rig:
    base = replace(ChannelConfig(), **channel)
    world = VirtualPumpConfig(channels=(base,), watchdog_window=WATCHDOG_WINDOW)
    return Rig(world=world)


@pytest.mark.req("OPENPCA-R6-4-0-2")
def test_a_set_out_of_the_pump_with_its_clamp_open_raises_over_infusion() -> None:
    rig = flow_rig(flow_sensor=FlowSensorParams())
    rig.start("50")
    rig.run_for(Duration.min(10))
    assert not rig.raised(AlarmCode.OVER_INFUSION)  # the flow matches the rate: no false alarm
    rig.world.channel(0).set_free_flow(True)
    rig.run_for(Duration.s(30))
    (raised,) = rig.raised(AlarmCode.OVER_INFUSION)
    assert "free flow" in str(raised.data["detail"])


@pytest.mark.req("OPENPCA-R6-4-0-8")
def test_an_overheated_pump_stops() -> None:
    rig = flow_rig(temperature_sensor=True)
    rig.start("50")
    rig.run_for(Duration.min(1))
    rig.world.channel(0).set_temperature(56.0)
    rig.run_for(Duration.min(6))  # the core looks at least every 5 min
    assert rig.raised(AlarmCode.OVERHEATED)
    assert rig.pump.channels[0].state is ChannelState.ALARM


@pytest.mark.req("OPENPCA-R6-8-0-9", "OPENPCA-R6-8-0-10")
def test_a_syringe_run_down_warns_then_stops_as_empty_not_as_a_motor_fault() -> None:
    config = replace(ChannelConfig.syringe_pump(SyringeSize.ML10), syringe=SyringeParams(size=SyringeSize.ML10,
                     fill=Volume.ml(3)))  # fmt: skip
    world = VirtualPumpConfig(channels=(config,), watchdog_window=WATCHDOG_WINDOW)
    rig = Rig(world=world, settings=ChannelSettings(kvo=KVO, container=Volume.ml(3)))
    rig.start("30")
    rig.run_for(Duration.min(10))
    low, empty = rig.raised(AlarmCode.RESERVOIR_LOW), rig.raised(AlarmCode.RESERVOIR_EMPTY)
    assert low and empty and low[0].t < empty[0].t
    assert not rig.raised(AlarmCode.MOTOR_FAULT)
    assert rig.pump.channels[0].state is ChannelState.ALARM
    assert rig.patient_ml() == pytest.approx(2.5, abs=0.1)  # stopped with Vers = 0.5 mL still in the syringe


@pytest.mark.req("OPENPCA-R6-8-0-10")
def test_a_syringe_driven_to_its_end_by_a_wrong_count_is_an_empty_syringe() -> None:
    config = replace(ChannelConfig.syringe_pump(SyringeSize.ML10), syringe=SyringeParams(size=SyringeSize.ML10,
                     fill=Volume.ml(2)))  # fmt: skip
    world = VirtualPumpConfig(channels=(config,), watchdog_window=WATCHDOG_WINDOW)
    told = Volume.ml("2.6")  # the pump believes there is a little more than there is
    rig = Rig(world=world, settings=ChannelSettings(kvo=KVO, container=told))
    rig.start("30")
    rig.run_for(Duration.min(10))
    assert rig.raised(AlarmCode.RESERVOIR_EMPTY) and not rig.raised(AlarmCode.MOTOR_FAULT)
    assert rig.pump.channels[0].state is not ChannelState.FAILSAFE
    assert float(np.round(rig.patient_ml(), 1)) == pytest.approx(2.0, abs=0.1)
