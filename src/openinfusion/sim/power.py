"""Mains, the Li-ion battery pack, its load and its fuel gauge (HAL ``PowerSupply``).

Charge is integrated per sample interval from the load current (base electronics, each running channel,
and a charge per motor step). The pack voltage is ``cells * OCV(SoC) - I R``; it collapses to zero when
the charge is exhausted, and the pump browns out when it falls below the cut-off. The fuel gauge counts
charge exactly but divides by its *learned* full capacity, which differs from the truth by a draw from
the rng, so its state of charge and remaining time can be optimistic (the failure behind battery
recalls, market-and-peers.md §4). Equations and parameters: docs/physics.md, "Power".
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from openinfusion.pump.hal import PowerStatus
from openinfusion.sim.arrays import F64, running_sum
from openinfusion.sim.faults import BatteryCellFailure
from openinfusion.sim.mechanisms import tolerance_draws
from openinfusion.sim.params import BatteryParams
from openinfusion.units import Duration

C_PER_MAH: Final = 3.6
# Open-circuit voltage of one Li-ion (NMC) cell against state of charge: a typical shape, approximate.
OCV_SOC: Final = np.array([0.0, 0.05, 0.10, 0.20, 0.50, 0.80, 0.90, 1.0])
OCV_V: Final = np.array([3.00, 3.35, 3.50, 3.60, 3.70, 3.90, 4.00, 4.15])
MAX_REMAINING_S: Final = 30 * 24 * 3600.0  # the gauge's display limit


class Battery:
    """True charge of the pack, its voltage under load, and the fuel gauge's view of it."""

    def __init__(self, params: BatteryParams, rng: np.random.Generator) -> None:
        (e_gauge,) = tolerance_draws(rng, 1)
        self.params = params
        self.capacity_c = params.capacity_mah * C_PER_MAH * params.state_of_health
        self.gauge_capacity_c = self.capacity_c * (1.0 + params.gauge_capacity_sd_fraction * e_gauge)
        self.charge_c = self.capacity_c * params.initial_charge_fraction
        self.average_current_a = params.base_current_ma * 1e-3
        self.load_a = self.average_current_a
        self.cell_failure: BatteryCellFailure | None = None

    @property
    def cutoff_v(self) -> float:
        return self.params.cells_in_series * self.params.cutoff_v_per_cell

    def voltage(self, charge_c: F64, current_a: F64) -> F64:
        """Pack terminal voltage (V) at each charge and discharge current; 0 once the charge is exhausted."""
        cells = self.params.cells_in_series - (1 if self.cell_failure is not None else 0)
        ocv = cells * np.interp(charge_c / self.capacity_c, OCV_SOC, OCV_V)
        volts: F64 = np.where(charge_c > 0.0, ocv - current_a * self.params.internal_resistance_ohm, 0.0)
        return volts

    def charge_after(self, current_a: F64, on_mains: bool, dt_s: float) -> F64:
        """Charge (C) at the end of each interval: discharging at ``current_a`` on battery, charging on mains."""
        if on_mains:
            gained = np.full(current_a.shape, self.params.charge_current_ma * 1e-3 * dt_s)
            charged: F64 = np.minimum(running_sum(self.charge_c, gained), self.capacity_c)
            return charged
        used = current_a * dt_s
        left: F64 = np.maximum(running_sum(self.charge_c, -used), 0.0)
        return left

    def commit(self, charge_c: float, mean_current_a: float, duration_s: float) -> None:
        """Keep ``charge_c``; fold the block's mean load into the gauge's moving average."""
        self.charge_c = charge_c
        self.load_a = mean_current_a
        alpha = -math.expm1(-duration_s / self.params.gauge_average_s)
        self.average_current_a += alpha * (mean_current_a - self.average_current_a)

    # --- the fuel gauge ----------------------------------------------------------------------------

    @property
    def gauge_remaining_c(self) -> float:
        """Charge the gauge believes is left: its learned capacity less the (exactly counted) charge used."""
        return max(self.gauge_capacity_c - (self.capacity_c - self.charge_c), 0.0)

    def gauge_status(self, on_mains: bool, supply_v: float) -> PowerStatus:
        """The gauge's view, with the supply rail's voltage ``supply_v`` as the pump's own ADC measures it."""
        detected = self.cell_failure is not None and self.cell_failure.detected_by_gauge
        remaining_c = 0.0 if detected else self.gauge_remaining_c
        permille = round(1000.0 * min(remaining_c / self.gauge_capacity_c, 1.0))
        seconds = min(remaining_c / max(self.average_current_a, 1e-6), MAX_REMAINING_S)
        return PowerStatus(
            on_mains, permille, Duration(round(seconds * 1e6)), cell_fault=detected,
            supply_mv=round(supply_v * 1000), brownout_mv=round(self.cutoff_v * 1000),
        )  # fmt: skip


class VirtualPowerSupply:
    """Mains detection, the fuel gauge and the supply-rail voltage (HAL ``PowerSupply``).

    On mains the rail is held at the charger's voltage (the pack's full open-circuit voltage); on battery it is
    the pack's terminal voltage under the present load.
    """

    def __init__(self, battery: Battery, on_mains: bool) -> None:
        self.battery = battery
        self.on_mains = on_mains

    def supply_v(self) -> float:
        b = self.battery
        if self.on_mains:
            return b.params.cells_in_series * float(OCV_V[-1])
        return float(b.voltage(np.array([b.charge_c]), np.array([b.load_a]))[0])

    def status(self) -> PowerStatus:
        return self.battery.gauge_status(self.on_mains, self.supply_v())
