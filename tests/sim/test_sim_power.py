"""Power: battery drain by load, the fuel gauge's remaining time, depletion, cell failure, charging."""

from __future__ import annotations

import pytest
from simkit import drive, lvp, make_pump, wait

from openinfusion.sim import WakeReason
from openinfusion.sim.faults import BatteryCellFailure
from openinfusion.sim.params import BatteryParams
from openinfusion.units import Duration, Instant

EXACT_GAUGE = BatteryParams(gauge_capacity_sd_fraction=0.0)


def test_battery_drains_faster_under_load_by_the_configured_currents() -> None:
    idle = make_pump(lvp(), on_mains=False)
    busy = make_pump(lvp(), on_mains=False)
    wait(idle, 3600)
    drive(busy, 0, 500.0, 3600)
    p = BatteryParams()
    capacity_c = p.capacity_mah * 3.6 * p.state_of_health
    steps = 500.0 / 0.1 * 1600  # 5000 revolutions of 1600 steps (within the calibration's tolerance)
    used_c = (p.base_current_ma + p.channel_current_ma) * 3.6 + steps * p.motor_charge_per_step_uc * 1e-6
    idle_left, busy_left = idle.truth().battery_permille, busy.truth().battery_permille
    assert 1000 - idle_left == pytest.approx(p.base_current_ma * 3.6 / capacity_c * 1000, rel=1e-3)
    assert 1000 - busy_left == pytest.approx(used_c / capacity_c * 1000, rel=0.05)
    assert idle.power.status().remaining > busy.power.status().remaining


def run_to_brownout(rate_ml_h: float, battery: BatteryParams) -> tuple[float, float]:
    """(gauge's remaining time after 30 min, actual time left then), in hours, on battery at ``rate_ml_h``."""
    pump = make_pump(lvp(), on_mains=False, battery=battery)
    drive(pump, 0, rate_ml_h, 1800)
    estimate_h = pump.power.status().remaining.us / 3.6e9
    drive(pump, 0, rate_ml_h, 20 * 3600, chunk_s=300)
    assert not pump.powered
    brownout_h = (pump.now.us - 1800_000_000) / 3.6e9
    return estimate_h, brownout_h


def test_fuel_gauge_remaining_time_predicts_the_brownout() -> None:
    estimate_h, actual_h = run_to_brownout(25.0, EXACT_GAUGE)
    assert 5.0 < actual_h < 8.0  # a new-ish 2.2 Ah pack at 25 mL/h
    assert estimate_h == pytest.approx(actual_h, rel=0.03)


def test_fuel_gauge_learned_capacity_error_skews_the_estimate_within_its_tolerance() -> None:
    battery = BatteryParams(gauge_capacity_sd_fraction=0.05)
    estimates = set()
    for seed in range(3):
        pump = make_pump(lvp(), on_mains=False, battery=battery, seed=seed)
        wait(pump, 1800)
        estimates.add(pump.power.status().remaining)
        gauge = pump.battery.gauge_capacity_c / pump.battery.capacity_c - 1
        assert abs(gauge) <= 3 * 0.05
    assert len(estimates) == 3


def test_depletion_collapses_the_supply_and_stops_the_motor() -> None:
    pump = make_pump(lvp(), on_mains=False, battery=BatteryParams(initial_charge_fraction=0.02))
    motor = pump.hardware.channels[0].motor
    drive(pump, 0, 25.0, 3600, chunk_s=600)
    assert not pump.powered
    truth = pump.truth()
    assert truth.battery_voltage_v < 2 * BatteryParams().cutoff_v_per_cell
    assert truth.battery_permille < 20
    issued = motor.issued_steps()
    motor.move(1000, pump.config.sample_period * 100)
    wait(pump, 60)
    assert motor.issued_steps() == issued  # no power for the driver
    assert pump.power.status().charge_permille < 20


def test_brownout_is_an_interrupt() -> None:
    pump = make_pump(lvp(), on_mains=False, battery=BatteryParams(initial_charge_fraction=0.01))
    reached = pump.advance(Instant(3_600_000_000))
    assert reached < Instant(3_600_000_000)
    assert [w.reason for w in pump.last_wakes] == [WakeReason.POWER]


def test_cell_failure_collapses_the_voltage_on_battery() -> None:
    pump = make_pump(lvp(), on_mains=False)
    wait(pump, 10)
    healthy_v = pump.truth().battery_voltage_v
    pump.inject(BatteryCellFailure())
    assert pump.advance(Instant(pump.now.us + 1_000_000)) == Instant(10_000_000)
    assert [w.reason for w in pump.last_wakes] == [WakeReason.POWER]
    assert not pump.powered
    assert pump.power.status().cell_fault
    wait(pump, 1)
    assert pump.truth().battery_voltage_v < 0.6 * healthy_v


def test_cell_failure_on_mains_is_flagged_and_the_pump_dies_when_unplugged() -> None:
    pump = make_pump(lvp(), on_mains=True)
    pump.inject(BatteryCellFailure(detected_by_gauge=False))
    pump.advance(Instant(1_000_000))
    assert pump.powered
    assert not pump.power.status().cell_fault  # an undetected failure
    pump.set_mains(False)
    assert not pump.powered
    assert pump.advance(Instant(2_000_000)) == Instant(1_000_000)
    assert {w.reason for w in pump.last_wakes} == {WakeReason.MAINS, WakeReason.POWER}


def test_mains_charges_the_battery_and_changing_it_is_an_interrupt() -> None:
    pump = make_pump(lvp(), on_mains=False, battery=BatteryParams(initial_charge_fraction=0.5))
    wait(pump, 60)
    pump.set_mains(True)
    assert pump.advance(Instant(120_000_000)) == Instant(60_000_000)
    assert [w.reason for w in pump.last_wakes] == [WakeReason.MAINS]
    before = pump.truth().battery_permille
    wait(pump, 3600)
    p = BatteryParams()
    gained = p.charge_current_ma * 3.6 / (p.capacity_mah * 3.6 * p.state_of_health) * 1000
    assert pump.truth().battery_permille == pytest.approx(min(before + gained, 1000.0), rel=1e-3)
    assert pump.power.status().on_mains


def test_each_running_channel_adds_to_the_load() -> None:
    def used_permille(running: int) -> float:
        pump = make_pump(lvp(), lvp(), on_mains=False)
        for ch in range(running):
            pump.hardware.channels[ch].motor.move(6667, Duration.s(600))
        wait(pump, 600)
        return 1000 - pump.truth().battery_permille

    idle, one, two = used_permille(0), used_permille(1), used_permille(2)
    p = BatteryParams()
    capacity_c = p.capacity_mah * 3.6 * p.state_of_health
    per_channel_c = p.channel_current_ma * 1e-3 * 600 + 6667 * p.motor_charge_per_step_uc * 1e-6
    assert one - idle == pytest.approx(per_channel_c / capacity_c * 1000, rel=0.01)
    assert two - one == pytest.approx(one - idle, rel=1e-6)
