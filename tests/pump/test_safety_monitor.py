"""The safety monitor is independent in fact: it catches single faults of the delivery side, and nothing else.

Faults are injected where a real one would be (the controller, its calibration, the dose conversion, the
motor driver: ``sim.firmware_faults``) or by commanding the virtual motor behind the core's back; the
monitor sees them only through its own reads. Every example scenario (multistep, ramp/taper, intermittent
with KVO, PCA, secondary, loading, syringe) keeps its exact alarm list in ``tests/sim/test_scenarios.py``,
which is where "no false trip" across the program types is checked.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from openinfusion.lab import monitor as bench
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import Channel
from openinfusion.pump.delivery import DeliveryController, Move, SegmentTracker
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import Bolus, DoseProgram, LoadingDose, SecondaryProgram, Titration
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.firmware_faults import Runaway, dose_conversion_off_by, ignore_stop, inject_controller
from openinfusion.units import Duration, FlowRate, Quantity, Volume

from rig import Rig

MONITOR = {AlarmCode.DELIVERY_ACCURACY.value, AlarmCode.MOTION_MISMATCH.value, AlarmCode.REVERSE_DELIVERY.value}


def _trips(rig: Rig) -> list[str]:
    return [str(e.data["detail"]) for e in rig.pump.log.events() if e.data.get("code") in MONITOR]


def _behind_the_back(rig: Rig, steps: int, over: Duration = Duration.s(10)) -> None:
    rig.world.hardware.channels[0].motor.move(steps, over)
    rig.driver.run_until(rig.now + over + Duration.s(5))


@pytest.mark.req("OI-SAFE-2", "UMN-GPCA-REQ-19", "OI-SAFE-3")
def test_over_infusion_by_a_runaway_controller_forces_failsafe() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(3))
    _behind_the_back(rig, 40_000)  # 2.5 mL in 10 s, far above the confirmed 25 mL/h
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE
    assert not rig.moving_forward(0)


@pytest.mark.req("OI-SAFE-4", "UMN-GPCA-REQ-19")
def test_the_monitor_expects_what_was_confirmed_not_what_the_controller_commands() -> None:
    """A controller whose time base runs 1.2x fast believes it is on target; the monitor is not fooled."""
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(5))
    inject_controller(rig.pump.channels[0], rig.world.hardware.clock.now, Runaway(Fraction(12, 10), rig.now))
    fault = rig.now
    rig.run_for(Duration.min(1))
    (trip,) = [e for e in rig.pump.log.events() if e.data.get("code") == AlarmCode.DELIVERY_ACCURACY.value]
    assert str(trip.data["detail"]).startswith("SM-2") and trip.t.since(fault) <= Duration.s(30)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OI-SAFE-4")
def test_a_dose_conversion_off_by_10x_is_caught_by_the_monitors_own_conversion() -> None:
    rig = Rig(syringe=True)
    conc = Concentration(Quantity.of(1, "mg"), Quantity.of(1, "mL"))
    with dose_conversion_off_by(10):
        program = DoseProgram(dose=Quantity.of(2, "mg/h"), concentration=conc, patient=Patient(), limits=rig.limits())
        rig.pump.program(0, program)
        rig.pump.start(0)
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(20)  # the controller runs the wrong rate
    rig.run_for(Duration.s(30))
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.world.channel(0).truth().displaced_ml < 0.15  # 2 mL/h was confirmed: 0.1 mL is 3 min of it


@pytest.mark.req("UMN-GPCA-REQ-19", "OI-SAFE-8")
def test_a_runaway_starting_after_hours_is_caught_as_fast_as_one_after_minutes() -> None:
    """A margin on the growing total would take over an hour at 4 h; the windows take seconds, as at 15 min."""
    early, late = (
        bench.run_case(bench.FaultCase(bench.FaultKind.RUNAWAY, bench.LVP, start, Fraction(12, 10)), 1)
        for start in (Duration.min(15), Duration.h(4))
    )
    for result in (early, late):
        assert result.caught and result.time_to_trip_s is not None and result.time_to_trip_s <= 30
        assert result.excess_ml <= 0.1
    assert late.time_to_trip_s is not None and early.time_to_trip_s is not None
    assert abs(late.time_to_trip_s - early.time_to_trip_s) <= 5


@pytest.mark.req("OI-SAFE-2", "UMN-GPCA-REQ-17")
def test_under_infusion_by_a_controller_that_stops_commanding_forces_failsafe() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(2))
    motor = rig.world.hardware.channels[0].motor
    for _ in range(8):  # the controller's moves are cancelled right after each service
        rig.run_for(Duration.s(1))
        motor.stop()
        rig.driver.run_until(rig.now + Duration.min(1))
    assert any(d.startswith("SM-3") for d in _trips(rig))
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


class _LosesTheVtbi(DeliveryController):
    """A controller whose segments have lost their volume limit (a plan fault): it runs on past the VTBI."""

    def plan(self, steps_now: int, tracker: SegmentTracker, interval: Duration) -> Move:
        return super().plan(steps_now, replace(tracker, limit=None), interval)

    def complete(self, tracker: SegmentTracker, measured: Volume) -> bool:
        return False


@pytest.mark.req("UMN-GPCA-REQ-20")
def test_a_controller_that_runs_past_the_vtbi_is_stopped_at_it() -> None:
    rig = Rig()
    rig.start("200", "2")
    channel = rig.pump.channels[0]
    broken = _LosesTheVtbi(channel.cal, channel.controller.max_carry)
    broken.origin_steps = channel.controller.origin_steps
    channel.controller = broken
    rig.run_for(Duration.min(2))
    assert _trips(rig) and channel.state is ChannelState.FAILSAFE
    assert rig.world.channel(0).truth().displaced_ml <= 2.05


@pytest.mark.req("OI-SAFE-5", "OI-ALM-12")
def test_a_driver_stepping_while_paused_is_latched_off_within_a_second() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(3))
    ignore_stop(rig.world.channel(0).motor)
    paused = rig.now
    rig.pump.pause(0)
    rig.driver.run_until(rig.now + Duration.s(3))
    (trip,) = [e for e in rig.pump.log.events() if e.data.get("code") == AlarmCode.MOTION_MISMATCH.value]
    assert str(trip.data["detail"]).startswith("SM-4") and trip.t.since(paused) <= Duration.s(1)
    latch = rig.world.hardware.channels[0].latch
    assert latch.tripped()
    motor = rig.world.hardware.channels[0].motor
    before = motor.issued_steps()
    motor.move(5_000, Duration.s(1))  # a latched motor refuses every move
    rig.driver.run_until(rig.now + Duration.s(3))
    assert motor.issued_steps() == before


@pytest.mark.req("OI-SAFE-5")
def test_the_monitor_stops_the_motor_itself_even_when_the_channel_path_is_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel never services again (a hung controller): the alarm cannot reach it, the latch still acts."""
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(3))
    monkeypatch.setattr(Channel, "service", lambda self, now: now + Duration.min(5))
    motor = rig.world.hardware.channels[0].motor
    start = motor.issued_steps()
    _behind_the_back(rig, 40_000, Duration.s(60))  # 2.5 mL over a minute: a runaway nobody else stops
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.pump.channels[0].state is ChannelState.INFUSING  # the channel never heard of it
    stopped = motor.issued_steps()
    rig.driver.run_until(rig.now + Duration.s(30))
    assert motor.issued_steps() == stopped < start + 4_000  # latched within seconds: no further pulse


