"""Array types and the few small array helpers the simulator's hot path shares.

numpy's convenience functions (``np.diff(prepend=...)``, ``np.clip``) cost tens of microseconds of Python
overhead per call; these do the same with bare ufuncs, which matters when ``advance`` runs every second.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def diff_from(values: F64, before: float) -> F64:
    """Increments of ``values`` starting from ``before``: ``[v0 - before, v1 - v0, ...]``."""
    out = np.empty_like(values)
    if values.shape[0]:
        out[0] = values[0] - before
        np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def int_diff_from(values: I64, before: int) -> I64:
    """:func:`diff_from` for integer arrays (exact)."""
    out = np.empty_like(values)
    if values.shape[0]:
        out[0] = values[0] - before
        np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def running_sum(start: float, increments: F64) -> F64:
    """``start + cumsum(increments)``, added in order from ``start`` (so a run cut into blocks sums identically)."""
    out = np.empty(increments.shape[0] + 1)
    out[0] = start
    out[1:] = increments
    return np.cumsum(out)[1:]


def first_true(mask: Bools) -> int | None:
    """Index of the first True in ``mask``, or None."""
    i = int(np.argmax(mask)) if mask.shape[0] else 0
    return i if mask.shape[0] and mask[i] else None
