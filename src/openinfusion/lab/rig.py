"""The virtual test bench: one pump channel on virtual hardware, set up as IEC 60601-2-24's apparatus.

The standard weighs what the pump delivers into a collecting vessel open to the air and level with the
pump (``shared/reference/standards-and-safety.md`` §2.2, §2.3). The bench builds that from the
simulator: the pump core (:class:`~openinfusion.pump.pump.Pump`) on a :class:`~openinfusion.sim.VirtualPump`
whose channel ends in an outlet at 0 mmHg with no patient movement, at head height 0, water at 22 °C;
the LVP set keeps its 20G cannula and the syringe its 22G one as the outlet restriction. The balance reads
the simulator's true cumulative volume through the outlet (``cumulative_patient_ml``), tared when the
infusion starts. The driver, the watchdog window and the power-on sequence are those of
:class:`~openinfusion.sim.run.Simulation`, so the pump under test is the one ``openinfusion simulate`` runs
(with KVO off: the program has no VTBI).

Time on the bench is measured from the start of the infusion (:data:`~openinfusion.sim.run.START`, one
second after power-on, when the self-test has finished).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from openinfusion.errors import ConfigError
from openinfusion.lab.errors import AnalysisError
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.pump.programs import ContinuousProgram, KvoSettings, RateLimits
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.sensing.flow import LineCompliance
from openinfusion.pump.sensing.occlusion import OcclusionConfig, Sensitivity
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.arrays import F64
from openinfusion.sim.driver import Driver
from openinfusion.sim.line import PA_PER_MMHG, nominal_compliance_nl_per_mmhg
from openinfusion.sim.params import ChannelConfig, PatientParams, SyringeSize, VirtualPumpConfig
from openinfusion.sim.run import START, WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Instant, format_decimal

OPEN_OUTLET: Final = PatientParams(venous_mmhg=0.0, spike_rate_per_h=0.0, step_rate_per_h=0.0)
PROGRESS_STEP: Final = Duration.min(5)  # simulated time between progress reports
UL_PER_M3: Final = 1e9


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """One configuration under test: the mechanism (an LVP, or a syringe of ``syringe`` size), the set rate
    and the downstream occlusion sensitivity (HIGH alarms at the lowest threshold, LOW at the highest)."""

    mechanism: MechanismKind
    rate: FlowRate
    sensitivity: Sensitivity = Sensitivity.MEDIUM
    syringe: SyringeSize = SyringeSize.ML50
    set_compliance: int = 1  # the set is this many times as compliant as the pump is told (1, or 3 for a soft set)

    def __post_init__(self) -> None:
        if isinstance(self.set_compliance, bool) or self.set_compliance not in (1, 2, 3, 4):
            raise ConfigError("setup.set_compliance", f"must be 1 to 4 times the nominal, got {self.set_compliance!r}")
        if not isinstance(self.mechanism, MechanismKind):
            raise ConfigError("setup.mechanism", f"must be a MechanismKind, got {self.mechanism!r}")
        if not isinstance(self.rate, FlowRate) or self.rate.nl_per_h <= 0:
            raise ConfigError("setup.rate", f"must be a positive FlowRate, got {self.rate!r}")
        if not isinstance(self.sensitivity, Sensitivity):
            raise ConfigError("setup.sensitivity", f"must be a Sensitivity, got {self.sensitivity!r}")
        if not isinstance(self.syringe, SyringeSize):
            raise ConfigError("setup.syringe", f"must be a SyringeSize, got {self.syringe!r}")

    @property
    def pump_label(self) -> str:
        """``LVP`` or ``syringe 50/60 mL``, and ``3x compliant set`` when the set is softer than nominal."""
        pump = "LVP" if self.mechanism is MechanismKind.PERISTALTIC else f"syringe {self.syringe.value}"
        return pump if self.set_compliance == 1 else f"{pump}, {self.set_compliance}x compliant set"

    @property
    def label(self) -> str:
        """``LVP 25 mL/h``: what a table row calls this configuration."""
        return f"{self.pump_label} {format_decimal(self.rate.in_ml_h, 3)} mL/h"

    @property
    def key(self) -> str:
        """A short file-name-safe identifier: ``lvp-25``, ``syringe50-1``, ``lvp-0p5``."""
        pump = "lvp" if self.mechanism is MechanismKind.PERISTALTIC else f"syringe{self.syringe.name[2:]}"
        rate = format_decimal(self.rate.in_ml_h, 3).replace(".", "p")
        soft = "" if self.set_compliance == 1 else f"-soft{self.set_compliance}"
        return f"{pump}{soft}-{rate}"

    def nominal_config(self) -> ChannelConfig:
        """The channel as its label says: the default set for the mechanism, ending in the open outlet."""
        if self.mechanism is MechanismKind.SYRINGE:
            return replace(ChannelConfig.syringe_pump(self.syringe), patient=OPEN_OUTLET)
        return ChannelConfig(patient=OPEN_OUTLET)

    def channel_config(self) -> ChannelConfig:
        """The simulated channel: :meth:`nominal_config` with its tubing ``set_compliance`` times as compliant."""
        config = self.nominal_config()
        t, k = config.tubing, self.set_compliance
        soft = replace(t, compliance_ul_per_mmhg_per_m=t.compliance_ul_per_mmhg_per_m * k,
                       fixed_compliance_ul_per_mmhg=t.fixed_compliance_ul_per_mmhg * k)  # fmt: skip
        return replace(config, tubing=soft)


@dataclass(frozen=True, slots=True)
class BenchSeries:
    """Per-sample truth recorded on the bench, times in seconds since the infusion started (negative during
    the self-test)."""

    t_s: F64
    pressure_mmhg: F64  # true downstream line pressure
    outlet_ml: F64  # cumulative volume through the outlet (the balance, tared at t = 0)
    displaced_ml: F64  # cumulative volume the mechanism pushed into the line


def raised_codes(events: tuple[LoggedEvent, ...]) -> tuple[str, ...]:
    """Codes of the alarms raised among ``events``, in order of first raising, each once."""
    return tuple(dict.fromkeys(str(e.data.get("code")) for e in events if e.kind is EventKind.ALARM_RAISED))


class Rig:
    """A pump core on one virtual channel set up as the bench (see the module docstring), seeded.

    Usage: :meth:`start`, then :meth:`run_until` bench times; scenario controls between runs;
    :meth:`series` for the recorded truth, :attr:`pump` for the pump's own log.
    """

    def __init__(self, setup: Setup, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError("seed", f"must be a non-negative integer, got {seed!r}")
        self.setup = setup
        config = VirtualPumpConfig(channels=(setup.channel_config(),), watchdog_window=WATCHDOG_WINDOW)
        self.world = VirtualPump(config, np.random.default_rng(seed))
        told = LineCompliance(nominal_compliance_nl_per_mmhg(setup.nominal_config()))  # what the set's label says
        settings = ChannelSettings(
            kvo=KvoSettings(enabled=False, rate=ZERO_RATE),
            sensitivity=setup.sensitivity,
            occlusion=OcclusionConfig(compliance=told),
        )
        self.pump = Pump(self.world.hardware, self.world.calibrations, PumpConfig(channels=(settings,)))
        self.driver = Driver(self.world, self.pump)
        self._blocks: list[tuple[F64, F64, F64, F64]] = []

    @property
    def elapsed(self) -> Duration:
        """Bench time: since the infusion started (negative during the self-test)."""
        return self.bench_time(self.world.now)

    @staticmethod
    def bench_time(t: Instant) -> Duration:
        """Bench time of the pump-clock instant ``t`` (the virtual pump's clock runs true)."""
        return t.since(START)

    def start(self) -> None:
        """Let the self-test finish, then program the set rate (no VTBI, KVO off) and start at bench time 0."""
        self.driver.run_until(START)
        self._keep()
        limits = RateLimits.of(self.world.calibrations[0])
        self.pump.program(0, ContinuousProgram(rate=self.setup.rate, vtbi=None, limits=limits))
        self.pump.start(0)
        self.driver.service()

    def run_until(self, t: Duration, progress: Callable[[Duration], None] | None = None) -> None:
        """Run the pump on the bench up to bench time ``t``; ``progress`` gets the bench time every 5 min."""
        end = START + t
        while self.world.now < end:
            self.driver.run_until(min(end, Instant(self.world.now.us + PROGRESS_STEP.us)))
            self._keep()
            if progress is not None:
                progress(self.elapsed)

    def occlude(self, on: bool) -> None:
        """Close (``on``) or open the downstream line, as the standard's stopcock does."""
        self.world.channel(0).set_occlusion("downstream", on)
        self.driver.service()

    def _keep(self) -> None:
        block = self.world.drain_series()
        channel = block.channels[0]
        t_s = block.t_s - START.us / 1e6
        self._blocks.append((t_s, channel.downstream_mmhg, channel.cumulative_patient_ml, channel.displaced_ml))

    def series(self) -> BenchSeries:
        """Everything recorded since power-on, the balance and mechanism volumes tared at t = 0."""
        self._keep()
        t_s, pressure, outlet, displaced = (np.concatenate([b[i] for b in self._blocks]) for i in range(4))
        if t_s.shape[0] == 0 or t_s[0] > 0 or t_s[-1] < 0:
            raise AnalysisError("series", "nothing recorded from the start yet: call start() and run first")
        return BenchSeries(
            t_s, pressure, outlet - np.interp(0.0, t_s, outlet), displaced - np.interp(0.0, t_s, displaced)
        )

    def events(self, since_seq: int = 0) -> tuple[LoggedEvent, ...]:
        """The pump's event log after ``since_seq``."""
        return self.pump.log.events(since_seq)

    @property
    def state(self) -> ChannelState:
        return self.pump.channels[0].state

    @property
    def threshold_mmhg(self) -> int:
        """The downstream occlusion threshold of the selected sensitivity (mmHg)."""
        settings = self.pump.channels[0].settings
        return settings.occlusion.threshold_mmhg(settings.sensitivity)

    @property
    def line_tau_s(self) -> float:
        """Time constant ``R C`` (s) of the simulated open line: how fast pressure decays on release."""
        return self.world.channel(0).line.tau_s

    @property
    def line_compliance_ul_per_mmhg(self) -> float:
        """Compliance of the simulated line including the mechanism (uL/mmHg)."""
        return self.world.channel(0).line.compliance_m3_per_pa * PA_PER_MMHG * UL_PER_M3

    def stored_ml(self) -> float:
        """Volume held in the line's compliance now, above its rest pressure (mL): what a release gives."""
        return self.world.channel(0).truth().stored_ml
