"""The pump core on virtual hardware: delivery, titration, secondary, bolus, KVO, near end."""

import pytest

from openinfusion.errors import ProgramError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.programs import Bolus, SecondaryProgram, Titration
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, FlowRate, Volume

from rig import Rig


@pytest.mark.req("OI-DEL-1", "OI-VOL-1")
@pytest.mark.parametrize("rate", ["1", "25", "600"])
def test_delivered_volume_follows_the_programmed_rate(rate: str) -> None:
    rig = Rig()
    rig.start(rate)
    rig.run_for(Duration.h(1))
    expected = FlowRate.ml_h(rate).volume_in(Duration.h(1))
    got = rig.delivered()
    # the counter is exact against the calibration; within one service interval of motion
    assert abs(got.nl - expected.nl) <= max(expected.nl // 100, 20_000), (got, expected)
    # the fluid that reached the patient is within the mechanism's real tolerance (LVP +-5 %)
    assert rig.patient_ml() == pytest.approx(float(expected.in_ml), rel=0.05, abs=0.05)


@pytest.mark.req("OI-VOL-1")
def test_counters_are_integers_and_never_negative() -> None:
    rig = Rig()
    rig.start("25", "2")
    for _ in range(40):
        rig.run_for(Duration.s(30))
        c = rig.pump.channels[0].counters
        assert isinstance(c.delivered.nl, int) and c.delivered.nl >= 0
        assert c.delivered <= Volume.ml(2)


@pytest.mark.req("OI-PROG-9", "OI-ALM-10")
def test_titration_waits_for_confirmation_and_alerts_if_unconfirmed() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(2))
    rig.pump.titrate(0, Titration(FlowRate.ml_h(100)))
    rig.run_for(Duration.s(20))
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(25), "the old rate keeps running until confirmed"
    rig.run_for(Duration.s(15))
    assert rig.raised(AlarmCode.UNCONFIRMED_TITRATION), "an unconfirmed change alerts"
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(25)
    rig.pump.confirm_titration(0)
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(100)
    assert rig.events(EventKind.TITRATION_CONFIRMED)


@pytest.mark.req("OI-DEL-2")
@pytest.mark.parametrize(("old", "new"), [("10", "25"), ("5", "100"), ("1", "50")])
def test_rate_increase_of_more_than_double_is_not_under_delivered(old: str, new: str) -> None:
    rig = Rig()
    rig.start(old)
    rig.run_for(Duration.min(10))
    rig.pump.titrate(0, Titration(FlowRate.ml_h(new)))
    rig.pump.confirm_titration(0)
    at_change = rig.delivered()
    rig.run_for(Duration.min(2))
    expected = FlowRate.ml_h(new).volume_in(Duration.min(2))
    got = rig.delivered() - at_change
    assert got.nl >= expected.nl * 97 // 100, f"{got} delivered in 2 min after the change, expected {expected}"


@pytest.mark.req("OI-PROG-5")
def test_secondary_returns_to_primary() -> None:
    rig = Rig()
    rig.start("50", "500")
    rig.run_for(Duration.min(5))
    rig.pump.secondary(0, SecondaryProgram(rate=FlowRate.ml_h(200), vtbi=Volume.ml(10), limits=rig.limits()))
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(200)
    rig.run_for(Duration.min(4))
    assert rig.events(EventKind.SECONDARY_COMPLETED)
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(50)
    assert rig.pump.channels[0].state is ChannelState.INFUSING


@pytest.mark.req("OI-PROG-4")
def test_bolus_larger_than_remaining_is_refused_and_nothing_changes() -> None:
    rig = Rig()
    rig.start("25", "5")
    rig.run_for(Duration.min(6))  # 2.5 mL delivered, 2.5 left
    big = Bolus.request(Volume.ml(3), FlowRate.ml_h(300), rig.limits())
    with pytest.raises(ProgramError, match="remaining"):
        rig.pump.bolus(0, big)
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(25)
    ok = Bolus.request(Volume.ml(1), FlowRate.ml_h(300), rig.limits())
    rig.pump.bolus(0, ok)
    rig.run_for(Duration.s(30))
    assert rig.events(EventKind.BOLUS_COMPLETED)


@pytest.mark.req("OI-PROG-7", "OI-ALM-7", "OI-PROG-8")
def test_vtbi_complete_switches_to_kvo_never_above_programmed_rate() -> None:
    rig = Rig()
    rig.start("0.5", "0.05")  # KVO configured at 1 mL/h, above the programmed 0.5 mL/h
    rig.run_for(Duration.min(8))
    ch = rig.pump.channels[0]
    assert ch.state is ChannelState.KVO
    assert ch.rate() == FlowRate.ml_h("0.5")
    assert rig.raised(AlarmCode.VTBI_COMPLETE_KVO)
    assert rig.raised(AlarmCode.NEAR_END)
    assert ch.counters.delivered <= Volume.ml("0.05")


@pytest.mark.req("OI-CHAN-1", "OI-ALM-6")
def test_refused_events_carry_a_reason_and_change_nothing() -> None:
    rig = Rig()
    with pytest.raises(TransitionRefusedError, match="not allowed while idle"):
        rig.pump.start(0)
    rig.pump.program(0, rig.continuous("25"))
    rig.world.channel(0).set_door(False)
    with pytest.raises(TransitionRefusedError, match="door open"):
        rig.pump.start(0)
    assert rig.pump.channels[0].state is ChannelState.READY
    refused = rig.events(EventKind.EVENT_REFUSED)
    assert len(refused) == 2 and all(e.data["reason"] for e in refused)


@pytest.mark.req("OI-CHAN-2")
def test_an_alarm_on_one_channel_stops_only_that_channel() -> None:
    rig = Rig(channels=2)
    rig.start("25", channel=0)
    rig.start("25", channel=1)
    rig.run_for(Duration.min(2))
    rig.world.channel(0).set_occlusion("downstream", True)
    rig.run_for(Duration.min(3))
    assert rig.pump.channels[0].state is ChannelState.ALARM
    assert rig.pump.channels[1].state is ChannelState.INFUSING
    assert rig.moving_forward(1)


@pytest.mark.req("OI-PROG-6", "OI-PROG-7")
def test_intermittent_doses_keep_the_vein_open_between_doses() -> None:
    from openinfusion.pump.programs import IntermittentProgram

    rig = Rig()
    program = IntermittentProgram(
        dose_volume=Volume.ml(10), rate=FlowRate.ml_h(60), interval=Duration.h(1), doses=2, limits=rig.limits()
    )
    rig.pump.program(0, program)
    rig.pump.start(0)
    rig.run_for(Duration.min(30))  # the first dose took 10 min; 20 min of KVO since
    ch = rig.pump.channels[0]
    assert ch.rate() == FlowRate.ml_h(1)
    c = ch.live_counters()
    assert c.delivered <= Volume.ml(10) and c.delivered >= Volume.ml("9.99")
    assert Volume.ml("0.3") <= c.kvo <= Volume.ml("0.36")
    rig.run_for(Duration.min(50))  # the second dose ran from 60 to 70 min
    assert ch.live_counters().delivered >= Volume.ml("19.99")
