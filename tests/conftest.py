"""Test-suite plugin: every ``@pytest.mark.req`` must name requirements of ``safety/requirements.yaml``.

Checked once the tests are collected; a marker naming no ID, a non-string or an unknown ID stops the run
with one line per offending test. ``openinfusion trace`` checks the same links statically.
"""

from __future__ import annotations

import pytest

from openinfusion.errors import InputError
from openinfusion.trace import load_requirements

# tests/test_trace.py runs this plugin in a throw-away pytest session.
pytest_plugins = ("pytester",)


def _marker_problems(item: pytest.Item, known: set[str]) -> list[str]:
    problems = []
    for marker in item.iter_markers("req"):
        if not marker.args:
            problems.append(f"{item.nodeid}: @pytest.mark.req() names no requirement")
        problems += [
            f"{item.nodeid}: @pytest.mark.req names unknown requirement {arg!r} (not in safety/requirements.yaml)"
            for arg in marker.args
            if not isinstance(arg, str) or arg not in known
        ]
    return problems


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the collection if a ``req`` marker names anything but a known requirement ID."""
    try:
        known = {r.id for r in load_requirements(config.rootpath)}
    except InputError as e:
        raise pytest.UsageError(f"cannot check @pytest.mark.req markers: {e}") from None
    problems = [p for item in items for p in _marker_problems(item, known)]
    if problems:
        raise pytest.UsageError("\n".join(["invalid @pytest.mark.req markers:", *problems]))
