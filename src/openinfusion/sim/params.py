"""Configuration of the virtual pump: every physical parameter, with its unit in its name.

All values are validated when built (an invalid configuration cannot exist) and raise
:class:`~openinfusion.errors.ConfigError` naming the field. Every field, its default and the source or
rationale of that default is listed in ``docs/physics.md``. Physical parameters are floats whose unit is
the suffix of their name (``_mm``, ``_mmhg``, ``_ma``...), because UCUM's closed set in
:mod:`openinfusion.units` has no mmHg, metre or ampere; volumes, rates and times use the integer types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from openinfusion.errors import ConfigError
from openinfusion.pump.mechanism import MechanismKind
from openinfusion.units import Duration, FlowRate, Volume


def require(ok: bool, where: str, why: str) -> None:
    """Raise :class:`ConfigError` at ``where`` unless ``ok``."""
    if not ok:
        raise ConfigError(where, why)


def check_real(value: float, lo: float, hi: float, where: str) -> None:
    """``value`` must be a finite real number (not a bool) within ``lo..hi`` inclusive."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    require(ok and lo <= value <= hi, where, f"must be a number within {lo:g}..{hi:g}, got {value!r}")


def check_int(value: int, lo: int, hi: int, where: str) -> None:
    """``value`` must be an int (not a bool) within ``lo..hi`` inclusive."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    require(ok and lo <= value <= hi, where, f"must be an integer within {lo}..{hi}, got {value!r}")


def check_fraction_sd(value: float, where: str) -> None:
    """A relative standard deviation (0..0.5)."""
    check_real(value, 0.0, 0.5, where)


# --- mechanisms -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeristalticParams:
    """Linear peristaltic large-volume pump (LVP): cam, fingers, tube and their tolerances."""

    steps_per_rev: int = 1600
    counts_per_step: int = 1
    volume_per_rev: Volume = Volume.ml("0.1")
    fingers: int = 4
    ripple_fraction: float = 0.25
    dead_zone_fraction: float = 0.15
    backflow_fraction: float = 0.10
    wear_max_fraction: float = 0.08
    wear_revs: float = 16_000.0
    refill_pressure_mmhg: float = 600.0
    calibration_bag_height_m: float = 0.5
    pump_sd_fraction: float = 0.01
    set_sd_fraction: float = 0.015
    calibration_sd_fraction: float = 0.003
    shape_sd_fraction: float = 0.05
    backpressure_loss_per_100mmhg: float = 0.01
    min_rate: FlowRate = FlowRate.ml_h("0.1")
    max_rate: FlowRate = FlowRate.ml_h(1200)
    resolution: FlowRate = FlowRate.ml_h("0.01")
    max_backoff: Volume = Volume.ml(1)

    def __post_init__(self) -> None:
        w = "peristaltic"
        check_int(self.steps_per_rev, 16, 100_000, f"{w}.steps_per_rev")
        check_int(self.counts_per_step, 1, 64, f"{w}.counts_per_step")
        ok = Volume.ml("0.001") <= self.volume_per_rev <= Volume.ml(10)
        require(ok, f"{w}.volume_per_rev", "must be within 1 uL..10 mL")
        check_int(self.fingers, 1, 32, f"{w}.fingers")
        check_real(self.ripple_fraction, 0.0, 0.9, f"{w}.ripple_fraction")
        check_real(self.dead_zone_fraction, 0.0, 0.5, f"{w}.dead_zone_fraction")
        check_real(self.backflow_fraction, 0.0, 1.0, f"{w}.backflow_fraction")
        check_real(self.wear_max_fraction, 0.0, 0.5, f"{w}.wear_max_fraction")
        check_real(self.wear_revs, 1.0, 1e12, f"{w}.wear_revs")
        check_real(self.refill_pressure_mmhg, 50.0, 5000.0, f"{w}.refill_pressure_mmhg")
        check_real(self.calibration_bag_height_m, -2.0, 3.0, f"{w}.calibration_bag_height_m")
        check_real(self.backpressure_loss_per_100mmhg, 0.0, 0.1, f"{w}.backpressure_loss_per_100mmhg")
        for name in ("pump_sd_fraction", "set_sd_fraction", "calibration_sd_fraction", "shape_sd_fraction"):
            check_fraction_sd(getattr(self, name), f"{w}.{name}")
        check_rates(self.min_rate, self.max_rate, self.resolution, w)
        require(self.max_backoff.nl >= 0, f"{w}.max_backoff", "must not be negative")


def check_rates(min_rate: FlowRate, max_rate: FlowRate, resolution: FlowRate, where: str) -> None:
    """The rate range and resolution a calibration needs (the same rules as MechanismCalibration)."""
    require(0 < min_rate.nl_per_h <= max_rate.nl_per_h, f"{where}.min_rate", "need 0 < min_rate <= max_rate")
    ok = resolution.nl_per_h > 0 and min_rate.nl_per_h % resolution.nl_per_h == 0
    require(ok, f"{where}.resolution", "must be positive and divide min_rate")


class SyringeSize(Enum):
    """Syringe sizes the syringe channel accepts (nominal capacity)."""

    ML3 = "3 mL"
    ML5 = "5 mL"
    ML10 = "10 mL"
    ML20 = "20 mL"
    ML30 = "30 mL"
    ML50 = "50/60 mL"


@dataclass(frozen=True, slots=True)
class SyringeSpec:
    """Nominal geometry and friction of one syringe model (docs/physics.md, table "Syringes")."""

    capacity: Volume
    inner_diameter_mm: float
    breakaway_n: float
    glide_n: float
    stiffness_n_per_mm: float

    def __post_init__(self) -> None:
        require(self.capacity.nl > 0, "syringe.capacity", "must be positive")
        check_real(self.inner_diameter_mm, 1.0, 40.0, "syringe.inner_diameter_mm")
        check_real(self.glide_n, 0.0, 100.0, "syringe.glide_n")
        check_real(self.breakaway_n, self.glide_n, 200.0, "syringe.breakaway_n")
        check_real(self.stiffness_n_per_mm, 1.0, 10_000.0, "syringe.stiffness_n_per_mm")


# Approximate inner diameters of BD plastic (Plastipak-type) syringes as commonly listed in syringe
# pump syringe tables; friction and stiffness are engineering estimates (see docs/physics.md).
SYRINGES: Final[dict[SyringeSize, SyringeSpec]] = {
    SyringeSize.ML3: SyringeSpec(Volume.ml(3), 8.66, 3.0, 2.0, 20.0),
    SyringeSize.ML5: SyringeSpec(Volume.ml(5), 12.06, 4.0, 2.5, 25.0),
    SyringeSize.ML10: SyringeSpec(Volume.ml(10), 14.50, 5.0, 3.0, 30.0),
    SyringeSize.ML20: SyringeSpec(Volume.ml(20), 19.13, 7.0, 4.5, 40.0),
    SyringeSize.ML30: SyringeSpec(Volume.ml(30), 21.70, 8.0, 5.0, 45.0),
    SyringeSize.ML50: SyringeSpec(Volume.ml(50), 26.59, 10.0, 6.5, 50.0),
}


@dataclass(frozen=True, slots=True)
class SyringeParams:
    """Syringe driver: lead screw, nut backlash, plunger friction and their tolerances."""

    size: SyringeSize = SyringeSize.ML50
    steps_per_rev: int = 3200
    counts_per_step: int = 2
    pitch_mm: float = 1.0
    lead_error_fraction: float = 0.01
    backlash_mm: float = 0.05
    stick_slip_drop_n: float = 0.3
    rest_time: Duration = Duration.s(30)
    diameter_sd_fraction: float = 0.004
    pitch_sd_fraction: float = 0.001
    friction_sd_fraction: float = 0.2
    max_speed_mm_s: float = 1.0
    min_rate: FlowRate = FlowRate.ml_h("0.01")
    resolution: FlowRate = FlowRate.ml_h("0.01")
    max_backoff_mm: float = 1.0
    fill: Volume | None = None

    def __post_init__(self) -> None:
        w = "syringe"
        require(isinstance(self.size, SyringeSize), f"{w}.size", f"must be one of {[s.value for s in SyringeSize]}")
        check_int(self.steps_per_rev, 16, 100_000, f"{w}.steps_per_rev")
        check_int(self.counts_per_step, 1, 64, f"{w}.counts_per_step")
        check_real(self.pitch_mm, 0.1, 10.0, f"{w}.pitch_mm")
        check_real(self.lead_error_fraction, 0.0, 0.2, f"{w}.lead_error_fraction")
        check_real(self.backlash_mm, 0.0, 2.0, f"{w}.backlash_mm")
        check_real(self.stick_slip_drop_n, 0.0, 20.0, f"{w}.stick_slip_drop_n")
        require(self.rest_time.us > 0, f"{w}.rest_time", "must be positive")
        for name in ("diameter_sd_fraction", "pitch_sd_fraction", "friction_sd_fraction"):
            check_fraction_sd(getattr(self, name), f"{w}.{name}")
        check_real(self.max_speed_mm_s, 0.01, 50.0, f"{w}.max_speed_mm_s")
        check_real(self.max_backoff_mm, 0.0, 20.0, f"{w}.max_backoff_mm")
        require(self.resolution.nl_per_h > 0, f"{w}.resolution", "must be positive")
        require(self.min_rate.nl_per_h > 0, f"{w}.min_rate", "must be positive")
        require(self.min_rate.nl_per_h % self.resolution.nl_per_h == 0, f"{w}.resolution", "must divide min_rate")
        spec = SYRINGES[self.size]
        require(self.stick_slip_drop_n <= spec.glide_n, f"{w}.stick_slip_drop_n", "must not exceed the glide force")
        if self.fill is not None:
            ok = 0 <= self.fill.nl <= spec.capacity.nl
            require(ok, f"{w}.fill", f"must be within 0..{spec.capacity} for a {self.size.value} syringe")

    @property
    def spec(self) -> SyringeSpec:
        return SYRINGES[self.size]


# --- fluid path -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TubingParams:
    """A length of tubing: bore for Poiseuille resistance, wall compliance per metre plus fixed parts."""

    inner_diameter_mm: float
    length_m: float
    compliance_ul_per_mmhg_per_m: float
    fixed_compliance_ul_per_mmhg: float = 0.0

    def __post_init__(self) -> None:
        check_real(self.inner_diameter_mm, 0.1, 10.0, "tubing.inner_diameter_mm")
        check_real(self.length_m, 0.0, 10.0, "tubing.length_m")
        check_real(self.compliance_ul_per_mmhg_per_m, 0.0, 20.0, "tubing.compliance_ul_per_mmhg_per_m")
        check_real(self.fixed_compliance_ul_per_mmhg, 0.0, 50.0, "tubing.fixed_compliance_ul_per_mmhg")

    @property
    def compliance_ul_per_mmhg(self) -> float:
        return self.compliance_ul_per_mmhg_per_m * self.length_m + self.fixed_compliance_ul_per_mmhg


# PVC LVP administration set below the pump (incl. pumping segment and pressure disc), a low-compliance
# PE syringe extension line, and the LVP set above the pump (drip chamber to pumping segment).
LVP_SET: Final = TubingParams(2.7, 2.5, 0.35, 0.1)
SYRINGE_LINE: Final = TubingParams(1.0, 1.5, 0.05, 0.02)
LVP_UPSTREAM: Final = TubingParams(2.7, 1.0, 0.35, 0.15)


@dataclass(frozen=True, slots=True)
class CatheterParams:
    """The vascular access device at the end of the line (approximate bore and length)."""

    name: str
    inner_diameter_mm: float
    length_mm: float

    def __post_init__(self) -> None:
        require(bool(self.name), "catheter.name", "must not be empty")
        check_real(self.inner_diameter_mm, 0.1, 5.0, "catheter.inner_diameter_mm")
        check_real(self.length_mm, 1.0, 2000.0, "catheter.length_mm")


CATHETERS: Final[dict[str, CatheterParams]] = {
    c.name: c
    for c in (
        CatheterParams("peripheral-24G", 0.47, 19.0),
        CatheterParams("peripheral-22G", 0.64, 25.0),
        CatheterParams("peripheral-20G", 0.80, 30.0),
        CatheterParams("peripheral-18G", 1.00, 30.0),
        CatheterParams("picc-4Fr", 0.70, 500.0),
    )
}


@dataclass(frozen=True, slots=True)
class PatientParams:
    """Venous pressure at the catheter tip and the patient's movement artefacts (Poisson processes)."""

    venous_mmhg: float = 8.0
    spike_rate_per_h: float = 6.0
    spike_min_mmhg: float = 5.0
    spike_max_mmhg: float = 40.0
    spike_min_s: float = 0.5
    spike_max_s: float = 5.0
    step_rate_per_h: float = 0.5
    step_sd_mmhg: float = 6.0
    step_mean_s: float = 900.0

    def __post_init__(self) -> None:
        w = "patient"
        check_real(self.venous_mmhg, -20.0, 60.0, f"{w}.venous_mmhg")
        check_real(self.spike_rate_per_h, 0.0, 3600.0, f"{w}.spike_rate_per_h")
        check_real(self.spike_min_mmhg, 0.0, 500.0, f"{w}.spike_min_mmhg")
        check_real(self.spike_max_mmhg, self.spike_min_mmhg, 500.0, f"{w}.spike_max_mmhg")
        check_real(self.spike_min_s, 0.01, 600.0, f"{w}.spike_min_s")
        check_real(self.spike_max_s, self.spike_min_s, 600.0, f"{w}.spike_max_s")
        check_real(self.step_rate_per_h, 0.0, 60.0, f"{w}.step_rate_per_h")
        check_real(self.step_sd_mmhg, 0.0, 100.0, f"{w}.step_sd_mmhg")
        check_real(self.step_mean_s, 1.0, 86_400.0, f"{w}.step_mean_s")


