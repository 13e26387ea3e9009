"""Occlusion detection from line pressure: downstream (OI-ALM-2) and upstream (OI-ALM-4).

Theory of operation
-------------------
Physical model. With the line open, the downstream pressure settles at the venous pressure plus the
line's resistive drop, ``P_venous + R * Q``. When the line is blocked the mechanism keeps displacing
fluid into the line's compliance ``C`` and the pressure rises at ``dP/dt = Q / C``. On top: sensor
noise, ADC quantisation, spikes when the patient moves, and steps of the venous pressure when the
patient sits up or the arm is raised.

A fixed threshold alone is slow at low rates: at 1 mL/h into a 1 uL/mmHg set the pressure rises at
0.28 mmHg/s, so reaching 300 mmHg takes about 17 minutes, and hours for a syringe (the Canè Crono
manual gives ~5 h to alarm at 100 uL/h, ``shared/reference/standards-and-safety.md`` §3). The trend
path declares an occlusion as soon as the pressure is rising the way a blocked line rises *and* has
risen by a clinically meaningful amount, long before the threshold.

Per sample, vectorised over each batch (no loop per sample):

1. Causal median over ``spike_window``: spikes shorter than half that window vanish.
2. The filtered pressure is held in integer milli-mmHg, so every window sum below is exact integer
   arithmetic: a sample's result depends only on the samples in its windows, never on how the
   samples were split into batches (the core may sleep through steady flow and read one long batch).
3. Least-squares slope over the trend window and over each of its two halves. The window is long enough
   for a blocked line to rise ``trend_rise_mmhg`` over it (:func:`trend_window`): 30 s at usual rates,
   lengthening at low rates (6 min at 0.1 mL/h into an LVP set) so the slope of a slowly filling line
   stands out of the sensor noise and a slowly rising line never passes for a steady one (so the
   baseline does not creep up with it).
4. Baseline: the mean over the older half of the trend window at the last sample where the line was
   *steady* while pumping (``|slope| <= trend_factor * Q/C / 2``); a ramp that has just begun tips the
   slope before it reaches the older half, so the baseline does not follow the start of an occlusion.
   Before the first steady window it is the lowest filtered pressure seen, so a line blocked from the
   start (a clamp left closed) is caught too.
5. Threshold: filtered pressure above the threshold of the selected :class:`Sensitivity`.
6. Trend: pumping at ``Q > 0``, *both* half-window slopes ``>= trend_factor * Q/C`` and the rise above
   baseline ``>= min_rise_mmhg``, holding for ``trend_confirm``.

Why these guards: a step of venous pressure or a movement artefact puts its whole rise in one half of
the window, so the other half's slope stays near zero; a blocked line rises steadily through both
halves. The minimum rise keeps noise and slow drift from alarming; the confirmation time outlasts a
movement artefact. ``trend_factor`` tolerates a line up to ``1 / trend_factor`` times more compliant
than configured (configure the compliance from the stiffer end of the range for the set in use).

The detectors do not latch: the alarm system does. A pressure sensor that reports a fault, a gap in
the samples or a change of sampling period restarts the sample history (the baseline is kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

from openinfusion.errors import ConfigError, InputError
from openinfusion.pump.hal import PressureBatch, SensorHealth
from openinfusion.pump.sensing.flow import LineCompliance
from openinfusion.units import US_PER_S, Duration, FlowRate, Instant, Volume

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_MILLI: Final = 1000  # filtered pressures are held in integer milli-mmHg
_CLIP_MMHG: Final = 4000.0  # beyond any transducer's range; bounds the int64 window sums
_MAX_WINDOW_SAMPLES: Final = 1 << 19
_CHUNK_SAMPLES: Final = 1 << 19  # per vectorised pass; with the window, keeps every prefix sum below 2**61
_EMPTY_F: Final[FloatArray] = np.empty(0, dtype=np.float64)
_EMPTY_I: Final[IntArray] = np.empty(0, dtype=np.int64)

# ECRI: the downstream limit "should not exceed 20 psi (1,034 mm Hg)"; Agilia's lowest level is 50 mmHg
# (shared/reference/standards-and-safety.md §2.3 and §3).
_MIN_THRESHOLD_MMHG: Final = 50
_MAX_THRESHOLD_MMHG: Final = 1034
_VACUUM_MMHG: Final = -760  # gauge pressure cannot fall below absolute vacuum (sea level)
_LVP_SET_COMPLIANCE: Final = LineCompliance(1000)  # ~1 uL/mmHg, a typical LVP administration set
_MAX_TREND_WINDOW: Final = Duration.min(10)
_TOLERANCE_MMHG: Final = 1e-6  # a baseline equal to its window's mean (not held back by the creep limit)


class Sensitivity(Enum):
    """Downstream occlusion sensitivity. HIGH alarms at the lowest pressure, LOW at the highest."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class OcclusionCause(Enum):
    """Which test declared a downstream occlusion."""

    THRESHOLD = "threshold"  # filtered pressure above the sensitivity's threshold
    TREND = "trend"  # rising like a blocked line, and risen by at least the minimum rise
    VOLUME = "volume"  # the volume pumped since the baseline is held in the line as a blocked line holds it


