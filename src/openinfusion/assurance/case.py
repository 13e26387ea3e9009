"""Write the assurance case and the model exports into one directory.

``assurance.html`` (GSN diagrams and evidence tables), ``gsn.dot``, ``assurance.json`` (every node, its
evidence and the open items), ``openinfusion.sysml`` (SysML v2 textual notation) and ``openinfusion.reqif``.
The mutation verdicts are read from the trace's committed cache (no test is run here).
"""

from __future__ import annotations

import datetime
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

from openinfusion.assurance import gsn, render, reqif, sysml
from openinfusion.trace.model import load_safety_model
from openinfusion.trace.scan import scan_tests
from openinfusion.trace.verification import verify


def _head(root: Path) -> tuple[str, str]:
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%h %cI"], cwd=root, capture_output=True, text=True, timeout=20, check=False
        )
        commit, date = done.stdout.split()
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return "uncommitted", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return commit, date


def write_case(root: Path, out: Path, *, campaign: Path | None = None, junit: Path | None = None) -> list[Path]:
    """Build the case from ``root`` (safety/, tests/, src/) and the optional evidence; returns the files written."""
    model = load_safety_model(root)
    tests, _ = scan_tests(root)
    verdicts = verify(root, model, tests, run=False)
    case = gsn.build(model, gsn.Inputs(root, tuple(verdicts), junit=junit, campaign=campaign))
    commit, date = _head(root)
    out.mkdir(parents=True, exist_ok=True)
    nodes = list({n.ident: n for n in gsn.walk(case)}.values())
    meta = {
        "commit": commit,
        "date": date,
        "campaign": str(campaign or "none given (open items)"),
        "test results": str(junit or "none given"),
    }
    files = {
        "assurance.html": render.page(case, meta),
        "gsn.dot": render.dot(case),
        "openinfusion.sysml": sysml.export(model, tests),
        "openinfusion.reqif": reqif.export(model, date),
        "assurance.json": json.dumps(
            {
                "schema": "openinfusion.assurance/1",
                **meta,
                "open_items": [n.ident for n in nodes if n.kind == "undeveloped" or (n.kind == "solution" and n.open)],
                "nodes": [
                    {
                        "id": n.ident,
                        "kind": n.kind,
                        "text": n.text,
                        "children": [c.ident for c in n.children],
                        "evidence": asdict(n.evidence) if n.evidence else None,
                    }
                    for n in nodes
                ],
            },
            indent=1,
        )
        + "\n",
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written