# --- sensors --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PressureSensorParams:
    """An in-line pressure transducer and its ADC: per-unit offset and gain error, noise, quantisation."""

    offset_sd_mmhg: float = 2.0
    gain_sd_fraction: float = 0.01
    noise_sd_mmhg: float = 0.8
    adc_bits: int = 12
    range_low_mmhg: float = -760.0
    range_high_mmhg: float = 1288.0

    def __post_init__(self) -> None:
        w = "pressure_sensor"
        check_real(self.offset_sd_mmhg, 0.0, 100.0, f"{w}.offset_sd_mmhg")
        check_fraction_sd(self.gain_sd_fraction, f"{w}.gain_sd_fraction")
        check_real(self.noise_sd_mmhg, 0.0, 100.0, f"{w}.noise_sd_mmhg")
        check_int(self.adc_bits, 8, 24, f"{w}.adc_bits")
        check_real(self.range_low_mmhg, -760.0, 0.0, f"{w}.range_low_mmhg")
        check_real(self.range_high_mmhg, 100.0, 10_000.0, f"{w}.range_high_mmhg")

    @property
    def lsb_mmhg(self) -> float:
        """One ADC code, in mmHg."""
        return (self.range_high_mmhg - self.range_low_mmhg) / (1 << self.adc_bits)


