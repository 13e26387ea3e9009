"""Occlusion detectors against synthetic pressure traces built here from the line's physical model.

Model (independent of the detector): with the line open the downstream pressure is the venous pressure
plus the resistive drop ``R * Q``; from the moment it is blocked it rises at ``Q / C``. Noise, 0.5 mmHg
ADC quantisation, single-sample spikes, movement artefacts and venous steps are added on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import ConfigError, InputError
from openinfusion.pump.hal import PressureBatch, SensorHealth
from openinfusion.pump.sensing import (
    DownstreamOcclusionDetector,
    LineCompliance,
    OcclusionCause,
    OcclusionConfig,
    OcclusionVerdict,
    Sensitivity,
    UpstreamOcclusionDetector,
)
from openinfusion.pump.sensing.occlusion import trend_window
from openinfusion.units import Duration, FlowRate, Instant

FloatArray = npt.NDArray[np.float64]
PERIOD_S = 0.1
PERIOD = Duration.s(PERIOD_S)
ADC_STEP_MMHG = 0.5
R_MMHG_PER_ML_H = 0.5  # resistive drop per mL/h of flow (cannula and set)
VENOUS_MMHG = 8.0


@dataclass(frozen=True)
class Line:
    """The synthetic downstream line."""

    rate_ml_h: float
    compliance_ul_per_mmhg: float = 1.0
    occluded_from_s: float | None = None

    @property
    def open_mmhg(self) -> float:
        return VENOUS_MMHG + R_MMHG_PER_ML_H * self.rate_ml_h

    @property
    def blocked_slope_mmhg_s(self) -> float:
        return self.rate_ml_h * 1000 / 3600 / self.compliance_ul_per_mmhg

    def pressure_mmhg(self, t_s: FloatArray, venous_step_mmhg: FloatArray | None = None) -> FloatArray:
        p_mmhg = np.full(t_s.shape, self.open_mmhg)
        if self.occluded_from_s is not None:
            p_mmhg += np.clip(t_s - self.occluded_from_s, 0, None) * self.blocked_slope_mmhg_s
        return p_mmhg if venous_step_mmhg is None else p_mmhg + venous_step_mmhg

    def time_to_reach_s(self, pressure_mmhg: float) -> float:
        """Time after the occlusion at which the noise-free pressure reaches ``pressure_mmhg``."""
        return (pressure_mmhg - self.open_mmhg) / self.blocked_slope_mmhg_s


def times_s(duration_s: float) -> FloatArray:
    return np.arange(round(duration_s / PERIOD_S), dtype=np.float64) * PERIOD_S


def measured(p_mmhg: FloatArray, noise_mmhg: float, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    noisy = p_mmhg + rng.normal(0.0, noise_mmhg, p_mmhg.shape)
    return np.round(noisy / ADC_STEP_MMHG) * ADC_STEP_MMHG


def batches(samples_mmhg: FloatArray, sizes: list[int] | int) -> list[PressureBatch]:
    """Split the trace into consecutive batches (sizes cycle), as a driver's DMA buffer would deliver it."""
    cycle = [sizes] if isinstance(sizes, int) else sizes
    out: list[PressureBatch] = []
    start = 0
    while start < samples_mmhg.shape[0]:
        size = cycle[len(out) % len(cycle)]
        out.append(PressureBatch(Instant(0) + PERIOD * start, PERIOD, samples_mmhg[start : start + size]))
        start += size
    return out


@dataclass
class Run:
    detections: list[OcclusionVerdict] = field(default_factory=list)
    wake_mmhg: float = 0.0

    @property
    def first(self) -> OcclusionVerdict | None:
        return self.detections[0] if self.detections else None


def run(
    line: Line,
    samples_mmhg: FloatArray,
    config: OcclusionConfig,
    sensitivity: Sensitivity = Sensitivity.MEDIUM,
    *,
    sizes: list[int] | int = 73,
    pumping: bool = True,
) -> Run:
    detector = DownstreamOcclusionDetector(config, sensitivity)
    result = Run()
    for batch in batches(samples_mmhg, sizes):
        verdict = detector.update(batch, FlowRate.ml_h(line.rate_ml_h), pumping)
        if verdict.occluded:
            result.detections.append(verdict)
    result.wake_mmhg = detector.wake_threshold_mmhg()
    return result


def config_for(line: Line) -> OcclusionConfig:
    return OcclusionConfig(compliance=LineCompliance(round(line.compliance_ul_per_mmhg * 1000)))