@pytest.mark.req("UMN-GPCA-REQ-22")
def test_the_reverse_allowance_belongs_to_one_hold_and_does_not_add_up() -> None:
    rig = Rig(syringe=True)
    rig.start("10")
    rig.run_for(Duration.min(30))
    cal = rig.world.calibrations[0]
    one_hold = cal.max_backoff.nl + cal.volume_at(cal.reverse_slack_steps).nl  # back-off and the drive's play
    backoff = cal.steps_for(Volume(one_hold * 6 // 10))  # 60 % of one hold's allowance
    for _ in range(2):
        rig.pump.pause(0)
        _behind_the_back(rig, -backoff, Duration.s(2))
        assert not _trips(rig)
        rig.pump.resume(0)
        rig.run_for(Duration.min(5))
    rig.pump.pause(0)
    _behind_the_back(rig, -2 * backoff, Duration.s(2))  # 120 %: within two holds' allowance, not one's
    assert any(d.startswith("SM-5") for d in _trips(rig))


@pytest.mark.req("UMN-GPCA-REQ-22", "OI-SAFE-3")
def test_reverse_motion_while_delivering_forces_failsafe() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(3))
    _behind_the_back(rig, -2_000)
    assert rig.raised(AlarmCode.REVERSE_DELIVERY)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OI-SAFE-6", "OI-POST-1")
def test_a_controller_calibration_unlike_the_monitors_copy_keeps_the_pump_out_of_service() -> None:
    result = bench.run_case(
        bench.FaultCase(bench.FaultKind.CALIBRATION_AT_POST, bench.LVP, Duration(0), Fraction(8, 10)), 1
    )
    assert result.caught and result.check == "channel 1 calibration"


@pytest.mark.req("OI-SAFE-4", "OI-SAFE-6")
def test_a_calibration_corrupted_at_run_time_is_measured_against_the_monitors_own_copy() -> None:
    case = bench.FaultCase(bench.FaultKind.CALIBRATION, bench.SYRINGE, Duration.min(15), Fraction(8, 10))
    result = bench.run_case(case, 1)
    assert result.caught and result.passes


@pytest.mark.req("OI-SAFE-7")
def test_the_monitor_runs_every_second_whatever_the_controller_needs() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(1))
    services, ticks = rig.driver.services, rig.driver.ticks
    rig.driver.run_until(rig.now + Duration.min(5))
    assert rig.driver.ticks - ticks + rig.driver.services - services >= 299  # one check a second ...
    assert rig.driver.services - services <= 15  # ... while the channel itself asks far less often
    now = rig.world.hardware.clock.now()
    assert rig.pump.service() <= now + Duration.s(1)
    _behind_the_back(rig, 6_000, Duration.s(2))  # caught between two of the channel's services
    assert rig.raised(AlarmCode.DELIVERY_ACCURACY)


