"""Helpers for browser tests: axe-core checks and screenshots.

axe-core comes from .node/ (scripts/bootstrap.sh, pinned). Screenshots go to out/screenshots, or to the
folder named by OPENINFUSION_SCREENSHOTS (docs/figures when refreshing the docs' pictures).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

AXE = Path(".node/node_modules/axe-core/axe.min.js")


def shot(page: Any, name: str) -> None:
    folder = Path(os.environ.get("OPENINFUSION_SCREENSHOTS", "out/screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap.sh (npm install axe-core)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
