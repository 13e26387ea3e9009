"""The independent safety monitor (ARCHITECTURE rule 4).

Theory of operation
-------------------
The delivery controller and this monitor do not trust each other, and a single fault in the
programs, the plan, the dose conversion, the controller or its calibration must not defeat both.
So the monitor

* **expects from what was confirmed, never from what is commanded.** It is handed the frozen
  confirmed program (and the confirmed titrations, boluses, secondaries and PCA presses) as
  :mod:`openinfusion.pump.confirmed` values, and compiles its own expected delivery from them with its
  own arithmetic (:mod:`openinfusion.pump.safety_model`, OI-SAFE-4). The channel only tells it when
  delivery runs or is held (statechart actions), and when a PCA dose limit is reached, which can only
  lower the allowance to the confirmed KVO rate (:meth:`SafetyMonitor.dose_limit`, decision 0030); it never
  tells it a rate or a volume;
* **measures with its own copy of the factory calibration** through its own HAL handles (encoder,
  driver pulse counter), the copy cross-checked by checksum against the controller's at power-on
  (OI-SAFE-6, :mod:`~openinfusion.pump.selftest`);
* **runs on its own cadence** in pump time: :meth:`SafetyMonitor.next_check` asks the pump to call it at
  least every ``period`` (1 s) whatever the controller's next attention (OI-SAFE-7);
* **checks windows, never a margin on a growing total** (OI-SAFE-8): over- and under-delivery are
  bounded-credit accumulators (CUSUM): each check adds what moved minus what the confirmed profile
  allows in that interval, and the credit a slow period can bank is capped, so the monitor is exactly as
  sensitive after 12 h as after 15 min; a phase boundary allows the higher of the two rates;
* **stops the motor through its own latch** (HAL :class:`~openinfusion.pump.hal.SafetyLatch`), which
  cannot raise and does not go through the channel (OI-SAFE-5); the alarm and the FAILSAFE state follow
  through the pump.

Each call evaluates a declared list of checks (STYLE.md §4, after PX4's failsafe framework): every row
has an ID (unique, checked at import), the condition, the response, the alarm, its requirement and how it
clears. Every check here responds with FAILSAFE, which only a power cycle clears (OI-SAFE-3).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from openinfusion.errors import ConfigError
from openinfusion.pump.confirmed import ConfirmedBolus, ConfirmedProgram, ConfirmedTitration, Pca
from openinfusion.pump.hal import ChannelHardware
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.safety_model import Expectation, Grid, compile_program
from openinfusion.units import US_PER_H, Duration, Instant, Volume

MAX_PERIOD: Final = Duration.s(1)


class Response(IntEnum):
    """Ordered by severity: the worst response of all failing checks wins."""

    NONE = 0
    FAILSAFE = 1


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the monitor: what is checked, how the pump responds, why, and how it clears."""

    id: str
    alarm: str  # AlarmCode name raised when the check fails
    response: Response
    requirement: str
    description: str
    clears: str = "power cycle"


MOTION_MISMATCH: Final = Check(
    "SM-1", "MOTION_MISMATCH", Response.FAILSAFE, "OI-SAFE-1",
    "steps issued by the motor driver and encoder motion disagree within a sliding window",
)  # fmt: skip
OVER_INFUSION: Final = Check(
    "SM-2", "DELIVERY_ACCURACY", Response.FAILSAFE, "UMN-GPCA-REQ-19",
    "measured motion exceeds what the confirmed profile allows, windowed (bounded credit)",
)  # fmt: skip
UNDER_INFUSION: Final = Check(
    "SM-3", "DELIVERY_ACCURACY", Response.FAILSAFE, "UMN-GPCA-REQ-17",
    "measured motion falls short of what the confirmed profile expects, windowed (bounded credit)",
)  # fmt: skip
UNAUTHORISED_MOTION: Final = Check(
    "SM-4", "MOTION_MISMATCH", Response.FAILSAFE, "OI-SAFE-5",
    "the shaft moved forward more than a few steps while the authorised rate is zero (held, paused, a zero phase)",
)  # fmt: skip
REVERSE_DELIVERY: Final = Check(
    "SM-5", "REVERSE_DELIVERY", Response.FAILSAFE, "UMN-GPCA-REQ-22",
    "the shaft moved backward beyond this hold's back-off allowance, or at all while delivering",
)  # fmt: skip
VTBI_CEILING: Final = Check(
    "SM-6", "DELIVERY_ACCURACY", Response.FAILSAFE, "UMN-GPCA-REQ-20",
    "net volume since confirmation exceeds the confirmed volumes plus the KVO run since",
)  # fmt: skip

