"""Simulator speed (issue 4, item 7): a day of infusion on virtual hardware, for one channel and for 100.

(a) One channel, 24 h at 25 mL/h, 10 Hz pressure sampling, the pump core included (per-sample series
    off, as a campaign runs): simulated time / wall time. Target: under 1 s wall, > 86,400x real time.
(b) 100 channels x 24 h: 100 one-channel pumps (``--layout 1x100``) or 25 four-channel pumps (``4x25``),
    one pump per task on a ``ProcessPoolExecutor`` of 2 workers (this machine has 2 cores): total wall time,
    worker start-up included, and the aggregate ratio. Target: under 100 s.
(c) Baselines for context, the same day: (c1) with ``record_series=True`` (what ``openinfusion simulate``
    keeps for its report); (c2) the physics alone, the motor driven at the same mean step rate in 5-min
    moves with no pump core; (c3) the pump core again, but a patient who never moves (no pressure artefact
    wakes the core).

(d) ``--against REV``: (a) side by side with the code at git revision ``REV`` (``git archive`` into a temporary
    directory), each run in a fresh process of this interpreter with that tree's ``src`` first on the path,
    the two alternated ``--rounds`` times so both see the same load; the best CPU time of each and their ratio.
    ``--callgrind`` also counts both runs' instructions under ``valgrind --tool=callgrind`` (independent of the
    machine's load; slow, so run it with a few ``--hours``).

Every pump is the default LVP channel (20G cannula, a patient at 8 mmHg who moves: pressure artefacts wake
the core, as they would on a ward), seeded by its index. Wall time (``perf_counter``) and CPU time of the
process (``process_time``) are both reported: the machine may be shared, and CPU time shows what the code
costs. (a) and (c) take the best of ``--repeat`` runs. A benchmark, not a test: it reports, it does not
assert.

Run: .venv/bin/python benchmarks/bench_sim.py [--hours H] [--repeat N] [--layout 1x100|4x25] [--json FILE]
     .venv/bin/python benchmarks/bench_sim.py --against 823d1c9 [--rounds N] [--callgrind] [--hours H] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.programs import ContinuousProgram, KvoSettings, RateLimits
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.sim import ChannelConfig, VirtualPump, VirtualPumpConfig
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import PatientParams
from openinfusion.sim.run import START, WATCHDOG_WINDOW
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Instant

RATE = FlowRate.ml_h(25)
MOVE = Duration.min(5)  # the physics-only baseline's move length: the core's longest service interval
TARGET_ONE_S = 1.0
TARGET_FLEET_S = 100.0
WORKERS = 2
STILL = PatientParams(spike_rate_per_h=0.0, step_rate_per_h=0.0)  # (c3): no movement artefacts


@dataclass(frozen=True, slots=True)
class Run:
    """One timed simulation: how many channels for how long, and what it cost."""

    channels: int
    simulated_s: float
    wall_s: float
    cpu_s: float
    services: int
    delivered_ml: float  # into the patient, all channels: a check that the day was actually simulated

    @property
    def ratio(self) -> float:
        """Channel-seconds simulated per wall second."""
        return self.channels * self.simulated_s / self.wall_s


def _world(channels: int, seed: int, record: bool, still: bool = False) -> VirtualPump:
    channel = ChannelConfig(patient=STILL) if still else ChannelConfig()
    config = VirtualPumpConfig(channels=(channel,) * channels, watchdog_window=WATCHDOG_WINDOW, record_series=record)
    return VirtualPump(config, np.random.default_rng(seed))


def _into_patient_ml(world: VirtualPump) -> float:
    return sum(ch.patient_ml for ch in world.truth().channels)


def day_with_core(channels: int, seed: int, hours: float, record: bool = False, still: bool = False) -> Run:
    """A pump of ``channels`` channels, each infusing 25 mL/h for ``hours``, the pump core driving."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    world = _world(channels, seed, record, still)
    settings = ChannelSettings(kvo=KvoSettings(enabled=False, rate=ZERO_RATE))
    pump = Pump(world.hardware, world.calibrations, PumpConfig(channels=(settings,) * channels))
    driver = Driver(world, pump)
    driver.run_until(START)
    for i, cal in enumerate(world.calibrations):
        pump.program(i, ContinuousProgram(rate=RATE, vtbi=None, limits=RateLimits.of(cal)))
        pump.start(i)
    driver.service()
    driver.run_until(START + Duration.h(hours))
    if record:
        world.drain_series()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Run(channels, hours * 3600, wall, cpu, driver.services, _into_patient_ml(world))


