"""Delivery control: from a programmed rate to motor moves, closed-loop on the encoder.

Theory of operation
-------------------
The controller never integrates a rate into a float. For the active plan segment it knows the
exact *target* volume as a function of infusing time, ``rate * elapsed`` in integer nanolitres
(``FlowRate.volume_in`` rounds down), capped at the segment's volume. Each time the core services
the channel it reads the encoder, converts the shaft position to displaced volume through the
factory calibration table (exact integers, so the cam's non-uniformity is compensated: more steps
are issued where a step moves less fluid, OI-DEL-1), and issues one move that brings the displaced
volume to the target at the end of the next interval. Being behind (encoder slip, a late service)
is made up in the next interval; being ahead makes the motor wait. Nothing accumulates, so totals
never drift whatever the run length (OI-VOL-1).

A rate change starts a new segment whose base is the *target* reached under the old rate, not the
volume measured, and the move in progress is replaced at once: the new rate applies from the
moment of the change and no under-delivery is carried into it, however large the change (OI-DEL-2;
the recall in market-and-peers.md §4 was an increase to more than double the old rate that stayed
under-delivered). A deficit carried into a new segment is bounded by ``max_carry`` so that a
long stall is never "caught up" as a bolus.

Moves never overshoot: the controller commands the largest step count whose calibrated volume does
not exceed the target, so the delivered volume never passes the segment's (and the VTBI's) volume;
a segment is complete when it is within one step's volume of its end.

Every move is clamped to the mechanism's maximum rate (OI-DEL-4): a delivery move is cut to the steps
the maximum rate allows in its interval (being behind is made up no faster than that), and a fixed move
(slack take-up, back-off) is stretched in time instead, so that whatever target a fault produces, the
motor never runs faster than the mechanism is rated for.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.units import Duration, FlowRate, Instant, Volume

FINE_BELOW: Final = Duration(120_000_000)  # a revolution longer than this is compensated within it
MIN_INTERVAL: Final = Duration(5_000_000)
MIN_MOVE: Final = Duration(1_000)  # shortest move the controller issues (1 ms)


@dataclass(frozen=True, slots=True)
class Move:
    """One motor move: ``steps`` pulses evenly over ``over`` (``steps == 0``: idle)."""

    steps: int
    over: Duration


@dataclass(slots=True)
class SegmentTracker:
    """Progress through one constant-rate segment (mutable runtime state of the channel).

    ``base`` is the delivered volume the segment's target starts from; ``elapsed`` is infusing time
    spent in the segment (pauses excluded); ``limit`` is the segment's volume (None: unbounded).
    """

    rate: FlowRate
    limit: Volume | None
    duration: Duration | None
    base: Volume
    elapsed: Duration = Duration(0)

    def target(self, extra: Duration = Duration(0)) -> Volume:
        """Delivered volume the segment calls for after ``elapsed + extra`` of infusing time."""
        v = self.rate.volume_in(self.elapsed + extra)
        if self.limit is not None and v.nl > self.limit.nl:
            v = self.limit
        return Volume(self.base.nl + v.nl)

    def time_to_end(self) -> Duration | None:
        """Infusing time left until the target reaches the segment's end (None: unbounded)."""
        left: list[Duration] = []
        if self.duration is not None:
            left.append(self.duration - self.elapsed)
        if self.limit is not None and self.rate.nl_per_h > 0:
            left.append(self.rate.time_for(self.limit) - self.elapsed)
        return max(min(left), Duration(0)) if left else None


