"""Line hydraulics: the downstream line (compliance, resistance, occlusion) and the LVP upstream side.

SI units inside (Pa, m^3, s). Integration is on the pressure sample grid: within one sample interval of
length ``dt`` the pump's inflow and the patient's venous pressure are held constant (zero-order hold)
and the linear line equation is solved exactly, so the result does not depend on how the run is cut
into blocks. Equations and sources: docs/physics.md, "Line hydraulics".
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from scipy.signal import lfilter

from openinfusion.pump.mechanism import MechanismKind
from openinfusion.sim.arrays import F64, diff_from, running_sum
from openinfusion.sim.params import CatheterParams, ChannelConfig, TubingParams

PA_PER_MMHG: Final = 133.322387415  # conventional millimetre of mercury
M3_PER_UL: Final = 1e-9
M3_S_PER_ML_H: Final = 1e-6 / 3600.0
G_M_S2: Final = 9.80665  # standard gravity
WATER_DENSITY_KG_M3: Final = 997.0  # water at 25 °C; 998 at 20 °C, 993 at 37 °C


def water_viscosity_pa_s(temperature_c: float) -> float:
    """Dynamic viscosity of water (Pa s): Vogel equation ``A 10^(B / (T - C))`` with T in kelvin.

    ``A = 2.414e-5 Pa s, B = 247.8 K, C = 140 K`` gives 1.00 mPa s at 20 °C and 0.69 mPa s at 37 °C.
    """
    return 2.414e-5 * math.pow(10.0, 247.8 / (temperature_c + 273.15 - 140.0))


def poiseuille_pa_s_m3(inner_diameter_mm: float, length_m: float, viscosity_pa_s: float) -> float:
    """Laminar resistance of a round bore, ``8 mu L / (pi r^4)`` (Pa s / m^3)."""
    radius_m = inner_diameter_mm * 1e-3 / 2.0
    return 8.0 * viscosity_pa_s * length_m / (math.pi * radius_m**4)


def line_resistance_pa_s_m3(tubing: TubingParams, catheter: CatheterParams, temperature_c: float) -> float:
    """Tubing plus catheter resistance at the fluid temperature (Pa s / m^3)."""
    mu = water_viscosity_pa_s(temperature_c)
    return poiseuille_pa_s_m3(tubing.inner_diameter_mm, tubing.length_m, mu) + poiseuille_pa_s_m3(
        catheter.inner_diameter_mm, catheter.length_mm * 1e-3, mu
    )


def nominal_compliance_nl_per_mmhg(config: ChannelConfig) -> int:
    """The downstream compliance a pump is told for its set (nL/mmHg): the tubing's nominal compliance plus, for
    a syringe, the nominal ``A^2 / k`` of the syringe and drive train from the syringe library (no tolerances).

    This is what the firmware's occlusion back-off must use; an LVP set is about 1 uL/mmHg, a 10 mL syringe
    line about 0.2, a 50 mL one about 0.9.
    """
    ul = config.tubing.compliance_ul_per_mmhg
    if config.mechanism is MechanismKind.SYRINGE:
        spec = config.syringe.spec
        area_m2 = math.pi / 4.0 * (spec.inner_diameter_mm * 1e-3) ** 2
        ul += area_m2**2 / (spec.stiffness_n_per_mm * 1e3) * PA_PER_MMHG / M3_PER_UL
    return max(1, round(ul * 1000))


def head_pa(height_m: float) -> float:
    """Hydrostatic pressure ``rho g h`` of a water column ``height_m`` high (Pa)."""
    return WATER_DENSITY_KG_M3 * G_M_S2 * height_m


class DownstreamLine:
    """The line below the pump: one compliance ``C`` drained through resistance ``R`` into the vein.

    Open: ``C dP/dt = q - (P + rho g h - P_vein) / (k R)`` (``k``, the ``restriction``, is 1 for an open line and
    larger for a partial occlusion, a kink or a narrowing filter); occluded (anywhere below the sensor):
    ``C dP/dt = q``. ``P`` is the gauge pressure at the downstream sensor, ``h`` the pump's height above
    the catheter tip. The volume stored in the line is ``C (P - P_ref)``, so what reaches the patient is
    exactly the pumped volume less the change in storage.
    """

    def __init__(self, resistance_pa_s_m3: float, compliance_m3_per_pa: float, pressure_pa: float) -> None:
        self.resistance_pa_s_m3 = resistance_pa_s_m3
        self.compliance_m3_per_pa = compliance_m3_per_pa
        self.pressure_pa = pressure_pa
        self.reference_pa = pressure_pa
        self.occluded = False
        self.restriction = 1.0  # a partial occlusion multiplies the resistance (1 = open)

    @property
    def tau_s(self) -> float:
        """Time constant ``R C`` of the line as it is now (s; a partial occlusion lengthens it)."""
        return self.resistance_pa_s_m3 * self.restriction * self.compliance_m3_per_pa

    def pressures(self, inflow_m3: F64, outlet_pa: F64, dt_s: float) -> F64:
        """Pressure (Pa) at the end of each interval, given the volume pumped in during it and the outlet
        pressure ``P_vein - rho g h`` held over it. Pure: the channel stores the pressure it keeps."""
        if self.occluded:
            return running_sum(self.pressure_pa, inflow_m3 / self.compliance_m3_per_pa)
        a = math.exp(-dt_s / self.tau_s)
        target_pa = outlet_pa + self.resistance_pa_s_m3 * self.restriction * inflow_m3 / dt_s
        filtered, _ = lfilter([1.0 - a], [1.0, -a], target_pa, zi=[a * self.pressure_pa])
        return np.asarray(filtered, dtype=np.float64)

    def stored_m3(self, pressure_pa: F64 | float) -> F64 | float:
        """Volume held in the line's compliance relative to power-on (m^3)."""
        return self.compliance_m3_per_pa * (pressure_pa - self.reference_pa)


