"""Behaviour the mutation criterion found unchecked once every safety requirement was evaluated (decision 0037).

Each test fails with the surviving mutant it was written for: the delivery plan's exact move, the latching and
reset rules of Table 4's overheated and empty-reservoir alarms, the VTBI ceiling's allowance for what was
confirmed after the program (a bolus, a secondary) and for the KVO that follows it.
"""

from __future__ import annotations

import pytest

from openinfusion.pump.alarms import AlarmCode, AlarmManager
from openinfusion.pump.delivery import DeliveryController, SegmentTracker
from openinfusion.pump.mechanism import MechanismCalibration, MechanismKind
from openinfusion.pump.programs import Bolus, SecondaryProgram
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, FlowRate, Instant, Volume

from rig import Rig

A = AlarmCode

# A linear mechanism: 1000 nL per step, 100 steps per revolution, up to 1000 mL/h.
CAL = MechanismCalibration(
    kind=MechanismKind.PERISTALTIC,
    steps_per_rev=100,
    counts_per_step=1,
    cumulative_nl=tuple(1000 * i for i in range(101)),
    min_rate=FlowRate.ml_h("0.1"),
    max_rate=FlowRate.ml_h(1000),
    resolution=FlowRate.ml_h("0.1"),
)


def _at(seconds: int) -> Instant:
    return Instant(Duration.s(seconds).us)


@pytest.mark.req("OI-DEL-4")
def test_the_plan_moves_exactly_to_the_target_and_never_back() -> None:
    controller = DeliveryController(CAL, Volume.ml("0.05"))
    tracker = SegmentTracker(rate=FlowRate.ml_h(36), limit=None, duration=None, base=Volume(0))  # 10 nL/ms
    assert controller.plan(0, tracker, Duration.s(1)).steps == 10  # 10,000 nL in 1 s: 10 steps
    assert controller.plan(4, tracker, Duration.s(1)).steps == 6  # 4 already there
    assert controller.plan(25, tracker, Duration.s(1)).steps == 0  # ahead of the target: idle, never back


@pytest.mark.req("OPENPCA-R6-4-0-8")
def test_the_overheated_alarm_cannot_be_reset_while_hot_and_stays_until_reset_when_cool() -> None:
    pump = AlarmManager()
    pump.activate(A.OVERHEATED, 0, _at(0))
    assert not pump.reset(A.OVERHEATED, 0, _at(1)).accepted  # still above 55 C
    pump.condition_cleared(A.OVERHEATED, 0, _at(2))
    assert [a.code for a in pump.active(0)] == [A.OVERHEATED] and pump.stops_delivery(0)  # latched when cool
    assert pump.reset(A.OVERHEATED, 0, _at(3)).accepted
    assert not pump.stops_delivery(0)


@pytest.mark.req("OPENPCA-R6-8-0-10")
def test_the_empty_reservoir_alarm_latches_and_may_be_acknowledged_while_empty() -> None:
    pump = AlarmManager()
    pump.activate(A.RESERVOIR_EMPTY, 0, _at(0))
    assert pump.reset(A.RESERVOIR_EMPTY, 0, _at(1)).accepted  # the nurse silences it while replacing the syringe
    assert pump.stops_delivery(0)  # still empty: delivery stays stopped
    other = AlarmManager()
    other.activate(A.RESERVOIR_EMPTY, 0, _at(0))
    other.condition_cleared(A.RESERVOIR_EMPTY, 0, _at(2))  # refilled, nobody has seen it yet
    assert [a.code for a in other.active(0)] == [A.RESERVOIR_EMPTY] and other.stops_delivery(0)


@pytest.mark.req("UMN-GPCA-REQ-20")
def test_the_vtbi_ceiling_allows_what_was_confirmed_after_the_program_and_the_kvo_that_follows() -> None:
    rig = Rig()
    rig.start("300", "6")
    rig.run_for(Duration.s(20))
    rig.pump.bolus(0, Bolus(volume=Volume.ml(1), rate=FlowRate.ml_h(600), limits=rig.limits()))
    rig.run_for(Duration.s(20))
    rig.pump.secondary(0, SecondaryProgram(rate=FlowRate.ml_h(600), vtbi=Volume.ml(1), limits=rig.limits()))
    rig.run_for(Duration.min(60))  # everything delivered, then an hour of KVO at 1 mL/h
    assert rig.pump.channels[0].state is ChannelState.KVO
    assert rig.world.channel(0).truth().displaced_ml > 7.5  # the program (its bolus within), the secondary, KVO
    code = AlarmCode.DELIVERY_ACCURACY.value
    assert not [e for e in rig.pump.log.events() if e.data.get("code") == code]