CHECKS: Final = (MOTION_MISMATCH, OVER_INFUSION, UNDER_INFUSION, UNAUTHORISED_MOTION, REVERSE_DELIVERY, VTBI_CEILING)
if len({c.id for c in CHECKS}) != len(CHECKS):  # pragma: no cover - a broken table is a build error
    raise RuntimeError("safety monitor check IDs must be unique")


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Limits of disagreement before the monitor forces failsafe (volumes nL, counts in steps)."""

    period: Duration = MAX_PERIOD  # longest time between checks (OI-SAFE-7)
    motion_steps: int = 64  # SM-1 absolute, steps within the window
    motion_permille: int = 20  # SM-1 relative to steps issued within the window (2 %)
    motion_window: Duration = Duration.s(60)
    over: Volume = Volume(20_000)  # SM-2: excess beyond the profile before a trip (0.02 mL)
    credit: Volume = Volume(20_000)  # SM-2/3: the most a slow (fast) period may bank (0.02 mL)
    rate_permille: int = 20  # SM-2: rate allowance on top of one resolution step (2 %)
    under: Volume = Volume(100_000)  # SM-3: shortfall before a trip (0.1 mL)
    under_permille: int = 100  # SM-3: rate shortfall tolerated (10 %)
    grace: Duration = Duration.s(60)  # SM-3 not judged during the first minute after delivery (re)starts
    still_steps: int = 8  # SM-4: forward steps tolerated while nothing is authorised ("a few steps")
    reverse_steps: int = 8  # SM-5: reverse steps tolerated while delivering

    def __post_init__(self) -> None:
        if not Duration(0) < self.period <= MAX_PERIOD:
            raise ConfigError("tolerances.period", f"must be positive and at most {MAX_PERIOD}, got {self.period}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A failed check on a channel, with the measured figures that failed it."""

    channel: int
    check: Check
    detail: str


@dataclass(slots=True)
class _Watch:
    """The monitor's own record of one channel (never shared with the controller)."""

    model: Expectation
    t: Instant
    steps: int  # shaft position at the last check (encoder counts // counts per step)
    volume_nl: int = 0  # the calibrated volume at that position (from the monitor's own table)
    confirmed: bool = False
    running: bool = False
    first_run: bool = True
    run_since: Instant = Instant(0)
    free_nl: int = 0  # forward motion that moves no fluid (slack take-up), not yet seen
    over_nl: int = 0  # SM-2 accumulator
    under_nl: int = 0  # SM-3 accumulator
    low_steps: int = 0  # lowest position since the authorised rate became zero (SM-4)
    high_steps: int = 0  # highest position since delivery (re)started (SM-5)
    hold_steps: int = 0  # position when delivery was last held (SM-5: this hold's back-off)
    reversed_in_hold: bool = False
    zero: bool = True  # the authorised rate is zero
    net_nl: int = 0  # net volume since confirmation, free motion excluded (SM-6)
    kvo_nl: int = 0  # KVO allowed since confirmation: after the program and between its doses (SM-6)
    pca: Pca | None = None
    last_demand: Instant | None = None
    mismatch: deque[tuple[Instant, int, int]] = field(default_factory=deque)  # (t, issued - shaft, issued)
    tripped: bool = False


def _windowed(balance_nl: int, change_nl: int, credit_nl: int) -> int:
    """OI-SAFE-2, OI-SAFE-8: a volume balance (nL; delivered against the confirmed profile) that takes
    ``change_nl`` but never banks more than ``credit_nl`` of credit, so a fault after 12 h meets the same small
    credit as one after 15 min (never a margin on a growing total)."""
    return max(balance_nl + change_nl, -credit_nl)


