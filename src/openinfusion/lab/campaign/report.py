"""The campaign report: ``report.json`` and ``report.html`` (with inline SVG figures) from a campaign directory.

Sections: runs (by program type and mechanism, errors), fault kinds covered (every kind of the
simulator's fault model, drawn or not drawable), violations by property and by cluster (each cluster
with its representative case), coverage of the channel statechart (rows of ``TRANSITIONS`` that fired,
from the runs' event logs: coverage is about what was exercised, not a safety verdict), of the alarm
catalogue and of the requirement set (requirements whose property was judged, with runs and violations).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from openinfusion.errors import InputError
from openinfusion.figures import svg
from openinfusion.lab.campaign.clusters import cluster
from openinfusion.lab.campaign.oracle import CHECKS, PROPERTIES
from openinfusion.lab.campaign.runner import CASES, MANIFEST, completed
from openinfusion.lab.report import _page, _table
from openinfusion.pump.alarms import CATALOGUE
from openinfusion.pump.statechart import TRANSITIONS


def row_key(source: str, event: str, target: str) -> str:
    """A statechart row as the runs record it."""
    return f"{source}|{event}|{target}"


def summarise(out: Path) -> dict[str, Any]:
    """The report's data from a campaign directory (``campaign.json`` and ``results.jsonl``)."""
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        raise InputError(str(out), f"not a campaign directory (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    records = list(completed(out).values())
    ok = [r for r in records if "error" not in r]
    fault_counts = Counter(k for r in records for k in r["faults"])
    violations = Counter(v["property"] for r in records for v in r["violations"])
    runs_violating = Counter(p for r in records for p in {v["property"] for v in r["violations"]})
    fired = Counter(t for r in ok for t in r["transitions"])
    rows = [row_key(t.source.value, t.event.value, t.target.value) for t in TRANSITIONS]
    alarms = Counter(a for r in ok for a in r["alarms"])
    clusters = cluster(records)
    requirements: dict[str, dict[str, int]] = {}
    for prop, reqs in PROPERTIES.items():
        for req in reqs:
            entry = requirements.setdefault(req, {"runs": 0, "violations": 0})
            entry["runs"] = len(ok)
            entry["violations"] += runs_violating.get(prop, 0)
    for code, spec in CATALOGUE.items():
        requirements.setdefault(spec.requirement, {"runs": len(ok), "violations": 0})
        requirements[spec.requirement]["alarm_raised_in_runs"] = alarms.get(code.value, 0)
    # each run's CPU in its worker (records written before cpu_s existed count their wall time, an upper bound)
    cpu = sum(r.get("cpu_s", r.get("wall_s", 0.0)) for r in records)
    return {
        "campaign": manifest["spec"].get("name"),
        "runs_planned": manifest["runs"],
        "runs_done": len(records),
        "runs_errored": len(records) - len(ok),
        "simulated_hours": round(sum(r.get("duration_s", 0.0) for r in records) / 3600, 2),
        "cpu_seconds": round(cpu, 1),
        "runs_per_core_hour": round(len(records) / (cpu / 3600), 1) if cpu else None,
        "by_program_type": dict(Counter(r["program_type"] for r in records)),
        "by_mechanism": dict(Counter(r["mechanism"] for r in records)),
        "fault_kinds": [{**k, "runs": fault_counts.get(k["name"], 0)} for k in manifest["fault_kinds"]],
        "properties": {
            p: {"violations": violations.get(p, 0), "runs_violating": runs_violating.get(p, 0)} for p in CHECKS
        },
        "clusters": [
            {
                "key": c.key,
                "property": c.prop,
                "cause": c.cause,
                "runs": len(c.runs),
                "representative": f"{CASES}/run-{c.runs[0]}.json",
                "examples": list(c.runs[:10]),
            }
            for c in clusters
        ],
        "statechart": {
            "rows": len(rows),
            "fired": sum(1 for r in rows if fired[r]),
            "not_fired": [r for r in rows if not fired[r]],
            "counts": {r: fired[r] for r in rows},
        },
        "alarms": {
            "catalogue": len(CATALOGUE),
            "raised": sum(1 for c in CATALOGUE if alarms[c.value]),
            "not_raised": [c.value for c in CATALOGUE if not alarms[c.value]],
            "counts": {c.value: alarms[c.value] for c in CATALOGUE},
        },
        "requirements": dict(sorted(requirements.items())),
        "errors": sorted(
            Counter(
                r["error"].split(":")[0] + ": " + r["error"].split(": ", 2)[-1][:80] for r in records if "error" in r
            ).items(),
            key=lambda x: -x[1],
        )[:20],
    }


def _bar(title: str, counts: dict[str, int]) -> str:
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.28 * len(counts) + 0.8)))
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="#4a7ab5")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel("runs")
    return svg(fig)