def detection_delay_s(line: Line, seed: int = 1) -> tuple[float, OcclusionVerdict]:
    assert line.occluded_from_s is not None
    t_s = times_s(line.occluded_from_s + line.time_to_reach_s(300) + 60)  # past the MEDIUM threshold
    result = run(line, measured(line.pressure_mmhg(t_s), 1.0, seed), config_for(line), sizes=256)
    first = result.first
    assert first is not None and first.at is not None, "occlusion never detected"
    return float(first.at.seconds) - line.occluded_from_s, first


# --- downstream: trend ---------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-2")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_occlusion_at_1_ml_h_is_found_by_trend_long_before_the_threshold(seed: int) -> None:
    line = Line(rate_ml_h=1.0, occluded_from_s=120.0)
    delay_s, first = detection_delay_s(line, seed)
    threshold_s = line.time_to_reach_s(300)  # MEDIUM: about 17 min at 0.28 mmHg/s
    assert first.cause is OcclusionCause.TREND
    assert delay_s < threshold_s / 4
    # It waited for a real rise: by then the blocked line had risen by most of the 40 mmHg minimum.
    assert delay_s * line.blocked_slope_mmhg_s >= 35.0
    assert first.baseline_mmhg == pytest.approx(line.open_mmhg, abs=1.0)
    assert first.slope_mmhg_s == pytest.approx(line.blocked_slope_mmhg_s, rel=0.5)


@pytest.mark.req("OI-ALM-2")
def test_a_syringe_line_at_1_ml_h_alarms_in_minutes_not_hours() -> None:
    line = Line(rate_ml_h=1.0, compliance_ul_per_mmhg=5.0, occluded_from_s=120.0)
    delay_s, first = detection_delay_s(line)
    assert first.cause is OcclusionCause.TREND
    assert line.time_to_reach_s(300) > 80 * 60  # what a threshold alone would take
    assert delay_s < 15 * 60


@pytest.mark.req("OI-ALM-2")
def test_time_to_detect_is_shorter_at_25_ml_h_than_at_1_ml_h() -> None:
    fast_s, _ = detection_delay_s(Line(rate_ml_h=25.0, occluded_from_s=120.0))
    slow_s, _ = detection_delay_s(Line(rate_ml_h=1.0, occluded_from_s=120.0))
    assert fast_s < slow_s / 3


@pytest.mark.req("OI-ALM-2")
def test_a_line_clamped_from_the_start_is_found_by_trend() -> None:
    line = Line(rate_ml_h=1.0, occluded_from_s=0.0)
    delay_s, first = detection_delay_s(line)
    assert first.cause is OcclusionCause.TREND
    assert delay_s < line.time_to_reach_s(300) / 4


# --- downstream: no nuisance alarms --------------------------------------------------------------


