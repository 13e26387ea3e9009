"""Flow accuracy by the trumpet-curve method of IEC 60601-2-24: the analysis, as pure functions.

Theory of operation
-------------------
The standard's apparatus weighs what the pump delivers on a balance read every Δt = 0.5 min for
T = 120 min; the trumpet curve uses the second hour (``shared/reference/standards-and-safety.md``
§2.2, [C]). From the readings ``W_i`` (g), with ``d`` the density (g/mL) and ``r`` the set rate:

* flow per interval: ``Q_i = 60 (W_i - W_{i-1}) / (d Δt)`` in mL/h (Δt in min);
* for an observation window of ``p`` intervals (2, 5, 11, 19 and 31 min, so ``p`` = 4, 10, 22, 38, 62),
  the error of the window starting at interval ``j`` is ``(100/p) Σ_{i=j}^{j+p-1} (Q_i - r)/r`` (%), and
  ``Ep(max)``/``Ep(min)`` are its maximum and minimum over the ``m = n - p + 1`` sliding positions;
* the mean error over the analysis period is ``A = 100 (Q̄ - r)/r`` (%).

These formulas are tagged [U] in the reference (§2.2): the usual form, not yet checked against the
standard's text. A pump that holds its rate on average but pulses within a cycle shows a *trumpet*:
short windows see the pulsation (wide), long windows average it out (narrow).

Everything here is numpy over arrays whose names carry their units, and deterministic: no clock, no
randomness, no I/O. The balance model (:func:`balance_readings_g`) quantises to the balance's
resolution; the density cancels except through that quantisation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from openinfusion.lab.errors import AnalysisError
from openinfusion.sim.arrays import F64
from openinfusion.units import US_PER_S, Duration, FlowRate

BALANCE_INTERVAL: Final = Duration.s(30)  # Δt = 0.5 min (standards-and-safety.md §2.2)
TEST_DURATION: Final = Duration.min(120)  # T = 120 min
ANALYSIS_START: Final = Duration.min(60)  # the trumpet uses the second hour
IEC_WINDOWS: Final = tuple(Duration.min(m) for m in (2, 5, 11, 19, 31))  # observation windows, §2.2
WATER_DENSITY_G_PER_ML: Final = 0.998  # water at ~21 °C, no evaporation (the balance is covered)
BALANCE_RESOLUTION_G: Final = 0.0001  # 0.1 mg, an analytical balance


def _finite(values: F64, where: str) -> F64:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise AnalysisError(where, f"expected a 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise AnalysisError(where, "contains a non-finite value")
    return array


def _positive(value: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise AnalysisError(where, f"must be a positive number, got {value!r}")
    return float(value)


def _set_rate_ml_h(set_rate: FlowRate) -> float:
    if not isinstance(set_rate, FlowRate) or set_rate.nl_per_h <= 0:
        raise AnalysisError("set_rate", f"must be a positive FlowRate, got {set_rate!r}")
    return float(set_rate.in_ml_h)


def balance_readings_g(
    volume_ml: F64,
    *,
    density_g_per_ml: float = WATER_DENSITY_G_PER_ML,
    resolution_g: float = BALANCE_RESOLUTION_G,
) -> F64:
    """What a balance shows (g) for delivered volumes ``volume_ml`` (mL): ``volume * density`` rounded to the
    nearest ``resolution_g`` (ties to even)."""
    volume = _finite(volume_ml, "volume_ml")
    density = _positive(density_g_per_ml, "density_g_per_ml")
    resolution = _positive(resolution_g, "resolution_g")
    readings_g: F64 = np.rint(volume * density / resolution) * resolution
    return readings_g


def flow_from_balance_ml_h(
    mass_g: F64, interval: Duration = BALANCE_INTERVAL, *, density_g_per_ml: float = WATER_DENSITY_G_PER_ML
) -> F64:
    """Flow per interval (mL/h) from consecutive balance readings: ``Q_i = 60 (W_i - W_{i-1}) / (d Δt)``.

    ``n + 1`` readings give ``n`` flows; ``interval`` is Δt, the time between readings.
    """
    mass = _finite(mass_g, "mass_g")
    if mass.shape[0] < 2:
        raise AnalysisError("mass_g", f"needs at least 2 readings, got {mass.shape[0]}")
    if interval.us <= 0:
        raise AnalysisError("interval", f"must be positive, got {interval}")
    density = _positive(density_g_per_ml, "density_g_per_ml")
    interval_min = interval.us / (60 * US_PER_S)
    flow_ml_h: F64 = 60.0 * np.diff(mass) / (density * interval_min)
    return flow_ml_h


def window_samples(window: Duration, interval: Duration = BALANCE_INTERVAL) -> int:
    """``p``: the number of intervals in ``window`` (it must be a positive whole number of them)."""
    if interval.us <= 0:
        raise AnalysisError("interval", f"must be positive, got {interval}")
    if window.us <= 0 or window.us % interval.us:
        raise AnalysisError("window", f"{window} is not a positive whole number of {interval} intervals")
    return window.us // interval.us


def window_errors_percent(flow_ml_h: F64, set_rate: FlowRate, p: int) -> F64:
    """The error (%) of every window of ``p`` consecutive intervals: ``(100/p) Σ (Q_i - r)/r``, one per
    sliding position (``n - p + 1`` of them)."""
    flow = _finite(flow_ml_h, "flow_ml_h")
    rate_ml_h = _set_rate_ml_h(set_rate)
    if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= flow.shape[0]:
        raise AnalysisError("window", f"needs 1 <= p <= {flow.shape[0]} intervals, got {p!r}")
    error_percent = 100.0 * (flow - rate_ml_h) / rate_ml_h
    sums = np.cumsum(np.concatenate(([0.0], error_percent)))
    window_percent: F64 = (sums[p:] - sums[:-p]) / p
    return window_percent


def mean_error_percent(flow_ml_h: F64, set_rate: FlowRate) -> float:
    """``A = 100 (Q̄ - r) / r`` (%) over all the intervals of ``flow_ml_h``."""
    flow = _finite(flow_ml_h, "flow_ml_h")
    if flow.shape[0] == 0:
        raise AnalysisError("flow_ml_h", "is empty")
    rate_ml_h = _set_rate_ml_h(set_rate)
    return float(100.0 * (np.mean(flow) - rate_ml_h) / rate_ml_h)


@dataclass(frozen=True, slots=True)
class TrumpetPoint:
    """One observation window: its length and the extreme window errors Ep(max), Ep(min) (%)."""

    window: Duration
    ep_max_percent: float
    ep_min_percent: float

    @property
    def spread_percent(self) -> float:
        """Ep(max) - Ep(min) (%): the width of the trumpet at this window."""
        return self.ep_max_percent - self.ep_min_percent


@dataclass(frozen=True, slots=True)
class Trumpet:
    """A trumpet curve: one point per window (shortest first) and the mean error A (%)."""

    points: tuple[TrumpetPoint, ...]
    mean_error_percent: float

    @property
    def narrows(self) -> bool:
        """True when the trumpet never widens as the window grows (Ep(max) - Ep(min) non-increasing)."""
        spreads = [point.spread_percent for point in self.points]
        return all(later <= earlier for earlier, later in itertools.pairwise(spreads))


def trumpet(
    flow_ml_h: F64,
    set_rate: FlowRate,
    interval: Duration = BALANCE_INTERVAL,
    windows: tuple[Duration, ...] = IEC_WINDOWS,
) -> Trumpet:
    """The trumpet curve of the flows (mL/h, one per ``interval``) of an analysis period at ``set_rate``."""
    if not windows or list(windows) != sorted(windows):
        raise AnalysisError("windows", "must be given, shortest first")
    points = []
    for window in windows:
        errors = window_errors_percent(flow_ml_h, set_rate, window_samples(window, interval))
        points.append(TrumpetPoint(window, float(np.max(errors)), float(np.min(errors))))
    return Trumpet(tuple(points), mean_error_percent(flow_ml_h, set_rate))


def sample_at(t_s: F64, values: F64, at_s: F64) -> F64:
    """``values`` (sampled at increasing times ``t_s``) read at the times ``at_s``, which must lie within
    the record; between samples the value is interpolated linearly."""
    t = _finite(t_s, "t_s")
    v = _finite(values, "values")
    at = _finite(at_s, "at_s")
    if t.shape != v.shape or t.shape[0] == 0:
        raise AnalysisError("t_s", "times and values must be non-empty and of the same length")
    if np.any(np.diff(t) <= 0):
        raise AnalysisError("t_s", "times must increase")
    if at.shape[0] and (at.min() < t[0] or at.max() > t[-1]):
        raise AnalysisError("at_s", f"{at.min():g}..{at.max():g} s is outside the record {t[0]:g}..{t[-1]:g} s")
    read: F64 = np.interp(at, t, v)
    return read