def write_report(out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into the campaign directory ``out``."""
    data = summarise(out)
    esc = html.escape
    (out / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    props = data["properties"]
    sections = [
        "<h2>Runs</h2>"
        + _table(["program type", "runs"], [[esc(k), str(v)] for k, v in data["by_program_type"].items()])
        + _table(["mechanism", "runs"], [[esc(k), str(v)] for k, v in data["by_mechanism"].items()]),
        "<h2>Fault kinds (the simulator's fault model)</h2>"
        + _table(
            ["kind", "source", "runs", "drawable"],
            [
                [esc(k["name"]), k["source"], str(k["runs"]), "yes" if k["drawable"] else esc(k["why_not"])]
                for k in data["fault_kinds"]
            ],
        )
        + _bar("Runs per fault kind", {k["name"]: k["runs"] for k in data["fault_kinds"]}),
        "<h2>Violations by property</h2>"
        + _table(
            ["property", "supports", "violations", "runs violating"],
            [
                [esc(p), esc(", ".join(PROPERTIES[p])), str(v["violations"]), str(v["runs_violating"])]
                for p, v in props.items()
            ],
        )
        + _bar("Runs violating each property", {p: v["runs_violating"] for p, v in props.items()}),
        "<h2>Violation clusters</h2>"
        + _table(
            ["cluster", "runs", "representative case", "more"],
            [
                [
                    esc(c["key"]),
                    str(c["runs"]),
                    f'<a href="{esc(c["representative"])}">{esc(c["representative"])}</a>',
                    esc(", ".join(map(str, c["examples"][1:]))),
                ]
                for c in data["clusters"]
            ],
        ),
        f"<h2>Statechart coverage: {data['statechart']['fired']} of {data['statechart']['rows']} rows fired</h2>"
        + _table(
            ["row (source | event | target)", "runs"],
            [[esc(r), str(n)] for r, n in data["statechart"]["counts"].items()],
        ),
        f"<h2>Alarm catalogue coverage: {data['alarms']['raised']} of {data['alarms']['catalogue']} raised</h2>"
        + _table(["alarm", "runs"], [[esc(a), str(n)] for a, n in data["alarms"]["counts"].items()]),
        "<h2>Requirements with campaign evidence</h2>"
        + _table(
            ["requirement", "runs judged", "runs violating", "alarm raised in runs"],
            [
                [esc(r), str(v["runs"]), str(v["violations"]), str(v.get("alarm_raised_in_runs", "-"))]
                for r, v in data["requirements"].items()
            ],
        ),
        "<h2>Runs the simulator rejected</h2>"
        + _table(["error", "runs"], [[esc(e), str(n)] for e, n in data["errors"]]),
    ]
    meta = {
        "campaign": str(data["campaign"]),
        "runs": f"{data['runs_done']} of {data['runs_planned']} ({data['runs_errored']} rejected by the simulator)",
        "simulated": f"{data['simulated_hours']} channel-hours",
        "cost": f"{data['cpu_seconds']} CPU-seconds in the workers; {data['runs_per_core_hour']} runs per core-hour",
    }
    page = _page(f"openinfusion campaign: {data['campaign']}", meta, sections)
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.json", out / "report.html"
