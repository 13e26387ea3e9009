"""Campaigns run on a process pool and on a real Dask cluster through one code path, and resume."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from typer.testing import CliRunner

from openinfusion.cli import app
from openinfusion.lab.campaign.runner import RESULTS, completed, execute, executor_for, run_campaign, write_case
from openinfusion.lab.campaign.spec import load_spec

FIELDS = ("program_type", "faults", "violations", "transitions", "alarms", "refusals")


def _same(a: dict[int, dict[str, object]], b: dict[int, dict[str, object]]) -> None:
    assert sorted(a) == sorted(b)
    for i, rec in a.items():
        assert {f: rec.get(f) for f in FIELDS} == {f: b[i].get(f) for f in FIELDS}, i


def test_resume_after_a_kill_and_the_dask_path_give_the_same_records(spec_file: Path, tmp_path: Path) -> None:
    spec, data, library = load_spec(spec_file)
    local = tmp_path / "local"
    with ProcessPoolExecutor(max_workers=2) as pool:
        first = run_campaign(spec, data, library, local, pool, runs=4)
    assert sorted(first) == [0, 1, 2, 3]
    # a kill mid-write: two whole lines and a torn third remain
    lines = (local / RESULTS).read_text(encoding="utf-8").splitlines(keepends=True)
    (local / RESULTS).write_text("".join(lines[:2]) + lines[2][:25], encoding="utf-8")
    assert len(completed(local)) == 2
    with ProcessPoolExecutor(max_workers=2) as pool:
        resumed = run_campaign(spec, data, library, local, pool, runs=4)
    _same(first, resumed)
    assert len((local / RESULTS).read_text(encoding="utf-8").splitlines()) == 4

    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        executor_for(cluster.scheduler_address, workers=0) as executor,
    ):
        remote = run_campaign(spec, data, library, tmp_path / "dask", executor, runs=4)
    _same(first, remote)


def test_cli_run_report_replay(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "run", str(spec_file), "--out", str(out), "--runs", "3", "--workers", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["runs_done"] == 3
    assert report["statechart"]["fired"] >= 3 and report["fault_kinds"]
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")
    bad = runner.invoke(app, ["campaign", "run", str(tmp_path / "missing.yaml"), "--out", str(out)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output


def test_replay_reruns_a_case_with_the_full_report(spec_file: Path, tmp_path: Path) -> None:
    _, data, library = load_spec(spec_file)
    record = execute(data, str(library), 3)
    record["violations"] = record["violations"] or [{"property": "accuracy", "t_s": 1.0, "cause": "x", "detail": "x"}]
    case = write_case(tmp_path, data, str(library), record)
    result = CliRunner().invoke(app, ["campaign", "replay", str(case), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    verdict = json.loads((tmp_path / "r" / "verdict.json").read_text(encoding="utf-8"))
    assert verdict["draw_matches_case"] and verdict["index"] == 3
    assert (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "events.jsonl").exists()