class DeliveryController:
    """Turns segment targets into motor moves for one channel's mechanism. Deterministic."""

    def __init__(self, calibration: MechanismCalibration, max_carry: Volume) -> None:
        self.cal = calibration
        self.max_carry = max_carry
        table = calibration.cumulative_nl
        #: the most fluid one step can move: the completion tolerance of a segment
        self.step_volume_max = Volume(max(b - a for a, b in pairwise(table)))
        self.origin_steps = 0

    def position(self, encoder_counts: int) -> int:
        """Shaft position in whole steps since power-on (floor of counts / counts per step)."""
        return encoder_counts // self.cal.counts_per_step

    def set_origin(self, steps: int) -> None:
        """Start volume accounting at shaft position ``steps`` (a new program)."""
        self.origin_steps = steps

    def delivered(self, steps: int) -> Volume:
        """Volume displaced since the origin at shaft position ``steps`` (exact, nL)."""
        return self.cal.volume_at(steps) - self.cal.volume_at(self.origin_steps)

    def steps_to(self, delivered: Volume) -> int:
        """Absolute shaft position of the largest step count whose volume does not exceed ``delivered``."""
        absolute = self.cal.volume_at(self.origin_steps) + delivered
        return self.cal.steps_for(Volume(absolute.nl + 1)) - 1

    def plan(self, steps_now: int, tracker: SegmentTracker, interval: Duration) -> Move:
        """The move that brings the displaced volume to the tracker's target ``interval`` from now.

        Never moves backwards (a surplus makes the motor idle), never passes the target, and never runs faster
        than the mechanism's maximum rate (OI-DEL-4).
        """
        goal = self.steps_to(tracker.target(interval))
        return Move(min(max(goal - steps_now, 0), self.cal.max_steps(interval)), interval)

    def carry_into(self, tracker: SegmentTracker, measured: Volume) -> Volume:
        """The base for the next segment: the old target, unless the deficit exceeds ``max_carry``."""
        target = tracker.target()
        if target.nl - measured.nl > self.max_carry.nl:
            return Volume(measured.nl + self.max_carry.nl)
        return target

    def complete(self, tracker: SegmentTracker, measured: Volume) -> bool:
        """True when the segment is done: its time is up, or it is within one step of its volume."""
        if tracker.duration is not None and tracker.elapsed >= tracker.duration:
            return True
        if tracker.limit is not None:
            return measured.nl >= tracker.base.nl + tracker.limit.nl - self.step_volume_max.nl
        return False

    def interval_for(self, rate: FlowRate, longest: Duration) -> Duration:
        """How long to let one move run at ``rate`` before servicing again (at most ``longest``).

        The cam's non-uniformity is compensated exactly at the end of each move (the step count comes
        from the calibration table), and within a move the steps are evenly spaced. So at low rates,
        where one revolution takes minutes, a move spans a twelfth of a revolution (at least 5 s);
        at higher rates it spans whole revolutions, as many as fit in ``longest``.
        """
        if rate.nl_per_h <= 0:
            return longest
        rev = rate.time_for(self.cal.volume_per_rev)
        if rev.us >= FINE_BELOW.us:
            return min(max(Duration(rev.us // 12), MIN_INTERVAL), longest)
        if rev >= longest:
            return longest
        return Duration(rev.us * (longest.us // rev.us))

    def slack_move(self, over: Duration) -> Move:
        """The fast forward move that takes up backlash and plunger compliance at start (OI-DEL-3)."""
        return self._stretched(self.cal.slack_steps, over)

    def backoff_move(self, volume: Volume, steps_now: int, over: Duration) -> Move:
        """A reverse move withdrawing at most ``volume`` (bounded by the calibration's max back-off)."""
        volume = min(volume, self.cal.max_backoff)
        here = self.cal.volume_at(steps_now)
        goal = self.cal.steps_for(Volume(here.nl - volume.nl))
        return self._stretched(min(goal - steps_now, 0), over)

    def reverse_slack_move(self, over: Duration) -> Move:
        """The fast forward move that takes up the drive's play again after a back-off (moves no fluid)."""
        return self._stretched(self.cal.reverse_slack_steps, over)

    def _stretched(self, steps: int, over: Duration) -> Move:
        """``steps`` over ``over``, or over longer if that would be faster than the maximum rate."""
        while abs(steps) > self.cal.max_steps(over):
            over = Duration(over.us * 2)
        return Move(steps, over)


def segment_end_time(now: Instant, tracker: SegmentTracker) -> Instant | None:
    """Pump time at which the tracker's segment reaches its end if infusion continues."""
    left = tracker.time_to_end()
    return None if left is None else now + left