def with_artefacts(p_mmhg: FloatArray, t_s: FloatArray, seed: int) -> FloatArray:
    """Single-sample spikes far above every threshold, and 2-s movement bumps of +50 mmHg in clusters
    (more than the minimum rise, less than the lowest threshold)."""
    rng = np.random.default_rng(seed)
    out = p_mmhg.copy()
    spikes = rng.choice(out.shape[0], size=out.shape[0] // 100, replace=False)
    out[spikes] += rng.choice([-1.0, 1.0], size=spikes.shape[0]) * 400.0
    for start_s in (100.0, 112.0, 124.0, 400.0, 415.0, 430.0, 700.0):  # coughing, shifting in bed
        out[(t_s >= start_s) & (t_s < start_s + 2.0)] += 50.0
    return out


@pytest.mark.req("OI-ALM-2")
@pytest.mark.parametrize("rate_ml_h", [1.0, 25.0])
@pytest.mark.parametrize("seed", [4, 5])
def test_no_false_alarm_from_noise_spikes_movement_and_posture(rate_ml_h: float, seed: int) -> None:
    line = Line(rate_ml_h=rate_ml_h)
    t_s = times_s(20 * 60)
    # The patient sits up at 5 min (+20 mmHg at the cannula, 27 cm of height) and lies back down at 12 min.
    posture_mmhg = np.where((t_s >= 300) & (t_s < 720), 20.0, 0.0)
    samples = with_artefacts(measured(line.pressure_mmhg(t_s, posture_mmhg), 1.5, seed), t_s, seed)
    result = run(line, samples, config_for(line), Sensitivity.HIGH)
    assert result.detections == []


@pytest.mark.req("OI-ALM-2")
def test_a_venous_step_larger_than_the_minimum_rise_is_not_an_occlusion() -> None:
    line = Line(rate_ml_h=1.0)
    t_s = times_s(10 * 60)
    step_mmhg = np.where(t_s >= 200, 60.0, 0.0)  # e.g. the pump raised well above the patient
    samples = measured(line.pressure_mmhg(t_s, step_mmhg), 1.0, 6)
    result = run(line, samples, config_for(line), Sensitivity.LOW)
    assert result.detections == []
    # The baseline settled at the new level: the watchdog arms half a minimum rise above it.
    assert result.wake_mmhg == pytest.approx(line.open_mmhg + 60 + 20, abs=1.5)


# --- downstream: threshold -----------------------------------------------------------------------


@pytest.mark.req("OI-ALM-2")
def test_threshold_fires_when_the_pressure_crosses_it() -> None:
    line = Line(rate_ml_h=25.0, occluded_from_s=120.0)  # 6.9 mmHg/s: the threshold comes first
    t_s = times_s(200)
    result = run(line, measured(line.pressure_mmhg(t_s), 0.3, 7), config_for(line), Sensitivity.HIGH)
    first = result.first
    assert first is not None and first.at is not None
    assert first.cause is OcclusionCause.THRESHOLD
    crossing_s = line.occluded_from_s + line.time_to_reach_s(100)  # type: ignore[operator]
    # After the crossing, within the median filter's delay (half of 1 s) plus a sample or two of noise.
    assert crossing_s - 0.2 <= float(first.at.seconds) <= crossing_s + 1.0
    assert first.pressure_mmhg is not None and first.pressure_mmhg > 100


@pytest.mark.req("OI-ALM-2")
def test_threshold_applies_while_stopped_but_the_trend_does_not() -> None:
    line = Line(rate_ml_h=1.0, occluded_from_s=0.0)
    t_s = times_s(30 * 60)
    samples = measured(line.pressure_mmhg(t_s), 1.0, 8)
    stopped = run(line, samples, config_for(line), Sensitivity.MEDIUM, pumping=False)
    assert {d.cause for d in stopped.detections} == {OcclusionCause.THRESHOLD}
    first = stopped.first
    assert first is not None and first.at is not None
    assert float(first.at.seconds) == pytest.approx(line.time_to_reach_s(300), abs=10.0)


@pytest.mark.req("OI-ALM-2")
def test_sensitivity_selects_the_threshold() -> None:
    config = OcclusionConfig()
    thresholds = [config.threshold_mmhg(s) for s in (Sensitivity.HIGH, Sensitivity.MEDIUM, Sensitivity.LOW)]
    assert thresholds == [100, 300, 600]
    line = Line(rate_ml_h=100.0, occluded_from_s=30.0)
    t_s = times_s(150)
    samples = measured(line.pressure_mmhg(t_s), 0.3, 9)
    for sensitivity, threshold in zip((Sensitivity.HIGH, Sensitivity.MEDIUM, Sensitivity.LOW), thresholds, strict=True):
        first = run(line, samples, config, sensitivity, pumping=False).first
        assert first is not None and first.pressure_mmhg is not None
        # The first filtered sample above the threshold: at most one sample's rise (2.8 mmHg) plus noise above.
        assert threshold < first.pressure_mmhg <= threshold + line.blocked_slope_mmhg_s * PERIOD_S + 1.0


# --- downstream: batches, state, wake threshold, faults ------------------------------------------


TRACE_LINE = Line(rate_ml_h=5.0, occluded_from_s=90.0)
TRACE = measured(with_artefacts(TRACE_LINE.pressure_mmhg(times_s(160)), times_s(160), 10), 1.0, 10)


@pytest.mark.req("OI-ALM-2")
@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=6))
def test_verdicts_do_not_depend_on_how_samples_are_batched(sizes: list[int]) -> None:
    whole = run(TRACE_LINE, TRACE, config_for(TRACE_LINE), sizes=TRACE.shape[0])
    split = run(TRACE_LINE, TRACE, config_for(TRACE_LINE), sizes=sizes)
    assert whole.first is not None
    assert split.first == whole.first
    assert split.wake_mmhg == whole.wake_mmhg


