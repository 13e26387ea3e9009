"""Active notifications are listed by priority, then most recent first (UMN-GPCA-REQ-68)."""

from __future__ import annotations

import pytest

from openinfusion.pump.alarms import AlarmCode, AlarmManager
from openinfusion.units import Duration, Instant

A = AlarmCode


def _at(seconds: int) -> Instant:
    return Instant(0) + Duration.s(seconds)


@pytest.mark.req("UMN-GPCA-REQ-68")
def test_active_alarms_are_listed_by_priority_then_most_recent_first() -> None:
    pump = AlarmManager(channels=2)
    pump.activate(A.NEAR_END, 0, _at(1))  # low
    pump.activate(A.AIR_IN_LINE, 1, _at(2))  # high
    pump.activate(A.CALLBACK_PAUSED, 0, _at(3))  # medium
    pump.activate(A.DOOR_OPEN, 0, _at(4))  # high, more recent than the air alarm
    pump.activate(A.RESERVOIR_LOW, 1, _at(5))  # low, more recent than near-end
    order = [A.DOOR_OPEN, A.AIR_IN_LINE, A.CALLBACK_PAUSED, A.RESERVOIR_LOW, A.NEAR_END]
    assert [a.code for a in pump.active()] == order
    assert [a.code for a in pump.annunciation(_at(6)).active] == order
    assert [a.code for a in pump.active(0)] == [A.DOOR_OPEN, A.CALLBACK_PAUSED, A.NEAR_END]
