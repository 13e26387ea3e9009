"""Behaviour the mutation criterion of `openinfusion trace` found unchecked (docs/traceability.md).

Each test was written for a surviving mutant of the linked code and fails with that mutant in place.
"""

from __future__ import annotations

import pytest

from openinfusion.errors import ProgramError
from openinfusion.pump.alarms import CATALOGUE, AlarmCode, Priority
from openinfusion.pump.programs import KvoSettings
from openinfusion.units import FlowRate


@pytest.mark.req("OI-PROG-7")
def test_kvo_off_needs_no_rate_and_kvo_on_needs_a_positive_one() -> None:
    assert KvoSettings(enabled=False, rate=FlowRate.ml_h(0)).rate.nl_per_h == 0  # stop at VTBI: no KVO rate
    with pytest.raises(ProgramError, match=r"kvo\.rate"):
        KvoSettings(enabled=True, rate=FlowRate.ml_h(0))


@pytest.mark.req("OI-ALM-8")
def test_running_on_battery_is_a_silent_notice_that_never_stops_delivery() -> None:
    """docs/alarms.md: on_battery is info, not latching, not stopping, resettable while on battery, silent."""
    spec = CATALOGUE[AlarmCode.ON_BATTERY]
    assert spec.priority is Priority.INFO and not spec.audible and not spec.stops_delivery and not spec.latching
    assert not spec.reset_requires_clear  # the nurse can acknowledge it while the pump stays on battery
