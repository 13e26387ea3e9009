"""Replay one violation case: draw the run again from (spec, index), check it is the same scenario, rerun, report.

The case file holds the spec and the scenario as drawn; if today's sampler draws a different scenario
for the same (spec, index) (the sampler changed since), the stored scenario is replayed and the report
says so. The replay writes the simulator's full outputs (summary, event log, series, report page) and
the oracle's verdict, ``verdict.json``, next to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openinfusion.errors import InputError
from openinfusion.lab.campaign.observe import simulate
from openinfusion.lab.campaign.oracle import judge
from openinfusion.lab.campaign.runner import CASE_SCHEMA
from openinfusion.lab.campaign.sampler import air_limit_ml, draw_run
from openinfusion.lab.campaign.spec import parse_spec
from openinfusion.sim.outputs import write_outputs


def load_case(path: Path) -> dict[str, Any]:
    """Read a case file; InputError names the file and what is wrong."""
    try:
        case = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}", f"not JSON: {e.msg}") from None
    if not isinstance(case, dict) or case.get("schema") != CASE_SCHEMA:
        raise InputError(str(path), f"not a campaign case (schema {CASE_SCHEMA})")
    for key in ("spec", "library", "index"):
        if key not in case:
            raise InputError(f"{path}: {key}", "missing")
    return case


def replay(case_path: Path, out: Path) -> dict[str, Any]:
    """Rerun the case into ``out``; returns the verdict (violations now, then, and whether the draw matched)."""
    case = load_case(case_path)
    spec = parse_spec(case["spec"], f"{case_path}: spec")
    library = Path(case["library"]).resolve()  # absolute, or relative to the working directory
    if not library.is_file():
        raise InputError(f"{case_path}: library", f"no such file {library}")
    drawn = draw_run(spec, library, int(case["index"]))
    stored = case.get("scenario")
    same = stored is None or drawn.scenario == stored
    scenario = drawn.scenario if same else stored
    assert scenario is not None
    sim, obs = simulate(scenario, library.parent)
    air = air_limit_ml(library, scenario["pump"].get("care_area"))
    violations = [v.to_json() for v in judge(scenario, spec.oracle, obs, air)]
    write_outputs(sim, out, f"campaign case {case_path.name}")
    verdict = {
        "case": str(case_path),
        "index": case["index"],
        "draw_matches_case": same,
        "violations_recorded": case.get("violations", []),
        "violations_now": violations,
        "reproduced": bool(violations)
        and [v["property"] for v in violations] == [v["property"] for v in case.get("violations", [])],
    }
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "scenario.json").write_text(json.dumps(scenario, indent=2) + "\n", encoding="utf-8")
    return verdict
