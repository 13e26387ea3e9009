"""Shared fixtures: a short campaign spec over the example library."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "examples" / "library" / "example-library.yaml"


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """A campaign of short runs (5 to 15 min) so that a test pays seconds, not minutes."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"schema: openinfusion.campaign/1\nname: t\nseed: 7\nruns: 6\nlibrary: {LIBRARY}\n"
        "duration: {min: 5 min, max: 15 min}\n",
        encoding="utf-8",
    )
    return path
