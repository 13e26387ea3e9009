"""``openinfusion library ...``: exit codes, one-line errors, and the release workflow end to end."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from druglib_helpers import SAMPLE, base_data, check, entry, sample_library
from openinfusion.cli.library import app
from openinfusion.druglib.yamlio import dump_yaml, read_yaml

runner = CliRunner()


def write_library(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(dump_yaml(check(data).require()), encoding="utf-8")
    return path


def broken_library(path: Path) -> Path:
    """A file with two errors, as a pharmacist's edits would make them."""
    text = dump_yaml(check(base_data()).require())
    text = text.replace("soft_max: 20 ug/kg/min", "soft_max: 35 ug/kg/min")
    text = text.replace("- area: ICU\n        mode: intermittent", "- area: PICU\n        mode: intermittent")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.req("OI-DERS-1")
def test_validate_sample_exits_0() -> None:
    result = runner.invoke(app, ["validate", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith("warnings")
    assert "valid: 84 drugs" in result.output


@pytest.mark.req("OI-DERS-1", "OI-IN-1")
def test_validate_invalid_exits_1_with_one_line_per_finding(tmp_path: Path) -> None:
    path = broken_library(tmp_path / "lib.yaml")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        "drugs[dopamine].care_areas[ICU].limits.dose.soft_max = 35 ug/kg/min: [soft_outside_hard]" in x for x in lines
    )
    assert any("[unknown_care_area]" in x for x in lines)
    assert lines[-1].endswith("invalid: 2 errors, 0 warnings")
    as_json = runner.invoke(app, ["validate", str(path), "--json"])
    assert as_json.exit_code == 1
    payload = json.loads(as_json.output)
    assert (payload["valid"], payload["errors"]) == (False, 2)
    assert {f["rule"] for f in payload["findings"]} == {"soft_outside_hard", "unknown_care_area"}


@pytest.mark.req("OI-IN-1")
def test_unreadable_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("drugs: [unclosed\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "not valid YAML" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["validate", str(tmp_path / "none.yaml"), "--json"])
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error"] == "LibraryError"


PASS = {"OPENINFUSION_KEY_PASSPHRASE": "a long passphrase"}


def _keys(folder: Path, *names: str) -> None:
    for name in names:
        made = runner.invoke(app, ["keygen", "--name", name, "--out", str(folder)], env=PASS)
        assert made.exit_code == 0, made.output


def _release(tmp: Path, lib: Path, name: str, active: Path | None = None) -> Path:
    """compile -> sign (author) -> approve (approver, after the diff) with the CLI; the released package."""
    unsigned, authored, released = tmp / f"{name}.unsigned", tmp / f"{name}.authored", tmp / f"{name}.pkg"
    compiled = runner.invoke(app, ["compile", str(lib), "--released", "2026-01-15", "-o", str(unsigned)])
    assert compiled.exit_code == 0, compiled.output
    signed = runner.invoke(
        app,
        ["sign", str(unsigned), "--key", str(tmp / "keys/author.key"), "--signer", "A. Author", "-o", str(authored)],
        env=PASS,
    )
    assert signed.exit_code == 0, signed.output
    base = ["--active", str(active)] if active else ["--first-release"]
    approved = runner.invoke(
        app,
        [
            "approve", str(authored), "--key", str(tmp / "keys/approver.key"), "--signer", "B. Reviewer",
            *base, "--trusted", str(tmp / "keys/author.pub"), "--trusted", str(tmp / "keys/approver.pub"),
            "-o", str(released),
        ],
        env=PASS,
        input="y\n",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    return released


@pytest.mark.req("OI-DERS-2", "OI-DERS-5", "OI-LIB-REL-1", "OI-LIB-REL-2")
def test_release_workflow_keygen_compile_sign_approve_verify(tmp_path: Path) -> None:
    lib = write_library(tmp_path / "lib.yaml", base_data())
    _keys(tmp_path / "keys", "author", "approver")  # the folder is created
    assert stat.S_IMODE(os.stat(tmp_path / "keys/author.key").st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "keys/author.key").read_bytes()
    again = runner.invoke(app, ["keygen", "--name", "author", "--out", str(tmp_path / "keys")], env=PASS)
    assert again.exit_code == 1 and "not overwritten" in again.stderr
    package = _release(tmp_path, lib, "v1")
    trusted = ["--trusted", str(tmp_path / "keys/author.pub"), "--trusted", str(tmp_path / "keys/approver.pub")]
    unsigned = runner.invoke(app, ["verify", str(tmp_path / "v1.unsigned"), *trusted])
    assert unsigned.exit_code == 1 and "not signed" in unsigned.stderr
    verified = runner.invoke(app, ["verify", str(package), *trusted, "--json"])
    assert verified.exit_code == 0, verified.output
    identity = json.loads(verified.output)
    assert (identity["owner"], identity["version"], identity["author"], identity["approver"]) == (
        "Test Hospital", "1", "A. Author", "B. Reviewer",
    )  # fmt: skip
    assert len(identity["hash"]) == 64 and len(set(identity["key_ids"])) == 2
    data = base_data()
    data["library"]["version"] = "2"
    entry(data, "dopamine")["limits"]["dose"]["soft_max"] = "25 ug/kg/min"
    v2 = _release(tmp_path, write_library(tmp_path / "lib2.yaml", data), "v2", active=package)
    checked = runner.invoke(app, ["verify", str(v2), *trusted, "--active", str(package)])
    assert checked.exit_code == 0 and "approved diff against version 1" in checked.output
    package.write_bytes(package.read_bytes().replace(b"30 ug/kg/min", b"90 ug/kg/min"))
    tampered = runner.invoke(app, ["verify", str(package), *trusted])
    assert tampered.exit_code == 1 and "package refused" in tampered.stderr


@pytest.mark.req("OI-LIB-REL-2", "OI-IN-1")
def test_sign_never_overwrites_and_passphrases_are_never_arguments(tmp_path: Path) -> None:
    lib = write_library(tmp_path / "lib.yaml", base_data())
    _keys(tmp_path / "keys", "author")
    unsigned = tmp_path / "v1.unsigned"
    assert runner.invoke(app, ["compile", str(lib), "-o", str(unsigned)]).exit_code == 0
    before = unsigned.read_bytes()
    key = ["--key", str(tmp_path / "keys/author.key"), "--signer", "A. Author"]
    in_place = runner.invoke(app, ["sign", str(unsigned), *key, "-o", str(unsigned)], env=PASS)
    assert in_place.exit_code == 1 and "not overwritten" in in_place.stderr and unsigned.read_bytes() == before
    no_out = runner.invoke(app, ["sign", str(unsigned), *key], env=PASS)
    assert no_out.exit_code != 0 and unsigned.read_bytes() == before
    as_argument = runner.invoke(app, ["sign", str(unsigned), *key, "-o", str(tmp_path / "x"), "--passphrase", "p"])
    assert as_argument.exit_code != 0 and not (tmp_path / "x").exists()
    no_passphrase = runner.invoke(app, ["sign", str(unsigned), *key, "-o", str(tmp_path / "x")], env={})
    assert no_passphrase.exit_code == 1 and "passphrase" in no_passphrase.stderr
    wrong = runner.invoke(
        app, ["sign", str(unsigned), *key, "-o", str(tmp_path / "x"), "--passphrase-stdin"], input="wrong\n"
    )
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.stderr and not (tmp_path / "x").exists()
    right = runner.invoke(
        app, ["sign", str(unsigned), *key, "-o", str(tmp_path / "x"), "--passphrase-stdin"], input="a long passphrase\n"
    )
    assert right.exit_code == 0, right.output


@pytest.mark.req("OI-DERS-2", "OI-IN-1")
def test_compile_refuses_invalid_libraries_and_writes_nothing(tmp_path: Path) -> None:
    invalid = runner.invoke(app, ["compile", str(broken_library(tmp_path / "bad.yaml")), "-o", str(tmp_path / "p")])
    assert invalid.exit_code == 1 and "and 1 more errors" in invalid.stderr
    assert not (tmp_path / "p").exists()


def test_diff_prints_changes(tmp_path: Path) -> None:
    old = write_library(tmp_path / "v1.yaml", base_data())
    data = base_data()
    entry(data, "dopamine")["limits"]["dose"]["soft_max"] = "25 ug/kg/min"
    new = write_library(tmp_path / "v2.yaml", data)
    result = runner.invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "changed drugs[dopamine].care_areas[ICU].limits.dose.soft_max: 20 ug/kg/min -> 25 ug/kg/min (loosened)",
        "1 changes, 1 loosening a limit",
    ]


@pytest.mark.req("OI-DERS-1")
def test_export_and_import_csv_give_the_same_library(tmp_path: Path) -> None:
    exported = runner.invoke(app, ["export-csv", str(SAMPLE), "-o", str(tmp_path / "csv")])
    assert exported.exit_code == 0, exported.output
    assert runner.invoke(app, ["validate", str(tmp_path / "csv")]).exit_code == 0
    imported = runner.invoke(app, ["import-csv", str(tmp_path / "csv"), "-o", str(tmp_path / "back.yaml")])
    assert imported.exit_code == 0, imported.output
    assert read_yaml(tmp_path / "back.yaml").require() == sample_library()
