"""Downstream occlusion on the virtual bench: time to alarm, back-off, and the bolus on release.

The procedure follows IEC 60601-2-24:2012 (``shared/reference/standards-and-safety.md`` §2.3, [C]): run at
rate until the flow is steady (:attr:`OcclusionSetup.settle`), close the stopcock below the pressure
sensor, record the time to the occlusion alarm, let the automatic bolus reduction (the back-off) complete,
then, with the pump still stopped, open the stopcock and collect the unintended bolus until the pressure
has decayed. The standard names the intermediate rate and the minimum threshold; we run both ends of the
threshold range (Sensitivity HIGH and LOW) at 0.1, 0.5, 1, 5 and 25 mL/h, on an LVP and on 10 mL and
50 mL syringes, each with its standard set and with a set three times as compliant as the pump is told
(a soft set or a long extension), which the reference leaves unconfirmed [U].
The bolus is held to ECRI's criterion, <= 0.5 mL after an occlusion is relieved (§2.3, [P]).

Readings: the alarm time comes from the pump's own event log (the first ``alarm_raised`` of
``occlusion_downstream`` after the stopcock closed); pressures and volumes come from the bench's truth
(:class:`~openinfusion.lab.rig.BenchSeries`), so the pump is measured by instruments it does not control.
The stopcock opens on the first whole second :data:`HOLD` after the alarm, and the bolus is collected for
``max(60 s, 5 R C)`` (whole seconds), by when the line's pressure has decayed to under 1 % of its excess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from openinfusion.errors import ConfigError
from openinfusion.lab.errors import AnalysisError
from openinfusion.lab.rig import BenchSeries, Rig, Setup, raised_codes
from openinfusion.lab.trumpet import sample_at
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.eventlog import EventKind, LoggedEvent, decode_quantity
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.pump.sensing.occlusion import Sensitivity
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.arrays import F64
from openinfusion.sim.params import SyringeSize
from openinfusion.units import US_PER_S, Duration, FlowRate, Volume

SCHEMA: Final = "openinfusion.lab.occlusion/1"
ECRI_BOLUS_ML: Final = 0.5  # "should be <= 0.5 mL" (standards-and-safety.md §2.3)
HOLD: Final = Duration.s(60)  # from the alarm to the release: the back-off (2 s) long done
MIN_COLLECT: Final = Duration.s(60)
TAU_MULTIPLE: Final = 5  # 5 R C: the excess pressure has decayed to e^-5 < 1 %
POLL: Final = Duration.s(10)  # how often the bench looks for the alarm (its time is the log's); under HOLD
BACKOFF_REASON: Final = "occlusion back-off"
DECIMALS: Final = 4
TRACE_BEFORE: Final = Duration.s(30)  # pressure trace kept from this long before the occlusion


@dataclass(frozen=True, slots=True, kw_only=True)
class OcclusionSetup:
    """A configuration, how long it runs before the stopcock closes, and how long to wait for an alarm."""

    setup: Setup
    settle: Duration
    limit: Duration = Duration.h(2)

    def __post_init__(self) -> None:
        if self.settle.us <= 0 or self.limit.us <= 0:
            raise ConfigError("occlusion.settle", "settle and limit must be positive")

    @property
    def label(self) -> str:
        return f"{self.setup.label}, {self.setup.sensitivity.value} sensitivity"

    @property
    def key(self) -> str:
        return f"{self.setup.key}-{self.setup.sensitivity.value}"


RATES_ML_H: Final = ("0.1", "0.5", "1", "5", "25")
PUMPS: Final = ((MechanismKind.PERISTALTIC, SyringeSize.ML50), (MechanismKind.SYRINGE, SyringeSize.ML10),
                (MechanismKind.SYRINGE, SyringeSize.ML50))  # fmt: skip
SET_COMPLIANCE: Final = (1, 3)  # the standard set, and one three times as compliant as the pump is told


def _setup(
    mechanism: MechanismKind, syringe: SyringeSize, ml_h: str, sensitivity: Sensitivity, soft: int
) -> OcclusionSetup:
    rate = FlowRate.ml_h(ml_h)
    settle = Duration.min(30) if rate < FlowRate.ml_h(10) else Duration.min(5)  # steady: many R C, trend windows
    limit = Duration.h(8) if rate < FlowRate.ml_h(1) else Duration.h(2)  # a threshold at 0.1 mL/h takes hours
    setup = Setup(mechanism=mechanism, rate=rate, sensitivity=sensitivity, syringe=syringe, set_compliance=soft)
    return OcclusionSetup(setup=setup, settle=settle, limit=limit)


SETUPS: Final = tuple(
    _setup(mechanism, syringe, ml_h, sensitivity, soft)
    for mechanism, syringe in PUMPS
    for soft in SET_COMPLIANCE
    for ml_h in RATES_ML_H
    for sensitivity in (Sensitivity.HIGH, Sensitivity.LOW)
)


# --- measurements (pure) ----------------------------------------------------------------------------


def first_alarm(events: tuple[LoggedEvent, ...], code: AlarmCode) -> LoggedEvent | None:
    """The first ``alarm_raised`` of ``code`` among ``events``, or None."""
    return next((e for e in events if e.kind is EventKind.ALARM_RAISED and e.data.get("code") == code.value), None)


def backed_off(events: tuple[LoggedEvent, ...]) -> Volume:
    """Total volume the pump logged as withdrawn by occlusion back-off among ``events``."""
    total = 0
    for e in events:
        if e.kind is EventKind.INFUSION_STOPPED and e.data.get("reason") == BACKOFF_REASON:
            total += Volume.of(decode_quantity(e.data.get("withdrawn"), "withdrawn")).nl
    return Volume(total)


def other_alarms(events: tuple[LoggedEvent, ...], code: AlarmCode) -> tuple[str, ...]:
    """Codes of the alarms raised among ``events`` other than ``code``, in order, each once."""
    return tuple(c for c in raised_codes(events) if c != code.value)


def volume_between_ml(t_s: F64, volume_ml: F64, start_s: float, end_s: float) -> float:
    """Volume (mL) a cumulative record gained from ``start_s`` to ``end_s``."""
    at = sample_at(t_s, volume_ml, np.array([start_s, end_s]))
    return float(at[1] - at[0])


def peak_between_mmhg(t_s: F64, pressure_mmhg: F64, start_s: float, end_s: float) -> float:
    """Highest pressure (mmHg) recorded from ``start_s`` to ``end_s`` (inclusive)."""
    inside = (t_s >= start_s) & (t_s <= end_s)
    if not np.any(inside):
        raise AnalysisError("peak", f"no sample between {start_s:g} s and {end_s:g} s")
    return float(np.max(pressure_mmhg[inside]))


def threshold_only_s(compliance_ul_per_mmhg: float, rise_mmhg: float, rate: FlowRate) -> float:
    """Time (s) a blocked line takes to rise ``rise_mmhg`` at ``rate``: ``C ΔP / Q`` (the physics of a
    threshold-only detector, for comparison)."""
    if rate.nl_per_h <= 0:
        raise AnalysisError("rate", f"must be positive, got {rate}")
    ul_per_s = rate.nl_per_h / 1e3 / 3600.0
    return compliance_ul_per_mmhg * rise_mmhg / ul_per_s


# --- the test -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OcclusionResult:
    """One occlusion test. Times are seconds of bench time.

    ``state_at_occlusion`` and ``settle_alarms`` say how the channel came to the occlusion: a channel that
    was no longer infusing is not occluded (the test is void, and everything after is None). When no alarm
    came within the limit, ``time_to_alarm_s`` and everything measured after the alarm are None.

    ``backed_off_ml`` is what the pump logged as withdrawn, ``withdrawn_ml`` what the mechanism actually
    moved back (the bench's truth); ``stored_at_release_ml`` is the volume the line held above rest just
    before release, the physics' prediction of the bolus. ``peak_pressure_mmhg`` is the highest pressure
    from the occlusion to the release (or to the end of the wait).
    """

    occlusion: OcclusionSetup
    seed: int
    threshold_mmhg: int
    compliance_ul_per_mmhg: float
    tau_s: float
    occluded_at_s: float
    pressure_before_mmhg: float
    state_at_occlusion: str
    settle_alarms: tuple[str, ...]
    other_alarms: tuple[str, ...]
    final_state: str
    trace: BenchSeries  # from TRACE_BEFORE before the occlusion to the end of the test
    peak_pressure_mmhg: float | None = None
    time_to_alarm_s: float | None = None
    alarm_detail: str | None = None
    pressure_at_alarm_mmhg: float | None = None
    backed_off_ml: float | None = None
    withdrawn_ml: float | None = None
    released_at_s: float | None = None
    collect_s: float | None = None
    stored_at_release_ml: float | None = None
    bolus_ml: float | None = None
    pressure_after_mmhg: float | None = None

    @property
    def threshold_only_s(self) -> float:
        """What a threshold-only detector would take: ``C (threshold - pressure before) / Q``."""
        rise = self.threshold_mmhg - self.pressure_before_mmhg
        return threshold_only_s(self.compliance_ul_per_mmhg, rise, self.occlusion.setup.rate)

    @property
    def void(self) -> bool:
        """The channel was not infusing when the stopcock was to close: nothing was measured."""
        return self.state_at_occlusion != ChannelState.INFUSING.value

    @property
    def passes_ecri(self) -> bool | None:
        """The bolus is within ECRI's 0.5 mL (None when there was no alarm to release after)."""
        return None if self.bolus_ml is None else self.bolus_ml <= ECRI_BOLUS_ML

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), DECIMALS)

        s = self.occlusion.setup
        return {
            "key": self.occlusion.key,
            "configuration": s.label,
            "mechanism": s.mechanism.value,
            "set_rate_ml_h": r(float(s.rate.in_ml_h)),
            "sensitivity": s.sensitivity.value,
            "threshold_mmhg": self.threshold_mmhg,
            "settle_s": r(float(self.occlusion.settle.seconds)),
            "line_compliance_ul_per_mmhg": r(self.compliance_ul_per_mmhg),
            "line_tau_s": r(self.tau_s),
            "pressure_before_mmhg": r(self.pressure_before_mmhg),
            "state_at_occlusion": self.state_at_occlusion,
            "settle_alarms": list(self.settle_alarms),
            "time_to_alarm_s": r(self.time_to_alarm_s),
            "threshold_only_estimate_s": r(self.threshold_only_s),
            "alarm_detail": self.alarm_detail,
            "pressure_at_alarm_mmhg": r(self.pressure_at_alarm_mmhg),
            "peak_pressure_mmhg": r(self.peak_pressure_mmhg),
            "backed_off_ml": r(self.backed_off_ml),
            "withdrawn_ml": r(self.withdrawn_ml),
            "released_after_alarm_s": r(float(HOLD.seconds)) if self.released_at_s is not None else None,
            "collect_s": r(self.collect_s),
            "stored_at_release_ml": r(self.stored_at_release_ml),
            "bolus_ml": r(self.bolus_ml),
            "pressure_after_collect_mmhg": r(self.pressure_after_mmhg),
            "ecri_limit_ml": ECRI_BOLUS_ML,
            "passes_ecri": self.passes_ecri,
            "other_alarms": list(self.other_alarms),
            "final_state": self.final_state,
        }


