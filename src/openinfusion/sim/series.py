"""Per-sample series of a simulation, kept whole, decimated in flat memory, or not at all.

At 10 Hz a 30-day run has 26 million samples per channel: kept whole it needs gigabytes and its report
is unreadable. :class:`SeriesRecorder` takes the blocks the virtual pump produces (drained at every core
service) and keeps, per channel, either every sample (``full``), one row per bucket of whole samples
(``decimated``), or nothing (``off``). A decimated row keeps what a reader of the report must not lose:
the **highest** downstream pressure in the bucket (an occlusion peak survives), the **mean** flow into
the patient, and the cumulative volume at the bucket's **last** sample; its time is that last sample's.
Buckets are aligned to the sample grid from power-on (bucket ``b`` holds samples ``b * n .. b * n + n - 1``),
so the result does not depend on how the run was cut into blocks. The bucket is chosen from the scenario
duration so that at most :data:`MAX_ROWS` rows are kept per channel: scenarios up to ~2.7 h at 10 Hz
keep every sample, a 30-day run keeps one row per 26 s. Memory is bounded by ``MAX_ROWS`` whatever the run
length (docs/performance.md, "30 days in flat memory").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import numpy as np

from openinfusion.sim.arrays import F64
from openinfusion.units import Duration

MAX_ROWS: Final = 100_000  # rows kept per channel when decimating
NAMES: Final = ("t_s", "downstream_mmhg", "patient_flow_ml_h", "cumulative_patient_ml")


class SeriesMode(Enum):
    """How much of the per-sample series a simulation keeps (``simulate --series``)."""

    OFF = "off"
    DECIMATED = "decimated"
    FULL = "full"


def bucket_samples(duration: Duration, period: Duration) -> int:
    """Samples per decimated row: the fewest whole samples that keep ``duration`` within :data:`MAX_ROWS` rows."""
    samples = -(-duration.us // period.us)
    return max(1, -(-samples // MAX_ROWS))


@dataclass(slots=True)
class _Channel:
    parts: dict[str, list[F64]] = field(default_factory=lambda: {name: [] for name in NAMES})
    carry: dict[str, F64] = field(default_factory=dict)  # samples of the bucket not yet complete


class SeriesRecorder:
    """Keeps the series of ``channels`` channels by ``mode``, ``bucket`` samples per decimated row.

    ``add`` takes one block per channel: sample times (s since power-on, on the grid ``k * period_s``) and
    the true series at them. ``series(i, name)`` returns what was kept (call :meth:`flush` first to close
    the last, partial bucket).
    """

    def __init__(self, channels: int, mode: SeriesMode, bucket: int, period_s: float) -> None:
        self.mode = mode
        self.bucket = bucket if mode is SeriesMode.DECIMATED else 1
        self._period_s = period_s
        self._channels = [_Channel() for _ in range(channels)]

    def add(self, i: int, block: dict[str, F64]) -> None:
        """Record one block of channel ``i``: arrays named as :data:`NAMES`, all the same length."""
        if self.mode is SeriesMode.OFF or block["t_s"].shape[0] == 0:
            return
        ch = self._channels[i]
        if self.bucket == 1:
            for name in NAMES:
                ch.parts[name].append(block[name])
            return
        joined = {n: np.concatenate((ch.carry[n], block[n])) if n in ch.carry else block[n] for n in NAMES}
        ids = np.rint(joined["t_s"] / self._period_s).astype(np.int64) // self.bucket
        complete = int(np.searchsorted(ids, ids[-1]))  # samples of the buckets before the last one
        ch.carry = {n: joined[n][complete:].copy() for n in NAMES}
        if complete:
            self._reduce(ch, {n: joined[n][:complete] for n in NAMES}, ids[:complete])

    def flush(self) -> None:
        """Close every channel's partial bucket (at the end of the run)."""
        for ch in self._channels:
            if ch.carry and ch.carry["t_s"].shape[0]:
                ids = np.zeros(ch.carry["t_s"].shape[0], dtype=np.int64)
                self._reduce(ch, ch.carry, ids)
            ch.carry = {}

    @staticmethod
    def _reduce(ch: _Channel, samples: dict[str, F64], ids: np.ndarray[tuple[int], np.dtype[np.int64]]) -> None:
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        ends = np.concatenate((starts[1:], [ids.shape[0]])) - 1
        counts = ends - starts + 1
        ch.parts["t_s"].append(samples["t_s"][ends])
        ch.parts["downstream_mmhg"].append(np.maximum.reduceat(samples["downstream_mmhg"], starts))
        ch.parts["patient_flow_ml_h"].append(np.add.reduceat(samples["patient_flow_ml_h"], starts) / counts)
        ch.parts["cumulative_patient_ml"].append(samples["cumulative_patient_ml"][ends])

    def series(self, i: int, name: str) -> F64:
        """The kept series ``name`` of channel ``i`` (empty when off)."""
        parts = self._channels[i].parts[name]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    def rows(self, i: int) -> int:
        """Rows kept for channel ``i``."""
        return sum(p.shape[0] for p in self._channels[i].parts["t_s"])
