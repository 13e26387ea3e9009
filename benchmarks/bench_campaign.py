"""Campaign cost (issue 12, item 5): runs per core-hour and where a run's time goes.

(a) ``--runs N`` runs of ``examples/campaigns/ten-thousand.yaml`` executed in this process, one after the
    other (no pool): CPU seconds per run, runs per core-hour, simulated channel-hours per CPU-second.
(b) ``--profile``: cProfile of the same runs, the 25 most expensive functions by cumulative time.

A benchmark, not a test: it reports, it does not assert.
Run: .venv/bin/python benchmarks/bench_campaign.py [--runs N] [--profile] [--json FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

from openinfusion.lab.campaign.runner import execute
from openinfusion.lab.campaign.spec import load_spec

SPEC = Path(__file__).resolve().parents[1] / "examples" / "campaigns" / "ten-thousand.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    _, data, library = load_spec(SPEC)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    records = [execute(data, str(library), i) for i in range(args.runs)]
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    hours = sum(r["duration_s"] for r in records) / 3600
    result = {
        "runs": args.runs,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_s_per_run": round(cpu / args.runs, 3),
        "runs_per_core_hour": round(args.runs / (cpu / 3600)),
        "simulated_channel_hours": round(hours, 1),
        "channel_hours_per_cpu_s": round(hours / cpu, 2),
    }
    print(json.dumps(result, indent=2))
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
