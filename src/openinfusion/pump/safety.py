"""The independent safety monitor.

Theory of operation
-------------------
The delivery controller and this monitor do not trust each other. The monitor shares no mutable
state with the controller: it reads the motor driver's pulse counter and the encoder through its
own HAL handles, converts shaft motion to volume with its own reference to the factory calibration,
and integrates its own *expected* volume from the stream of **authorisations** it is given: the
rate the clinician confirmed for the segment now running (plus one-off allowances such as syringe
slack take-up or an occlusion back-off). It never sees the controller's targets or moves.

Each call to :meth:`SafetyMonitor.update` evaluates a declared list of checks (STYLE.md §4, after
PX4's failsafe framework): each row has an ID, the condition, the response, its requirement and
the alarm it raises. Responses are ordered and the worst one wins; every check here responds
with FAILSAFE, which only a power cycle clears (OI-SAFE-3).

The monitor sees the shaft at each service. Reverse motion is judged against the furthest point it
has seen (SM-5); a reversal that starts and ends between two of its looks shows as a shortfall
against the authorised volume instead (SM-3). Either forces failsafe.

Tolerances are stated per check. Volume checks compare cumulative totals since the program was
authorised with ``max(absolute, relative * expected)``; the relative figure is the GPCA
``Tolerance_Min`` of 5 % (gpca-requirements.yaml, UMN-GPCA-CONST; standards-and-safety.md §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from typing import Final

from openinfusion.pump.hal import ChannelHardware
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.units import Duration, FlowRate, Instant, Volume


class Response(IntEnum):
    """Ordered by severity: the worst response of all failing checks wins."""

    NONE = 0
    FAILSAFE = 1


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the monitor: what is checked, how the pump responds, and why (requirement)."""

    id: str
    alarm: str  # AlarmCode name raised when the check fails
    response: Response
    requirement: str
    description: str


MOTION_MISMATCH: Final = Check(
    "SM-1", "MOTION_MISMATCH", Response.FAILSAFE, "OI-SAFE-1",
    "steps issued to the motor driver and encoder motion disagree beyond tolerance",
)  # fmt: skip
OVER_INFUSION: Final = Check(
    "SM-2", "DELIVERY_ACCURACY", Response.FAILSAFE, "OI-SAFE-2",
    "volume measured by the encoder exceeds the authorised volume beyond tolerance",
)  # fmt: skip
UNDER_INFUSION: Final = Check(
    "SM-3", "DELIVERY_ACCURACY", Response.FAILSAFE, "OI-SAFE-2",
    "volume measured by the encoder falls short of the authorised volume beyond tolerance",
)  # fmt: skip
UNAUTHORISED_MOTION: Final = Check(
    "SM-4", "MOTION_MISMATCH", Response.FAILSAFE, "OI-ALM-12",
    "the shaft moved forward while no delivery was authorised",
)  # fmt: skip
REVERSE_DELIVERY: Final = Check(
    "SM-5", "REVERSE_DELIVERY", Response.FAILSAFE, "UMN-GPCA-REQ-22",
    "the shaft moved backward beyond the authorised back-off",
)  # fmt: skip

CHECKS: Final = (MOTION_MISMATCH, OVER_INFUSION, UNDER_INFUSION, UNAUTHORISED_MOTION, REVERSE_DELIVERY)
if len({c.id for c in CHECKS}) != len(CHECKS):  # pragma: no cover - a broken table is a build error
    raise RuntimeError("safety monitor check IDs must be unique")


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Limits of disagreement before the monitor forces failsafe."""

    motion_steps: int = 64  # SM-1 absolute, steps
    motion_relative: Fraction = Fraction(2, 100)  # SM-1 relative to steps issued since authorisation
    volume_absolute: Volume = Volume(100_000)  # SM-2/3 absolute: 0.1 mL
    volume_relative: Fraction = Fraction(5, 100)  # SM-2/3 relative: GPCA Tolerance_Min 5 %
    grace: Duration = Duration(60_000_000)  # SM-3 not judged during the first minute of a rate


@dataclass(frozen=True, slots=True)
class Verdict:
    """A failed check on a channel, with the measured figures that failed it."""

    channel: int
    check: Check
    detail: str


@dataclass(slots=True)
class _Watch:
    """The monitor's own record for one channel (never shared with the controller)."""

    rate: FlowRate = FlowRate(0)
    since: Instant = Instant(0)
    expected_nl: int = 0  # authorised forward volume since the program started, exact
    rate_started: Instant = Instant(0)
    issued0: int = 0
    counts0: int = 0
    reverse_allowance: Volume = Volume(0)
    peak_nl: int = 0  # furthest displaced volume seen since the program started
    tripped: bool = False


