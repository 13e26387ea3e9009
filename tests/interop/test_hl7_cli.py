"""``openinfusion hl7 check`` and ``hl7 answer`` over the sample messages in examples/hl7."""

from __future__ import annotations

from pathlib import Path

import pytest
from samples import EXAMPLES, ROOT
from typer.testing import CliRunner

from openinfusion.cli import app

LIBRARY = str(ROOT / "examples" / "library" / "example-library.yaml")
runner = CliRunner()


def test_every_good_sample_checks_ok_with_the_library() -> None:
    good = sorted(str(p) for p in EXAMPLES.glob("*.hl7") if not p.name.startswith("bad-"))
    result = runner.invoke(app, ["hl7", "check", *good, "--library", LIBRARY])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(good) and all(": ok " in line for line in lines)


@pytest.mark.req("OI-IOP-2", "OI-IN-1")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad-no-msh.hl7", "error: MSH: the message must begin with an MSH segment"),
        ("bad-version-2.3.hl7", "error: MSH-12: version 2.3 is not supported"),
        ("bad-unit-U.hl7", "error: RXG-16: unknown unit 'U'"),
        ("bad-drug-not-in-library.hl7", "error: RXG-4: 'unobtainium' is not in drug library 2026.1 [9010]"),
    ],
)
def test_bad_samples_fail_with_one_line_naming_segment_and_field(name: str, expected: str) -> None:
    result = runner.invoke(app, ["hl7", "check", str(EXAMPLES / name), "--library", LIBRARY])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert expected in line and "Traceback" not in result.output


def test_check_without_a_library_checks_form_only_and_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["hl7", "check", str(EXAMPLES / "bad-drug-not-in-library.hl7")])
    assert result.exit_code == 0, result.output  # a well-formed order: the library is what refuses it
    missing = runner.invoke(app, ["hl7", "check", str(tmp_path / "none.hl7")])
    assert missing.exit_code == 1 and "none.hl7" in missing.output and "Traceback" not in missing.output


def test_several_messages_in_one_file_get_one_line_each(tmp_path: Path) -> None:
    both = (EXAMPLES / "pcd03-rgv-o15-dopamine.hl7").read_bytes() + (EXAMPLES / "bad-version-2.3.hl7").read_bytes()
    path = tmp_path / "two.hl7"
    path.write_bytes(both)
    result = runner.invoke(app, ["hl7", "check", str(path)])
    assert result.exit_code == 1
    first, second = result.output.strip().splitlines()
    assert first.endswith("#1: ok RGV^O15^RGV_O15 MSG00001") and "#2: error: MSH-12" in second


def test_answer_prints_the_accept_ack_and_the_rrg() -> None:
    result = runner.invoke(app, ["hl7", "answer", str(EXAMPLES / "bad-drug-not-in-library.hl7"), "--library", LIBRARY])
    assert result.exit_code == 0, result.output
    assert "MSA|CA|MSG00001" in result.output
    assert "RRG^O16^RRG_O16" in result.output and "MSA|AE|MSG00001" in result.output
    assert "9010^Unable to match medication to drug library^HL70533" in result.output
