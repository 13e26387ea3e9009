"""What the firmware knows about its pumping mechanism: the factory calibration.

A mechanism turns motor steps into displaced volume. The relation is not linear within one
revolution: a linear peristaltic pump's fingers squeeze the tube unevenly over the cam cycle (with a
short dead zone where the last finger lifts), and a syringe pump's lead screw has a small periodic
error. The factory measures the cumulative volume over one revolution; the controller uses that
table to place its steps so that volume, not steps, follows the programmed rate (OI-DEL-1).

Invariants (checked when built): ``cumulative_nl[0] == 0``, the table is non-decreasing, and its
last entry is the volume of one full revolution. All volumes are integer nanolitres, so
``volume_at(steps)`` is exact for any number of revolutions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from itertools import pairwise

from openinfusion.errors import ConfigError
from openinfusion.units import ZERO_VOLUME, Duration, FlowRate, Volume


class MechanismKind(Enum):
    """The two delivery mechanisms openinfusion drives."""

    PERISTALTIC = "peristaltic"  # linear peristaltic large-volume pump (LVP)
    SYRINGE = "syringe"  # lead screw driving a syringe plunger


@dataclass(frozen=True, slots=True)
class MechanismCalibration:
    """Factory calibration of one channel's mechanism.

    ``cumulative_nl[k]`` is the volume (nL) displaced after ``k`` forward steps from the start of a
    revolution, for ``k`` in ``0..steps_per_rev``. ``counts_per_step`` encoder counts correspond to
    one motor step. Rates are bounded by ``min_rate``..``max_rate`` and programmed in multiples of
    ``resolution``. ``slack_steps`` is the forward motion that takes up backlash and plunger
    compliance before fluid moves (syringe start-up); ``reverse_slack_steps`` is the dead travel when the
    motion reverses (nut backlash and drive-train deflection). ``max_backoff`` bounds reverse motion after an
    occlusion. ``container`` is the syringe's nominal capacity (None for an LVP bag).
    """

    kind: MechanismKind
    steps_per_rev: int
    counts_per_step: int
    cumulative_nl: tuple[int, ...]
    min_rate: FlowRate
    max_rate: FlowRate
    resolution: FlowRate
    slack_steps: int = 0
    reverse_slack_steps: int = 0
    max_backoff: Volume = ZERO_VOLUME
    container: Volume | None = None

    def __post_init__(self) -> None:
        where = f"mechanism[{self.kind.value}]"
        if self.steps_per_rev <= 0 or self.counts_per_step <= 0:
            raise ConfigError(where, "steps_per_rev and counts_per_step must be positive")
        table = self.cumulative_nl
        if len(table) != self.steps_per_rev + 1 or table[0] != 0:
            raise ConfigError(f"{where}.cumulative_nl", "needs steps_per_rev + 1 entries starting at 0")
        if any(b < a for a, b in pairwise(table)) or table[-1] <= 0:
            raise ConfigError(f"{where}.cumulative_nl", "must be non-decreasing with a positive total")
        if not (0 < self.min_rate.nl_per_h <= self.max_rate.nl_per_h):
            raise ConfigError(where, "rates must satisfy 0 < min_rate <= max_rate")
        if self.resolution.nl_per_h <= 0 or self.min_rate.nl_per_h % self.resolution.nl_per_h:
            raise ConfigError(f"{where}.resolution", "must be positive and divide min_rate")
        if self.slack_steps < 0 or self.reverse_slack_steps < 0 or self.max_backoff.nl < 0:
            raise ConfigError(where, "slack steps and max_backoff must not be negative")

    @property
    def volume_per_rev(self) -> Volume:
        return Volume(self.cumulative_nl[-1])

    def volume_at(self, steps: int) -> Volume:
        """Nominal volume displaced by ``steps`` forward steps from position 0 (exact, nL).

        Negative ``steps`` give the (negative) volume withdrawn by reverse motion.
        """
        revs, rest = divmod(steps, self.steps_per_rev)
        return Volume(revs * self.cumulative_nl[-1] + self.cumulative_nl[rest])

    def steps_for(self, volume: Volume) -> int:
        """The fewest forward steps from position 0 whose displaced volume reaches ``volume``."""
        per_rev = self.cumulative_nl[-1]
        revs, rest = divmod(volume.nl, per_rev)
        lo, hi = 0, self.steps_per_rev
        while lo < hi:  # first k with cumulative_nl[k] >= rest
            mid = (lo + hi) // 2
            if self.cumulative_nl[mid] >= rest:
                hi = mid
            else:
                lo = mid + 1
        return revs * self.steps_per_rev + lo

    def checksum(self) -> str:
        """SHA-256 (hex) of every field in a fixed text form: two copies agree only if identical (OI-SAFE-6)."""
        fields = (
            self.kind.value, self.steps_per_rev, self.counts_per_step, ",".join(map(str, self.cumulative_nl)),
            self.min_rate.nl_per_h, self.max_rate.nl_per_h, self.resolution.nl_per_h, self.slack_steps,
            self.reverse_slack_steps, self.max_backoff.nl, None if self.container is None else self.container.nl,
        )  # fmt: skip
        return hashlib.sha256("|".join(map(str, fields)).encode("ascii")).hexdigest()

    def max_steps(self, over: Duration) -> int:
        """The most steps a move of duration ``over`` may take at the maximum rate (mean step volume, rounded down)."""
        return self.max_rate.volume_in(over).nl * self.steps_per_rev // self.cumulative_nl[-1]

    def round_rate(self, rate: FlowRate) -> FlowRate:
        """``rate`` rounded to the nearest multiple of ``resolution`` (ties to even)."""
        q = self.resolution.nl_per_h
        return FlowRate(round(Fraction(rate.nl_per_h, q)) * q)
