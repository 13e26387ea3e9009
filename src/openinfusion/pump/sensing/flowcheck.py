"""Flow-rate checker: the optional flow sensor's measured flow against the programmed rate (Open PCA §10.8.3).

The Open PCA pump measures the flow to the patient and compares it with the rate it was told to deliver
(open-pca-requirements.md R6.4.0(2)-(7), EC7, EC8; adopted as OPENPCA-R6-4-0-2 and OPENPCA-R6-4-0-3):

* **over-infusion** when the measured flow exceeds the programmed rate by more than the tolerance for longer
  than the persistence, or *at once* on free flow (flow measured while the pump is not delivering);
* **under-infusion** when it falls short by more than the tolerance for longer than the persistence.

Tolerance: ``max(tolerance, tolerance_fraction * rate)``; the document gives 0.5 mL/h for the basal
(R5.1.0(3)) and nothing for boluses, so the fraction (10 %) covers fast rates. Persistence: 5 min for a basal
or continuous rate, 1 min for a patient bolus and 1 min for a clinician bolus (EC7/EC8; R6.4.0 gives longer
figures for boluses, and the shorter is the safer). Each reading covers the interval between two reads; the
judgement is made on the volume over the persistence window, so a sensor's per-read noise averages out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from openinfusion.errors import ConfigError
from openinfusion.pump.hal import FlowReading, SensorHealth
from openinfusion.units import US_PER_H, Duration, FlowRate, Instant, Volume


class FlowDeviation(Enum):
    """What the checker found."""

    OVER = "over"  # more than programmed (or flow while stopped: free flow)
    UNDER = "under"  # less than programmed


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowCheckConfig:
    """Tolerance and persistence of the flow-rate checker (defaults from open-pca-requirements.md §4)."""

    tolerance: FlowRate = FlowRate.ml_h("0.5")
    tolerance_fraction: Fraction = Fraction(1, 10)
    persistence: Duration = Duration.min(5)
    bolus_persistence: Duration = Duration.min(1)
    free_flow_volume: Volume = Volume.ml("0.01")  # more than a self-test or a back-off moves with the pump stopped

    def __post_init__(self) -> None:
        if self.tolerance.nl_per_h <= 0 or not 0 <= self.tolerance_fraction < 1:
            raise ConfigError("flow_check.tolerance", "need a positive tolerance and a fraction in [0, 1)")
        if not Duration(0) < self.bolus_persistence <= self.persistence:
            raise ConfigError("flow_check.persistence", "need 0 < bolus_persistence <= persistence")


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """The deviation found (None: none), the measured and the programmed rate over the judged span.

    ``decided`` is False while a window is still filling: nothing is known yet (an alarm is left as it is).
    """

    deviation: FlowDeviation | None
    measured: FlowRate
    programmed: FlowRate
    decided: bool = True
    free_flow: bool = False


class FlowChecker:
    """Accumulates readings while the programmed rate holds and judges them over the persistence window."""

    def __init__(self, config: FlowCheckConfig = FlowCheckConfig()) -> None:
        self.config = config
        self._start: Instant | None = None
        self._measured_nl = 0
        self._rate = FlowRate(0)

    def update(self, reading: FlowReading, rate: FlowRate, delivering: bool, bolus: bool) -> FlowVerdict:
        """Judge ``reading``, taken while the pump ran at ``rate`` (``delivering``), a bolus if ``bolus``."""
        programmed = rate if delivering else FlowRate(0)
        span = reading.end.since(reading.start)
        if reading.health is not SensorHealth.OK or span.us <= 0:
            self._start = None
            return FlowVerdict(None, FlowRate(0), programmed, decided=False)
        measured_now = _rate_of(reading.volume.nl, span)
        free = reading.volume.nl >= self.config.free_flow_volume.nl
        if not delivering and free and measured_now.nl_per_h > self._tolerance(FlowRate(0)).nl_per_h:
            self._start = None  # free flow: at once (R6.4.0(2))
            return FlowVerdict(FlowDeviation.OVER, measured_now, programmed, free_flow=True)
        if not delivering:
            self._start = None
            return FlowVerdict(None, measured_now, programmed)
        if self._start is None or programmed != self._rate:
            self._start, self._measured_nl, self._rate = reading.start, 0, programmed
        self._measured_nl += reading.volume.nl
        elapsed = reading.end.since(self._start)
        persistence = self.config.bolus_persistence if bolus else self.config.persistence
        measured = _rate_of(self._measured_nl, elapsed)
        if elapsed < persistence:
            return FlowVerdict(None, measured, programmed, decided=False)
        self._start, self._measured_nl = reading.end, 0  # judge the next window afresh
        tolerance = self._tolerance(programmed).nl_per_h
        if measured.nl_per_h > programmed.nl_per_h + tolerance:
            return FlowVerdict(FlowDeviation.OVER, measured, programmed)
        if measured.nl_per_h < programmed.nl_per_h - tolerance:
            return FlowVerdict(FlowDeviation.UNDER, measured, programmed)
        return FlowVerdict(None, measured, programmed)

    def _tolerance(self, rate: FlowRate) -> FlowRate:
        c = self.config
        return FlowRate(max(c.tolerance.nl_per_h, int(rate.nl_per_h * c.tolerance_fraction)))


def _rate_of(volume_nl: int, span: Duration) -> FlowRate:
    return FlowRate(round(Fraction(volume_nl * US_PER_H, max(span.us, 1))))
