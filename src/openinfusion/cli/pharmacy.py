"""Pharmacy commands: ``openinfusion library report`` (CQI), ``openinfusion library whatif`` and
``openinfusion ward-week`` (simulated pump logs to feed both). Thin: each parses, calls
:mod:`openinfusion.pharmacy.cqi`, :mod:`~openinfusion.pharmacy.whatif` or :mod:`openinfusion.pharmacy.ward`, and
prints; errors are one line and a non-zero exit code (OI-IN-1).

``app`` holds ``report`` and ``whatif`` (mounted under ``openinfusion library``); ``ward_app`` holds ``ward-week``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openinfusion.cli.common import console, guarded
from openinfusion.druglib.csvio import read_csv_dir
from openinfusion.druglib.model import Library
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import InputError
from openinfusion.pharmacy import cqi, report, ward, whatif

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
ward_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

Logs = Annotated[Path, typer.Argument(help="A directory of pump event logs (*.jsonl), or one log file.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the summary (or the error) as JSON.")]


def _library(path: Path) -> Library:
    """A library from a YAML file or a directory of CSV files (LibraryError if it is invalid)."""
    return (read_csv_dir(path) if path.is_dir() else read_yaml(path)).require()


def _progress(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, disable=quiet, transient=True,
    )  # fmt: skip


def _analyse(logs: Path, quiet: bool) -> cqi.CqiData:
    with _progress(quiet) as bar:
        task = bar.add_task("reading event logs", total=None)
        data = cqi.analyse(cqi.read_logs(logs))
        bar.update(task, completed=1, total=1)
    return data


@app.command("report")
@guarded("as_json")
def report_command(
    logs: Logs,
    out: Annotated[Path, typer.Option(help="Output directory for report.html and the CSV files.")] = Path("out/cqi"),
    library: Annotated[
        Path | None, typer.Option("--library", help="The library in use, to show drugs by their display names.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pharmacy CQI report from pump event logs: library compliance (ISMP target >= 95 %), alerts per 100
    infusions, overrides by drug, care area, limit type and reason, averted errors, basic infusions.

    Writes report.html and CSV files into OUT.
    """
    names = {} if library is None else {d.id: d.display_name for d in _library(library).drugs}
    data = _analyse(logs, as_json)
    result = report.CqiReport.of(data, names)
    report.write_report(out, report.cqi_html(result, str(logs)), report.cqi_tables(result))
    c = result.summary.counts
    if as_json:
        summary = {
            "pumps": result.summary.pumps, "infusions": c.infusions, "library": c.library, "basic": c.basic,
            "unclassified": c.unknown, "alerts": c.alerts,
            "compliance_percent": report.num(None if c.compliance is None else c.compliance * 100),
            "alerts_per_100": report.num(c.alerts_per_100), "hard_alerts": c.hard, "overrides": c.overrides,
            "override_rate_percent": report.num(None if c.override_rate is None else c.override_rate * 100),
            "averted": c.averted, "near_limit_reentries": c.near_limit, "report": str(out / "report.html"),
        }  # fmt: skip
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    target = "[green]at target[/]" if (c.compliance or 0) >= cqi.ISMP_COMPLIANCE_TARGET else "[red]below 95 %[/]"
    console.print(f"{result.summary.pumps} pumps, {c.infusions} infusions: library compliance "
                  f"{report.pct(c.compliance)} ({target})")  # fmt: skip
    console.print(f"{c.alerts} alerts ({report.num(c.alerts_per_100)} per 100 infusions, {c.hard} hard): "
                  f"{c.overridden} overridden ({report.pct(c.override_rate)} of soft alerts), "
                  f"{c.averted} averted errors", highlight=False)  # fmt: skip
    console.print(f"report: {escape(str(out / 'report.html'))}")


