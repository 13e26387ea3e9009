"""Screenshots of the CQI and what-if pages for docs/pharmacy-analytics.md (docs/figures/cqi-*.png, whatif-*.png).

Run from the repository root after `bash scripts/bootstrap.sh` and `.venv/bin/pip install playwright==1.64.1`
(it uses Debian's /usr/bin/chromium, never a downloaded browser)::

    .venv/bin/openinfusion ward-week --library examples/library/example-library.yaml --out out/ward-week
    .venv/bin/python scripts/pharmacy_screenshots.py out/ward-week

It writes the candidate library of the what-if (the example library with the edits in CANDIDATE_EDITS) to
out/candidate.yaml, runs `library report` and `library whatif`, and photographs sections of both pages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from openinfusion.druglib.validate import load_library
from openinfusion.druglib.yamlio import dump_yaml, read_yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "library" / "example-library.yaml"
FIGURES = ROOT / "docs" / "figures"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
# (figure, page, heading the shot starts at; None: the top of the page)
SHOTS = [
    ("cqi-overview", "cqi", None),
    ("cqi-alerts", "cqi", "Alerts by care area, and what followed them"),
    ("cqi-drugs", "cqi", "Alerts per 100 infusions, by drug"),
    ("cqi-overrides", "cqi", "Overrides by reason and by limit type"),
    ("cqi-trend", "cqi", "Trends by week and by library version"),
    ("whatif-overview", "whatif", None),
    ("whatif-changes", "whatif", "Programs whose verdict changes"),
]


def _entry(data: dict[str, Any], drug: str, label: str) -> dict[str, Any]:
    found = next(d for d in data["drugs"] if d["id"] == drug)
    entry: dict[str, Any] = next(
        e for e in found["care_areas"] if (e["area"] if "therapy" not in e else f"{e['area']}/{e['therapy']}") == label
    )
    return entry


def candidate_edits(data: dict[str, Any]) -> None:
    """The what-if candidate: limits tightened and loosened as a pharmacist's review of the CQI report would."""
    data["library"]["version"] = "2026.2"
    for therapy in ("vte", "cardiac"):  # heparin: closer to a weight-based nomogram
        _entry(data, "heparin", f"ADULT-ICU/{therapy}")["limits"]["dose"].update(
            soft_max="25 [iU]/kg/h", hard_max="40 [iU]/kg/h"
        )
    _entry(data, "norepinephrine", "ADULT-ICU")["limits"]["dose"]["soft_max"] = "30 ug/min"
    _entry(data, "vasopressin", "ADULT-ICU")["limits"]["dose"]["hard_max"] = "0.1 [iU]/min"
    _entry(data, "nitroprusside", "ADULT-ICU")["limits"]["dose"]["soft_max"] = "8 ug/kg/min"  # nobody used it
    _entry(data, "argatroban", "ADULT-ICU")["limits"]["dose"]["hard_max"] = "15 ug/kg/min"  # nor this (a loosening)
    pantoprazole = _entry(data, "pantoprazole", "ADULT-ICU")
    pantoprazole["concentrations"] = [c for c in pantoprazole["concentrations"] if c["amount"] != "40 mg"]


def main(logs: Path) -> None:
    out = ROOT / "out"
    data = read_yaml(EXAMPLE).require().to_data()
    candidate_edits(data)
    candidate = out / "candidate.yaml"
    candidate.parent.mkdir(exist_ok=True)
    candidate.write_text(dump_yaml(load_library(data, "candidate")), encoding="utf-8")
    run = [ROOT / ".venv" / "bin" / "openinfusion"]
    subprocess.run([*run, "library", "report", str(logs), "--library", str(EXAMPLE), "--out", str(out / "cqi")],
                   check=True)  # fmt: skip
    subprocess.run([*run, "library", "whatif", str(candidate), str(logs), "--current", str(EXAMPLE),
                    "--out", str(out / "whatif")], check=True)  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for name, report, heading in SHOTS:
            page.goto((out / report / "report.html").as_uri())
            if heading is not None:
                page.get_by_role("heading", name=heading, exact=True).evaluate("h => h.scrollIntoView()")
            page.screenshot(path=str(FIGURES / f"{name}.png"))
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