class SafetyMonitor:
    """Independent cross-check of motion and volume for every channel (OI-SAFE-4..8; the volume balances of
    :func:`_windowed`, the motion check of :meth:`_motion_mismatch`)."""

    def __init__(
        self,
        channels: tuple[ChannelHardware, ...],
        calibrations: tuple[MechanismCalibration, ...],
        tolerances: Tolerances = Tolerances(),
    ) -> None:
        if len(channels) != len(calibrations):
            raise ConfigError("monitor.calibrations", "one calibration per channel")
        self._hw = channels
        self._cal = calibrations  # the monitor's own copy (OI-SAFE-6)
        self.tol = tolerances
        self._watch = [self._fresh(i, Instant(0)) for i in range(len(channels))]
        self._armed = False
        self._verdicts: list[Verdict] = []

    def _fresh(self, i: int, now: Instant) -> _Watch:
        steps = self._hw[i].encoder.counts() // self._cal[i].counts_per_step
        volume = self._cal[i].volume_at(steps).nl
        cal = self._cal[i]
        step_max = max(b - a for a, b in itertools.pairwise(cal.cumulative_nl))  # "done within one step", as measured
        model = Expectation(Grid(cal.resolution, cal.max_rate), step_max)
        w = _Watch(model, now, steps, volume, low_steps=steps, high_steps=steps)
        w.hold_steps = steps
        w.mismatch.append((now, self._hw[i].motor.issued_steps() - steps, self._hw[i].motor.issued_steps()))
        return w

    @property
    def calibrations(self) -> tuple[MechanismCalibration, ...]:
        """The monitor's own copy of the factory calibration (for the power-on cross-check)."""
        return self._cal

    # --- what the clinician confirmed, and when delivery runs ------------------------------------

    def arm(self, now: Instant) -> None:
        """Start watching every channel from where it stands (after the power-on self-test)."""
        self._watch = [self._fresh(i, now) for i in range(len(self._hw))]
        self._armed = True

    def confirm(self, channel: int, now: Instant, program: ConfirmedProgram) -> None:
        """A confirmed program: the monitor's own expectation from here; nothing runs until :meth:`run`."""
        self._observe(channel, now)
        w = self._watch[channel]
        w.model.confirm(program)
        w.confirmed, w.running, w.first_run = True, False, True
        w.net_nl = w.kvo_nl = w.over_nl = w.under_nl = 0
        w.pca = next((p for p in program.parts if isinstance(p, Pca)), None)
        w.last_demand = None

    def clear(self, channel: int, now: Instant) -> None:
        """The program is discarded: nothing is authorised."""
        self.hold(channel, now)
        self._watch[channel].confirmed = False

    def run(self, channel: int, now: Instant) -> None:
        """Delivery (re)starts as the clinician confirmed (start, resume); on a resume, the rest of a PCA bolus
        that was running is dropped, not expected (OPENPCA-R6-5-0-3)."""
        self._observe(channel, now)
        w, cal = self._watch[channel], self._cal[channel]
        if not w.confirmed:
            return
        if not w.first_run:
            w.model.drop_pca_boluses()
        if w.first_run:  # the syringe's slack is taken up first: it moves the shaft, not fluid
            w.free_nl += cal.volume_at(cal.slack_steps).nl
            w.first_run = False
        elif w.reversed_in_hold:  # the drive's play crossed by this hold's back-off is taken up again
            w.free_nl += cal.volume_at(cal.reverse_slack_steps).nl
        w.running, w.run_since, w.high_steps = True, now, w.steps
        w.under_nl = 0

    def hold(self, channel: int, now: Instant) -> None:
        """Delivery stops (pause, alarm, end): nothing is authorised; this hold's back-off allowance starts."""
        self._observe(channel, now)
        w = self._watch[channel]
        w.running, w.zero = False, True
        w.hold_steps = w.low_steps = w.steps
        w.reversed_in_hold = False
        w.model.allowance_nl = 0  # a PCA demand not given by now is not given

    def dose_limit(self, channel: int, now: Instant, reached: bool) -> None:
        """The channel reports its PCA held at KVO (``reached``: the dose limit, OPENPCA-R5-2-0-5, or a Table 4
        warning with the KVO rate such as low battery) or released: while held, the PCA boluses are halted and
        the confirmed KVO rate is the most allowed and all that is expected. This signal can only lower the
        confirmed profile, never raise it (decision record 0030)."""
        self._observe(channel, now)
        self._watch[channel].model.restrict_to_kvo(reached)

    def check(self, channel: int, value: ConfirmedProgram | ConfirmedBolus | ConfirmedTitration) -> None:
        """Raise the user's error if the monitor cannot derive its expectation from ``value`` (e.g. a per-kg dose
        without a weight); changes nothing. The channel calls it before a transition's first action."""
        model = self._watch[channel].model
        match value:
            case ConfirmedProgram():
                compile_program(value, model.grid)
            case ConfirmedBolus():
                model.bolus_volume(value)
            case ConfirmedTitration():
                model.titration_rate(value)

    def bolus(self, channel: int, now: Instant, bolus: ConfirmedBolus) -> None:
        self._observe(channel, now)
        self._watch[channel].model.push_bolus(bolus)

    def secondary(self, channel: int, now: Instant, program: ConfirmedProgram) -> None:
        self._observe(channel, now)
        self._watch[channel].model.push_secondary(program)

    def titrate(self, channel: int, now: Instant, titration: ConfirmedTitration) -> None:
        self._observe(channel, now)
        self._watch[channel].model.titrate(titration)

    def demand(self, channel: int, now: Instant) -> None:
        """The patient pressed the PCA button: outside the lockout, one demand dose is allowed (not expected)."""
        self._observe(channel, now)
        w = self._watch[channel]
        pca = w.pca
        if pca is None or not w.running or (w.last_demand is not None and now.since(w.last_demand) < pca.lockout):
            return  # no PCA, delivery held (no demand is given then), or within the monitor's own lockout
        w.last_demand = now
        w.model.allow_demand(w.model.grid.amount_volume(pca.demand_dose, pca.drug), pca.demand_rate)

    # --- the checks ------------------------------------------------------------------------------

    def next_check(self, now: Instant) -> Instant | None:
        """When the monitor must next run: its own cadence, at most 1 s ahead (OI-SAFE-7); None before it is armed."""
        return Instant(now.us + self.tol.period.us) if self._armed else None

    def tripped(self, channel: int) -> bool:
        return self._watch[channel].tripped

    def update(self, now: Instant) -> tuple[Verdict, ...]:
        """Evaluate every check on every channel; returns the trips not reported before."""
        if self._armed:
            for i in range(len(self._hw)):
                self._observe(i, now)
        if not self._verdicts:
            return ()
        verdicts, self._verdicts = tuple(self._verdicts), []
        return verdicts

    def _observe(self, i: int, now: Instant) -> None:
        """Measure channel ``i`` with the monitor's own handles and calibration, advance its own expectation,
        update the bounded-credit windows (:func:`_windowed`; UMN-GPCA-REQ-19 over, UMN-GPCA-REQ-17 under), then
        judge."""
        w, hw, cal, tol = self._watch[i], self._hw[i], self._cal[i], self.tol
        if not self._armed or w.tripped:
            return
        steps = hw.encoder.counts() // cal.counts_per_step
        issued = hw.motor.issued_steps()
        dt = max(now.us - w.t.us, 0)
        volume = w.volume_nl if steps == w.steps else cal.volume_at(steps).nl
        moved = volume - w.volume_nl
        free_only, raw = False, moved  # the shaft's motion, slack take-up included (what SM-3 judges)
        if moved > 0 and w.free_nl:
            free = min(moved, w.free_nl)
            w.free_nl -= free
            moved -= free
            free_only = moved == 0  # all of it was the slack take-up the monitor allows itself
        running = w.running and w.confirmed
        lo = hi = 0
        if running:
            lo, hi = w.model.span()
            w.model.advance(moved, dt)
            if moved or dt:
                lo2, hi2 = w.model.span()
                lo, hi = min(lo, lo2), max(hi, hi2)
        elif moved < 0:
            w.model.advance(moved, 0)
        extra = w.model.use_allowance(dt) if running else 0
        if w.confirmed:
            w.model.count_dose(w.t.us, now.us, moved)
        zero = hi == 0 and extra == 0 and w.model.allowance_nl == 0
        if zero and not w.zero:
            w.low_steps = steps
        w.zero = zero
        w.low_steps = steps if free_only else min(w.low_steps, steps)
        w.high_steps = max(w.high_steps, steps) if running else w.high_steps
        if not running and steps < w.hold_steps - tol.reverse_steps:
            w.reversed_in_hold = True
        grid = w.model.grid.step
        allowed = ((hi * (1000 + tol.rate_permille) // 1000 + grid) * dt) // US_PER_H + extra
        w.over_nl = _windowed(w.over_nl, moved - allowed, tol.credit.nl)
        expected = (lo * (1000 - tol.under_permille) // 1000 * dt) // US_PER_H
        w.under_nl = _windowed(w.under_nl, expected - raw, tol.credit.nl) if running else 0
        w.net_nl += moved
        if running and w.model.current().volume is None:  # KVO after the program, or between its doses
            w.kvo_nl += ((w.model.kvo * (1000 + tol.rate_permille) // 1000 + grid) * dt) // US_PER_H
        w.t, w.steps, w.volume_nl = now, steps, volume
        mismatch, window_us = w.mismatch, tol.motion_window.us
        mismatch.append((now, issued - steps, issued))
        while len(mismatch) > 1 and now.us - mismatch[0][0].us > window_us:
            mismatch.popleft()
        found = self._judge(i, w, now)
        if found is not None:
            self._trip(i, found)

    def _judge(self, i: int, w: _Watch, now: Instant) -> Verdict | None:
        """The checks of :data:`CHECKS` in order (motion, UMN-GPCA-REQ-22, OI-SAFE-5, UMN-GPCA-REQ-19, the VTBI
        ceiling, UMN-GPCA-REQ-17); the first that fails is the verdict."""
        tol, cal = self.tol, self._cal[i]
        mismatch = self._motion_mismatch(i, w)
        if mismatch is not None:
            return mismatch
        if w.running and w.steps < w.high_steps - tol.reverse_steps:
            return Verdict(i, REVERSE_DELIVERY, f"moved {w.high_steps - w.steps} steps back while delivering")
        if not w.running and w.steps < w.hold_steps:
            backoff = cal.volume_at(w.hold_steps).nl - w.volume_nl
            allowance = cal.max_backoff.nl + cal.volume_at(cal.reverse_slack_steps).nl + tol.over.nl
            if backoff > allowance:
                return Verdict(
                    i, REVERSE_DELIVERY, f"withdrew {Volume(backoff)} in one hold, allowed {Volume(allowance)}"
                )
        if w.zero and w.steps - w.low_steps > tol.still_steps:
            return Verdict(i, UNAUTHORISED_MOTION, f"{w.steps - w.low_steps} steps forward, nothing authorised")
        if w.over_nl > tol.over.nl:
            return Verdict(i, OVER_INFUSION, f"{Volume(w.over_nl)} more than the confirmed profile allows")
        ceiling = self._vtbi_ceiling(i, w)
        if ceiling is not None:
            return ceiling
        judged = w.running and now.us - w.run_since.us >= tol.grace.us
        if judged and w.under_nl > tol.under.nl:
            return Verdict(i, UNDER_INFUSION, f"{Volume(w.under_nl)} less than the confirmed profile expects")
        return None

    def _motion_mismatch(self, i: int, w: _Watch) -> Verdict | None:
        """SM-1 (OI-SAFE-1): the steps the driver issued and the encoder's motion may drift apart within the
        sliding window by at most ``motion_steps`` or ``motion_permille`` of the steps issued in it, the larger."""
        tol = self.tol
        t0, d0, issued0 = w.mismatch[0]
        _, d1, issued1 = w.mismatch[-1]
        slack = max(tol.motion_steps, abs(issued1 - issued0) * tol.motion_permille // 1000)
        if abs(d1 - d0) > slack:
            return Verdict(i, MOTION_MISMATCH, f"issued and encoder steps drifted {d1 - d0} apart since {t0}")
        return None

    def _vtbi_ceiling(self, i: int, w: _Watch) -> Verdict | None:
        """SM-6 (UMN-GPCA-REQ-20): the net volume since confirmation may exceed the confirmed volumes (program,
        secondaries, boluses, demands) by the KVO run since and ``over``, no more."""
        ceiling = w.model.ceiling_nl
        if w.confirmed and ceiling is not None and w.net_nl > ceiling + w.kvo_nl + self.tol.over.nl:
            return Verdict(i, VTBI_CEILING, f"{Volume(w.net_nl)} delivered, confirmed {Volume(ceiling)}")
        return None

    def _trip(self, i: int, verdict: Verdict) -> None:
        """Latch the motor off through the monitor's own path, then report (the pump raises the alarm). OI-SAFE-5."""
        w = self._watch[i]
        w.tripped = True
        with contextlib.suppress(Exception):  # the latch must not raise; if a driver does, the alarm still follows
            self._hw[i].latch.trip()
        self._verdicts.append(verdict)
