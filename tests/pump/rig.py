"""A pump core on virtual hardware, for integration tests (no mocks: the real core and the real simulator)."""

from __future__ import annotations

import numpy as np

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.pump.programs import ContinuousProgram, KvoSettings, RateLimits
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import ChannelConfig, SyringeSize, VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, FlowRate, Instant, Volume

KVO = KvoSettings(enabled=True, rate=FlowRate.ml_h(1))


class Rig:
    """``channels`` channels of one mechanism, the core powered on and past its self-test."""

    def __init__(
        self,
        channels: int = 1,
        *,
        syringe: bool = False,
        seed: int = 1,
        settings: ChannelSettings | None = None,
        world: VirtualPumpConfig | None = None,
    ) -> None:
        base = ChannelConfig.syringe_pump(SyringeSize.ML50) if syringe else ChannelConfig()
        config = world or VirtualPumpConfig(channels=(base,) * channels, watchdog_window=WATCHDOG_WINDOW)
        self.world = VirtualPump(config, np.random.default_rng(seed))
        kvo = KvoSettings(enabled=True, rate=FlowRate.ml_h("0.1") if syringe else FlowRate.ml_h(1))
        chosen = settings or ChannelSettings(kvo=kvo)
        self.pump = Pump(self.world.hardware, self.world.calibrations, PumpConfig(channels=(chosen,) * channels))
        self.driver = Driver(self.world, self.pump)
        self.run_for(Duration.s(1))

    @property
    def now(self) -> Instant:
        return self.world.now

    def run_for(self, d: Duration) -> None:
        """Run ``d`` of pump time; services first, as the driver does after any clinician action."""
        self.driver.service()
        self.driver.run_until(self.world.now + d)

    def limits(self, channel: int = 0) -> RateLimits:
        return RateLimits.of(self.world.calibrations[channel])

    def continuous(self, rate_ml_h: str, vtbi_ml: str | None = None, channel: int = 0) -> ContinuousProgram:
        vtbi = None if vtbi_ml is None else Volume.ml(vtbi_ml)
        return ContinuousProgram(rate=FlowRate.ml_h(rate_ml_h), vtbi=vtbi, limits=self.limits(channel))

    def start(self, rate_ml_h: str, vtbi_ml: str | None = None, channel: int = 0) -> None:
        self.pump.program(channel, self.continuous(rate_ml_h, vtbi_ml, channel))
        self.pump.start(channel)

    def events(self, kind: EventKind, channel: int | None = None) -> list[LoggedEvent]:
        return [e for e in self.pump.log.events() if e.kind is kind and (channel is None or e.channel == channel)]

    def raised(self, code: AlarmCode) -> list[LoggedEvent]:
        return [e for e in self.events(EventKind.ALARM_RAISED) if e.data.get("code") == code.value]

    def delivered(self, channel: int = 0) -> Volume:
        c = self.pump.channels[channel].live_counters()
        return c.delivered + c.kvo

    def patient_ml(self, channel: int = 0) -> float:
        return self.world.channel(channel).truth().patient_ml

    def moving_forward(self, channel: int = 0, over: Duration = Duration.s(10)) -> bool:
        """True if the motor issues forward steps during the next ``over``."""
        before = self.world.hardware.channels[channel].motor.issued_steps()
        self.run_for(over)
        return self.world.hardware.channels[channel].motor.issued_steps() > before
