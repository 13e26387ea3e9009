"""The breakage suite (issue 8, item 4): libraries, CSV folders and packages broken in 54 ways.

Every broken input goes through every command that reads it (``validate``, ``compile``, ``export-csv``,
``diff``; ``import-csv`` for CSV; ``verify`` for packages), all in one driver process whose output this test
reads line by line with a watchdog: each command must give exit 1 and ONE error line that keeps every
character (Rich markup must not eat ``[iU]`` or ``[unknown_drug]``), write nothing, never crash, and finish
within 5 s on this machine (OI-LIB-IN-1, OI-IN-1). A command that hangs fails the test by name.
"""

from __future__ import annotations

import copy
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from druglib_helpers import AUTHOR, RELEASED, TRUSTED, base_data, check, drug, entry, release
from openinfusion.druglib.csvio import read_csv_dir, write_csv_dir
from openinfusion.druglib.package import compile_package, public_key_pem, sign_as_author

Data = dict[str, Any]
LIMIT_S = 5.0
DRIVER = Path(__file__).with_name("breakage_driver.py")
LIBRARY = check(base_data()).require()


# --- broken library documents (written as JSON, which is YAML) --------------------------------------


def doc(change: Callable[[Data], None]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data = base_data()
        change(data)
        path = folder / "lib.yaml"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return path

    return build


def text(content: str | bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "lib.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return build


def limit(value: str, bound: str = "hard_max") -> Callable[[Data], None]:
    def change(d: Data) -> None:
        entry(d, "dopamine")["limits"]["dose"][bound] = value

    return change


def second_dopamine(name: str) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        twin = copy.deepcopy(drug(d, "dopamine"))
        twin.update(id="dopamine-2", generic_name=name, display_name=name)
        d["drugs"].append(twin)

    return change


def _therapies(d: Data) -> None:
    other = copy.deepcopy(entry(d, "dopamine"))
    entry(d, "dopamine")["therapy"], other["therapy"] = "renal", "Renal"
    drug(d, "dopamine")["care_areas"].append(other)


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)

LIBRARY_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("alias bomb", text(BOMB), "alias bomb"),
    ("recursive alias", text("&a [*a]\n"), "refers to itself"),
    ("deep nesting", text("[" * 5000), "nesting depth"),
    ("too many nodes", text("drugs: [" + ",".join(["x"] * 70_000) + "]\n"), "more than 60000 YAML nodes"),
    ("larger than 2 MiB", text("# " + "x" * (2 * 1024 * 1024) + "\n"), "larger than 2 MiB"),
    ("not UTF-8", text(b"schema: \xff\xfe\n"), "not UTF-8"),
    ("YAML syntax", text("drugs: [unclosed\n"), "not valid YAML"),
    ("duplicate key", text("schema: a\nschema: b\n"), "duplicate key 'schema'"),
    ("python tag", text("schema: !!python/object/apply:os.system [ls]\n"), "not valid YAML"),
    ("hard_max 1e999999999", doc(limit("1e999999999 ug/kg/min")), "out of range"),
    ("soft_min 1e-999999999", doc(limit("1e-999999999 ug/kg/min", "soft_min")), "out of range"),
    ("hard_max 1e5000", doc(limit("1e5000 ug/kg/min")), "out of range"),
    ("25 digits", doc(limit("30.00000000000000000000001 ug/kg/min")), "significant digits"),
    ("70-character number", doc(limit("3" + "0" * 69 + " ug/kg/min")), "at most 64"),
    ("NaN", doc(limit("nan ug/kg/min")), "not a finite number"),
    ("infinity", doc(limit("inf ug/kg/min")), "not a finite number"),
    ("number without unit", doc(limit(30)), "has no unit"),  # type: ignore[arg-type]
    ("unknown unit", doc(limit("30 mcg/kg/hr")), "unknown unit 'hr'"),
    (
        "[iU] unit mismatch",
        doc(lambda d: entry(d, "insulin-regular")["limits"]["dose"].update(hard_max="30 mg/h")),
        "[iU]/h",
    ),
    ("unknown care area", doc(lambda d: entry(d, "vancomycin").update(area="PICU")), "[unknown_care_area]"),
    ("Cyrillic look-alike", doc(second_dopamine("d\u043epamine")), "d<U+043E>pamine"),
    ("trailing space twin", doc(second_dopamine("dopamine ")), "dopamine"),
    ("zero-width space", doc(second_dopamine("dopa\u200bmine")), "U+200B"),
    ("bidi override in advisory", doc(lambda d: drug(d, "dopamine").update(advisory="max \u202e01\u202c")), "U+202E"),
    ("therapies renal/Renal", doc(_therapies), "[duplicate]"),
    ("two areas named alike", doc(lambda d: d["care_areas"][1].update(name="adult icu")), "care area name"),
    ("override reasons alike", doc(lambda d: d.update(override_reasons=["Emergency", "Emergency "])), "override"),
    ("empty care area", doc(lambda d: drug(d, "maintenance-fluid")["care_areas"].pop(1)), "[empty_care_area]"),
    ("0 kg minimum", doc(lambda d: d["care_areas"][0]["weight"].update(hard_min="0 kg")), "[zero_patient_minimum]"),
    ("negative limit", doc(limit("-5 ug/kg/min", "soft_min")), "[negative_limit]"),
    ("soft outside hard", doc(limit("35 ug/kg/min", "soft_max")), "[soft_outside_hard]"),
    ("version not numbered", doc(lambda d: d["library"].update(version="v2-final")), "[bad_version]"),
    ("empty document", text(""), "[schema]"),
    ("a list, not a library", text("- 1\n- 2\n"), "[schema]"),
    ("unknown schema", doc(lambda d: d.update(schema="openinfusion.druglib/9")), "[unknown_schema]"),
    ("missing drugs", doc(lambda d: d.pop("drugs")), "required field is missing"),
    ("fullwidth name", doc(second_dopamine("\uff44\uff4f\uff50\uff41")), "[not_normalised]"),
    ("mixed-script area name", doc(lambda d: d["care_areas"][1].update(name="NI\u0421U")), "[mixed_script]"),
]