def method_json() -> dict[str, Any]:
    """The method's fixed parameters, for the top of occlusion.json."""
    return {
        "release_after_alarm_s": float(HOLD.seconds),
        "collect": f"max({float(MIN_COLLECT.seconds):g} s, {TAU_MULTIPLE} R C)",
        "ecri_limit_ml": ECRI_BOLUS_ML,
        "alarm_time_from": "pump event log (alarm_raised, occlusion_downstream)",
        "volumes_and_pressures_from": "bench truth (simulator)",
    }


def run_occlusion(test: OcclusionSetup, seed: int, progress: Callable[[float], None] | None = None) -> OcclusionResult:
    """Run one occlusion test on a pump built from ``seed``; ``progress`` gets a fraction (of the settle
    time, then of the wait for the alarm)."""
    code = AlarmCode.OCCLUSION_DOWNSTREAM
    rig = Rig(test.setup, seed)
    rig.start()
    settle_us = test.settle.us

    def report(t: Duration) -> None:
        if progress is not None:
            progress(min(1.0, t.us / settle_us) * 0.5)

    rig.run_until(test.settle, report)
    occluded_s = float(rig.elapsed.seconds)
    before = rig.series()
    pressure_before = float(np.mean(before.pressure_mmhg[before.t_s >= occluded_s - 10.0]))
    seq = rig.pump.log.last_seq
    common: dict[str, Any] = {
        "occlusion": test,
        "seed": seed,
        "threshold_mmhg": rig.threshold_mmhg,
        "compliance_ul_per_mmhg": rig.line_compliance_ul_per_mmhg,
        "tau_s": rig.line_tau_s,
        "occluded_at_s": occluded_s,
        "pressure_before_mmhg": pressure_before,
        "state_at_occlusion": rig.state.value,
        "settle_alarms": raised_codes(rig.events()),
    }
    if rig.state is not ChannelState.INFUSING:
        return OcclusionResult(
            **common,
            other_alarms=(),
            final_state=rig.state.value,
            trace=_window(before, occluded_s - float(TRACE_BEFORE.seconds)),
        )
    rig.occlude(True)
    alarm = None
    while alarm is None and rig.elapsed < test.settle + test.limit:
        rig.run_until(rig.elapsed + POLL)
        alarm = first_alarm(rig.events(seq), code)
        if progress is not None:
            progress(0.5 + 0.5 * min(1.0, (rig.elapsed - test.settle).us / test.limit.us))
    if alarm is None:
        series = rig.series()
        events = rig.events(seq)
        return OcclusionResult(
            **common,
            peak_pressure_mmhg=peak_between_mmhg(series.t_s, series.pressure_mmhg, occluded_s, float(series.t_s[-1])),
            other_alarms=other_alarms(events, code),
            final_state=rig.state.value,
            trace=_window(series, occluded_s - float(TRACE_BEFORE.seconds)),
        )
    alarm_at = rig.bench_time(alarm.t)
    release = _whole_seconds(alarm_at + HOLD)  # on the sample grid, so the record ends where the test does
    rig.run_until(release)
    stored = rig.stored_ml()
    rig.occlude(False)
    collect = _whole_seconds(max(MIN_COLLECT, Duration.s(round(TAU_MULTIPLE * rig.line_tau_s, 6))))
    rig.run_until(release + collect)
    series = rig.series()
    events = rig.events(seq)
    alarm_s, released_s = float(alarm_at.seconds), float(release.seconds)
    end_s = released_s + float(collect.seconds)
    pressure_at = sample_at(series.t_s, series.pressure_mmhg, np.array([alarm_s, end_s]))
    return OcclusionResult(
        **common,
        peak_pressure_mmhg=peak_between_mmhg(series.t_s, series.pressure_mmhg, occluded_s, released_s),
        other_alarms=other_alarms(events, code),
        final_state=rig.state.value,
        trace=_window(series, occluded_s - float(TRACE_BEFORE.seconds)),
        time_to_alarm_s=alarm_s - occluded_s,
        alarm_detail=str(alarm.data.get("detail")),
        pressure_at_alarm_mmhg=float(pressure_at[0]),
        backed_off_ml=backed_off(events).nl / 1e6,
        withdrawn_ml=-volume_between_ml(series.t_s, series.displaced_ml, alarm_s, released_s),
        released_at_s=released_s,
        collect_s=float(collect.seconds),
        stored_at_release_ml=stored,
        bolus_ml=volume_between_ml(series.t_s, series.outlet_ml, released_s, end_s),
        pressure_after_mmhg=float(pressure_at[1]),
    )


def _whole_seconds(d: Duration) -> Duration:
    """``d`` rounded up to a whole second."""
    return Duration(-(-d.us // US_PER_S) * US_PER_S)


def _window(series: BenchSeries, from_s: float) -> BenchSeries:
    keep = series.t_s >= from_s
    return BenchSeries(series.t_s[keep], series.pressure_mmhg[keep], series.outlet_ml[keep], series.displaced_ml[keep])
