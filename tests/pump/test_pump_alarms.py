"""Every alarm condition raised through the sensor path on virtual hardware; stopping alarms stop the motor."""

import numpy as np
import pytest

from openinfusion.pump.alarms import CATALOGUE, AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.dosing import Concentration
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import IntermittentProgram, KvoSettings
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.faults import (
    AirDetectorFailure,
    AnnunciatorFailure,
    BatteryCellFailure,
    EncoderSlip,
    MissedTimerTick,
    MotorStall,
    StorageCorruption,
    StuckPressureSensor,
)
from openinfusion.sim.params import BatteryParams, ChannelConfig, VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, FlowRate, Quantity, Volume

from rig import KVO, Rig

STOPPED_STATES = {ChannelState.ALARM, ChannelState.FAILSAFE, ChannelState.COMPLETE}


def assert_stops_motor(rig: Rig, code: AlarmCode, channel: int = 0) -> None:
    """The alarm was raised, the channel left delivery, and the motor issues no forward step."""
    assert rig.raised(code), f"{code.value} was not raised"
    assert rig.pump.channels[channel].state in STOPPED_STATES
    assert not rig.moving_forward(channel), f"motor still moves forward after {code.value}"


@pytest.mark.req("OI-ALM-2", "OI-ALM-3", "OI-ALM-12")
def test_downstream_occlusion_stops_the_motor_and_backs_off() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(5))
    rig.world.channel(0).set_occlusion("downstream", True)
    rig.run_for(Duration.min(2))
    assert_stops_motor(rig, AlarmCode.OCCLUSION_DOWNSTREAM)
    stops = [e for e in rig.events(EventKind.INFUSION_STOPPED) if e.data.get("reason") == "occlusion back-off"]
    assert stops, "back-off after the occlusion stop"
    assert rig.world.channel(0).truth().line_pressure_mmhg < 100, "back-off relieved the line pressure"


@pytest.mark.req("OI-ALM-4")
def test_upstream_occlusion_stops_the_motor() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(2))
    rig.world.channel(0).set_occlusion("upstream", True)
    rig.run_for(Duration.min(3))
    assert_stops_motor(rig, AlarmCode.OCCLUSION_UPSTREAM)


@pytest.mark.req("UMN-GPCA-REQ-21", "OI-ALM-12")
def test_single_bubble_stops_the_motor() -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(1))
    rig.world.channel(0).inject_air(Volume.ml("0.3"))
    rig.run_for(Duration.min(2))
    assert_stops_motor(rig, AlarmCode.AIR_IN_LINE)


@pytest.mark.req("OI-ALM-5")
def test_cumulative_air_stops_the_motor() -> None:
    rig = Rig()
    rig.start("300")
    rig.run_for(Duration.min(1))
    for _ in range(30):  # 30 bubbles of 0.05 mL: each below the single limit, 1.5 mL in the window
        rig.world.channel(0).inject_air(Volume.ml("0.05"))
        rig.run_for(Duration.s(6))
    assert not rig.raised(AlarmCode.AIR_IN_LINE)
    assert_stops_motor(rig, AlarmCode.AIR_CUMULATIVE)


@pytest.mark.req("OI-ALM-6", "OI-ALM-12")
def test_door_opened_while_infusing_stops_the_motor() -> None:
    rig = Rig()
    rig.start("50")
    rig.run_for(Duration.min(1))
    rig.world.channel(0).set_door(False)
    rig.run_for(Duration.s(5))
    assert_stops_motor(rig, AlarmCode.DOOR_OPEN)


@pytest.mark.req("OI-ALM-6")
def test_set_unloaded_stops_the_motor() -> None:
    rig = Rig()
    rig.start("50")
    rig.run_for(Duration.min(1))
    rig.world.channel(0).set_loaded(False)
    rig.run_for(Duration.s(5))
    assert_stops_motor(rig, AlarmCode.SET_NOT_LOADED)