@app.command("whatif")
@guarded("as_json")
def whatif_command(
    new_library: Annotated[Path, typer.Argument(help="The candidate library: a YAML file or a directory of CSVs.")],
    logs: Logs,
    out: Annotated[Path, typer.Option(help="Output directory for report.html and the CSV files.")] = Path("out/whatif"),
    current: Annotated[
        Path | None,
        typer.Option(help="The library in use: list the candidate's changes that no logged check exercised."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay the DERS checks recorded in LOGS against NEW_LIBRARY before it is released: which programs would
    now alert, be blocked, or no longer alert, by drug and care area.

    Writes report.html and CSV files into OUT.
    """
    candidate = _library(new_library)
    in_use = None if current is None else _library(current)
    data = _analyse(logs, as_json)
    result = whatif.replay(candidate, data, in_use)
    report.write_report(out, report.whatif_html(result, str(logs)), report.whatif_tables(result))
    counts = result.counts()
    if as_json:
        summary: dict[str, object] = {change.name.lower(): n for change, n in counts.items()}
        summary |= {"replayed": len(result.cases), "inconsistent": len(result.inconsistent)}
        summary |= {
            "infusions": result.infusions,
            "alerts_per_100_logged": report.num(result.logged_alerts_per_100),
            "alerts_per_100_projected": report.num(result.projected_alerts_per_100),
            "not_exercised": None if result.not_exercised is None else len(result.not_exercised),
        }
        typer.echo(json.dumps({**summary, "report": str(out / "report.html")}, sort_keys=True))
        return
    table = Table(title=f"{len(result.cases)} logged checks replayed against version {result.candidate.version}")
    table.add_column("change")
    table.add_column("checks", justify="right")
    for change, n in counts.items():
        style = "bold red" if change is whatif.Change.NEWLY_BLOCKED and n else ""
        table.add_row(change.value, str(n), style=style)
    console.print(table)
    console.print(
        f"{result.infusions} infusions: {report.num(result.logged_alerts_per_100)} alerts per 100 as logged, "
        f"{report.num(result.projected_alerts_per_100)} projected with the candidate",
        highlight=False,
    )
    if result.not_exercised is None:
        console.print("changes not exercised by the logs: not listed (give --current, the library in use)")
    else:
        console.print(f"{len(result.not_exercised)} changes not exercised by any logged check (see the report)")
    if result.inconsistent:
        console.print(f"[bold red]{len(result.inconsistent)} checks logged against this library do not reproduce[/]")
    console.print(f"report: {escape(str(out / 'report.html'))}")


@ward_app.command("ward-week")
@guarded()
def ward_week(
    *,
    library: Annotated[Path, typer.Option(help="The drug library the pumps run: YAML file or CSV directory.")],
    out: Annotated[Path, typer.Option(help="Output directory for pump-NN.jsonl.")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same logs, byte for byte.")] = 1,
    pumps: Annotated[int, typer.Option(help="Number of virtual pumps (spread over the care areas).")] = 8,
    days: Annotated[int, typer.Option(help="Days to simulate.")] = 7,
    infusions_per_day: Annotated[float, typer.Option(help="Programs per pump per day (mean).")] = 16.0,
    workers: Annotated[int, typer.Option(help="Worker processes (0: one per CPU). Does not change the logs.")] = 0,
) -> None:
    """Simulate a ward week: virtual pumps in the library's care areas, programmed by simulated nurses (usual
    doses, doses near the soft limits, some programming slips caught, overrides, basic infusions, titrations).

    Writes one event log per pump (pump-NN.jsonl) into OUT, to feed `library report` and `library whatif`.
    """
    config = ward.WardWeek(pumps=pumps, days=days, seed=seed, infusions_per_day=infusions_per_day)
    lib = _library(library)
    if workers < 0:
        raise InputError("--workers", f"must be 0 (one per CPU) or more, got {workers}")
    count = workers or os.cpu_count() or 1
    with _progress() as bar:
        task = bar.add_task(f"simulating {pumps} pumps for {days} days", total=1.0)
        logs = ward.generate(lib, config, workers=count, progress=lambda done: bar.update(task, completed=done))
    paths = ward.write_logs(logs, out)
    console.print(f"{len(paths)} pump logs written to {out}")
    console.print(f"next: openinfusion library report {out} --out {out / 'cqi'}")
