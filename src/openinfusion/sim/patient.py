"""The patient's side of the catheter: venous pressure with movement artefacts.

Artefacts are two Poisson processes: short spikes (a cough, a bent elbow pressing on the vein) and
longer steps (the patient or the limb moves, changing the hydrostatic level of the catheter tip).
Events are drawn one simulated hour at a time, in time order, from this model's own generator, so the
pressure at an instant does not depend on how the run is cut into blocks. Parameters: docs/physics.md.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from openinfusion.sim.arrays import F64, I64
from openinfusion.sim.line import PA_PER_MMHG
from openinfusion.sim.params import PatientParams

PAGE_US: Final = 3_600_000_000  # one hour of events per draw
US_PER_S: Final = 1e6


class VenousPressure:
    """Venous pressure at the catheter tip (Pa gauge) as a function of time (integer microseconds)."""

    def __init__(self, params: PatientParams, rng: np.random.Generator) -> None:
        self.params = params
        self._rng = rng
        self._next_page = 0
        self._events: list[tuple[int, int, float]] = []  # (start us, end us, amplitude Pa) not yet over

    def _draw_page(self) -> None:
        p, rng = self.params, self._rng
        page0 = self._next_page * PAGE_US
        self._next_page += 1
        n_spike = int(rng.poisson(p.spike_rate_per_h))
        spike_start = page0 + rng.integers(0, PAGE_US, n_spike)
        spike_len_s = rng.uniform(p.spike_min_s, p.spike_max_s, n_spike)
        spike_mmhg = rng.uniform(p.spike_min_mmhg, p.spike_max_mmhg, n_spike)
        n_step = int(rng.poisson(p.step_rate_per_h))
        step_start = page0 + rng.integers(0, PAGE_US, n_step)
        step_len_s = rng.exponential(p.step_mean_s, n_step)
        step_mmhg = rng.normal(0.0, p.step_sd_mmhg, n_step)
        starts = np.concatenate((spike_start, step_start))
        lengths_us = np.rint(np.concatenate((spike_len_s, step_len_s)) * US_PER_S)
        amplitudes_pa = np.concatenate((spike_mmhg, step_mmhg)) * PA_PER_MMHG
        for start, length, amplitude in zip(starts.tolist(), lengths_us.tolist(), amplitudes_pa.tolist(), strict=True):
            self._events.append((int(start), int(start + length), float(amplitude)))

    def pressure_pa(self, t_us: I64) -> F64:
        """Venous pressure (Pa) at each of the increasing times ``t_us``; times never go back between calls."""
        first, last = int(t_us[0]), int(t_us[-1])
        while self._next_page * PAGE_US <= last:
            self._draw_page()
        self._events = [e for e in self._events if e[1] > first]
        out = np.full(t_us.shape, self.params.venous_mmhg * PA_PER_MMHG)
        for start, end, amplitude in self._events:
            if start <= last:
                i0, i1 = np.searchsorted(t_us, (start, end))
                out[i0:i1] += amplitude
        return out
