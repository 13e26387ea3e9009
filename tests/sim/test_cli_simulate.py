"""``openinfusion simulate`` and ``openinfusion scenario-schema`` from the command line.

A good scenario writes its four outputs and (with ``--json``) prints its summary; a bad one exits
non-zero with one line on stderr (or one JSON object with ``--json``), no traceback, and writes nothing
(OI-IN-1). The committed ``docs/scenario.schema.json`` is what ``scenario-schema`` generates, and every
example scenario validates against it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from openinfusion.cli import app, schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "scenarios"
SCHEMA_FILE = ROOT / "docs" / "scenario.schema.json"
GOOD = EXAMPLES / "upstream_occlusion.yaml"  # one hour, one alarm: quick
OUTPUTS = ("summary.json", "events.jsonl", "series.parquet", "report.html")

HEAD = "schema: openinfusion.scenario/1\nname: bad\nseed: 1\nduration: 1 h\n"
BAD = {
    # found when the file is read
    "unknown_unit": (HEAD + "channels:\n  - program: {type: continuous, rate: 25 mL/hr}\n", "channels[0].program.rate"),
    # found by the pump core's own check, before the run
    "bolus_larger_than_the_vtbi": (
        HEAD
        + "channels:\n  - program: {type: continuous, rate: 25 mL/h, vtbi: 50 mL}\n"
        + "timeline:\n  - {at: 0 s, do: start}\n  - {at: 10 min, do: bolus, volume: 100 mL, duration: 10 min}\n",
        "timeline[1].volume",
    ),
}


def bad_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(BAD[name][0], encoding="utf-8")
    return path


# --- simulate ------------------------------------------------------------------------------------------


def test_simulate_writes_its_outputs_and_prints_the_summary_as_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", str(GOOD), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert all((out / name).is_file() for name in OUTPUTS)
    printed = json.loads(result.stdout)
    assert printed == json.loads((out / "summary.json").read_text())
    assert printed["scenario"] == "upstream_occlusion"
    assert [a["code"] for a in printed["channels"][0]["alarms"]] == ["occlusion_upstream"]


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_scenario_exits_non_zero_with_one_line_and_writes_nothing(name: str, tmp_path: Path) -> None:
    path, out = bad_file(tmp_path, name), tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stdout.strip() == ""  # the progress bar may leave an empty line
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: ") and BAD[name][1] in line
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize("name", sorted(BAD))
def test_json_prints_the_error_as_one_json_object(name: str, tmp_path: Path) -> None:
    path = bad_file(tmp_path, name)
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    error = json.loads(line)
    assert error["error"] == "ScenarioError"
    assert error["where"].startswith(f"{path}: ") and BAD[name][1] in f"{error['where']}: {error['why']}"
    assert error["why"]


@pytest.mark.req("OI-IN-1")
def test_the_installed_command_shows_no_traceback(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("openinfusion")
    path = bad_file(tmp_path, "unknown_unit")
    argv = [str(command), "simulate", str(path), "--out", str(tmp_path / "out")]
    run = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    why = "unknown unit 'hr' in 'mL/hr'; use 'h' (UCUM) for hours"
    assert run.stderr.strip() == f"error: {path}: channels[0].program.rate: {why}"


# --- scenario-schema -------------------------------------------------------------------------------------


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.scenario_schema(), (
        "regenerate: .venv/bin/python -c 'from openinfusion.cli.schema import scenario_schema as s; "
        'print(s(), end="")\' > docs/scenario.schema.json'
    )


def test_scenario_schema_prints_or_writes_the_schema(tmp_path: Path) -> None:
    printed = CliRunner().invoke(schema.app, [])
    assert printed.exit_code == 0
    assert printed.stdout == schema.scenario_schema()
    written = CliRunner().invoke(schema.app, ["--out", str(tmp_path / "docs" / "s.json")])
    assert written.exit_code == 0
    assert (tmp_path / "docs" / "s.json").read_text(encoding="utf-8") == schema.scenario_schema()


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_validates_against_the_schema(name: str) -> None:
    validator().validate(YAML(typ="safe", pure=True).load((EXAMPLES / name).read_bytes()))


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    good = YAML(typ="safe", pure=True).load(GOOD.read_bytes())
    assert validator().is_valid(good)
    assert not validator().is_valid({**good, "colour": "blue"})  # unknown field
    assert not validator().is_valid({**good, "channels": []})  # at least one channel
    assert not validator().is_valid({**good, "seed": -1})
