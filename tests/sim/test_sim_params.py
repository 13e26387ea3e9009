"""Configuration is validated when built: a bad value names its field."""

from __future__ import annotations

from dataclasses import replace

import pytest
from simkit import make_pump

from openinfusion.errors import ConfigError, ScenarioError
from openinfusion.sim import ChannelConfig, SyringeSize, VirtualPumpConfig
from openinfusion.sim.params import BatteryParams, PeristalticParams, SyringeParams, TubingParams
from openinfusion.units import Duration, FlowRate, Instant, Volume


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: ChannelConfig(pump_height_m=float("nan")), "channel.pump_height_m"),
        (lambda: ChannelConfig(fluid_temperature_c=80.0), "channel.fluid_temperature_c"),
        (lambda: VirtualPumpConfig(channels=()), "pump.channels"),
        (lambda: VirtualPumpConfig(sample_period=Duration.s("0.2")), "pump.sample_period"),
        (lambda: PeristalticParams(steps_per_rev=0), "peristaltic.steps_per_rev"),
        (lambda: PeristalticParams(fingers=True), "peristaltic.fingers"),
        (lambda: PeristalticParams(min_rate=FlowRate.ml_h("0.015")), "peristaltic.resolution"),
        (lambda: SyringeParams(size=SyringeSize.ML3, fill=Volume.ml(5)), "syringe.fill"),
        (lambda: TubingParams(1.0, -1.0, 0.1), "tubing.length_m"),
        (lambda: BatteryParams(state_of_health=1.5), "battery.state_of_health"),
    ],
)
def test_invalid_configuration_names_the_field(build: object, where: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build()  # type: ignore[operator]
    assert excinfo.value.where == where


def test_scenario_controls_refuse_what_cannot_happen() -> None:
    pump = make_pump(ChannelConfig.syringe_pump())
    with pytest.raises(ScenarioError, match="no upstream line"):
        pump.channel(0).set_occlusion("upstream", True)
    with pytest.raises(ScenarioError, match=r"within -3\.\.3 m"):
        pump.channel(0).set_head_height(12.0)
    with pytest.raises(ScenarioError, match="positive"):
        pump.channel(0).inject_air(Volume(0))
    with pytest.raises(ScenarioError, match="before now"):
        pump.advance(Instant(-1))
    with pytest.raises(ConfigError, match="positive"):
        pump.hardware.channels[0].motor.move(10, Duration(0))


def test_defaults_are_one_lvp_channel_at_ten_hertz() -> None:
    config = VirtualPumpConfig()
    assert config.sample_period == Duration.s("0.1")
    assert len(config.channels) == 1
    assert replace(config.channels[0]).mechanism.value == "peristaltic"
    assert ChannelConfig.syringe_pump(SyringeSize.ML20).syringe.size is SyringeSize.ML20
