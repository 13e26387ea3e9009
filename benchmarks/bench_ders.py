"""Median time of one DERS check against a 1,000-entry library (issue 5, item 5: target <= 50 us).

Generates a library of 250 weight-based drugs in 4 care areas (1,000 entries, each with dose, rate,
VTBI, bolus and concentration limits), compiles it once, then times ``DersIndex.check`` call by call
with ``time.perf_counter_ns`` over requests that rotate through the entries and cross no limit, a soft
limit and a hard limit in turn. A benchmark, not a test: it reports, it does not assert.

Run: .venv/bin/python benchmarks/bench_ders.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from openinfusion.druglib.model import Library
from openinfusion.druglib.validate import load_library
from openinfusion.pump.ders import DersIndex, DersRequest
from openinfusion.units import FlowRate, Quantity, Volume

AREAS = ("ICU", "WARD", "PEDS", "OR")
DRUGS = 250
TARGET_US = 50


def generated_library() -> Library:
    """250 drugs x 4 care areas = 1,000 entries, every one with five limit fields."""
    areas = [
        {
            "id": area,
            "name": f"care area {area}",
            "max_rate": "999 mL/h",
            "max_vtbi": "3000 mL",
            "occlusion": "medium",
            "air_in_line": "0.25 mL",
            "callback": "2 min",
            "basic_infusion": True,
            "weight": {"soft_min": "3 kg", "soft_max": "200 kg", "hard_min": "0.5 kg", "hard_max": "300 kg"},
        }
        for area in AREAS
    ]
    drugs = []
    for i in range(DRUGS):
        entry_limits = {
            "dose": {"soft_min": "1 ug/kg/min", "soft_max": f"{10 + i % 7} ug/kg/min", "hard_max": "30 ug/kg/min"},
            "rate": {"hard_max": "500 mL/h"},
            "vtbi": {"soft_max": "1000 mL", "hard_max": "2000 mL"},
            "bolus_dose": {"soft_max": "50 ug/kg", "hard_max": "100 ug/kg"},
            "concentration": {"soft_min": "0.5 mg/mL", "soft_max": "5 mg/mL", "hard_min": "0.1 mg/mL"},
        }
        drugs.append(
            {
                "id": f"drug-{i:03d}",
                "generic_name": f"drug {i:03d}",
                "display_name": f"DRUG {i:03d}",
                "therapeutic_class": "benchmark",
                "high_alert": i % 3 == 0,
                "care_areas": [
                    {
                        "area": area,
                        "mode": "continuous",
                        "dose_unit": "ug/kg/min",
                        "concentrations": [{"amount": "400 mg", "volume": "250 mL"}],
                        "custom_concentration": True,
                        "limits": entry_limits,
                    }
                    for area in AREAS
                ],
            }
        )
    data = {
        "schema": "openinfusion.druglib/1",
        "library": {"owner": "benchmark", "name": "generated", "version": "1"},
        "override_reasons": ["benchmark"],
        "care_areas": areas,
        "drugs": drugs,
    }
    return load_library(data, "generated")


def requests() -> list[DersRequest]:
    """One request per entry, cycling through within-limits, soft and hard doses (mg/kg/min: converted)."""
    doses = (Quantity.parse("5 ug/kg/min"), Quantity.parse("0.02 mg/kg/min"), Quantity.parse("40 ug/kg/min"))
    weight = Quantity.parse("70 kg")
    return [
        DersRequest(
            area=AREAS[n % len(AREAS)],
            drug=f"drug-{n % DRUGS:03d}",
            concentration="400 mg/250 mL",
            weight=weight,
            dose=doses[n % 3],
            rate=FlowRate.ml_h(13),
            vtbi=Volume.ml(250),
            bolus_dose=Quantity.parse("20 ug/kg"),
        )
        for n in range(1000)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="checks to time (default 50,000)")
    args = parser.parse_args()
    print("command: .venv/bin/python benchmarks/bench_ders.py --calls", args.calls)
    started = time.perf_counter()
    library = generated_library()
    index = DersIndex.build(library)
    print(f"library: {len(index.entries)} entries, validated and compiled in {time.perf_counter() - started:.2f} s")
    batch = requests()
    for r in batch:  # warm up
        index.check(r)
    samples_ns = []
    for n in range(args.calls):
        request = batch[n % len(batch)]
        t0 = time.perf_counter_ns()
        index.check(request)
        samples_ns.append(time.perf_counter_ns() - t0)
    median_us = statistics.median(samples_ns) / 1000
    p99_us = statistics.quantiles(samples_ns, n=100)[98] / 1000
    verdict = "meets" if median_us <= TARGET_US else "MISSES"
    print(f"DERS check: median {median_us:.1f} us, p99 {p99_us:.1f} us over {args.calls} calls")
    print(f"target median <= {TARGET_US} us: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