@pytest.mark.req("OI-ALM-2")
def test_one_long_batch_after_hours_of_sleep_matches_frequent_reads() -> None:
    # 15 h of samples (more than one vectorised pass) with an occlusion 10 min before the end.
    line = Line(rate_ml_h=2.0, occluded_from_s=15 * 3600 - 600.0)
    samples = measured(line.pressure_mmhg(times_s(15 * 3600)), 1.0, 14)
    long = run(line, samples, config_for(line), sizes=samples.shape[0])
    frequent = run(line, samples, config_for(line), sizes=36_000)
    assert long.first is not None and long.first.cause is OcclusionCause.TREND
    assert long.first == frequent.first


def test_wake_threshold_is_baseline_plus_half_the_minimum_rise_and_never_above_the_threshold() -> None:
    config = OcclusionConfig()
    fresh = DownstreamOcclusionDetector(config, Sensitivity.HIGH)
    assert fresh.wake_threshold_mmhg() == 100.0
    line = Line(rate_ml_h=5.0)
    steady = run(line, measured(line.pressure_mmhg(times_s(120)), 1.0, 11), config, Sensitivity.HIGH)
    assert steady.wake_mmhg == pytest.approx(line.open_mmhg + 20, abs=1.0)
    high = Line(rate_ml_h=170.0)  # open-line pressure 93 mmHg: baseline + 20 is above 100
    assert run(high, measured(high.pressure_mmhg(times_s(120)), 1.0, 11), config, Sensitivity.HIGH).wake_mmhg == 100.0


@pytest.mark.req("OI-ALM-2")
def test_samples_from_a_faulty_sensor_are_ignored() -> None:
    detector = DownstreamOcclusionDetector(OcclusionConfig(), Sensitivity.HIGH)
    faulty = PressureBatch(Instant(0), PERIOD, np.full(100, 900.0), SensorHealth.FAULT)
    assert not detector.update(faulty, FlowRate.ml_h(5), True).occluded
    after = PressureBatch(Instant(0) + PERIOD * 100, PERIOD, np.full(100, 900.0))
    verdict = detector.update(after, FlowRate.ml_h(5), True)
    assert verdict.occluded and verdict.cause is OcclusionCause.THRESHOLD


def test_an_empty_batch_reports_nothing() -> None:
    verdict = DownstreamOcclusionDetector(OcclusionConfig()).update(
        PressureBatch(Instant(0), PERIOD, np.empty(0)), FlowRate.ml_h(5), True
    )
    assert verdict == OcclusionVerdict(False, None, None, None, None, None)


