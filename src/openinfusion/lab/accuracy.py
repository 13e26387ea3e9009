"""The flow accuracy test on the virtual bench: run 2 h, weigh every 0.5 min, draw the trumpet.

The procedure of IEC 60601-2-24 (``shared/reference/standards-and-safety.md`` §2.2): run at the set rate
for T = 120 min, read the balance every Δt = 0.5 min, plot the flow per interval over the whole run
(the start-up curve) and the trumpet curve over the second hour. The analysis is
:mod:`openinfusion.lab.trumpet`; the published accuracy each configuration is held to is
:data:`CLAIMS` (§2.2 and §3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from openinfusion.lab.rig import Rig, Setup, raised_codes
from openinfusion.lab.trumpet import (
    ANALYSIS_START,
    BALANCE_INTERVAL,
    BALANCE_RESOLUTION_G,
    IEC_WINDOWS,
    TEST_DURATION,
    WATER_DENSITY_G_PER_ML,
    Trumpet,
    balance_readings_g,
    flow_from_balance_ml_h,
    sample_at,
    trumpet,
)
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.sim.arrays import F64
from openinfusion.units import Duration, FlowRate

SCHEMA: Final = "openinfusion.lab.trumpet/1"
DECIMALS: Final = 4  # figures in trumpet.json: far below the balance's resolution, stable across platforms


@dataclass(frozen=True, slots=True)
class Claim:
    """A published accuracy figure: the mean error must stay within +-``limit_percent``."""

    limit_percent: float
    source: str


CLAIMS: Final[dict[MechanismKind, Claim]] = {
    MechanismKind.PERISTALTIC: Claim(
        5.0,
        "B. Braun Infusomat Space: +-5 % typical by volume, trumpet method, 1 mL/h; BD Alaris GP +-5 % nominal "
        "(standards-and-safety.md §2.2, §3)",
    ),
    MechanismKind.SYRINGE: Claim(
        2.0, "B. Braun Perfusor compact plus: +-2 % at 1 mL/h (standards-and-safety.md §2.2, §3)"
    ),
}

SETUPS: Final = (
    Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(1)),
    Setup(mechanism=MechanismKind.PERISTALTIC, rate=FlowRate.ml_h(25)),
    Setup(mechanism=MechanismKind.SYRINGE, rate=FlowRate.ml_h(1)),
)


@dataclass(frozen=True, slots=True)
class AccuracyResult:
    """One configuration's flow accuracy test.

    ``startup_flow_ml_h[i]`` is the flow over the interval ending at ``startup_t_min[i]`` (the whole run);
    ``trumpet`` is the second hour's; ``balance_ml`` is the last balance reading over the density and
    ``pump_counted_ml`` the pump's own delivered counter at the end. ``alarms`` lists the codes the pump
    raised during the run and ``final_state`` its channel state at the end: a pump that stopped during the
    test shows here, not only as a poor curve.
    """

    setup: Setup
    seed: int
    startup_t_min: F64
    startup_flow_ml_h: F64
    trumpet: Trumpet
    balance_ml: float
    pump_counted_ml: float
    alarms: tuple[str, ...]
    final_state: str

    @property
    def claim(self) -> Claim:
        return CLAIMS[self.setup.mechanism]

    @property
    def passes_mean(self) -> bool:
        """The mean error A is within the published figure."""
        return abs(self.trumpet.mean_error_percent) <= self.claim.limit_percent

    def to_json(self) -> dict[str, Any]:
        """A JSON object with every figure rounded to :data:`DECIMALS` (deterministic for a seed)."""

        def r(x: float) -> float:
            return round(float(x), DECIMALS)

        return {
            "key": self.setup.key,
            "configuration": self.setup.label,
            "mechanism": self.setup.mechanism.value,
            "set_rate_ml_h": r(float(self.setup.rate.in_ml_h)),
            "mean_error_percent": r(self.trumpet.mean_error_percent),
            "trumpet": [
                {
                    "window_min": r(float(p.window.seconds) / 60),
                    "ep_max_percent": r(p.ep_max_percent),
                    "ep_min_percent": r(p.ep_min_percent),
                }
                for p in self.trumpet.points
            ],
            "trumpet_narrows": self.trumpet.narrows,
            "published_limit_percent": self.claim.limit_percent,
            "published_source": self.claim.source,
            "passes_mean_error": self.passes_mean,
            "balance_ml": r(self.balance_ml),
            "pump_counted_ml": r(self.pump_counted_ml),
            "alarms": list(self.alarms),
            "final_state": self.final_state,
            "startup_curve": {
                "t_min": [r(x) for x in self.startup_t_min],
                "flow_ml_h": [r(x) for x in self.startup_flow_ml_h],
            },
        }


def method_json() -> dict[str, Any]:
    """The method's fixed parameters, for the top of trumpet.json."""
    return {
        "interval_s": float(BALANCE_INTERVAL.seconds),
        "duration_min": float(TEST_DURATION.seconds) / 60,
        "analysis_from_min": float(ANALYSIS_START.seconds) / 60,
        "windows_min": [float(w.seconds) / 60 for w in IEC_WINDOWS],
        "density_g_per_ml": WATER_DENSITY_G_PER_ML,
        "balance_resolution_g": BALANCE_RESOLUTION_G,
        "formulas": "usual form, tagged [U] in standards-and-safety.md §2.2",
    }


def run_accuracy(setup: Setup, seed: int, progress: Callable[[float], None] | None = None) -> AccuracyResult:
    """Run ``setup`` on the bench for 2 h from a pump built from ``seed`` and analyse it; ``progress`` gets
    the fraction of the run done."""
    rig = Rig(setup, seed)
    rig.start()
    total = TEST_DURATION.us

    def report(t: Duration) -> None:
        if progress is not None:
            progress(min(1.0, t.us / total))

    rig.run_until(TEST_DURATION, report)
    series = rig.series()
    readings = TEST_DURATION.us // BALANCE_INTERVAL.us
    at_s: F64 = np.arange(readings + 1, dtype=np.float64) * float(BALANCE_INTERVAL.seconds)
    mass_g = balance_readings_g(sample_at(series.t_s, series.outlet_ml, at_s))
    flow_ml_h = flow_from_balance_ml_h(mass_g, BALANCE_INTERVAL)
    second_hour = flow_ml_h[ANALYSIS_START.us // BALANCE_INTERVAL.us :]
    counters = rig.pump.channels[0].counters
    return AccuracyResult(
        setup=setup,
        seed=seed,
        startup_t_min=at_s[1:] / 60.0,
        startup_flow_ml_h=flow_ml_h,
        trumpet=trumpet(second_hour, setup.rate),
        balance_ml=float(mass_g[-1]) / WATER_DENSITY_G_PER_ML,
        pump_counted_ml=counters.delivered.nl / 1e6,
        alarms=raised_codes(rig.events()),
        final_state=rig.state.value,
    )
