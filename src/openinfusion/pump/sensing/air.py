"""Air-in-line: single bubbles (UMN-GPCA-REQ-21) and air accumulated over delivered fluid (OI-ALM-5).

The ultrasonic detector below the mechanism reports each bubble with its estimated volume
(:class:`~openinfusion.pump.hal.AirBatch`). Two alarms:

* **single**: a bubble *larger than* ``single_limit`` alarms at once;
* **cumulative**: every bubble, however small, is also counted in a window sliding over the last
  ``window`` of *delivered fluid*; more than ``cumulative_limit`` of air in it alarms. A bubble leaves
  the window once ``window`` more fluid has been delivered after it.

Defaults, with their reasons (``shared/reference/standards-and-safety.md`` §3):

* ``single_limit`` 0.1 mL: general-purpose pump sensors typically detect 0.05-0.2 mL, and settings below
  0.05 mL cause nuisance alarms (ECRI). 0.1 mL is 1/100 of the smallest lethal embolus estimate (10 mL).
* ``cumulative_limit`` 1 mL over a ``window`` of 15 mL: the Alaris GP alarms on more than 1 mL of
  accumulated air over a rolling 15 minutes, which is 15 mL of fluid at 60 mL/h. A window of fluid
  rather than time bounds the *air fraction* of what reaches the patient (at most 1 part in 15) whatever
  the rate; at low rates it looks back further than 15 minutes (more protective), at high rates less
  far (at 600 mL/h, 15 mL is 90 s), where the single-bubble alarm and the empty-container alarm carry
  more of the protection. A care area may set a smaller window or limit.

**Detector check** (OI-SAFE-10): the detector can fail silently, stuck at "liquid", and then no bubble
alarms. While delivering, the channel makes it report a simulated bubble (``AirDetector.simulate_air``) at
every service and every safety-monitor tick (at most 1 s apart), and wakes for it sooner when
:func:`air_check_interval`, the time half the single-bubble limit takes to pass, is shorter. A detector
that fails just after a check is caught, and delivery stopped, before more than half the limit has passed,
so no bubble over the limit reaches the patient unseen; the other half is margin for the move under way.
The interval is at least :data:`AIR_CHECK_MIN` (a wake-up storm would replan the motor faster than it steps):
at a 1200 mL/h maximum rate that is 0.033 mL, under any single limit of 0.067 mL or more.

Delivered volume comes from the caller, who knows it over time (encoder, :mod:`.flow`), as a function
of the pump's clock; :class:`DeliveryTrace` interpolates a few known points. Reverse motion (back-off)
does not move the window back: positions only advance.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

from openinfusion.errors import ConfigError
from openinfusion.pump.hal import AirBatch
from openinfusion.units import Duration, FlowRate, Instant, Volume

DEFAULT_SINGLE_LIMIT: Final = Volume.ml("0.1")
AIR_CHECK_MIN: Final = Duration.s("0.1")
DEFAULT_CUMULATIVE_LIMIT: Final = Volume.ml(1)
DEFAULT_WINDOW: Final = Volume.ml(15)

IntArray = npt.NDArray[np.int64]
_EMPTY: Final[IntArray] = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class DeliveryTrace:
    """Cumulative delivered volume at known instants, as a function of time.

    ``points`` are ``(instant, delivered)`` with strictly increasing instants and non-decreasing volumes
    (at least one). Between points the volume is interpolated linearly, rounded down to the nanolitre;
    before the first and after the last it is held at the end value.
    """

    points: tuple[tuple[Instant, Volume], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ConfigError("delivery.points", "needs at least one (instant, volume) point")
        for i in range(1, len(self.points)):
            (t0, v0), (t1, v1) = self.points[i - 1], self.points[i]
            if t1 <= t0 or v1 < v0:
                raise ConfigError(f"delivery.points[{i}]", "instants must increase and volumes must not decrease")

    def __call__(self, at: Instant) -> Volume:
        """Delivered volume at ``at`` (nL, rounded down)."""
        after = bisect.bisect_right(self.points, at, key=lambda point: point[0])
        if after == 0:
            return self.points[0][1]
        if after == len(self.points):
            return self.points[-1][1]
        (t0, v0), (t1, v1) = self.points[after - 1], self.points[after]
        fraction = Fraction(at.us - t0.us, t1.us - t0.us)
        return Volume(v0.nl + int((v1.nl - v0.nl) * fraction))


def air_check_interval(rate: FlowRate, single_limit: Volume) -> Duration:
    """The longest delivery at ``rate`` (> 0) runs between two detector checks: half ``single_limit`` passes."""
    return max(rate.time_for(Volume(single_limit.nl // 2)), AIR_CHECK_MIN)


@dataclass(frozen=True, slots=True)
class AirVerdict:
    """Air verdict for one batch.

    ``single``: a bubble of the batch was larger than the single limit. ``cumulative``: on some bubble's
    arrival the air in the window exceeded the cumulative limit. ``air_in_window``: air in the window
    now. ``at``: the first bubble that raised either alarm, else None.
    """

    single: bool
    cumulative: bool
    air_in_window: Volume
    at: Instant | None = None


class AirMonitor:
    """Single-bubble and cumulative air-in-line monitor (see the module for the defaults' reasons).

    State: the bubbles still in the window (position in delivered volume, and volume) and the furthest
    delivered position seen.
    """

    def __init__(
        self,
        single_limit: Volume = DEFAULT_SINGLE_LIMIT,
        cumulative_limit: Volume = DEFAULT_CUMULATIVE_LIMIT,
        window: Volume = DEFAULT_WINDOW,
    ) -> None:
        if single_limit.nl <= 0:
            raise ConfigError("air.single_limit", f"must be positive, got {single_limit}")
        if cumulative_limit < single_limit:
            raise ConfigError("air.cumulative_limit", f"must be at least the single limit ({single_limit})")
        if window <= cumulative_limit:
            raise ConfigError("air.window", f"must be larger than the cumulative limit ({cumulative_limit})")
        self.single_limit = single_limit
        self.cumulative_limit = cumulative_limit
        self.window = window
        self._positions: IntArray = _EMPTY  # delivered volume (nL) at each bubble, non-decreasing
        self._volumes: IntArray = _EMPTY
        self._position = 0

    def observe(self, bubbles: AirBatch, delivered_at: Callable[[Instant], Volume], now: Instant) -> AirVerdict:
        """Count the batch's bubbles; ``delivered_at`` gives the cumulative delivered volume at an instant.

        Bubbles come oldest first and not after ``now``. A negative bubble volume (a driver bug) counts
        as zero rather than hiding air already counted.
        """
        new_volumes = np.array([max(b.volume.nl, 0) for b in bubbles.bubbles], dtype=np.int64)
        reported = np.array([self._position] + [delivered_at(b.at).nl for b in bubbles.bubbles], dtype=np.int64)
        new_positions = np.maximum.accumulate(reported)[1:]
        if new_positions.shape[0]:
            self._position = int(new_positions[-1])
        self._position = max(self._position, delivered_at(now).nl)

        positions = np.concatenate((self._positions, new_positions))
        volumes = np.concatenate((self._volumes, new_volumes))
        totals = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(volumes)))
        ends = np.arange(self._positions.shape[0], positions.shape[0])
        starts = np.searchsorted(positions, new_positions - self.window.nl, side="right")
        in_window_then = totals[ends + 1] - totals[starts]

        single = new_volumes > self.single_limit.nl
        cumulative = in_window_then > self.cumulative_limit.nl
        alarms = np.flatnonzero(single | cumulative)

        keep = positions > self._position - self.window.nl
        self._positions, self._volumes = positions[keep], volumes[keep]
        return AirVerdict(
            single=bool(single.any()),
            cumulative=bool(cumulative.any()),
            air_in_window=Volume(int(self._volumes.sum())),
            at=bubbles.bubbles[int(alarms[0])].at if alarms.shape[0] else None,
        )
