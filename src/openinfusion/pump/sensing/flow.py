"""Line compliance and the estimate of the flow that actually reached the patient.

The downstream line (administration set, syringe, extension) stores fluid as its pressure rises: a
compliance ``C`` stores ``C * dP`` of the volume the mechanism displaces. So over any interval::

    to_patient = displaced - C * (P_end - P_start)

While the line is open and the rate steady the pressure is steady and everything displaced reaches the
patient; while it is occluded the pressure rises at ``Q / C`` and nothing does; when an occlusion
clears, the stored volume leaves as a bolus (see :mod:`.backoff`).

Volumes are exact integer nanolitres. The stored volume is computed from the *absolute* gauge pressure
(``round(C * P)``, half to even), so the per-interval estimates telescope: their sum equals the total
displaced minus the change of stored volume between the first and the last pressure, with no drift
whatever the number of intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from openinfusion.errors import ConfigError, InputError
from openinfusion.units import US_PER_H, US_PER_S, Duration, FlowRate, Volume

# 1 mL/mmHg is far beyond any set, syringe or extension; a larger value is a units mistake (uL for nL).
_MAX_COMPLIANCE_NL_PER_MMHG = 1_000_000


def _finite_mmhg(value: float, where: str) -> Fraction:
    """A pressure in mmHg as an exact Fraction; raises :class:`InputError` if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(where, f"pressure must be a finite number of mmHg, got {value!r}")
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class LineCompliance:
    """Compliance of the downstream line: volume stored per unit of pressure, integer nL/mmHg.

    Typically about 1 uL/mmHg (1000 nL/mmHg) for an LVP set, several times more for a syringe and its
    line. Positive, at most 1 mL/mmHg.
    """

    nl_per_mmhg: int

    def __post_init__(self) -> None:
        value = self.nl_per_mmhg
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("compliance", f"must be an integer number of nL/mmHg, got {value!r}")
        if not 0 < value <= _MAX_COMPLIANCE_NL_PER_MMHG:
            raise ConfigError("compliance", f"must be in 1..{_MAX_COMPLIANCE_NL_PER_MMHG} nL/mmHg, got {value}")

    def stored_nl(self, pressure_mmhg: float, where: str = "pressure_mmhg") -> Fraction:
        """Exact volume (nL) stored by the line at gauge pressure ``pressure_mmhg`` relative to 0 mmHg."""
        return self.nl_per_mmhg * _finite_mmhg(pressure_mmhg, where)

    def blocked_slope_mmhg_s(self, rate: FlowRate) -> float:
        """Pressure slope (mmHg/s) of a fully blocked line fed at ``rate``: ``Q / C``."""
        return rate.nl_per_h / (US_PER_H / US_PER_S) / self.nl_per_mmhg


@dataclass(frozen=True, slots=True)
class FlowEstimate:
    """Flow that reached the patient over one interval.

    ``to_patient`` is signed, in nL: negative when the line took up more than the mechanism displaced
    (fluid drawn back from the patient side, e.g. by back-off). ``rate`` is ``to_patient`` over the
    interval in nL/h, rounded half to even.
    """

    to_patient: Volume
    rate: FlowRate


class FlowEstimator:
    """Delivered-flow estimate from encoder displacement and line pressure.

    Call :meth:`update` once per interval, chaining intervals (each ``pressure_start_mmhg`` the previous
    ``pressure_end_mmhg``) for :attr:`delivered` to be the exact total. State: the running total only.
    """

    def __init__(self, compliance: LineCompliance) -> None:
        self._compliance = compliance
        self._delivered_nl = 0

    @property
    def delivered(self) -> Volume:
        """Signed sum of ``to_patient`` over every update so far (nL)."""
        return Volume(self._delivered_nl)

    def update(
        self, displaced: Volume, pressure_start_mmhg: float, pressure_end_mmhg: float, dt: Duration
    ) -> FlowEstimate:
        """Volume that reached the patient while the mechanism displaced ``displaced`` over ``dt``.

        ``to_patient = displaced - (round(C * P_end) - round(C * P_start))`` in integer nL; ``dt`` must
        be positive.
        """
        if dt.us <= 0:
            raise InputError("dt", f"interval must be positive, got {dt}")
        start_nl = round(self._compliance.stored_nl(pressure_start_mmhg, "pressure_start_mmhg"))
        end_nl = round(self._compliance.stored_nl(pressure_end_mmhg, "pressure_end_mmhg"))
        to_patient_nl = displaced.nl - (end_nl - start_nl)
        self._delivered_nl += to_patient_nl
        rate = FlowRate(round(Fraction(to_patient_nl * US_PER_H, dt.us)))
        return FlowEstimate(Volume(to_patient_nl), rate)
