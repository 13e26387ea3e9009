"""True mechanism physics, and the factory calibration the firmware is given instead.

A mechanism maps the shaft position (integer motor steps, signed, cumulative since power-on) to the
volume its moving parts have swept (m^3, cumulative). The *truth* drawn here differs from the
calibration by manufacturing tolerances drawn from the scenario rng, and it has behaviour no
calibration table holds: LVP tube wear and back-flow, syringe backlash, stick-slip and start-up
slack. Equations and parameter sources: docs/physics.md, "Mechanisms".

Both mechanisms evaluate a block of positions with :meth:`sweep` (tentative) and keep the state
reached at sample ``j`` with :meth:`commit`, so a block can be cut short at an interrupt. Within one
block the shaft moves in one direction only (a motor move is set between blocks).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from openinfusion.pump.mechanism import MechanismCalibration, MechanismKind
from openinfusion.sim.arrays import F64, I64
from openinfusion.sim.params import PeristalticParams, SyringeParams, require
from openinfusion.units import US_PER_H, FlowRate, Volume

NL_PER_M3: Final = 1e12
MAX_RATE_NL_H: Final = FlowRate.ml_h(1200).nl_per_h  # the highest rate any channel offers (Alaris GP, §3)


def tolerance_draws(rng: np.random.Generator, n: int) -> list[float]:
    """``n`` standard normal draws clipped to +-3 (a manufacturing tolerance band, no outliers)."""
    return [float(z) for z in np.clip(rng.standard_normal(n), -3.0, 3.0)]


def cam_profile(steps_per_rev: int, fingers: int, ripple: float, dead_zone: float, backflow: float) -> F64:
    """Cumulative fraction of one revolution's net volume swept after ``k`` steps, ``k = 0..steps_per_rev``.

    Over the active part of the revolution (``1 - dead_zone``) the flow is ``c (1 - ripple cos(2 pi fingers
    theta / active))``: one dip per finger hand-over. In the dead zone, where the last finger lifts, fluid
    flows back at ``backflow`` times the mean forward rate. ``c`` makes the net revolution exactly 1, so the
    curve rises above 1 before the dead zone and returns to 1 at its end.
    """
    theta = np.arange(steps_per_rev + 1, dtype=np.float64) / steps_per_rev
    active = 1.0 - dead_zone
    c = 1.0 / (active - backflow * dead_zone)
    phase = 2.0 * math.pi * fingers * theta / active
    rising = c * (theta - ripple * active / (2.0 * math.pi * fingers) * np.sin(phase))
    falling = c * (active - backflow * (theta - active))
    profile: F64 = np.where(theta <= active, rising, falling)
    profile[-1] = 1.0
    return profile


class PeristalticMechanism:
    """Linear peristaltic pump: cam profile with ripple and back-flow, tube wear, filling efficiency.

    Swept volume after ``p`` steps (``n, k = divmod(p, steps_per_rev)``) with per-revolution stroke volume
    ``V s_j``, ``s_j = 1 - w + w exp(-j / N)`` (tube wear after ``j`` revolutions)::

        swept(p) = V (sum_{j<n} s_j + s_n F(k))

    The filling efficiency (upstream pressure) is applied by the channel, not here.
    """

    kind: Final = MechanismKind.PERISTALTIC
    has_upstream: Final = True
    compliance_m3_per_pa: Final = 0.0
    end_stop_steps: Final[int | None] = None

    def __init__(self, params: PeristalticParams, rng: np.random.Generator) -> None:
        p = params
        e_pump, e_set, e_cal, e_ripple, e_dead = tolerance_draws(rng, 5)
        pump_factor = 1.0 + p.pump_sd_fraction * e_pump
        nominal_nl = float(p.volume_per_rev.nl)
        self.params = p
        self.volume_per_rev_m3 = nominal_nl / NL_PER_M3 * pump_factor * (1.0 + p.set_sd_fraction * e_set)
        ripple = min(p.ripple_fraction * (1.0 + p.shape_sd_fraction * e_ripple), 0.9)
        dead_zone = min(p.dead_zone_fraction * (1.0 + p.shape_sd_fraction * e_dead), 0.5)
        self.profile = cam_profile(p.steps_per_rev, p.fingers, ripple, dead_zone, p.backflow_fraction)
        self._wear_w = p.wear_max_fraction
        self._wear_n = p.wear_revs
        nominal = cam_profile(p.steps_per_rev, p.fingers, p.ripple_fraction, p.dead_zone_fraction, p.backflow_fraction)
        # The firmware's table must be non-decreasing: the factory keeps the rising envelope, capped at the
        # net revolution volume, so the back-flow zone reads as "no volume".
        envelope = np.minimum(np.maximum.accumulate(nominal), 1.0)
        cal_nl = nominal_nl * pump_factor * (1.0 + p.calibration_sd_fraction * e_cal)
        self._calibration = MechanismCalibration(
            kind=MechanismKind.PERISTALTIC,
            steps_per_rev=p.steps_per_rev,
            counts_per_step=p.counts_per_step,
            cumulative_nl=tuple(int(v) for v in np.rint(cal_nl * envelope)),
            min_rate=p.min_rate,
            max_rate=p.max_rate,
            resolution=p.resolution,
            max_backoff=p.max_backoff,
        )

    def calibration(self) -> MechanismCalibration:
        """What the factory measured on this pump with a reference set (no wear, no set-to-set variation)."""
        return self._calibration

    def stroke_factor(self, revolution: F64) -> F64:
        """Stroke volume of revolution ``j`` relative to a new tube (tube wear)."""
        factor: F64 = 1.0 - self._wear_w + self._wear_w * np.exp(-revolution / self._wear_n)
        return factor

    def sweep(self, positions: I64, t_us: I64) -> F64:
        """Swept volume (m^3, cumulative since power-on) at each shaft position (steps)."""
        revs, rest = np.divmod(positions, self.params.steps_per_rev)
        # A block spans few revolutions: evaluate the wear terms once per revolution, then gather.
        lo, hi = int(revs.min()), int(revs.max())
        n = np.arange(lo, hi + 1, dtype=np.float64)
        w, big_n = self._wear_w, self._wear_n
        worn_revs = n * (1.0 - w) + w * np.expm1(-n / big_n) / math.expm1(-1.0 / big_n)
        idx = revs - lo
        swept: F64 = self.volume_per_rev_m3 * (worn_revs[idx] + self.stroke_factor(n)[idx] * self.profile[rest])
        return swept

    def commit(self, j: int) -> None:
        """The peristaltic mechanism has no state beyond the shaft position."""


class SyringeMechanism:
    """Lead screw, nut backlash, plunger friction (breakaway, stick-slip) and the syringe barrel.

    Chain (docs/physics.md): screw travel ``s(p) = pitch (p/N + e sin(2 pi p/N) / 2 pi)``; the pusher follows
    the screw within the backlash ``b``; the drive train and stopper (stiffness ``k``) deflect by ``delta`` =
    friction / ``k`` before the plunger moves: up to the breakaway force after a rest, then a sawtooth
    between ``glide - drop`` and ``glide`` (stick-slip). Plunger travel ``y = pusher - delta``; swept volume
    ``A y``, capped at the fill volume (the stopper reaches the barrel end). Pressure compresses the same
    spring: that is the syringe compliance ``A^2 / k`` the channel adds to the line.
    """

    kind: Final = MechanismKind.SYRINGE
    has_upstream: Final = False

    def __init__(self, params: SyringeParams, rng: np.random.Generator) -> None:
        p = params
        spec = p.spec
        e_diam, e_pitch, e_break, e_glide, e_play = tolerance_draws(rng, 5)
        self.params = p
        diameter_m = spec.inner_diameter_mm * 1e-3 * (1.0 + p.diameter_sd_fraction * e_diam)
        self.area_m2 = math.pi / 4.0 * diameter_m**2
        self.pitch_m = p.pitch_mm * 1e-3 * (1.0 + p.pitch_sd_fraction * e_pitch)
        stiffness_n_m = spec.stiffness_n_per_mm * 1e3
        breakaway_n = max(spec.breakaway_n * (1.0 + p.friction_sd_fraction * e_break), 0.0)
        glide_n = min(max(spec.glide_n * (1.0 + p.friction_sd_fraction * e_glide), p.stick_slip_drop_n), breakaway_n)
        self.compliance_m3_per_pa = self.area_m2**2 / stiffness_n_m
        self._backlash_m = p.backlash_mm * 1e-3
        self._breakaway_m = breakaway_n / stiffness_n_m
        self._glide_m = glide_n / stiffness_n_m
        self._saw_m = p.stick_slip_drop_n / stiffness_n_m
        fill_m3 = (spec.capacity if p.fill is None else p.fill).nl / NL_PER_M3
        # State: shaft position, pusher travel, friction deflection, last motion (us). At loading the nut sits
        # anywhere in its play; the plunger reference y = 0 is where it was loaded.
        self._pos = 0
        self._pusher_m = -self._backlash_m * (0.5 + e_play / 6.0)
        self._deflection_m = 0.0
        self._last_motion_us = -p.rest_time.us  # loaded and at rest: the first start needs breakaway
        self._y_ref_m = self._pusher_m
        self._y_end_m = self._y_ref_m + fill_m3 / self.area_m2
        end_screw_m = self._y_end_m + self._glide_m + self._backlash_m
        self.end_stop_steps: int | None = math.floor(end_screw_m / self.pitch_m * p.steps_per_rev)
        self._pending: tuple[I64, I64, F64, F64] | None = None
        self._calibration = self._nominal_calibration()

    def _nominal_calibration(self) -> MechanismCalibration:
        p = self.params
        spec = p.spec
        area_m2 = math.pi / 4.0 * (spec.inner_diameter_mm * 1e-3) ** 2
        per_rev_nl = area_m2 * p.pitch_mm * 1e-3 * NL_PER_M3
        table = tuple(int(v) for v in np.rint(per_rev_nl * np.arange(p.steps_per_rev + 1) / p.steps_per_rev))
        speed_nl_h = area_m2 * p.max_speed_mm_s * 1e-3 * NL_PER_M3 * (US_PER_H / 1e6)
        res = p.resolution.nl_per_h
        max_nl_h = min(MAX_RATE_NL_H, int(speed_nl_h) // res * res)
        require(max_nl_h >= p.min_rate.nl_per_h, "syringe.max_speed_mm_s", "too slow for the minimum rate")
        # The factory states the slack that is always there: the drive train's deflection before the stopper
        # breaks away. The nut's play is anywhere from 0 to the backlash when a syringe is loaded, so taking it
        # up blind could push a bolus; the firmware leaves it to normal delivery (a short start-up delay).
        slack_m = spec.breakaway_n / (spec.stiffness_n_per_mm * 1e3)
        return MechanismCalibration(
            kind=MechanismKind.SYRINGE,
            steps_per_rev=p.steps_per_rev,
            counts_per_step=p.counts_per_step,
            cumulative_nl=table,
            min_rate=p.min_rate,
            max_rate=FlowRate(max_nl_h),
            resolution=p.resolution,
            slack_steps=math.ceil(slack_m / (p.pitch_mm * 1e-3) * p.steps_per_rev),
            reverse_slack_steps=self._reverse_slack_steps(),
            max_backoff=Volume(round(area_m2 * p.max_backoff_mm * 1e-3 * NL_PER_M3)),
            container=spec.capacity,
        )

    def _reverse_slack_steps(self) -> int:
        """Nominal dead travel when the motion reverses: the nut crosses its play, the drive train unloads the
        friction it pushed against and then pulls the gripped flange against the stopper's friction the other
        way (``backlash + 2 F_glide / k``) before the plunger moves back. Floored, so that a back-off never
        counts on less play than there is and never pulls the line below its baseline through it."""
        p = self.params
        spec = p.spec
        dead_m = p.backlash_mm * 1e-3 + 2.0 * spec.glide_n / (spec.stiffness_n_per_mm * 1e3)
        return math.floor(dead_m / (p.pitch_mm * 1e-3) * p.steps_per_rev)

    def calibration(self) -> MechanismCalibration:
        """Nominal table from the syringe library's diameter and the design pitch; nominal slack."""
        return self._calibration

    def screw_m(self, positions: I64) -> F64:
        """Screw (nut) travel in metres at each shaft position, with the periodic lead error."""
        turns = positions / self.params.steps_per_rev
        wobble = self.params.lead_error_fraction / (2.0 * math.pi) * np.sin(2.0 * math.pi * turns)
        travel: F64 = self.pitch_m * (turns + wobble)
        return travel

    def sweep(self, positions: I64, t_us: I64) -> F64:
        """Swept volume (m^3, cumulative since loading) at each position; tentative until :meth:`commit`."""
        screw = self.screw_m(positions)
        u0, d0 = self._pusher_m, self._deflection_m
        if positions[-1] > self._pos:
            pusher = np.maximum(u0, screw - self._backlash_m)
            travel = pusher - u0
            rested = int(t_us[0]) - self._last_motion_us >= self.params.rest_time.us
            slip_at = (self._breakaway_m if rested else self._glide_m) - d0
            low = self._glide_m - self._saw_m
            sliding = low + np.mod(travel - slip_at, self._saw_m) if self._saw_m > 0 else np.full_like(travel, low)
            deflection = np.where(travel < slip_at, d0 + travel, sliding)
        elif positions[-1] < self._pos:
            pusher = np.minimum(u0, screw)
            deflection = np.maximum(d0 - (u0 - pusher), -self._glide_m)
        else:
            pusher = np.full(positions.shape, u0)
            deflection = np.full(positions.shape, d0)
        self._pending = (positions, t_us, pusher, deflection)
        plunger = np.minimum(pusher - deflection, self._y_end_m)
        swept: F64 = self.area_m2 * (plunger - self._y_ref_m)
        return swept

    def commit(self, j: int) -> None:
        """Keep the state reached at sample ``j`` of the last :meth:`sweep`."""
        if self._pending is None:
            return
        positions, t_us, pusher, deflection = self._pending
        pos = int(positions[j])
        if pos != self._pos:
            settled = int(np.argmax(positions[: j + 1] == pos))
            self._last_motion_us = int(t_us[settled])
        self._pos = pos
        self._pusher_m = float(pusher[j])
        self._deflection_m = float(deflection[j])
        self._pending = None


Mechanism = PeristalticMechanism | SyringeMechanism


def build_mechanism(
    kind: MechanismKind, lvp: PeristalticParams, syringe: SyringeParams, rng: np.random.Generator
) -> Mechanism:
    """The mechanism of ``kind`` with its truth drawn from ``rng``."""
    if kind is MechanismKind.PERISTALTIC:
        return PeristalticMechanism(lvp, rng)
    return SyringeMechanism(syringe, rng)
