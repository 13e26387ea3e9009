"""Determinism and structure: same seed, same bits; another seed, other noise; blocks do not matter;
the pump core never imports the simulator."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from simkit import drive, lvp, make_pump, syringe

from openinfusion.sim import ChannelConfig, SeriesBlock, VirtualPump
from openinfusion.units import Duration, Instant, Volume


def noisy_run(seed: int) -> tuple[VirtualPump, SeriesBlock]:
    """Two channels with movement artefacts and noisy sensors, an occlusion and a bubble."""
    pump = make_pump(ChannelConfig(), ChannelConfig.syringe_pump(), seed=seed)
    pump.channel(0).inject_air(Volume.ml("0.1"))
    drive(pump, 0, 25.0, 900)
    pump.channel(1).set_occlusion("downstream", True)
    drive(pump, 1, 5.0, 600)
    return pump, pump.drain_series()


def arrays(pump: VirtualPump, series: SeriesBlock) -> list[np.ndarray]:
    out = [series.t_s, series.battery_permille, series.battery_voltage_v]
    for ch in series.channels:
        out += [values for _, values in ch.items()]
    for hw in pump.hardware.channels:
        out += [hw.downstream.read().samples_mmhg, hw.upstream.read().samples_mmhg]
    return out


def test_same_seed_gives_bit_identical_results() -> None:
    (a, sa), (b, sb) = noisy_run(7), noisy_run(7)
    assert a.calibrations == b.calibrations
    assert all(np.array_equal(x, y) for x, y in zip(arrays(a, sa), arrays(b, sb), strict=True))
    assert a.truth() == b.truth()


def test_another_seed_gives_other_noise_and_other_tolerances() -> None:
    (a, sa), (b, sb) = noisy_run(7), noisy_run(8)
    assert a.calibrations != b.calibrations
    da, db = a.hardware.channels[0].downstream.read(), b.hardware.channels[0].downstream.read()
    assert da.count == db.count
    assert not np.array_equal(da.samples_mmhg, db.samples_mmhg)
    assert not np.array_equal(sa.channels[0].downstream_mmhg, sb.channels[0].downstream_mmhg)  # artefacts


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(1, 120_000_000), min_size=1, max_size=8))
def test_cutting_a_run_into_other_blocks_changes_nothing(cuts: list[int]) -> None:
    def run(stops: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
        pump = make_pump(ChannelConfig(), seed=3)
        pump.hardware.channels[0].motor.move(20_000, Duration.s(120))
        for t in [*sorted(stops), 120_000_000]:
            pump.advance(Instant(t))
        series = pump.drain_series()
        readings = pump.hardware.channels[0].downstream.read().samples_mmhg
        return series.channels[0].downstream_mmhg, readings, pump.truth().channels[0].patient_ml

    whole, pieces = run([]), run(cuts)
    assert np.array_equal(whole[0], pieces[0])
    assert np.array_equal(whole[1], pieces[1])
    assert whole[2] == pieces[2]


def test_series_cover_every_sample_once() -> None:
    pump = make_pump(lvp(), syringe())
    drive(pump, 0, 10.0, 100, chunk_s=7)
    first = pump.drain_series()
    drive(pump, 1, 1.0, 50, chunk_s=3)
    second = pump.drain_series()
    t = np.concatenate((first.t_s, second.t_s))
    assert np.allclose(t, np.arange(1, 1501) * 0.1)
    assert all(len(ch.motor_steps) == 1000 for ch in first.channels)
    assert pump.drain_series().t_s.shape == (0,)


def test_the_pump_core_never_imports_the_simulator() -> None:
    code = (
        "import sys, pkgutil, importlib, openinfusion.pump as p\n"
        "for m in pkgutil.walk_packages(p.__path__, 'openinfusion.pump.'): importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('openinfusion.sim')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