@pytest.mark.req("OI-DEL-4")
def test_the_controller_clamps_every_move_to_the_maximum_rate() -> None:
    rig = Rig()
    cal = rig.world.calibrations[0]
    controller = DeliveryController(cal, Volume.ml("0.05"))
    tracker = SegmentTracker(rate=FlowRate.ml_h(100), limit=None, duration=None, base=Volume.ml(50))
    move = controller.plan(0, tracker, Duration.s(10))  # 50 mL behind: the target is far ahead
    assert move.steps == cal.max_steps(Duration.s(10))
    assert cal.volume_at(move.steps) <= cal.max_rate.volume_in(Duration.s(10)) + Volume(2 * 62_500)
    fixed = controller.backoff_move(cal.max_backoff, 100_000, Duration(1_000))
    assert abs(fixed.steps) <= cal.max_steps(fixed.over)


@pytest.mark.req("OI-SAFE-4")
def test_boluses_titrations_secondaries_pauses_and_kvo_never_trip_the_monitor() -> None:
    rig = Rig()
    rig.start("100", "40")
    rig.run_for(Duration.min(5))
    rig.pump.bolus(0, Bolus(volume=Volume.ml(2), rate=FlowRate.ml_h(300), limits=rig.limits()))
    rig.run_for(Duration.min(3))
    rig.pump.titrate(0, Titration(new=FlowRate.ml_h(150)))
    rig.pump.confirm_titration(0)
    rig.run_for(Duration.min(3))
    secondary = SecondaryProgram(rate=FlowRate.ml_h(200), vtbi=Volume.ml(5), limits=rig.limits())
    rig.pump.secondary(0, secondary)
    rig.run_for(Duration.min(4))
    rig.pump.pause(0)
    rig.run_for(Duration.min(1))
    rig.pump.resume(0)
    rig.run_for(Duration.min(30))
    assert rig.pump.channels[0].state is ChannelState.KVO
    assert not _trips(rig)


@pytest.mark.req("OI-SAFE-4")
def test_pca_demands_loading_and_basal_titration_never_trip_the_monitor() -> None:
    rig = Rig(syringe=True)
    conc = Concentration(Quantity.of(1, "mg"), Quantity.of(1, "mL"))
    program = PcaProgram(
        concentration=conc, demand_dose=Quantity.of(1, "mg"), lockout=Duration.min(6), basal=Quantity.of(1, "mg/h"),
        loading=Quantity.of(2, "mg"), demand_rate=FlowRate.ml_h(60), limits=rig.limits(),
    )  # fmt: skip
    rig.pump.program(0, program)
    rig.pump.start(0)
    for _ in range(6):  # pressed every 4 min: every other press is inside the lockout
        rig.run_for(Duration.min(4))
        rig.pump.pca_demand(0)
    rig.pump.titrate(0, Titration(new=Quantity.of(2, "mg/h")))
    rig.pump.confirm_titration(0)
    rig.run_for(Duration.min(20))
    assert rig.pump.channels[0].state is ChannelState.INFUSING
    assert not _trips(rig)


def test_normal_delivery_never_trips_the_monitor() -> None:
    rig = Rig()
    rig.start("250", "20")
    rig.run_for(Duration.min(10))
    assert rig.pump.channels[0].state is ChannelState.KVO
    assert not _trips(rig)


@pytest.mark.req("OI-SAFE-4")
def test_loading_dose_titration_by_dose_and_a_per_kg_bolus_never_trip_the_monitor() -> None:
    """The monitor converts the loading amount, the new dose and the bolus amount itself, per kg of this patient."""
    rig = Rig(syringe=True)
    conc = Concentration(Quantity.of(250, "mg"), Quantity.of(50, "mL"))
    patient = Patient(weight=Quantity.of("73.4", "kg"))
    loading = LoadingDose(amount=Quantity.of("0.3", "mg/kg"), pace=Duration.min(7))
    program = DoseProgram(
        dose=Quantity.of("0.7", "mg/kg/h"), concentration=conc, patient=patient, vtbi=Volume.ml(30), loading=loading,
        limits=rig.limits(),
    )  # fmt: skip
    rig.pump.program(0, program)
    rig.pump.start(0)
    rig.run_for(Duration.min(3))
    rig.pump.titrate(0, Titration(new=Quantity.of("1.1", "mg/kg/h")))  # during the loading dose
    rig.pump.confirm_titration(0)
    rig.run_for(Duration.min(20))
    bolus = Bolus.request(
        Quantity.of("0.1", "mg/kg"), Duration.min(2), rig.limits(), concentration=conc, patient=patient
    )
    rig.pump.bolus(0, bolus)
    rig.run_for(Duration.h(3))
    assert rig.pump.channels[0].state is ChannelState.KVO
    assert not _trips(rig)