class UpstreamLine:
    """The LVP set above the pump, and the pumping segment's filling efficiency.

    The segment refills against the upstream pressure ``P_up``: efficiency ``eta = 1 + (P_up - P_cal) / P_r``
    (``P_cal`` the pressure at the calibration bag height, ``P_r`` the refill pressure). Open: ``P_up`` is
    quasi-static, ``P_bag - R_up q eta`` (``R_up C_up`` is milliseconds). Occluded above the sensor: the
    segment draws on the upstream compliance alone, ``C_up dP/dt = -q eta``, whose exact solution in the
    swept volume ``D`` since the occlusion is ``eta = eta_0 exp(-D / (C_up P_r))``: a vacuum builds and
    delivery falls to at most ``C_up P_r eta_0``.
    """

    def __init__(
        self, resistance_pa_s_m3: float, compliance_m3_per_pa: float, calibration_pa: float, refill_pa: float
    ) -> None:
        self.resistance_pa_s_m3 = resistance_pa_s_m3
        self.compliance_m3_per_pa = compliance_m3_per_pa
        self.calibration_pa = calibration_pa
        self.refill_pa = refill_pa
        self.bag_pa = calibration_pa
        self.pressure_pa = calibration_pa
        self.occluded = False
        self._eta0 = 1.0
        self._swept0_m3 = 0.0

    def occlude(self, on: bool, swept_m3: float) -> None:
        """Close or open the line above the sensor; ``swept_m3`` is the mechanism's swept volume now."""
        if on and not self.occluded:
            self._eta0 = 1.0 + (self.pressure_pa - self.calibration_pa) / self.refill_pa
            self._swept0_m3 = swept_m3
        self.occluded = on

    def fill(self, swept_m3: F64, swept_start_m3: float, dt_s: float) -> tuple[F64, F64]:
        """Per interval: the volume actually pumped into the downstream line (m^3) and ``P_up`` at its end (Pa).

        ``swept_m3`` is the mechanism's cumulative swept volume at each interval end, ``swept_start_m3`` at the
        start of the first interval.
        """
        if self.occluded:
            scale_m3 = self.compliance_m3_per_pa * self.refill_pa
            eta = self._eta0 * np.exp(-(swept_m3 - self._swept0_m3) / scale_m3)
            delivered = scale_m3 * (self._eta0 - eta)  # cumulative since the occlusion
            start = scale_m3 * (self._eta0 - self._eta0 * math.exp(-(swept_start_m3 - self._swept0_m3) / scale_m3))
            pumped = diff_from(delivered, start)
            return pumped, self.calibration_pa + self.refill_pa * (eta - 1.0)
        swept = diff_from(swept_m3, swept_start_m3)
        rq = self.resistance_pa_s_m3 * swept / dt_s
        p_up = (self.bag_pa - rq * (1.0 - self.calibration_pa / self.refill_pa)) / (1.0 + rq / self.refill_pa)
        eta = np.maximum(1.0 + (p_up - self.calibration_pa) / self.refill_pa, 0.0)
        return swept * eta, p_up
