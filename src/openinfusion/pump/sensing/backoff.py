"""Occlusion back-off: relieve the pressure stored in an occluded line (OI-ALM-3).

While the line is occluded the mechanism keeps displacing fluid into it until the alarm stops the
motor; that volume is stored in the line's compliance, ``C * (P - P_baseline)``. When the occlusion
clears (a clamp opened, a kink straightened) the stored volume reaches the patient at once as an
*unintended bolus*. IEC 60601-2-24:2012 requires protection against it, and ECRI's criterion is that
the bolus released after an occlusion is relieved "should be <= 0.5 mL"
(``shared/reference/standards-and-safety.md`` §2.3). It is not small: a 1 uL/mmHg LVP set stopped at
600 mmHg stores 0.6 mL, a syringe line of 5 uL/mmHg stopped at 300 mmHg 1.5 mL.

Back-off reverses the mechanism by the stored volume, bounded by the mechanism's ``max_backoff``
(continuous reverse delivery is forbidden, UMN-GPCA-REQ-22), so the line is back near its free-flow
pressure and what is released on clearing is only the residual. The back-off volume is rounded *down*,
so the line is never pulled below its baseline (which would draw blood back into the cannula); the
residual bolus estimate is rounded *up*, so it is never optimistic.

Reference: the baseline is the free-flow pressure (venous plus the line's resistive drop ``R * Q``),
not the venous pressure itself; the extra ``C * R * Q`` released on clearing is the volume the line
held while flowing normally (``Q * RC``, a few seconds of the programmed flow), not a bolus.
"""

from __future__ import annotations

import math
from fractions import Fraction

from openinfusion.errors import ConfigError
from openinfusion.pump.sensing.flow import LineCompliance
from openinfusion.units import Volume


def _stored_above_baseline_nl(pressure_mmhg: float, baseline_mmhg: float, compliance: LineCompliance) -> Fraction:
    return compliance.stored_nl(pressure_mmhg, "pressure_mmhg") - compliance.stored_nl(baseline_mmhg, "baseline_mmhg")


def backoff_volume(
    pressure_mmhg: float, baseline_mmhg: float, compliance: LineCompliance, max_backoff: Volume
) -> Volume:
    """Volume (nL) to withdraw to bring the line from ``pressure_mmhg`` back to ``baseline_mmhg`` (OI-ALM-3).

    ``floor(C * (pressure - baseline))``, clamped to ``0..max_backoff``: never negative, never more
    than the mechanism's bound, never more than the line stores above baseline.
    """
    if max_backoff.nl < 0:
        raise ConfigError("max_backoff", f"must not be negative, got {max_backoff}")
    excess_nl = _stored_above_baseline_nl(pressure_mmhg, baseline_mmhg, compliance)
    return Volume(min(max(math.floor(excess_nl), 0), max_backoff.nl))


def expected_release_bolus(
    pressure_mmhg: float, baseline_mmhg: float, compliance: LineCompliance, withdrawn: Volume
) -> Volume:
    """Bolus (nL) expected when the occlusion clears, after ``withdrawn`` was backed off.

    ``ceil(C * (pressure - baseline) - withdrawn)``, at least 0; ``pressure_mmhg`` is the line pressure
    when the motor stopped, before back-off.
    """
    if withdrawn.nl < 0:
        raise ConfigError("withdrawn", f"must not be negative, got {withdrawn}")
    excess_nl = _stored_above_baseline_nl(pressure_mmhg, baseline_mmhg, compliance)
    return Volume(max(math.ceil(excess_nl - withdrawn.nl), 0))