class SafetyMonitor:
    """Independent cross-check of motion and volume for every channel (OI-SAFE-1, OI-SAFE-2)."""

    def __init__(
        self,
        channels: tuple[ChannelHardware, ...],
        calibrations: tuple[MechanismCalibration, ...],
        tolerances: Tolerances = Tolerances(),
    ) -> None:
        self._hw = channels
        self._cal = calibrations
        self.tol = tolerances
        self._watch = [_Watch() for _ in channels]

    # --- authorisations (what the clinician confirmed) ------------------------------------------

    def start_program(self, channel: int, now: Instant) -> None:
        """A new program: measure from here, with nothing authorised yet."""
        hw = self._hw[channel]
        self._watch[channel] = _Watch(
            since=now, rate_started=now, issued0=hw.motor.issued_steps(), counts0=hw.encoder.counts()
        )

    def authorise(self, channel: int, now: Instant, rate: FlowRate, allowance: Volume = Volume(0)) -> None:
        """From ``now`` delivery at ``rate`` is authorised (0 = none), plus a one-off ``allowance``.

        A negative allowance authorises reverse motion of that volume (occlusion back-off).
        """
        w = self._watch[channel]
        self._accrue(w, now)
        if rate != w.rate:
            w.rate_started = now
        w.rate = rate
        if allowance.nl >= 0:
            w.expected_nl += allowance.nl
        else:  # reverse motion widens the lower bound only: the withdrawal may not have happened yet
            w.reverse_allowance = Volume(w.reverse_allowance.nl - allowance.nl)

    def _accrue(self, w: _Watch, now: Instant) -> None:
        w.expected_nl += w.rate.volume_in(now.since(w.since)).nl
        w.since = now

    # --- the checks ------------------------------------------------------------------------------

    def measured(self, channel: int) -> Volume:
        """Volume the encoder says was displaced since the program started (monitor's own view)."""
        w, hw, cal = self._watch[channel], self._hw[channel], self._cal[channel]
        now_steps = hw.encoder.counts() // cal.counts_per_step
        start_steps = w.counts0 // cal.counts_per_step
        return cal.volume_at(now_steps) - cal.volume_at(start_steps)

    def update(self, now: Instant) -> tuple[Verdict, ...]:
        """Evaluate every check on every channel; channels already tripped are not re-reported."""
        verdicts: list[Verdict] = []
        for i, w in enumerate(self._watch):
            if w.tripped:
                continue
            self._accrue(w, now)
            found = self._check_channel(i, w, now)
            if found is not None:
                w.tripped = True
                verdicts.append(found)
        return tuple(verdicts)

    def _check_channel(self, i: int, w: _Watch, now: Instant) -> Verdict | None:
        hw, cal, tol = self._hw[i], self._cal[i], self.tol
        issued = hw.motor.issued_steps() - w.issued0
        moved = hw.encoder.counts() // cal.counts_per_step - w.counts0 // cal.counts_per_step
        slack = max(tol.motion_steps, int(abs(issued) * tol.motion_relative))
        if abs(issued - moved) > slack:
            return Verdict(i, MOTION_MISMATCH, f"issued {issued} steps, encoder moved {moved} steps")
        measured = self.measured(i)
        expected = Volume(w.expected_nl)
        margin = max(tol.volume_absolute.nl, int(abs(w.expected_nl) * tol.volume_relative))
        w.peak_nl = max(w.peak_nl, measured.nl)
        withdrawn = w.peak_nl - measured.nl  # reverse motion since the furthest point reached
        if withdrawn > w.reverse_allowance.nl + tol.volume_absolute.nl:
            return Verdict(i, REVERSE_DELIVERY, f"withdrew {Volume(withdrawn)}, allowed {w.reverse_allowance}")
        if measured.nl - expected.nl > margin:
            check = OVER_INFUSION if w.expected_nl > 0 or w.rate.nl_per_h > 0 else UNAUTHORISED_MOTION
            return Verdict(i, check, f"measured {measured}, authorised {expected}")
        judged = now.since(w.rate_started) >= tol.grace
        if judged and w.rate.nl_per_h > 0 and expected.nl - measured.nl > margin + w.reverse_allowance.nl:
            return Verdict(i, UNDER_INFUSION, f"measured {measured}, authorised {expected}")
        return None