@pytest.mark.req("OI-ALM-7", "OI-PROG-7")
def test_vtbi_complete_without_kvo_stops() -> None:
    rig = Rig(settings=ChannelSettings(kvo=KvoSettings(enabled=False, rate=FlowRate.ml_h(1))))
    rig.start("60", "1")
    rig.run_for(Duration.min(2))
    assert rig.pump.channels[0].state is ChannelState.COMPLETE
    assert_stops_motor(rig, AlarmCode.VTBI_COMPLETE)


@pytest.mark.req("OI-ALM-9", "OI-ALM-12")
def test_motor_stall_flagged_by_the_driver_fails_safe() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(1))
    rig.world.inject(MotorStall(flagged=True), 0)
    rig.run_for(Duration.min(1))
    assert_stops_motor(rig, AlarmCode.MOTOR_FAULT)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OI-SAFE-1", "OI-SAFE-3")
@pytest.mark.parametrize("fault", [MotorStall(flagged=False), EncoderSlip(fraction=0.2)])
def test_safety_monitor_catches_motion_the_encoder_does_not_confirm(fault: MotorStall | EncoderSlip) -> None:
    rig = Rig()
    rig.start("100")
    rig.run_for(Duration.min(1))
    rig.world.inject(fault, 0)
    rig.run_for(Duration.min(10))
    assert_stops_motor(rig, AlarmCode.MOTION_MISMATCH)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE
    assert not rig.pump.reset_alarm(0, AlarmCode.MOTION_MISMATCH), "failsafe cannot be reset"


@pytest.mark.req("OI-ALM-9")
def test_pressure_sensor_fault_stops_delivery() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(1))
    rig.world.inject(StuckPressureSensor(side="downstream", self_detected=True), 0)
    rig.run_for(Duration.min(6))
    assert_stops_motor(rig, AlarmCode.PRESSURE_SENSOR_FAULT)


@pytest.mark.req("OI-ALM-9")
def test_air_sensor_fault_stops_delivery() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(1))
    rig.world.inject(AirDetectorFailure(self_test_fails=True), 0)
    rig.run_for(Duration.min(6))
    assert_stops_motor(rig, AlarmCode.AIR_SENSOR_FAULT)


@pytest.mark.req("OI-ALM-10")
def test_callbacks_for_a_channel_left_paused_or_unprogrammed() -> None:
    rig = Rig(channels=2)
    rig.start("25", channel=0)
    rig.run_for(Duration.min(1))
    rig.pump.pause(0)
    rig.pump.begin_programming(1)
    rig.run_for(Duration.min(3))
    assert [e.channel for e in rig.raised(AlarmCode.CALLBACK_PAUSED)] == [0]
    assert [e.channel for e in rig.raised(AlarmCode.CALLBACK_PROGRAMMING)] == [1]


@pytest.mark.req("OI-ALM-8")
def test_battery_low_alarms_at_least_30_minutes_before_delivery_stops() -> None:
    world = VirtualPumpConfig(
        channels=(ChannelConfig(),),
        battery=BatteryParams(initial_charge_fraction=0.25, capacity_mah=2200.0),
        watchdog_window=WATCHDOG_WINDOW,
    )
    rig = Rig(world=world)
    rig.start("125")
    rig.world.set_mains(False)
    rig.run_for(Duration.s(10))
    assert rig.raised(AlarmCode.ON_BATTERY)
    for _ in range(48):
        rig.run_for(Duration.min(5))
        if rig.raised(AlarmCode.BATTERY_DEPLETED):
            break
    low, empty = rig.raised(AlarmCode.BATTERY_LOW), rig.raised(AlarmCode.BATTERY_DEPLETED)
    assert low and empty
    assert empty[0].t.since(low[0].t) >= Duration.min(30)
    assert_stops_motor(rig, AlarmCode.BATTERY_DEPLETED)


@pytest.mark.req("OI-ALM-8")
def test_battery_cell_failure_on_battery_stops_delivery() -> None:
    rig = Rig()
    rig.start("25")
    rig.world.set_mains(False)
    rig.run_for(Duration.min(1))
    rig.world.inject(BatteryCellFailure(detected_by_gauge=True), None)
    rig.run_for(Duration.s(30))
    assert rig.raised(AlarmCode.BATTERY_DEPLETED)