def day_physics_only(seed: int, hours: float) -> Run:
    """One channel's physics for ``hours``: the motor at the calibrated mean step rate for 25 mL/h, no core."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    world = _world(1, seed, record=False)
    cal = world.calibrations[0]
    steps_per_us = float(RATE.in_ml_h) / 3.6e9 * cal.steps_per_rev / (cal.cumulative_nl[-1] / 1e6)
    motor = world.hardware.channels[0].motor
    end = START.us + round(hours * 3600e6)
    world.advance(START)
    moves = 0
    while world.now.us < end:
        target = min(world.now.us + MOVE.us, end)
        span = target - world.now.us
        motor.move(round(steps_per_us * span), Duration(span))
        while world.now.us < target:  # pressure interrupts end an advance early; nobody answers them here
            world.advance(Instant(target))
        moves += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Run(1, hours * 3600, wall, cpu, moves, _into_patient_ml(world))


def _fleet_task(args: tuple[int, int, float]) -> Run:
    channels, seed, hours = args
    return day_with_core(channels, seed, hours)


@dataclass(frozen=True, slots=True)
class Fleet:
    pumps: int
    channels_per_pump: int
    workers: int
    wall_s: float
    task_wall_s: float  # sum over tasks: what one worker would take
    task_cpu_s: float
    simulated_s: float
    delivered_ml: float

    @property
    def channels(self) -> int:
        return self.pumps * self.channels_per_pump

    @property
    def ratio(self) -> float:
        return self.channels * self.simulated_s / self.wall_s


def fleet(pumps: int, channels_per_pump: int, hours: float) -> Fleet:
    """``pumps`` pumps of ``channels_per_pump`` channels for ``hours`` on a pool of 2 workers."""
    wall0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        runs = list(pool.map(_fleet_task, [(channels_per_pump, seed, hours) for seed in range(pumps)]))
    wall = time.perf_counter() - wall0
    return Fleet(
        pumps, channels_per_pump, WORKERS, wall, sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs),
        hours * 3600, sum(r.delivered_ml for r in runs),
    )  # fmt: skip


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall_s)


def machine() -> dict[str, object]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


ROOT = Path(__file__).resolve().parents[1]
_CHILD = (
    "import json, sys; from dataclasses import asdict; sys.path.insert(0, 'benchmarks'); "
    "from bench_sim import day_with_core; print(json.dumps(asdict(day_with_core(1, seed=0, hours={hours}))))"
)


def _child(tree: Path, hours: float, callgrind: bool = False) -> tuple[Run, int | None]:
    """(a) in a fresh process on the code of ``tree``; with ``callgrind``, also its instruction count."""
    env = os.environ | {"PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, "-c", _CHILD.format(hours=hours)]
    if callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    return Run(**json.loads(done.stdout.strip().splitlines()[-1])), int(found.group(1)) if found else None


def side_by_side(rev: str, hours: float, rounds: int, callgrind: bool) -> dict[str, object]:
    """(d): (a) at ``rev`` and at this tree, alternated ``rounds`` times; best CPU of each and the ratio."""
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        pairs = [(_child(base, hours)[0], _child(ROOT, hours)[0]) for _ in range(rounds)]
        counts = (_child(base, hours, True)[1], _child(ROOT, hours, True)[1]) if callgrind else (None, None)
    then, now = min(p[0].cpu_s for p in pairs), min(p[1].cpu_s for p in pairs)
    result: dict[str, object] = {
        "against": rev, "hours": hours, "rounds": rounds,
        "cpu_s_then": [round(p[0].cpu_s, 3) for p in pairs], "cpu_s_now": [round(p[1].cpu_s, 3) for p in pairs],
        "best_cpu_s_then": round(then, 3), "best_cpu_s_now": round(now, 3), "ratio_cpu": round(then / now, 2),
        "services_then": pairs[0][0].services, "services_now": pairs[0][1].services,
        "delivered_ml_then": round(pairs[0][0].delivered_ml, 6), "delivered_ml_now": round(pairs[0][1].delivered_ml, 6),
    }  # fmt: skip
    if counts[0] is not None and counts[1] is not None:
        ratio = round(counts[0] / counts[1], 2)
        result |= {"instructions_then": counts[0], "instructions_now": counts[1], "ratio_instructions": ratio}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours per run (default 24)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (c); the best is kept")
    parser.add_argument("--layout", choices=("1x100", "4x25"), default="1x100", help="(b): channels x pumps")
    parser.add_argument("--skip-fleet", action="store_true", help="skip (b)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--against", metavar="REV", help="(d) only: (a) side by side with git revision REV")
    parser.add_argument("--rounds", type=int, default=3, help="(d): alternated runs of each (default 3)")
    parser.add_argument("--callgrind", action="store_true", help="(d): also count instructions under callgrind")
    args = parser.parse_args()
    info = machine()
    if args.against is not None:
        result = side_by_side(args.against, args.hours, args.rounds, args.callgrind) | {"machine": info}
        result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        print(json.dumps(result, indent=2))
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    one = best([day_with_core(1, seed=0, hours=args.hours) for _ in range(args.repeat)])
    recorded = best([day_with_core(1, seed=0, hours=args.hours, record=True) for _ in range(args.repeat)])
    physics = best([day_physics_only(seed=0, hours=args.hours) for _ in range(args.repeat)])
    still = best([day_with_core(1, seed=0, hours=args.hours, still=True) for _ in range(args.repeat)])
    per_pump, pumps = (1, 100) if args.layout == "1x100" else (4, 25)
    many = None if args.skip_fleet else fleet(pumps, per_pump, args.hours)

    print(f"machine: {info['nproc']} x {info['cpu_model']}, Python {info['python']}, numpy {info['numpy']}, "
          f"load average {info['load_average_1m_at_start']} at start")  # fmt: skip
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'run':<58}{'wall s':>9}{'cpu s':>9}{'x real time':>14}{'services':>10}")
    rows = [
        (f"(a) 1 channel, {args.hours:g} h, core, series off", one),
        ("(c1) same, record_series=True", recorded),
        ("(c2) same day, physics only (5-min moves, no core)", physics),
        ("(c3) same day, core, a patient who never moves", still),
    ]
    for label, run in rows:
        print(f"{label:<58}{run.wall_s:>9.3f}{run.cpu_s:>9.3f}{run.ratio:>14,.0f}{run.services:>10}")
    if many is not None:
        label = f"(b) {many.pumps} pumps x {many.channels_per_pump} ch, {args.hours:g} h, {many.workers} workers"
        print(f"{label:<58}{many.wall_s:>9.2f}{many.task_cpu_s:>9.2f}{many.ratio:>14,.0f}{'':>10}")
    print(f"targets: (a) < {TARGET_ONE_S:g} s wall: {'met' if one.wall_s < TARGET_ONE_S else 'NOT met'}", end="")
    if many is not None:
        print(f"; (b) < {TARGET_FLEET_S:g} s wall: {'met' if many.wall_s < TARGET_FLEET_S else 'NOT met'}")
    else:
        print()
    if args.json is not None:
        result = {
            "machine": info,
            "command": " ".join(sys.argv),
            "hours": args.hours,
            "a_one_channel": asdict(one) | {"ratio": one.ratio},
            "c1_record_series": asdict(recorded) | {"ratio": recorded.ratio},
            "c2_physics_only": asdict(physics) | {"ratio": physics.ratio},
            "c3_still_patient": asdict(still) | {"ratio": still.ratio},
            "b_fleet": None if many is None else asdict(many) | {"ratio": many.ratio, "channels": many.channels},
            "targets_s": {"a": TARGET_ONE_S, "b": TARGET_FLEET_S},
        }
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