@dataclass(frozen=True, slots=True)
class AirDetectorParams:
    """Ultrasonic air-in-line detector below the mechanism."""

    min_detectable: Volume = Volume.ml("0.01")
    estimate_sd_fraction: float = 0.15
    travel_volume: Volume = Volume.ml("0.5")

    def __post_init__(self) -> None:
        require(self.min_detectable.nl >= 0, "air.min_detectable", "must not be negative")
        check_fraction_sd(self.estimate_sd_fraction, "air.estimate_sd_fraction")
        require(self.travel_volume.nl >= 0, "air.travel_volume", "must not be negative")


@dataclass(frozen=True, slots=True)
class FlowSensorParams:
    """An optional in-line flow sensor below the pump (the Open PCA pump's, open-pca-requirements.md §10.8.3):
    a per-unit gain error and a noise on each reading's volume."""

    gain_sd_fraction: float = 0.02
    noise_nl: float = 50.0

    def __post_init__(self) -> None:
        check_fraction_sd(self.gain_sd_fraction, "flow_sensor.gain_sd_fraction")
        check_real(self.noise_nl, 0.0, 1e6, "flow_sensor.noise_nl")


# --- channel and pump -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One channel: its mechanism, fluid path, patient and sensors.

    ``pump_height_m`` is the height of the pump (its downstream sensor) above the catheter tip; ``bag_height_m``
    the height of the LVP container above the pump (ignored for a syringe). ``tubing`` is the line below the
    pump, ``upstream_tubing`` the LVP set above it. The defaults are an LVP channel; :meth:`syringe_pump`
    gives a syringe channel.
    """

    mechanism: MechanismKind = MechanismKind.PERISTALTIC
    peristaltic: PeristalticParams = field(default_factory=PeristalticParams)
    syringe: SyringeParams = field(default_factory=SyringeParams)
    tubing: TubingParams = LVP_SET
    upstream_tubing: TubingParams = LVP_UPSTREAM
    catheter: CatheterParams = CATHETERS["peripheral-20G"]
    patient: PatientParams = field(default_factory=PatientParams)
    downstream_sensor: PressureSensorParams = field(default_factory=PressureSensorParams)
    upstream_sensor: PressureSensorParams = field(default_factory=PressureSensorParams)
    air: AirDetectorParams = field(default_factory=AirDetectorParams)
    pump_height_m: float = 0.0
    bag_height_m: float = 0.5
    fluid_temperature_c: float = 22.0
    container: Volume | None = None
    flow_sensor: FlowSensorParams | None = None
    temperature_sensor: bool = False

    def __post_init__(self) -> None:
        require(isinstance(self.mechanism, MechanismKind), "channel.mechanism", "must be a MechanismKind")
        ok = self.container is None or (isinstance(self.container, Volume) and self.container.nl >= 0)
        require(ok, "channel.container", "must be None (an endless supply) or a volume of at least 0 mL")
        check_real(self.pump_height_m, -2.0, 3.0, "channel.pump_height_m")
        check_real(self.bag_height_m, -2.0, 3.0, "channel.bag_height_m")
        check_real(self.fluid_temperature_c, 15.0, 40.0, "channel.fluid_temperature_c")

    @classmethod
    def syringe_pump(cls, size: SyringeSize = SyringeSize.ML50) -> ChannelConfig:
        """A syringe channel of ``size`` with a PE extension line and a 22G cannula (vary with ``replace``)."""
        return cls(
            mechanism=MechanismKind.SYRINGE,
            syringe=SyringeParams(size=size),
            tubing=SYRINGE_LINE,
            catheter=CATHETERS["peripheral-22G"],
            air=AirDetectorParams(travel_volume=Volume.ml("0.05")),
        )


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """Li-ion pack, its loads and its fuel gauge."""

    cells_in_series: int = 2
    capacity_mah: float = 2200.0
    state_of_health: float = 0.9
    initial_charge_fraction: float = 1.0
    internal_resistance_ohm: float = 0.15
    cutoff_v_per_cell: float = 3.0
    base_current_ma: float = 250.0
    channel_current_ma: float = 40.0
    motor_charge_per_step_uc: float = 50.0
    charge_current_ma: float = 800.0
    gauge_capacity_sd_fraction: float = 0.03
    gauge_average_s: float = 60.0

    def __post_init__(self) -> None:
        w = "battery"
        check_int(self.cells_in_series, 1, 8, f"{w}.cells_in_series")
        check_real(self.capacity_mah, 10.0, 100_000.0, f"{w}.capacity_mah")
        check_real(self.state_of_health, 0.05, 1.0, f"{w}.state_of_health")
        check_real(self.initial_charge_fraction, 0.0, 1.0, f"{w}.initial_charge_fraction")
        check_real(self.internal_resistance_ohm, 0.0, 10.0, f"{w}.internal_resistance_ohm")
        check_real(self.cutoff_v_per_cell, 2.5, 3.4, f"{w}.cutoff_v_per_cell")
        check_real(self.base_current_ma, 0.0, 10_000.0, f"{w}.base_current_ma")
        check_real(self.channel_current_ma, 0.0, 10_000.0, f"{w}.channel_current_ma")
        check_real(self.motor_charge_per_step_uc, 0.0, 100_000.0, f"{w}.motor_charge_per_step_uc")
        check_real(self.charge_current_ma, 0.0, 100_000.0, f"{w}.charge_current_ma")
        check_fraction_sd(self.gauge_capacity_sd_fraction, f"{w}.gauge_capacity_sd_fraction")
        check_real(self.gauge_average_s, 1.0, 3600.0, f"{w}.gauge_average_s")


DEFAULT_STORED_CONFIG: Final = b'{"schema": "openinfusion.sim.stored-config/1", "pump": "virtual"}'


@dataclass(frozen=True, slots=True)
class VirtualPumpConfig:
    """The whole virtual pump: 1 to 4 channels, battery, pressure sample period, watchdog, storage.

    ``sample_period`` is the pressure sampling period (at most 100 ms, i.e. at least 10 Hz) and the
    step of the hydraulic integration. ``record_series`` keeps per-sample series for
    :meth:`VirtualPump.drain_series` (turn off for large campaigns that only need the truth).
    """

    channels: tuple[ChannelConfig, ...] = (ChannelConfig(),)
    battery: BatteryParams = field(default_factory=BatteryParams)
    sample_period: Duration = Duration.s("0.1")
    watchdog_window: Duration = Duration.s(120)
    on_mains: bool = True
    stored_config: bytes = DEFAULT_STORED_CONFIG
    record_series: bool = True

    def __post_init__(self) -> None:
        require(isinstance(self.channels, tuple) and 1 <= len(self.channels) <= 4, "pump.channels", "need 1 to 4")
        for i, ch in enumerate(self.channels):
            require(isinstance(ch, ChannelConfig), f"pump.channels[{i}]", "must be a ChannelConfig")
        ok = 1_000 <= self.sample_period.us <= 100_000
        require(ok, "pump.sample_period", "must be within 1..100 ms (at least 10 Hz)")
        require(self.watchdog_window.us > 0, "pump.watchdog_window", "must be positive")
        require(len(self.stored_config) > 0, "pump.stored_config", "must not be empty")