def _whole(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"must be an integer number of mmHg, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class OcclusionConfig:
    """Occlusion detection settings (per channel; per care area later).

    Thresholds are gauge mmHg: ``high_sensitivity_mmhg < medium_sensitivity_mmhg < low_sensitivity_mmhg``
    within 50..1034 mmHg (ECRI: adjustable, at most 20 psi; ~4 psi = 207 mmHg suffices for most
    infusions, arterial ~310, epidural ~517; standards-and-safety.md §2.3). ``min_rise_mmhg`` (default
    40) is above the step a change of posture gives (30 cm of height is 22 mmHg) and below the lowest
    threshold. ``upstream_mmhg`` is negative: the suction a pump pulls against a blocked supply line.
    ``trend_window`` is the shortest trend window; at low rates it lengthens (up to 10 min) so that a blocked
    line rises at least ``trend_rise_mmhg`` over it, well out of the sensor noise (at 0.1 mL/h into an LVP
    set: 6 min). ``trend_factor`` (default 0.25) tolerates a set up to 4 times more compliant than
    ``compliance`` (a soft set, a long extension).
    """

    high_sensitivity_mmhg: int = 100
    medium_sensitivity_mmhg: int = 300
    low_sensitivity_mmhg: int = 600
    compliance: LineCompliance = _LVP_SET_COMPLIANCE
    trend_window: Duration = Duration.s(30)
    trend_rise_mmhg: int = 10
    trend_factor: float = 0.25
    min_rise_mmhg: int = 40
    trend_confirm: Duration = Duration.s(5)
    spike_window: Duration = Duration.s(1)
    upstream_mmhg: int = -100

    def __post_init__(self) -> None:
        high = _whole(self.high_sensitivity_mmhg, "occlusion.high_sensitivity_mmhg")
        medium = _whole(self.medium_sensitivity_mmhg, "occlusion.medium_sensitivity_mmhg")
        low = _whole(self.low_sensitivity_mmhg, "occlusion.low_sensitivity_mmhg")
        if not _MIN_THRESHOLD_MMHG <= high < medium < low <= _MAX_THRESHOLD_MMHG:
            raise ConfigError(
                "occlusion.thresholds",
                f"need {_MIN_THRESHOLD_MMHG} <= high ({high}) < medium ({medium}) < low ({low})"
                f" <= {_MAX_THRESHOLD_MMHG} mmHg",
            )
        if not isinstance(self.compliance, LineCompliance):
            raise ConfigError("occlusion.compliance", "must be a LineCompliance (nL/mmHg)")
        if not Duration.s(2) <= self.trend_window <= _MAX_TREND_WINDOW:
            raise ConfigError("occlusion.trend_window", f"must be 2 s to 10 min, got {self.trend_window}")
        if not 0 < _whole(self.trend_rise_mmhg, "occlusion.trend_rise_mmhg") <= 100:
            raise ConfigError("occlusion.trend_rise_mmhg", f"must be in 1..100 mmHg, got {self.trend_rise_mmhg}")
        factor = self.trend_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
            raise ConfigError("occlusion.trend_factor", f"must be a number in (0, 1], got {factor!r}")
        rise = _whole(self.min_rise_mmhg, "occlusion.min_rise_mmhg")
        if not 0 < rise < high:
            raise ConfigError("occlusion.min_rise_mmhg", f"must be in 1..{high - 1} mmHg, got {rise}")
        if not Duration(0) <= self.trend_confirm <= self.trend_window:
            raise ConfigError("occlusion.trend_confirm", f"must be 0 s to trend_window, got {self.trend_confirm}")
        if not Duration(0) <= self.spike_window <= Duration.s(5):
            raise ConfigError("occlusion.spike_window", f"must be 0 s to 5 s, got {self.spike_window}")
        upstream = _whole(self.upstream_mmhg, "occlusion.upstream_mmhg")
        if not _VACUUM_MMHG < upstream < 0:
            raise ConfigError("occlusion.upstream_mmhg", f"must be in {_VACUUM_MMHG + 1}..-1 mmHg, got {upstream}")

    def threshold_mmhg(self, sensitivity: Sensitivity) -> int:
        """The downstream threshold (mmHg) of ``sensitivity``."""
        match sensitivity:
            case Sensitivity.HIGH:
                return self.high_sensitivity_mmhg
            case Sensitivity.MEDIUM:
                return self.medium_sensitivity_mmhg
            case Sensitivity.LOW:
                return self.low_sensitivity_mmhg


@dataclass(frozen=True, slots=True)
class OcclusionVerdict:
    """Downstream verdict for one batch.

    When ``occluded``, ``cause`` says which test fired and the other fields are those of the first sample
    at which it fired (``at``); otherwise they are those of the batch's last sample and ``at`` is None.
    ``pressure_mmhg`` is the median-filtered pressure, ``baseline_mmhg`` the free-flow reference,
    ``slope_mmhg_s`` the trend-window slope; each is None until enough samples have been seen.
    """

    occluded: bool
    cause: OcclusionCause | None
    pressure_mmhg: float | None
    baseline_mmhg: float | None
    slope_mmhg_s: float | None
    at: Instant | None


@dataclass(frozen=True, slots=True)
class UpstreamVerdict:
    """Upstream verdict for one batch: the first sample (``at``) below the upstream threshold while pumping,
    else the batch's last filtered pressure and ``at`` None."""

    occluded: bool
    pressure_mmhg: float | None
    at: Instant | None


def _optional(value: np.float64 | float) -> float | None:
    return None if math.isnan(value) else float(value)


def _align_end(values: FloatArray, count: int) -> FloatArray:
    """``values`` belong to the last ``len(values)`` of ``count`` samples; NaN before them."""
    out = np.full(count, np.nan)
    out[count - values.shape[0] :] = values
    return out


def _chunks(batch: PressureBatch, size: int) -> Iterator[PressureBatch]:
    """``batch`` in consecutive parts of at most ``size`` samples."""
    for start in range(0, batch.count, size):
        yield PressureBatch(batch.first + batch.period * start, batch.period, batch.samples_mmhg[start : start + size])


class _MedianStream:
    """Causal median pre-filter over consecutive batches, in integer milli-mmHg.

    Keeps the last raw samples of the previous batch so the first windows of a batch are whole; a gap,
    a change of sampling period or :meth:`reset` starts the history again.
    """

    def __init__(self, spike_window: Duration) -> None:
        self._spike_window = spike_window
        self._period: Duration | None = None
        self._next: Instant | None = None
        self._tail: FloatArray = _EMPTY_F
        self.width = 1

    def reset(self) -> None:
        self._period = None
        self._next = None
        self._tail = _EMPTY_F

    def accept(self, batch: PressureBatch) -> bool:
        """Check ``batch`` and take it as the next one; True when it does not continue the history."""
        if batch.period.us <= 0:
            raise InputError("pressure.period", f"sampling period must be positive, got {batch.period}")
        if not np.all(np.isfinite(batch.samples_mmhg)):
            raise InputError("pressure.samples_mmhg", "non-finite pressure sample from a healthy sensor")
        restart = batch.period != self._period or batch.first != self._next
        if restart:
            self._period = batch.period
            self._tail = _EMPTY_F
            width = max(1, self._spike_window.us // batch.period.us)
            self.width = width + 1 - width % 2  # odd: the median is a sample, not an average
        self._next = batch.first + batch.period * batch.count
        return restart

    def filter(self, samples: FloatArray) -> IntArray:
        """Medians of the windows ending at the last ``len(samples)`` samples (fewer while warming up)."""
        raw = np.concatenate((self._tail, samples))
        self._tail = raw[max(0, raw.shape[0] - (self.width - 1)) :].copy()
        if raw.shape[0] < self.width:
            return _EMPTY_I
        # A centred median of odd width, kept where the window is whole, is the causal median of the
        # window ending ``width // 2`` samples later.
        half = self.width // 2
        centred: FloatArray = median_filter(raw, size=self.width, mode="nearest")
        median = centred[half : raw.shape[0] - half]
        return np.rint(np.clip(median, -_CLIP_MMHG, _CLIP_MMHG) * _MILLI).astype(np.int64)


def _window_slopes(c0: IntArray, c1: IntArray, n: int) -> FloatArray:
    """Least-squares slope (units per sample) of every ``n``-sample window, from prefix sums.

    ``c0``/``c1`` are the prefix sums of ``y[j]`` and ``j * y[j]``. All sums are exact integers; with
    ``k`` the index within a window, ``sum((k - (n-1)/2) * y) / (n (n^2 - 1) / 12)``.
    """
    s0 = c0[n:] - c0[:-n]
    starts = np.arange(s0.shape[0], dtype=np.int64)
    s1 = c1[n:] - c1[:-n] - starts * s0
    result: FloatArray = (2 * s1 - (n - 1) * s0) * (6.0 / (n * (n * n - 1)))
    return result


def _trend_stats(filtered: IntArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """For each whole ``n``-sample window of ``filtered``: slope, the lesser of its halves' slopes, and the
    mean of its older half."""
    if filtered.shape[0] < n:
        return _EMPTY_F, _EMPTY_F, _EMPTY_F
    zero = np.zeros(1, dtype=np.int64)
    c0 = np.concatenate((zero, np.cumsum(filtered)))
    c1 = np.concatenate((zero, np.cumsum(np.arange(filtered.shape[0], dtype=np.int64) * filtered)))
    half = n // 2
    count = filtered.shape[0] - n + 1
    halves = _window_slopes(c0, c1, half)
    lesser = np.minimum(halves[:count], halves[half : half + count])
    older_mean: FloatArray = (c0[half : half + count] - c0[:count]) / half
    return _window_slopes(c0, c1, n), lesser, older_mean


@dataclass(frozen=True, slots=True)
class _Geometry:
    """The config's durations in samples at one sampling period."""

    trend: int  # samples in the trend window (even, >= 4)
    confirm: int  # consecutive samples the trend condition must hold (>= 1)


def trend_window(config: OcclusionConfig, rate: FlowRate) -> Duration:
    """The trend window at ``rate``: long enough for a blocked line to rise ``trend_rise_mmhg`` (OI-ALM-2),
    at least ``trend_window`` and at most 10 min."""
    if rate.nl_per_h <= 0:
        return config.trend_window
    slope = config.compliance.blocked_slope_mmhg_s(rate)
    needed = Duration(math.ceil(config.trend_rise_mmhg / slope * US_PER_S))
    return min(max(config.trend_window, needed), _MAX_TREND_WINDOW)


def _geometry(config: OcclusionConfig, period: Duration, rate: FlowRate) -> _Geometry:
    """Window lengths in samples; the trend window is capped at ``_MAX_WINDOW_SAMPLES`` (fast sampling)."""
    trend = min(max(4, trend_window(config, rate).us // period.us), _MAX_WINDOW_SAMPLES)
    trend -= trend % 2
    return _Geometry(trend, max(1, config.trend_confirm.us // period.us))


class DownstreamOcclusionDetector:
    """Downstream occlusion detector (OI-ALM-2): threshold and trend, see the module's theory of operation.

    Deterministic, and its state is only its fields: the sample history needed to complete the windows,
    the baseline, and how long the trend condition has held. ``sensitivity`` may be changed between
    updates (the trend path does not depend on it).
    """

    def __init__(self, config: OcclusionConfig, sensitivity: Sensitivity = Sensitivity.MEDIUM) -> None:
        self.config = config
        self.sensitivity = sensitivity
        self._stream = _MedianStream(config.spike_window)
        self._filtered_tail: IntArray = _EMPTY_I
        self._run = 0  # consecutive samples, up to the last one, meeting the trend condition
        self._baseline: float | None = None  # from the last steady window while pumping
        self._baseline_u = math.inf  # baseline less its allowed creep since time 0 (see _limited_baseline)
        self._stepped = False  # the pressure stepped up since the last steady window
        self._pumped_total_nl = 0  # displaced since the detector started (the volume test)
        self._pumped_log: list[tuple[int, int]] = []  # (batch end us, total then), the last 20 min
        self._baseline_at_us: int | None = None  # when the line was at the baseline's level
        self._floor = math.nan  # lowest filtered pressure seen, the reference before a baseline exists

    def _reference_mmhg(self) -> float | None:
        return self._baseline if self._baseline is not None else _optional(self._floor)

    def wake_threshold_mmhg(self) -> float:
        """Pressure (mmHg) at which the ADC's watchdog should wake the core: baseline + min_rise / 2.

        Never above the sensitivity's threshold (the threshold itself while there is no baseline), so a
        core that sleeps through steady flow is awake before either test can fire.
        """
        threshold = float(self.config.threshold_mmhg(self.sensitivity))
        reference = self._reference_mmhg()
        return threshold if reference is None else min(threshold, reference + self.config.min_rise_mmhg / 2)

    def update(
        self, batch: PressureBatch, rate: FlowRate, pumping: bool, pumped: Volume = Volume(0)
    ) -> OcclusionVerdict:
        """Examine the downstream samples of ``batch``, pumped at ``rate`` when ``pumping``; ``pumped`` is the
        volume the mechanism displaced since the previous update (from the encoder).

        The threshold test applies whether or not the pump runs; the trend test only while pumping at a
        positive rate; the volume test (:meth:`_volume_test`) whenever something was pumped since the baseline.
        A batch from a faulty sensor is ignored (the sensor-fault alarm is the core's).
        """
        self._pumped_total_nl += max(pumped.nl, 0)
        if batch.health is not SensorHealth.OK or batch.count == 0:
            if batch.health is not SensorHealth.OK:
                self._restart()
            return OcclusionVerdict(False, None, None, self._reference_mmhg(), None, None)
        if self._stream.accept(batch):
            self._restart_windows()
        geometry = _geometry(self.config, batch.period, rate if pumping else FlowRate(0))
        keep = _geometry(self.config, batch.period, FlowRate(1)).trend  # the longest window: history to keep
        verdicts = [self._examine(chunk, geometry, keep, rate, pumping) for chunk in _chunks(batch, _CHUNK_SAMPLES)]
        found = next((v for v in verdicts if v.occluded), None)
        self._pumped_log.append((batch.last_time.us, self._pumped_total_nl))
        horizon = batch.last_time.us - _MAX_TREND_WINDOW.us * 2
        while len(self._pumped_log) > 1 and self._pumped_log[1][0] <= horizon:
            self._pumped_log.pop(0)
        return found or self._volume_test(batch, geometry, verdicts[-1])

    def _pumped_since(self, t_us: int) -> int:
        """Volume (nL) displaced since ``t_us``, counted at the ends of the batches that reported it."""
        before = [total for at, total in self._pumped_log if at <= t_us]
        return self._pumped_total_nl - (before[-1] if before else 0)

    def _volume_test(self, batch: PressureBatch, g: _Geometry, last: OcclusionVerdict) -> OcclusionVerdict:
        """Pulsed delivery (intermittent doses, many small boluses, OI-ALM-2): each stroke into a blocked line
        stays in it, so the pressure above the baseline holds what was pumped since: ``V / C``.

        Declared when, at the batch's end, the filtered pressure has held at least ``min_rise`` above the baseline
        for ``trend_confirm`` and that rise is what the volume pumped since the baseline explains: between
        ``trend_factor * V / C`` (a set up to 4x softer) and ``1.5 * V / C`` (a step of venous pressure, which no
        pumped volume explains, is not an occlusion). An open line lets a stroke go within a second or two.
        """
        baseline, since = self._baseline, self._baseline_at_us
        tail = self._filtered_tail[-g.confirm :] / _MILLI
        pumped_nl = 0 if since is None else self._pumped_since(since)
        if baseline is None or pumped_nl <= 0 or tail.shape[0] < g.confirm:
            return last
        config = self.config
        rise = float(np.min(tail)) - baseline
        explained = pumped_nl / config.compliance.nl_per_mmhg
        if rise < config.min_rise_mmhg or not config.trend_factor * explained <= rise <= 1.5 * explained:
            return last
        return OcclusionVerdict(True, OcclusionCause.VOLUME, float(tail[-1]), baseline, last.slope_mmhg_s,
                                batch.last_time)  # fmt: skip

    def _restart(self) -> None:
        self._stream.reset()
        self._restart_windows()

    def _restart_windows(self) -> None:
        self._filtered_tail = _EMPTY_I
        self._run = 0

    def _limited_baseline(
        self, chunk: PressureBatch, steady: Bools, slope: FloatArray, mean: FloatArray, blocked_slope: float
    ) -> FloatArray:
        """The baseline at each sample (held from the last steady one; NaN before any).

        A steady window's mean becomes the baseline, but it may rise only ``min_rise / 2`` per hour, unless the
        pressure stepped up (a slope of at least twice a blocked line's since the last steady window: the pump
        raised, the patient sat up), which no line filling at ``Q/C`` can do. So a line that fills slowly and in
        pulses (an LVP cam's dead zone holds the pressure still for minutes at 0.1 mL/h) never drags its
        reference up with it, and the back-off (``Channel._back_off``) stops at the pressure before the occlusion.
        """
        count = steady.shape[0]
        index = np.arange(count)
        creep = self.config.min_rise_mmhg / 2 / 3600.0  # mmHg/s
        t_s = (chunk.first.us + chunk.period.us * index) / US_PER_S
        fast = np.cumsum(slope >= 2 * blocked_slope)  # NaN compares False
        steps = np.flatnonzero(steady)
        before = np.concatenate(([-1], steps[:-1]))
        since: IntArray = fast[steps] - np.where(before >= 0, fast[np.maximum(before, 0)], 0)
        stepped = (since > 0) | ((before < 0) & self._stepped)
        if steps.shape[0] == 0:
            self._stepped = self._stepped or bool(fast[-1] > 0) if count else self._stepped
            return np.full(count, np.nan)
        self._stepped = bool(fast[-1] - fast[steps[-1]] > 0)
        value = mean[steps] - creep * t_s[steps]  # u = B - r t: the baseline may rise at r, so u only falls
        u = np.empty_like(value)
        start, carried = 0, self._baseline_u
        for reset in [*np.flatnonzero(stepped).tolist(), value.shape[0]]:  # a step starts afresh (rare)
            if reset > start:
                u[start:reset] = np.minimum.accumulate(np.concatenate(([carried], value[start:reset])))[1:]
                carried = float(u[reset - 1])
            if reset < value.shape[0]:
                u[reset], carried, start = value[reset], float(value[reset]), reset + 1
        self._baseline_u = float(u[-1])
        at_steady = np.full(count, np.nan)
        at_steady[steps] = u + creep * t_s[steps]
        last = np.maximum.accumulate(np.where(steady, index, -1))
        held: FloatArray = np.where(last >= 0, at_steady[np.maximum(last, 0)], np.nan)
        return held

    def _examine(
        self, chunk: PressureBatch, g: _Geometry, keep: int, rate: FlowRate, pumping: bool
    ) -> OcclusionVerdict:
        config = self.config
        count = chunk.count
        index = np.arange(count)
        fresh = self._stream.filter(chunk.samples_mmhg)
        filtered = np.concatenate((self._filtered_tail, fresh))
        self._filtered_tail = filtered[max(0, filtered.shape[0] - (keep - 1)) :].copy()
        pressure = _align_end(fresh / _MILLI, count)
        to_mmhg_s = US_PER_S / (_MILLI * chunk.period.us)
        # The kept history may be longer than this window needs: keep the windows ending at this chunk's samples.
        slopes, lesser_half, means = (a[max(0, a.shape[0] - count) :] for a in _trend_stats(filtered, g.trend))
        slope = _align_end(slopes * to_mmhg_s, count)
        half_slope = _align_end(lesser_half * to_mmhg_s, count)
        mean = _align_end(means / _MILLI, count)

        trending = pumping and rate.nl_per_h > 0
        blocked_slope = config.compliance.blocked_slope_mmhg_s(rate) if trending else math.inf
        # NaN (window not yet full) compares False
        steady = (np.abs(slope) <= config.trend_factor * blocked_slope / 2) & trending
        last_steady = np.maximum.accumulate(np.where(steady, index, -1))
        if self._baseline is not None:
            before = np.full(count, self._baseline)
        else:
            before = np.fmin.accumulate(np.concatenate(([self._floor], pressure)))[1:]
            self._floor = float(before[-1])
        baseline = np.where(last_steady >= 0, self._limited_baseline(chunk, steady, slope, mean, blocked_slope), before)
        if last_steady[-1] >= 0:
            self._baseline = float(baseline[-1])
            # The baseline is the older half's mean: the level of the line three quarters of a window earlier; a
            # baseline held back by the creep limit is the line's level from before, so its time stays.
            j = int(last_steady[-1])
            if abs(baseline[-1] - mean[j]) < _TOLERANCE_MMHG:
                steady_at = chunk.first + chunk.period * j
                self._baseline_at_us = steady_at.us - chunk.period.us * (3 * g.trend // 4)

        condition = (half_slope >= config.trend_factor * blocked_slope) & (pressure - baseline >= config.min_rise_mmhg)
        last_unmet = np.maximum.accumulate(np.where(condition, -1, index))
        run = np.where(last_unmet >= 0, index - last_unmet, self._run + index + 1)
        self._run = int(run[-1])
        trend_hit = run >= g.confirm
        threshold_hit = pressure > config.threshold_mmhg(self.sensitivity)
        hits = np.flatnonzero(threshold_hit | trend_hit)
        at = int(hits[0]) if hits.shape[0] else count - 1
        cause = OcclusionCause.THRESHOLD if threshold_hit[at] else OcclusionCause.TREND if trend_hit[at] else None
        return OcclusionVerdict(
            occluded=cause is not None,
            cause=cause,
            pressure_mmhg=_optional(pressure[at]),
            baseline_mmhg=_optional(baseline[at]),
            slope_mmhg_s=_optional(slope[at]),
            at=chunk.first + chunk.period * at if cause is not None else None,
        )


class UpstreamOcclusionDetector:
    """Upstream occlusion detector (OI-ALM-4): the filtered supply-side pressure below ``upstream_mmhg``
    while pumping (a blocked supply makes the mechanism pull a vacuum)."""

    def __init__(self, config: OcclusionConfig) -> None:
        self.config = config
        self._stream = _MedianStream(config.spike_window)
        self._pumping = False

    def update(self, batch: PressureBatch, pumping: bool) -> UpstreamVerdict:
        """Examine the upstream samples of ``batch``; a batch from a faulty sensor is ignored.

        When pumping starts, the samples kept from before (taken while stopped, perhaps with the empty container
        since replaced) are dropped: they are no evidence about the line the pump now draws on.
        """
        if pumping and not self._pumping:
            self._stream.reset()
        self._pumping = pumping
        if batch.health is not SensorHealth.OK or batch.count == 0:
            if batch.health is not SensorHealth.OK:
                self._stream.reset()
            return UpstreamVerdict(False, None, None)
        self._stream.accept(batch)
        verdicts = [self._examine(chunk, pumping) for chunk in _chunks(batch, _CHUNK_SAMPLES)]
        return next((v for v in verdicts if v.occluded), verdicts[-1])

    def _examine(self, chunk: PressureBatch, pumping: bool) -> UpstreamVerdict:
        pressure = _align_end(self._stream.filter(chunk.samples_mmhg) / _MILLI, chunk.count)
        hits = np.flatnonzero(pressure < self.config.upstream_mmhg)
        if pumping and hits.shape[0]:
            at = int(hits[0])
            return UpstreamVerdict(True, float(pressure[at]), chunk.first + chunk.period * at)
        return UpstreamVerdict(False, _optional(pressure[-1]), None)
