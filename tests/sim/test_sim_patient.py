"""The patient's venous pressure: baseline plus Poisson movement artefacts, independent of block cuts."""

from __future__ import annotations

import numpy as np
import pytest

from openinfusion.sim.line import PA_PER_MMHG
from openinfusion.sim.params import PatientParams
from openinfusion.sim.patient import VenousPressure

HOURS = 20
T_US = np.arange(0, HOURS * 36_000, dtype=np.int64) * 100_000  # 10 Hz


def test_spikes_arrive_at_their_rate_with_their_amplitudes() -> None:
    params = PatientParams(venous_mmhg=6.0, spike_rate_per_h=6.0, step_rate_per_h=0.0)
    p_mmhg = VenousPressure(params, np.random.default_rng(5)).pressure_pa(T_US) / PA_PER_MMHG
    above = p_mmhg > params.venous_mmhg + 1e-9
    onsets = int(np.count_nonzero(above[1:] & ~above[:-1]))
    expected = params.spike_rate_per_h * HOURS
    assert abs(onsets - expected) < 4 * np.sqrt(expected)  # Poisson count (overlaps merge a few)
    assert np.median(p_mmhg) == pytest.approx(params.venous_mmhg)
    assert p_mmhg.max() <= params.venous_mmhg + 3 * params.spike_max_mmhg  # at most a few overlap
    assert p_mmhg[above].min() >= params.venous_mmhg + params.spike_min_mmhg - 1e-9


def test_steps_shift_the_baseline_for_minutes() -> None:
    params = PatientParams(spike_rate_per_h=0.0, step_rate_per_h=2.0, step_sd_mmhg=6.0, step_mean_s=600.0)
    p_mmhg = VenousPressure(params, np.random.default_rng(5)).pressure_pa(T_US) / PA_PER_MMHG
    shifted = np.abs(p_mmhg - params.venous_mmhg) > 1e-9
    fraction = np.mean(shifted)
    expected = 1 - np.exp(-params.step_rate_per_h * params.step_mean_s / 3600)  # P(at least one step active)
    assert fraction == pytest.approx(expected, abs=0.12)


def test_pressure_does_not_depend_on_how_time_is_cut() -> None:
    params = PatientParams()
    whole = VenousPressure(params, np.random.default_rng(9)).pressure_pa(T_US)
    cut = VenousPressure(params, np.random.default_rng(9))
    pieces = [cut.pressure_pa(part) for part in np.array_split(T_US, [7, 5000, 36_001, 200_000])]
    assert np.array_equal(whole, np.concatenate(pieces))


def test_quiet_patient_is_a_constant_venous_pressure() -> None:
    params = PatientParams(venous_mmhg=9.0, spike_rate_per_h=0.0, step_rate_per_h=0.0)
    p = VenousPressure(params, np.random.default_rng(1)).pressure_pa(T_US[:1000])
    assert np.all(p == 9.0 * PA_PER_MMHG)