# --- broken CSV folders ------------------------------------------------------------------------------


def csv_folder(file: str, edit: Callable[[str], str]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "csv"
        write_csv_dir(LIBRARY, path)
        target = path / file
        target.write_text(edit(target.read_text(encoding="utf-8")), encoding="utf-8")
        return path

    return build


def csv_bytes(file: str, content: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "csv"
        write_csv_dir(LIBRARY, path)
        (path / file).write_bytes(content)
        return path

    return build


CSV_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "formula in a name",
        csv_folder("drugs.csv", lambda t: t.replace(",vancomycin,", ',"=HYPERLINK(""x"")",', 1)),
        "[csv_formula]",
    ),
    ("+ in a number", csv_folder("entries.csv", lambda t: t.replace(",20,", ",+20,", 1)), "[csv_formula]"),
    (
        "@ in an advisory",
        csv_folder("drugs.csv", lambda t: t.replace("Second RN to verify.", "@SUM(A1)", 1)),
        "[csv_formula]",
    ),
    ("-5 as a limit", csv_folder("entries.csv", lambda t: t.replace(",0.9,", ",-5,", 1)), "column dose.soft_min"),
    (
        "unknown drug in entries",
        csv_folder("entries.csv", lambda t: t.replace("\ndopamine,", "\n[unknown_drug],", 1)),
        "[unknown_drug]",
    ),
    (
        "duplicate entry row",
        csv_folder("entries.csv", lambda t: t + t.splitlines()[1] + "\n"),
        "drug dopamine, care area ICU",
    ),
    ("missing column", csv_folder("drugs.csv", lambda t: t.replace("high_alert", "highalert", 1)), "missing columns"),
    (
        "more cells than columns",
        csv_folder("care_areas.csv", lambda t: t.replace("\nICU,", "\nICU,extra,", 1)),
        "more cells",
    ),
    ("bad boolean", csv_folder("drugs.csv", lambda t: t.replace(",true,", ",yes please,", 1)), "column high_alert"),
    (
        "bad number in a cell",
        csv_folder("entries.csv", lambda t: t.replace(",20,", ",twenty,", 1)),
        "column dose.soft_max",
    ),
    (
        "1e999999999 in a cell",
        csv_folder("entries.csv", lambda t: t.replace(",30,", ",1e999999999,", 1)),
        "out of range",
    ),
    ("not UTF-8 CSV", csv_bytes("library.csv", b"field,value\nschema,\xff\n"), "cannot read"),
    ("CSV larger than 2 MiB", csv_bytes("drugs.csv", b"x" * (2 * 1024 * 1024 + 10)), "larger than 2 MiB"),
]


# --- broken packages ---------------------------------------------------------------------------------


def package(content: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "lib.pkg"
        path.write_bytes(content)
        return path

    return build


SIGNED = release(LIBRARY)
PACKAGE_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("truncated package", package(SIGNED[:-100]), "package refused"),
    (
        "single-signer package",
        package(sign_as_author(compile_package(LIBRARY, RELEASED), *reversed(AUTHOR))),
        "two signatures",
    ),
    ("garbage package", package(b"\x00\x01[iU]"), "invalid JSON"),
]

CASES = [(n, "library", b, e) for n, b, e in LIBRARY_CASES]
CASES += [(n, "csv", b, e) for n, b, e in CSV_CASES]
CASES += [(n, "package", b, e) for n, b, e in PACKAGE_CASES]


