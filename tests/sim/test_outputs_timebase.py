"""One time base in every output of a run (issue 14 §3), and clock time for people (issue 10 §3).

Tools read pump time, ``t_us`` (microseconds since power-on), in events.jsonl, summary.json and series.parquet:
the same event has the same ``t_us`` in each. People read clock time: hh:mm:ss from the start, or the wall clock
when the scenario gives ``start`` (then the event log's header carries the wall clock of pump instant 0).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from openinfusion.cli import app
from openinfusion.errors import ScenarioError
from openinfusion.sim.run import START
from openinfusion.sim.scenario import load_scenario
from openinfusion.sim.screen import clock
from openinfusion.units import Duration

EXAMPLES = Path("examples/scenarios")
WALL = "2026-12-06T23:40:00+01:00"  # 20 min before midnight: the 1 h run crosses into the next day


def _simulate(scenario: Path, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str, str]:
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return summary, lines, (out / "report.html").read_text(), result.output + result.stderr


def _with_start(tmp_path: Path, name: str, start: str) -> Path:
    yaml = YAML()
    data = yaml.load((EXAMPLES / name).read_text())
    data["start"] = start
    data["library"] = str(Path("examples/library/example-library.yaml").resolve()) if "library" in data else None
    if data["library"] is None:
        del data["library"]
    path = tmp_path / name
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


@pytest.mark.req("OI-LOG-1")
def test_summary_series_and_report_give_each_event_the_event_logs_time(tmp_path: Path) -> None:
    summary, lines, report, printed = _simulate(EXAMPLES / "door_and_set.yaml", tmp_path / "out")
    header, events = lines[0], {e["seq"]: e for e in lines[1:]}
    assert "time_origin" not in header  # no wall clock given
    assert summary["start_us"] == START.us and summary["start"] is None
    alarms = [a for ch in summary["channels"] for a in ch["alarms"]]
    assert len(alarms) >= 3
    for a in alarms:  # the same alarm, the same time: joined by seq
        e = events[a["seq"]]
        assert (e["kind"], e["data"]["code"], e["t_us"]) == ("alarm_raised", a["code"], a["t_us"])
        shown = clock(Duration(a["t_us"] - START.us))
        assert f"<td>{shown}</td><td>{a['t_us']}</td><td>{a['seq']}</td>" in report  # engineering view
    (refused,) = summary["refused"]
    logged = [e for e in events.values() if e["kind"] == "event_refused" and e["t_us"] == refused["t_us"]]
    assert logged and logged[0]["channel"] == refused["channel"] == 1  # channels from 1 in both
    assert f"{clock(Duration(refused['t_us'] - START.us))} channel A" in printed
    series = pq.read_table(tmp_path / "out" / "series.parquet")
    assert "t_s" not in series.column_names
    t_us = series.column("t_us").to_numpy()
    assert str(t_us.dtype) == "int64" and t_us.min() >= 0
    assert t_us.max() == START.us + summary["duration_s"] * 1_000_000
    assert "What happened (hh:mm:ss from the start)" in report


def test_a_scenario_start_gives_wall_clock_times_everywhere_a_person_reads(tmp_path: Path) -> None:
    path = _with_start(tmp_path, "door_and_set.yaml", WALL)
    summary, lines, report, printed = _simulate(path, tmp_path / "out")
    assert summary["start"] == WALL
    assert lines[0]["time_origin"] == "2026-12-06T23:39:59+01:00"  # pump instant 0 = 1 s before the start
    door = next(a for a in summary["channels"][0]["alarms"] if a["code"] == "door_open")
    origin = dt.datetime.fromisoformat(lines[0]["time_origin"])
    assert origin + dt.timedelta(microseconds=door["t_us"]) == dt.datetime.fromisoformat(WALL) + dt.timedelta(
        minutes=10
    )  # the door opened at 10 min
    assert "What happened (clock time, UTC+01:00)" in report
    assert "2026-12-06 23:50:00" in report  # the run crosses midnight, so dates are shown
    assert "2026-12-07 00:10:00" in report  # the second door opening, at 30 min
    assert "channel A" in printed and re.search(r"2026-12-07 00:1\d:\d\d channel A", printed)  # the refused resume
    assert "<td>00:10:00</td>" not in report  # no time from the start left


@pytest.mark.parametrize("bad", ["2026-12-06T08:00:00", "tomorrow at 8", "8:00"])
def test_a_start_without_its_utc_offset_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    path = _with_start(tmp_path, "door_and_set.yaml", bad)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "start" in message and "2026-12-06T08:00:00+01:00" in message and "UTC offset" in message
