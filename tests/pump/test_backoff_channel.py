"""The occlusion back-off on a channel (OI-ALM-3): the mechanism withdraws what the pump logs and accounts.

An LVP and a 50 mL syringe run at 25 mL/h until a downstream occlusion stops them. The back-off must relieve
the line (its pressure back near where it was before the occlusion, the volume a release would give small),
the syringe's plunger must really move back (the drive crosses its play first: the nut's backlash and the
friction reversing on the gripped flange), and the volume the pump logs as withdrawn is exactly what its
counters take back.
"""

from __future__ import annotations

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.eventlog import EventKind, decode_quantity
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, Volume

from rig import Rig


def _counted(rig: Rig) -> int:
    c = rig.pump.channels[0].live_counters()
    return c.delivered.nl + c.kvo.nl


@pytest.mark.req("OI-ALM-3")
@pytest.mark.parametrize("syringe", [False, True], ids=["lvp", "syringe50"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_back_off_moves_the_fluid_it_logs_and_the_counters_take_exactly_that_back(syringe: bool, seed: int) -> None:
    rig = Rig(syringe=syringe, seed=seed)
    rig.start("25")
    rig.run_for(Duration.min(5))
    channel = rig.world.channel(0)
    before_mmhg = channel.truth().line_pressure_mmhg
    channel.set_occlusion("downstream", True)
    while not rig.raised(AlarmCode.OCCLUSION_DOWNSTREAM):  # the last look before the alarm and its back-off
        at_stop, counted = channel.truth(), _counted(rig)
        rig.run_for(Duration.s("0.1"))
    rig.run_for(Duration.s(10))
    after = channel.truth()
    (stop,) = [e for e in rig.events(EventKind.INFUSION_STOPPED) if e.data.get("reason") == "occlusion back-off"]
    logged = Volume.of(decode_quantity(stop.data["withdrawn"], "withdrawn"))

    assert at_stop.line_pressure_mmhg > 150  # the line was loaded: there was something to relieve
    assert counted - _counted(rig) == logged.nl  # the accounting takes back exactly what was logged
    withdrawn_ml = at_stop.displaced_ml - after.displaced_ml  # what the mechanism really moved back
    assert logged.nl / 1e6 * 0.75 <= withdrawn_ml <= logged.nl / 1e6 * 1.1
    assert before_mmhg - 20 <= after.line_pressure_mmhg <= before_mmhg + 25
    assert after.stored_ml <= 0.025  # what a release would give now


@pytest.mark.req("OI-ALM-3")
def test_a_stopping_alarm_that_is_not_an_occlusion_withdraws_nothing() -> None:
    rig = Rig(syringe=True)
    rig.start("25")
    rig.run_for(Duration.min(2))
    shaft = rig.world.channel(0).truth().shaft_steps
    rig.world.channel(0).set_door(False)
    rig.run_for(Duration.s(10))
    assert rig.raised(AlarmCode.DOOR_OPEN)
    assert rig.pump.channels[0].state is ChannelState.ALARM
    assert not [e for e in rig.events(EventKind.INFUSION_STOPPED) if e.data.get("reason") == "occlusion back-off"]
    assert rig.world.channel(0).truth().shaft_steps >= shaft  # the shaft never turned back