@pytest.mark.req("OI-POST-2")
def test_missed_watchdog_service_fails_safe() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(1))
    rig.world.inject(MissedTimerTick(kicks=2_000), None)  # over 10 min of kicks: the monitor has it kick every second
    rig.run_for(Duration.min(30))
    assert_stops_motor(rig, AlarmCode.WATCHDOG_FAULT)
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


def _powered_with(fault: StorageCorruption | AnnunciatorFailure | AirDetectorFailure) -> Pump:
    world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW), np.random.default_rng(3))
    world.inject(fault, 0 if isinstance(fault, AirDetectorFailure) else None)
    pump = Pump(world.hardware, world.calibrations, PumpConfig(channels=(ChannelSettings(kvo=KVO),)))
    driver = Driver(world, pump)
    driver.run_until(world.now + Duration.s(2))
    return pump


@pytest.mark.req("OI-POST-1", "OI-SAFE-3")
@pytest.mark.parametrize(
    ("fault", "item"),
    [
        (StorageCorruption(offset=3), "configuration"),
        (AnnunciatorFailure(), "audio"),
        (AirDetectorFailure(self_test_fails=True), "air detector"),
    ],
)
def test_failed_self_test_leaves_the_pump_safe_and_names_the_failure(
    fault: StorageCorruption | AnnunciatorFailure | AirDetectorFailure, item: str
) -> None:
    pump = _powered_with(fault)
    alarms = [e for e in pump.log.events() if e.kind is EventKind.ALARM_RAISED]
    assert alarms and alarms[0].data["code"] == AlarmCode.SELF_TEST_FAILED.value
    assert item in str(alarms[0].data["detail"])
    assert all(ch.state is ChannelState.FAILSAFE for ch in pump.channels)


@pytest.mark.req("OI-PCA-1", "UMN-GPCA-REQ-25", "UMN-GPCA-REQ-26")
def test_pca_demand_in_lockout_is_denied_and_logged() -> None:
    rig = Rig(syringe=True)
    conc = Concentration(Quantity.of(1, "mg"), Quantity.of(1, "mL"))
    program = PcaProgram(
        concentration=conc,
        demand_dose=Quantity.of(1, "mg"),
        lockout=Duration.min(10),
        limit_1h=Quantity.of(6, "mg"),
        demand_rate=FlowRate.ml_h(60),
        limits=rig.limits(),
    )
    rig.pump.program(0, program)
    rig.pump.start(0)
    rig.run_for(Duration.min(1))
    rig.pump.pca_demand(0)
    rig.run_for(Duration.min(2))
    for _ in range(3):
        rig.pump.pca_demand(0)
        rig.run_for(Duration.min(1))
    demands = rig.events(EventKind.PCA_DEMAND)
    assert [d.data["given"] for d in demands] == [True, False, False, False]
    assert {d.data["reason"] for d in demands[1:]} == {"lockout"}
    assert rig.raised(AlarmCode.PCA_FREQUENT_DEMANDS)
    assert rig.delivered() >= Volume.ml("0.99")


