"""Failures a device driver reports (or suffers) reach the core as alarms, never as a crash.

These wrap a virtual device in a driver that fails on demand: its self-diagnosis reports a fault, or
its read raises, as a broken bus or a driver bug would.
"""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.hal import ChannelHardware, DoorSwitch, Encoder, LoadState, SensorHealth
from openinfusion.pump.programs import ContinuousProgram, RateLimits
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, FlowRate

from rig import KVO


class FailingEncoder:
    """An encoder whose interface reports a fault (signal loss) once ``failed`` is set."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.failed = False

    def counts(self) -> int:
        return self.inner.counts()

    def health(self) -> SensorHealth:
        return SensorHealth.FAULT if self.failed else self.inner.health()


class BrokenDoorSwitch:
    """A door switch whose bus read raises once ``broken`` is set."""

    def __init__(self, inner: DoorSwitch) -> None:
        self.inner = inner
        self.broken = False

    def state(self) -> LoadState:
        if self.broken:
            raise OSError("I2C read of the door switch timed out")
        return self.inner.state()


def _infusing(wrap: Callable[[ChannelHardware], ChannelHardware]) -> tuple[VirtualPump, Pump, Driver]:
    """A pump infusing 50 mL/h for a minute, with channel 1's devices passed through ``wrap``."""
    world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW), np.random.default_rng(5))
    hw = replace(world.hardware, channels=(wrap(world.hardware.channels[0]),))
    pump = Pump(hw, world.calibrations, PumpConfig(channels=(ChannelSettings(kvo=KVO),)))
    driver = Driver(world, pump)
    driver.run_until(world.now + Duration.s(1))
    limits = RateLimits.of(world.calibrations[0])
    pump.program(0, ContinuousProgram(rate=FlowRate.ml_h(50), vtbi=None, limits=limits))
    pump.start(0)
    driver.service()
    driver.run_until(world.now + Duration.min(1))
    return world, pump, driver


def _raised(pump: Pump) -> list[str]:
    return [str(e.data["code"]) for e in pump.log.events() if e.kind is EventKind.ALARM_RAISED]


@pytest.mark.req("OI-ALM-9", "OI-SAFE-3")
def test_encoder_reporting_a_fault_fails_safe() -> None:
    encoders: list[FailingEncoder] = []

    def wrap(ch: ChannelHardware) -> ChannelHardware:
        encoders.append(FailingEncoder(ch.encoder))
        return replace(ch, encoder=encoders[0])

    world, pump, driver = _infusing(wrap)
    encoders[0].failed = True
    driver.service()
    assert AlarmCode.ENCODER_FAULT.value in _raised(pump)
    assert pump.channels[0].state is ChannelState.FAILSAFE
    assert not world.hardware.channels[0].motor.status().moving


@pytest.mark.req("OI-SAFE-3")
def test_a_driver_that_raises_is_a_system_fault_and_stops_the_motor() -> None:
    doors: list[BrokenDoorSwitch] = []

    def wrap(ch: ChannelHardware) -> ChannelHardware:
        doors.append(BrokenDoorSwitch(ch.door))
        return replace(ch, door=doors[0])

    world, pump, driver = _infusing(wrap)
    doors[0].broken = True
    driver.service()
    alarms = [e for e in pump.log.events() if e.kind is EventKind.ALARM_RAISED]
    assert alarms[-1].data["code"] == AlarmCode.SYSTEM_FAULT.value
    assert "I2C" in str(alarms[-1].data["detail"])
    assert pump.channels[0].state is ChannelState.FAILSAFE
    assert not world.hardware.channels[0].motor.status().moving
