"""The monitor's motion cross-check (SM-1, OI-SAFE-1) at its tolerance: issued steps against encoder motion.

The check tolerates a drift of ``motion_permille`` (2 %) of the steps issued within the sliding window, or
``motion_steps`` (64) when that is larger; beyond it the channel fails safe, within it delivery goes on.
"""

from __future__ import annotations

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.faults import EncoderSlip
from openinfusion.units import Duration

from rig import Rig


def _slipping(rate_ml_h: str, fraction: float) -> Rig:
    rig = Rig()
    rig.start(rate_ml_h)
    rig.run_for(Duration.min(2))
    rig.world.inject(EncoderSlip(fraction=fraction), 0)
    rig.run_for(Duration.min(4))
    return rig


def _mismatches(rig: Rig) -> list[str]:
    code = AlarmCode.MOTION_MISMATCH.value
    return [str(e.data["detail"]) for e in rig.pump.log.events() if e.data.get("code") == code]


@pytest.mark.req("OI-SAFE-1")
@pytest.mark.parametrize("rate_ml_h", ["1", "100"])
def test_an_encoder_that_confirms_every_step_never_trips_the_motion_check(rate_ml_h: str) -> None:
    rig = Rig()
    rig.start(rate_ml_h)
    rig.run_for(Duration.min(6))
    assert not _mismatches(rig)
    assert rig.pump.channels[0].state is ChannelState.INFUSING


@pytest.mark.req("OI-SAFE-1", "OI-SAFE-3")
@pytest.mark.parametrize(
    ("rate_ml_h", "fraction", "trips"),
    [
        ("100", 0.015, False),  # 1.5 % of the window's steps: within the 2 % tolerance
        ("100", 0.025, True),  # 2.5 %: beyond it
        ("1", 0.05, False),  # 1 mL/h: 2 % is a few steps, so the 64-step floor rules; 5 % stays under it
        ("1", 0.30, True),  # and 30 % goes over it
    ],
)
def test_the_motion_check_trips_beyond_its_tolerance_and_not_within(
    rate_ml_h: str, fraction: float, trips: bool
) -> None:
    rig = _slipping(rate_ml_h, fraction)
    found = _mismatches(rig)
    assert bool(found) is trips, found
    if trips:
        assert found[0].startswith("SM-1")
        assert rig.pump.channels[0].state is ChannelState.FAILSAFE
        assert not rig.moving_forward(0)
    else:
        assert rig.pump.channels[0].state is ChannelState.INFUSING
