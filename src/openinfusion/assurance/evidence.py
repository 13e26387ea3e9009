"""Evidence for the assurance case, each item with where it comes from, its date and its commit.

Sources: the mutation verdicts of the trace (a test shown to fail when the linked code is broken), test
results (a pytest JUnit XML file), campaign results (``report.json`` of ``openinfusion campaign``), and the
IEC 60601-2-24 verification reports (``trumpet.json`` / ``occlusion.json`` of ``openinfusion verify``).
Dates and commits come from git (the last commit touching the evidence's source file); a file outside git
gets its modification date and no commit.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openinfusion.errors import InputError


@dataclass(frozen=True, slots=True)
class Evidence:
    """One solution node: what it shows, where it is, when, at which commit; ``ok`` False if it shows a failure."""

    ident: str
    title: str
    source: str
    date: str
    commit: str
    ok: bool


@lru_cache(maxsize=4096)
def provenance(root: Path, rel: str) -> tuple[str, str]:
    """(date, short commit) of the last commit touching ``rel``, or the file's mtime and "uncommitted"."""
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%cs %h", "--", rel],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        parts = done.stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        parts = []
    if len(parts) == 2:
        return parts[0], parts[1]
    path = root / rel
    when = (
        datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC).date().isoformat() if path.exists() else "-"
    )
    return when, "uncommitted"


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; InputError names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read {what}: {e}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}", f"{what} is not JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), f"{what} is not a JSON object")
    return data


def junit_outcomes(path: Path) -> dict[str, bool]:
    """Test node ID (``tests/x/test_y.py::test_z``) -> passed, from a pytest JUnit XML file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise InputError(str(path), f"cannot read JUnit XML: {e}") from None
    out = {}
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        # pytest writes tests/pump/test_x.py::TestA::test_b as classname "tests.pump.test_x.TestA"
        module = [p for p in parts if not p[:1].isupper()]
        classes = [p for p in parts if p[:1].isupper()]
        nodeid = "/".join(module) + ".py::" + "::".join([*classes, case.get("name", "")])
        out[nodeid.split("[")[0]] = case.find("failure") is None and case.find("error") is None
    return out