def _commands(kind: str, source: Path, folder: Path) -> list[tuple[list[str], Path | None]]:
    if kind == "package":
        keys = []
        for i, key in enumerate(TRUSTED):
            path = folder / f"k{i}.pub"
            path.write_bytes(public_key_pem(key))
            keys += ["--trusted", str(path)]
        return [(["library", "verify", str(source), *keys], None)]
    commands: list[tuple[list[str], Path | None]] = [
        (["library", "compile", str(source), "-o", str(folder / "out.pkg")], folder / "out.pkg"),
        (["library", "export-csv", str(source), "-o", str(folder / "out-csv")], folder / "out-csv"),
        (["library", "diff", str(source), str(source)], None),
    ]
    if kind == "csv":
        commands.append((["library", "import-csv", str(source), "-o", str(folder / "out.yaml")], folder / "out.yaml"))
    return commands


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every command of every case, run by the driver under a per-command watchdog."""
    root = tmp_path_factory.mktemp("breakage")
    plan = []
    for i, (name, kind, build, _) in enumerate(CASES):
        folder = root / f"case{i}"
        folder.mkdir()
        source = build(folder)
        plan += [
            {"case": name, "argv": argv, "output": None if out is None else str(out)}
            for argv, out in _commands(kind, source, folder)
        ]
        if kind != "package":
            plan.append({"case": name, "argv": ["library", "validate", str(source)], "output": None})
    (root / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    env = os.environ | {"COLUMNS": "300"}
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), str(root / "plan.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: dict[str, list[dict[str, Any]]] = {}
    startup = 30.0  # importing the CLI once
    try:
        for step in plan:
            ready, _, _ = select.select([proc.stdout], [], [], LIMIT_S + startup)
            if not ready:
                pytest.fail(f"{step['case']}: `{' '.join(step['argv'][:2])}` ran longer than {LIMIT_S} s")
            startup = 0.0
            line = json.loads(proc.stdout.readline())
            lines.setdefault(line["case"], []).append(line)
    finally:
        proc.kill()
        proc.wait()
    return lines


@pytest.mark.req("OI-LIB-IN-1", "OI-IN-1", "OI-LIB-NAME-1", "OI-LIB-VAL-1")
@pytest.mark.parametrize(("name", "kind", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_input_gives_one_clear_line_exit_1_nothing_written_within_5_s(
    results: dict[str, list[dict[str, Any]]], name: str, kind: str, build: object, expected: str
) -> None:
    runs = results[name]
    assert runs
    for run in runs:
        command = " ".join(run["argv"][:2])
        assert run["crash"] is None, f"{command}: {run['crash']}"
        assert run["exit"] == 1, f"{command}: exit {run['exit']}"
        assert not run["written"], f"{command} wrote its output"
        assert run["seconds"] < LIMIT_S, f"{command} took {run['seconds']:.1f} s"
        if run["argv"][1] == "validate" and not run["stderr"]:
            continue  # validate lists every finding on stdout
        lines = [x for x in run["stderr"].splitlines() if x.strip()]
        assert len(lines) == 1, f"{command}: {run['stderr']!r}"
        assert lines[0].startswith("error: ") and "Traceback" not in run["stderr"]
        assert expected in lines[0], f"{command}: {expected!r} not in {lines[0]!r}"


def test_the_suite_has_at_least_48_cases() -> None:
    assert len(CASES) >= 48
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.req("OI-LIB-IN-1")
def test_excel_trailing_empty_rows_are_accepted_and_exports_neutralise_formulas(tmp_path: Path) -> None:
    data = base_data()
    drug(data, "dopamine")["advisory"] = "=1+1 is text here"
    library = check(data).require()
    write_csv_dir(library, tmp_path)
    drugs = (tmp_path / "drugs.csv").read_text(encoding="utf-8")
    assert "'=1+1 is text here" in drugs  # a spreadsheet shows it, never runs it
    for name in ("drugs.csv", "entries.csv"):
        path = tmp_path / name
        columns = path.read_text(encoding="utf-8").splitlines()[0].count(",")
        path.write_text(path.read_text(encoding="utf-8") + ("," * columns + "\n") * 3, encoding="utf-8")
    report = read_csv_dir(tmp_path)
    assert report.errors == () and report.library == library


@pytest.mark.req("OI-IN-1")
def test_scenario_errors_keep_their_square_brackets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from openinfusion.cli import app

    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "schema: openinfusion.scenario/1\nname: bad\nseed: 1\nduration: 1 h\n"
        "channels:\n  - program: {type: continuous, rate: '25 [iU]/hr'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "'[iU]/hr'" in line and not (tmp_path / "out").exists()