def test_non_finite_samples_are_refused() -> None:
    detector = DownstreamOcclusionDetector(OcclusionConfig())
    with pytest.raises(InputError) as error:
        detector.update(PressureBatch(Instant(0), PERIOD, np.array([1.0, np.nan])), FlowRate.ml_h(5), True)
    assert error.value.where == "pressure.samples_mmhg"


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"high_sensitivity_mmhg": 300}, "occlusion.thresholds"),
        ({"low_sensitivity_mmhg": 1100}, "occlusion.thresholds"),
        ({"high_sensitivity_mmhg": 20}, "occlusion.thresholds"),
        ({"medium_sensitivity_mmhg": 300.0}, "occlusion.medium_sensitivity_mmhg"),
        ({"min_rise_mmhg": 100}, "occlusion.min_rise_mmhg"),
        ({"min_rise_mmhg": 0}, "occlusion.min_rise_mmhg"),
        ({"trend_factor": 0.0}, "occlusion.trend_factor"),
        ({"trend_factor": 1.5}, "occlusion.trend_factor"),
        ({"trend_factor": True}, "occlusion.trend_factor"),
        ({"trend_window": Duration.s(1)}, "occlusion.trend_window"),
        ({"trend_confirm": Duration.s(60)}, "occlusion.trend_confirm"),
        ({"spike_window": Duration.s(-1)}, "occlusion.spike_window"),
        ({"upstream_mmhg": 0}, "occlusion.upstream_mmhg"),
        ({"upstream_mmhg": -800}, "occlusion.upstream_mmhg"),
    ],
)
def test_invalid_configuration_is_refused_naming_the_field(changes: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as error:
        OcclusionConfig(**changes)  # type: ignore[arg-type]
    assert error.value.where == where


# --- upstream ------------------------------------------------------------------------------------

BAG_HEAD_MMHG = 40.0  # the bag hangs about 55 cm above the pump


def upstream_trace(t_s: FloatArray, occluded_from_s: float, fall_mmhg_s: float) -> FloatArray:
    """Supply-side pressure: bag head, then falling towards vacuum once the supply line is blocked."""
    p_mmhg = BAG_HEAD_MMHG - np.clip(t_s - occluded_from_s, 0, None) * fall_mmhg_s
    return np.clip(p_mmhg, -600.0, None)


@pytest.mark.req("OI-ALM-4")
def test_upstream_occlusion_is_found_when_the_pressure_falls_below_the_threshold() -> None:
    t_s = times_s(200)
    samples = measured(upstream_trace(t_s, 100.0, 2.0), 0.5, 12)
    detector = UpstreamOcclusionDetector(OcclusionConfig())
    verdicts = [detector.update(b, pumping=True) for b in batches(samples, 64)]
    first = next(v for v in verdicts if v.occluded)
    crossing_s = 100.0 + (BAG_HEAD_MMHG + 100.0) / 2.0
    assert first.at is not None
    assert crossing_s - 0.2 <= float(first.at.seconds) <= crossing_s + 1.0
    assert first.pressure_mmhg is not None and first.pressure_mmhg < -100


@pytest.mark.req("OI-ALM-4")
def test_upstream_needs_pumping_and_ignores_spikes() -> None:
    t_s = times_s(200)
    blocked = measured(upstream_trace(t_s, 100.0, 2.0), 0.5, 13)
    stopped = UpstreamOcclusionDetector(OcclusionConfig())
    assert not any(stopped.update(b, pumping=False).occluded for b in batches(blocked, 64))
    spiky = measured(upstream_trace(t_s, 1e9, 0.0), 0.5, 13)
    spiky[::97] = -500.0  # isolated dips, e.g. a finger opening
    running = UpstreamOcclusionDetector(OcclusionConfig())
    assert not any(running.update(b, pumping=True).occluded for b in batches(spiky, 64))


# --- downstream: low rates, soft sets (issue 14) -----------------------------------------------------


@pytest.mark.req("OI-ALM-2")
@pytest.mark.parametrize("seed", [1, 2])
def test_occlusion_at_0_1_ml_h_is_found_by_trend_and_the_baseline_does_not_creep(seed: int) -> None:
    line = Line(rate_ml_h=0.1, occluded_from_s=900.0)  # 0.028 mmHg/s: 100 mmHg takes an hour
    t_s = times_s(line.occluded_from_s + line.time_to_reach_s(100))
    samples = measured(line.pressure_mmhg(t_s), 1.0, seed)
    result = run(line, samples, config_for(line), Sensitivity.HIGH, sizes=600)
    first = result.first
    assert first is not None and first.at is not None and first.cause is OcclusionCause.TREND
    delay_s = float(first.at.seconds) - line.occluded_from_s
    assert delay_s < 0.6 * line.time_to_reach_s(100)  # well before the most sensitive threshold
    assert first.baseline_mmhg is not None
    assert abs(first.baseline_mmhg - line.open_mmhg) < 3.0  # the back-off returns the line to where it was


@pytest.mark.req("OI-ALM-2")
def test_a_set_three_times_softer_than_configured_is_still_found_by_trend() -> None:
    line = Line(rate_ml_h=5.0, compliance_ul_per_mmhg=3.0, occluded_from_s=300.0)
    t_s = times_s(line.occluded_from_s + line.time_to_reach_s(300))
    samples = measured(line.pressure_mmhg(t_s), 1.0, 4)
    told = OcclusionConfig(compliance=LineCompliance(1000))  # the pump believes a standard 1 uL/mmHg set
    first = run(line, samples, told, Sensitivity.LOW, sizes=256).first
    assert first is not None and first.cause is OcclusionCause.TREND
    assert first.pressure_mmhg is not None and first.pressure_mmhg - line.open_mmhg < 80


def test_trend_window_lengthens_at_low_rates_within_its_bounds() -> None:
    config = OcclusionConfig()
    assert trend_window(config, FlowRate.ml_h(25)) == config.trend_window
    assert trend_window(config, FlowRate.ml_h("0.1")) == Duration.s(360)  # 10 mmHg at 0.0278 mmHg/s
    assert trend_window(config, FlowRate.ml_h("0.01")) == Duration.min(10)


def test_upstream_samples_taken_before_pumping_started_are_no_evidence() -> None:
    detector = UpstreamOcclusionDetector(OcclusionConfig())
    vacuum = PressureBatch(Instant(0), PERIOD, np.full(50, -300.0))
    assert not detector.update(vacuum, pumping=False).occluded  # stopped: an empty bag, not yet replaced
    refilled = PressureBatch(Instant(0) + PERIOD * 50, PERIOD, np.full(50, 30.0))
    assert not detector.update(refilled, pumping=True).occluded
