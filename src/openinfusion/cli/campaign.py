"""``openinfusion campaign run | replay | report``: fault-injection campaigns (docs/campaigns.md).

Thin: it parses, calls :mod:`openinfusion.lab.campaign`, shows a progress bar and prints a summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from openinfusion.cli.common import console, guarded
from openinfusion.errors import InputError
from openinfusion.lab.campaign.replay import replay as replay_case
from openinfusion.lab.campaign.report import write_report
from openinfusion.lab.campaign.runner import executor_for, run_campaign
from openinfusion.lab.campaign.spec import load_spec

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
campaign = typer.Typer(
    help="Fault-injection campaigns: Monte Carlo runs judged by an oracle that reads only the physics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(campaign, name="campaign")


@campaign.command("run")
@guarded()
def run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (YAML, schema openinfusion.campaign/1).")],
    out: Annotated[Path, typer.Option(help="Campaign directory (results.jsonl, cases/, report).")],
    runs: Annotated[int | None, typer.Option(help="Number of runs (default: the spec's).")] = None,
    dask: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) instead of local processes.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes (ignored with --dask).")] = max(
        1, os.cpu_count() or 1
    ),
) -> None:
    """Run (or resume) a campaign, then write its report."""
    if runs is not None and runs < 1:
        raise InputError("--runs", f"must be at least 1, got {runs}")
    if workers < 1:
        raise InputError("--workers", f"must be at least 1, got {workers}")
    parsed, data, library = load_spec(spec)
    columns = (
        TextColumn("[bold]campaign"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("runs", total=runs or parsed.runs)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with executor_for(dask, workers) as executor:
            records = run_campaign(
                parsed,
                data,
                library,
                out,
                executor,
                runs=runs,
                progress=progress,
                in_flight=4 * workers if dask is None else 64,
            )
    written = write_report(out)
    violating = sum(1 for r in records.values() if r["violations"])
    errored = sum(1 for r in records.values() if "error" in r)
    console.print(
        f"{len(records)} runs, {violating} with violations, {errored} rejected by the simulator; "
        f"wrote {escape(str(written[1]))}",
        highlight=False,
        soft_wrap=True,
    )


@campaign.command("replay")
@guarded()
def replay(
    case: Annotated[Path, typer.Argument(help="A case file (cases/run-N.json of a campaign directory).")],
    out: Annotated[Path, typer.Option(help="Directory for the rerun's outputs and verdict.json.")] = Path("out/replay"),
) -> None:
    """Rerun one violation case with the simulator's full report and the oracle's verdict."""
    verdict = replay_case(case, out)
    table = Table(title=f"Replay of run {verdict['index']}")
    table.add_column("property")
    table.add_column("t (s)")
    table.add_column("detail")
    for v in verdict["violations_now"]:
        table.add_row(escape(v["property"]), f"{v['t_s']:.1f}", escape(v["detail"]))
    console.print(table)
    same = (
        "same scenario as drawn"
        if verdict["draw_matches_case"]
        else "the sampler now draws differently: stored scenario replayed"
    )
    console.print(
        f"reproduced: {verdict['reproduced']} ({same}); wrote {escape(str(out))}/report.html and verdict.json",
        highlight=False,
        soft_wrap=True,
    )


@campaign.command("report")
@guarded()
def report(directory: Annotated[Path, typer.Argument(help="A campaign directory.")]) -> None:
    """Write report.html and report.json for a campaign directory."""
    written = write_report(directory)
    console.print(f"wrote {escape(str(written[0]))} and {escape(str(written[1]))}", highlight=False, soft_wrap=True)
