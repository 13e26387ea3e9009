"""Bit-for-bit equivalence of the simulator before and after a performance change (issue 12).

Runs every scenario of ``examples/scenarios`` (not ``long/``) and the first ``--campaign-runs`` runs of
``examples/campaigns/ten-thousand.yaml``, and reduces each to digests of what must not change: the pump's
event log (every event, its time and data, monitor trips included), the run summary (delivered and
into-patient volumes, final states, alarms, refusals), the recorded physical series and, for a campaign run,
the oracle's record. ``--write FILE`` stores them; ``--check FILE`` recomputes and lists every difference
(exit status 1 if any). Core services and monitor ticks are not compared: serving the pump less often
without changing what it does is what a performance change may do.

Typical use: write the digests at the commit before the change, check after it::

    git worktree add /tmp/base BASE && (cd /tmp/base && PYTHONPATH=src ../speed/.venv/bin/python \\
        benchmarks/sim_equivalence.py --write /tmp/golden.json)
    .venv/bin/python benchmarks/sim_equivalence.py --check /tmp/golden.json

A check, not a test: its golden file belongs to a commit, and behaviour changes (other branches) move it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from openinfusion.lab.campaign.runner import execute
from openinfusion.lab.campaign.spec import load_spec
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import load_scenario
from openinfusion.sim.series import NAMES

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "examples" / "scenarios"
SPEC = ROOT / "examples" / "campaigns" / "ten-thousand.yaml"


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def scenario_digests(path: Path) -> dict[str, str]:
    """Digests of one scenario run: event log, summary, recorded series."""
    scenario, digest = load_scenario(path)
    sim = Simulation(scenario, str(path))
    sim.run()
    series = hashlib.sha256()
    for i in range(len(sim.steps)):
        if sim.series.rows(i):
            for name in NAMES:
                series.update(sim.series.series(i, name).tobytes())
    return {
        "eventlog": _sha(sim.pump.log.to_jsonl()),
        "summary": _sha(json.dumps(sim.summary(digest), sort_keys=True)),
        "series": series.hexdigest(),
    }


def campaign_digest(index: int) -> str:
    """The oracle's record of campaign run ``index`` (wall and CPU time left out; the checkout's path, which a rejected
    scenario's error names, replaced by ``<root>``)."""
    _, data, library = load_spec(SPEC)
    record = execute(data, str(library), index)
    record.pop("wall_s")
    record.pop("cpu_s", None)
    return _sha(json.dumps(record, sort_keys=True).replace(str(ROOT), "<root>"))


def digests(campaign_runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for path in sorted(SCENARIOS.glob("*.yaml")):
        result[f"scenario:{path.name}"] = scenario_digests(path)
        print(f"  {path.name}", file=sys.stderr)
    for i in range(campaign_runs):
        result[f"campaign:{i}"] = campaign_digest(i)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="store the digests in FILE")
    mode.add_argument("--check", type=Path, help="compare with the digests in FILE")
    ap.add_argument("--campaign-runs", type=int, default=30, help="campaign runs compared (default 30)")
    args = ap.parse_args()
    now = digests(args.campaign_runs)
    if args.write is not None:
        args.write.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{len(now)} runs written to {args.write}")
        return
    golden = json.loads(args.check.read_text(encoding="utf-8"))
    differ = sorted(k for k in now if golden.get(k) != now[k])  # the runs recomputed (fewer with --campaign-runs)
    for key in differ:
        print(f"DIFFERS {key}: {golden.get(key)} -> {now.get(key)}")
    print(f"{len(now)} runs compared, {len(differ)} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
