"""Run a campaign on any ``concurrent.futures.Executor``: a local process pool or a Dask cluster, one code path.

Each run is a pure function of (spec, library file, index) -> a JSON record (:func:`execute`), so the
executor only ships small payloads and the results are the same on one machine or a cluster. Results are
appended to ``results.jsonl`` (one line per run, flushed and fsynced as each finishes); a killed
campaign is resumed by running the same command again: the indices already recorded are skipped (a torn
last line is ignored and rerun). A run that violates a property also writes its case file
``cases/run-<index>.json``, replayable with ``openinfusion campaign replay``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from openinfusion.errors import InputError, OpenInfusionError
from openinfusion.lab.campaign.faultmodel import fault_catalogue
from openinfusion.lab.campaign.observe import simulate
from openinfusion.lab.campaign.oracle import Violation, judge
from openinfusion.lab.campaign.sampler import air_limit_ml, draw_run
from openinfusion.lab.campaign.spec import CampaignSpec, parse_spec

RESULTS: Final = "results.jsonl"
MANIFEST: Final = "campaign.json"
CASES: Final = "cases"
CASE_SCHEMA: Final = "openinfusion.campaign-case/1"


def execute(spec_data: dict[str, Any], library: str, index: int) -> dict[str, Any]:
    """Draw, simulate and judge run ``index``; never raises (an error is part of the record)."""
    spec = parse_spec(spec_data, "campaign spec")
    started, cpu0 = time.perf_counter(), time.process_time()
    case = draw_run(spec, Path(library), index)
    record: dict[str, Any] = {
        "index": index,
        "program_type": case.program_type,
        "mechanism": case.mechanism,
        "drug": case.drug,
        "faults": [f.kind for f in case.faults],
        "behaviours": list(case.behaviours),
        "duration_s": float(case.scenario["duration"].split()[0]),
    }
    try:
        _, obs = simulate(case.scenario, Path(library).parent)
        air = air_limit_ml(Path(library), case.scenario["pump"].get("care_area"))
        violations = judge(case.scenario, spec.oracle, obs, air)
    except (OpenInfusionError, ValidationError) as e:  # a drawn scenario the simulator rejects: recorded, counted
        record.update(error=f"{type(e).__name__}: {e}", violations=[], transitions=[], alarms=[], refusals=0)
    except Exception as e:  # the simulation itself crashed: a finding, kept as a replayable case
        crash = Violation("run_crashed", 0.0, type(e).__name__, f"{type(e).__name__}: {e}"[:500])
        record.update(violations=[crash.to_json()], transitions=[], alarms=[], refusals=0, scenario=case.scenario)
    else:
        record.update(
            violations=[v.to_json() for v in violations],
            transitions=sorted({"|".join(t) for t in obs.transitions}),
            alarms=sorted(set(obs.alarm_codes)),
            refusals=obs.refusals,
        )
        if violations:
            record["scenario"] = case.scenario
    record["wall_s"] = round(time.perf_counter() - started, 4)
    record["cpu_s"] = round(time.process_time() - cpu0, 4)  # this worker process's CPU for the run
    return record


def completed(out: Path) -> dict[int, dict[str, Any]]:
    """The records already in ``out/results.jsonl`` by index (a torn or unreadable line is skipped)."""
    path = out / RESULTS
    done: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("index"), int):
                done[rec["index"]] = rec
    return done


def write_case(out: Path, spec_data: dict[str, Any], library: str, record: dict[str, Any]) -> Path:
    """The case file of a violating run: spec, library, index, scenario and verdict (JSON)."""
    case = {
        "schema": CASE_SCHEMA,
        "spec": spec_data,
        "library": library,
        "index": record["index"],
        "scenario": record.get("scenario"),
        "violations": record["violations"],
    }
    path = out / CASES / f"run-{record['index']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(case, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _append(path: Path, record: dict[str, Any]) -> None:
    slim = {k: v for k, v in record.items() if k != "scenario"}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(slim, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (a run killed mid-write) so that appends start on a line of their own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


@contextmanager
def executor_for(dask_address: str | None, workers: int) -> Iterator[Executor]:
    """A local process pool of ``workers``, or the Executor of the Dask cluster at ``dask_address``."""
    if dask_address is None:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield pool
        return
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--dask", "dask.distributed is not installed (pip install 'openinfusion[campaign]')") from None
    try:
        client = Client(dask_address, timeout=10)  # type: ignore[no-untyped-call]
    except OSError as e:
        raise InputError("--dask", f"cannot reach the Dask scheduler at {dask_address}: {e}") from None
    try:
        yield client.get_executor(pure=False)  # type: ignore[no-untyped-call]
    finally:
        client.close()  # type: ignore[no-untyped-call]


def run_campaign(
    spec: CampaignSpec,
    spec_data: dict[str, Any],
    library: Path,
    out: Path,
    executor: Executor,
    *,
    runs: int | None = None,
    in_flight: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """Run (or resume) the campaign into ``out``; returns every record by index.

    ``runs`` overrides the spec's run count. ``progress(done, total)`` is called after each run.
    """
    out.mkdir(parents=True, exist_ok=True)
    total = spec.runs if runs is None else runs
    manifest = {
        "schema": "openinfusion.campaign-run/1",
        "spec": spec_data,
        "library": str(library),
        "runs": total,
        "fault_kinds": [_kind(k) for k in fault_catalogue()],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    results_path = out / RESULTS
    _repair_tail(results_path)
    done = completed(out)
    todo = iter([i for i in range(total) if i not in done])
    pending: set[Future[dict[str, Any]]] = set()

    def submit_next() -> bool:
        index = next(todo, None)
        if index is None:
            return False
        pending.add(executor.submit(execute, spec_data, str(library), index))
        return True

    while len(pending) < in_flight and submit_next():
        pass
    if progress is not None:
        progress(len(done), total)
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            pending.discard(future)
            record = future.result()
            if record["violations"]:
                write_case(out, spec_data, str(library), record)
            _append(results_path, record)
            done[record["index"]] = record
            submit_next()
        if progress is not None:
            progress(len(done), total)
    return done


def _kind(k: Any) -> dict[str, Any]:
    return {f: getattr(k, f) for f in ("name", "source", "per_channel", "drawable", "why_not")}