@pytest.mark.req("OI-ALM-1")
def test_every_catalogue_code_is_covered_by_a_sensor_path_test() -> None:
    covered = {
        AlarmCode.OCCLUSION_DOWNSTREAM, AlarmCode.OCCLUSION_UPSTREAM, AlarmCode.AIR_IN_LINE, AlarmCode.AIR_CUMULATIVE,
        AlarmCode.DOOR_OPEN, AlarmCode.SET_NOT_LOADED, AlarmCode.VTBI_COMPLETE_KVO, AlarmCode.VTBI_COMPLETE,
        AlarmCode.NEAR_END, AlarmCode.BATTERY_LOW, AlarmCode.BATTERY_DEPLETED, AlarmCode.ON_BATTERY,
        AlarmCode.MOTOR_FAULT, AlarmCode.PRESSURE_SENSOR_FAULT, AlarmCode.AIR_SENSOR_FAULT,
        AlarmCode.MOTION_MISMATCH, AlarmCode.CALLBACK_PAUSED, AlarmCode.CALLBACK_PROGRAMMING,
        AlarmCode.UNCONFIRMED_TITRATION, AlarmCode.PCA_FREQUENT_DEMANDS, AlarmCode.SELF_TEST_FAILED,
        AlarmCode.WATCHDOG_FAULT, AlarmCode.DELIVERY_ACCURACY, AlarmCode.REVERSE_DELIVERY, AlarmCode.SYSTEM_FAULT,
        AlarmCode.ENCODER_FAULT, AlarmCode.MAX_DOSE,  # MAX_DOSE: tests/pump/test_pca_clinical.py
        AlarmCode.LIBRARY_FALLBACK,  # tests/pump/test_library_attacks.py
        # tests/pump/test_flow_and_container.py:
        AlarmCode.OVER_INFUSION, AlarmCode.UNDER_INFUSION, AlarmCode.OVERHEATED, AlarmCode.RESERVOIR_LOW,
        AlarmCode.RESERVOIR_EMPTY,
    }  # fmt: skip
    assert covered == set(CATALOGUE), set(CATALOGUE) - covered


@pytest.mark.req("OI-ALM-3")
def test_a_door_opened_after_a_cleared_occlusion_is_not_answered_with_a_back_off() -> None:
    rig = Rig()
    rig.start("25")
    rig.run_for(Duration.min(5))
    rig.world.channel(0).set_occlusion("downstream", True)
    rig.run_for(Duration.min(2))
    assert rig.raised(AlarmCode.OCCLUSION_DOWNSTREAM)
    backoffs = [e for e in rig.events(EventKind.INFUSION_STOPPED, 0) if e.data.get("reason") == "occlusion back-off"]
    assert len(backoffs) == 1
    rig.world.channel(0).set_occlusion("downstream", False)
    rig.run_for(Duration.min(1))
    rig.pump.reset_alarm(0, AlarmCode.OCCLUSION_DOWNSTREAM)
    rig.pump.resume(0)
    rig.run_for(Duration.min(20))
    rig.world.channel(0).set_door(False)
    rig.run_for(Duration.s(30))
    assert rig.raised(AlarmCode.DOOR_OPEN)
    again = [e for e in rig.events(EventKind.INFUSION_STOPPED, 0) if e.data.get("reason") == "occlusion back-off"]
    assert again == backoffs  # the door stop withdrew nothing


def _pulsed(rig: Rig) -> IntermittentProgram:
    """Small doses as an insulin-like pulsed delivery: 0.05 mL at 100 mL/h every 15 s, KVO between them."""
    return IntermittentProgram(dose_volume=Volume.ml("0.05"), rate=FlowRate.ml_h(100), interval=Duration.s(15),
                               doses=200, limits=rig.limits())  # fmt: skip


@pytest.mark.req("OI-ALM-2")
@pytest.mark.parametrize("closed_after_s", [120, 127, 133])
def test_a_blocked_line_in_pulsed_delivery_alarms_within_30_s(closed_after_s: int) -> None:
    rig = Rig()
    rig.pump.program(0, _pulsed(rig))
    rig.pump.start(0)
    rig.run_for(Duration.s(closed_after_s))
    closed = rig.now
    rig.world.channel(0).set_occlusion("downstream", True)
    rig.run_for(Duration.s(40))
    (raised,) = rig.raised(AlarmCode.OCCLUSION_DOWNSTREAM)
    assert raised.t.since(closed) <= Duration.s(30)  # at the default (medium) sensitivity, 300 mmHg


@pytest.mark.req("OI-ALM-2")
def test_pulsed_delivery_into_an_open_line_raises_no_occlusion() -> None:
    rig = Rig()
    rig.pump.program(0, _pulsed(rig))
    rig.pump.start(0)
    rig.run_for(Duration.min(15))
    assert not rig.raised(AlarmCode.OCCLUSION_DOWNSTREAM)
