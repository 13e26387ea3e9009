"""``openinfusion trace``: check and report hazard -> control -> requirement -> code -> test.

Thin: it builds the trace (:mod:`openinfusion.trace`), prints the counts and the problems, writes
``trace.md`` and ``trace.json``, and exits 1 if a problem fails CI (unless ``--no-strict``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from openinfusion.cli.common import EXIT_INVALID, console, guarded
from openinfusion.errors import InputError
from openinfusion.trace import Level, Trace, build_trace, trace_to_json, write_reports
from openinfusion.trace.verification import DEFAULT_BUDGET_S

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _print(trace: Trace, written: tuple[Path, Path]) -> None:
    counts = trace.summary
    table = Table(title="Traceability", show_header=False)
    for label, count in counts.rows():
        table.add_row(label, str(count))
    console.print(table)
    # One line per problem, never wrapped or cut, so that CI logs can be searched for an ID.
    for p in trace.problems:
        style = "red" if p.level is Level.ERROR else "yellow"
        console.print(
            f"[{style}]{p.level}[/]: {escape(p.subject)}: {escape(p.message)} [dim]\\[{p.code}][/]",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"{counts.errors} error(s), {counts.warnings} warning(s); wrote {written[0]} and {written[1]}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("trace")
@guarded(as_json_param="as_json")
def trace(
    *,
    root: Annotated[Path, typer.Option(help="Repository root (holds safety/, tests/ and src/).")] = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Directory for trace.md and trace.json (default: ROOT/out/trace).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON instead of tables.")] = False,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", help="Exit 1 if a problem fails CI.")] = True,
    mutation: Annotated[
        bool, typer.Option("--mutation/--no-mutation", help="Check each safety requirement by mutating its code.")
    ] = True,
    budget: Annotated[float, typer.Option(help="Seconds for mutants missing from the cache.")] = DEFAULT_BUDGET_S,
) -> None:
    """Check hazard -> risk control -> requirement -> code -> test and write the traceability report."""
    if not root.is_dir():
        raise InputError("--root", f"{root} is not a directory")
    result = build_trace(root, mutation=mutation, budget_s=budget)
    written = write_reports(result, out if out is not None else root / "out" / "trace")
    if as_json:
        sys.stdout.write(json.dumps(trace_to_json(result), indent=2, ensure_ascii=False) + "\n")
    else:
        _print(result, written)
    if strict and result.failed:
        raise typer.Exit(EXIT_INVALID)
