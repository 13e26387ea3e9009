"""Helpers for the simulator's tests: quiet configurations and a constant-rate motor driver."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from openinfusion.sim import ChannelConfig, SyringeSize, VirtualPump, VirtualPumpConfig
from openinfusion.sim.line import PA_PER_MMHG
from openinfusion.sim.params import PatientParams, PressureSensorParams
from openinfusion.units import Duration, Instant

# No movement artefacts, no sensor noise or calibration error: for tests that compare against equations.
QUIET = PatientParams(spike_rate_per_h=0.0, step_rate_per_h=0.0)
IDEAL_SENSOR = PressureSensorParams(offset_sd_mmhg=0.0, gain_sd_fraction=0.0, noise_sd_mmhg=0.0)


def lvp(**changes: Any) -> ChannelConfig:
    """A quiet LVP channel with ``changes``."""
    return replace(ChannelConfig(patient=QUIET), **changes)


def syringe(size: SyringeSize = SyringeSize.ML50, **changes: Any) -> ChannelConfig:
    """A quiet syringe channel of ``size`` with ``changes``."""
    return replace(ChannelConfig.syringe_pump(size), patient=QUIET, **changes)


def make_pump(*channels: ChannelConfig, seed: int = 1, **config: Any) -> VirtualPump:
    """A virtual pump with ``channels`` (one quiet LVP by default), seeded."""
    cfg = VirtualPumpConfig(channels=channels or (lvp(),), **config)
    return VirtualPump(cfg, np.random.default_rng(seed))


def steps_per_ml(pump: VirtualPump, channel: int = 0) -> float:
    """Motor steps per mL by the factory calibration's mean volume per step."""
    cal = pump.calibrations[channel]
    return cal.steps_per_rev / (cal.cumulative_nl[-1] / 1e6)


def drive(pump: VirtualPump, channel: int, rate_ml_h: float, seconds: float, chunk_s: float = 60.0) -> None:
    """Run ``channel``'s motor at the calibrated mean step rate for ``rate_ml_h`` for ``seconds``, in moves of
    ``chunk_s``; interrupts are ignored (the next move restarts from where ``advance`` stopped) except a
    brown-out, which ends the drive at once."""
    motor = pump.hardware.channels[channel].motor
    end = pump.now.us + round(seconds * 1e6)
    per_us = rate_ml_h / 3.6e9 * steps_per_ml(pump, channel)
    while pump.now.us < end and pump.powered:
        target = min(pump.now.us + round(chunk_s * 1e6), end)
        span = target - pump.now.us
        motor.move(round(per_us * span), Duration(span))
        pump.advance(Instant(target))
    motor.stop()


def wait(pump: VirtualPump, seconds: float) -> Instant:
    """Advance ``seconds`` (returns the time reached, earlier on an interrupt)."""
    return pump.advance(Instant(pump.now.us + round(seconds * 1e6)))


def sim_compliance_ul_per_mmhg(pump: VirtualPump, channel: int = 0) -> float:
    """The compliance the simulator uses for the line (tubing plus any syringe), in uL/mmHg."""
    return pump.channel(channel).line.compliance_m3_per_pa * PA_PER_MMHG * 1e9
