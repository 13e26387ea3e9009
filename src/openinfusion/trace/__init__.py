"""Traceability: hazard -> risk control -> requirement -> code -> test, checked from the repository's own files.

``safety/`` holds the model as data (requirements, hazards, risk controls); tests declare the requirements they
verify with ``@pytest.mark.req("ID", ...)``; code names the requirements it implements in comments, docstrings
or strings. :func:`build_trace` joins them and lists the gaps; :func:`write_reports` writes ``trace.md`` and
``trace.json``. Nothing here imports or runs a test. See ``docs/traceability.md``.
"""

from openinfusion.trace.model import (
    Category,
    Control,
    ControlKind,
    Hazard,
    PumpType,
    Requirement,
    RequirementKind,
    RequirementSource,
    SafetyModel,
    Severity,
    load_requirements,
    load_safety_model,
)
from openinfusion.trace.render import render_markdown, trace_to_json, write_reports
from openinfusion.trace.report import Level, Problem, ProblemCode, Summary, Trace, build_trace
from openinfusion.trace.scan import CodeRef, MarkerIssue, RefKind, ScannedTest, scan_code_source, scan_test_source

__all__ = [
    "Category",
    "CodeRef",
    "Control",
    "ControlKind",
    "Hazard",
    "Level",
    "MarkerIssue",
    "Problem",
    "ProblemCode",
    "PumpType",
    "RefKind",
    "Requirement",
    "RequirementKind",
    "RequirementSource",
    "SafetyModel",
    "ScannedTest",
    "Severity",
    "Summary",
    "Trace",
    "build_trace",
    "load_requirements",
    "load_safety_model",
    "render_markdown",
    "scan_code_source",
    "scan_test_source",
    "trace_to_json",
    "write_reports",
]
