"""Figures for reports: matplotlib (Agg) rendered deterministically (docs/decisions/0004-reports.md).

The SVG hash salt is fixed and the date and software stamps are dropped, so the same figure gives the
same bytes on every run.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

SVG_SALT: Final = "openinfusion"


@contextmanager
def style() -> Iterator[None]:
    """The report style, with the fixed SVG salt (read when a figure is saved)."""
    with plt.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "path", "font.size": 9}):
        yield


def svg(fig: Figure) -> str:
    """``fig`` as inline SVG markup (deterministic bytes), then closed."""
    buf = io.StringIO()
    with style():
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def save_png(fig: Figure, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (no software stamp), then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with style():
        fig.savefig(path, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path
