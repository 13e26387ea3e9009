"""``openinfusion simulate`` and ``openinfusion demo``: run scenarios on virtual hardware."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openinfusion.cli.common import console, guarded
from openinfusion.pump.eventlog import EventKind
from openinfusion.sim.outputs import write_outputs
from openinfusion.sim.run import START, Simulation
from openinfusion.sim.scenario import load_scenario
from openinfusion.sim.series import SeriesMode

app = typer.Typer()

DEMO = Path("examples/scenarios/demo.yaml")
_SHOWN = {
    EventKind.PROGRAM_CONFIRMED, EventKind.STATE_CHANGED, EventKind.RATE_CHANGED, EventKind.ALARM_RAISED,
    EventKind.ALARM_RESET, EventKind.ALARM_CLEARED, EventKind.BOLUS_STARTED, EventKind.SECONDARY_STARTED,
    EventKind.SECONDARY_COMPLETED, EventKind.VTBI_COMPLETE, EventKind.KVO_STARTED, EventKind.EVENT_REFUSED,
    EventKind.PCA_DEMAND, EventKind.TITRATION_PENDING, EventKind.TITRATION_CONFIRMED, EventKind.FAILSAFE,
}  # fmt: skip


_DETAIL = {"target", "code", "detail", "rate", "segment", "reason", "given", "delivered", "outcome", "why"}


def _short(value: object) -> str:
    """``{"value": "125", "unit": "mL/h"}`` as ``125 mL/h``; anything else as it is."""
    if isinstance(value, Mapping) and set(value) == {"value", "unit"}:
        return f"{value['value']} {value['unit']}"
    return str(value)


def _run(
    scenario_path: Path, out: Path, quiet: bool, series: SeriesMode = SeriesMode.DECIMATED
) -> tuple[Simulation, dict[str, object]]:
    scenario, digest = load_scenario(scenario_path)
    sim = Simulation(scenario, str(scenario_path), series)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, disable=quiet, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"simulating {scenario.name}", total=1.0)
        sim.run(lambda done: bar.update(task, completed=done))
    return sim, write_outputs(sim, out, digest)


@app.command("simulate")
@guarded("as_json")
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file")],
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/sim"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary (or the error) as JSON")] = False,
    series: Annotated[
        SeriesMode,
        typer.Option(
            help="Per-sample series kept for series.parquet and the report: every sample (full), at most "
            "100,000 rows per channel with pressure peaks kept (decimated), or none (off)"
        ),
    ] = SeriesMode.DECIMATED,
) -> None:
    """Run SCENARIO on virtual hardware; write summary.json, events.jsonl, series.parquet and report.html."""
    _, summary = _run(scenario, out, quiet=as_json, series=series)
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    for ch in summary["channels"]:  # type: ignore[attr-defined]
        console.print(
            f"channel {ch['channel']}: {ch['delivered_ml']:.3f} mL delivered, {ch['final_state']}, "
            f"{len(ch['alarms'])} alarm(s)"
        )
    console.print(f"report: {out / 'report.html'}")


@app.command("demo")
@guarded()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/demo"),
    scenario: Annotated[Path, typer.Option(help="Scenario to run")] = DEMO,
) -> None:
    """Run the demo scenario on virtual hardware, print its event log, and say where the report is."""
    sim, summary = _run(scenario, out, quiet=False)
    table = Table(title=f"Event log: {sim.scenario.name} (excerpt; full log in events.jsonl)")
    for col in ("seq", "time", "ch", "event", "detail"):
        table.add_column(col)
    for e in sim.pump.log.events():
        if e.kind not in _SHOWN:
            continue
        detail = ", ".join(f"{k}={_short(v)}" for k, v in sorted(e.data.items()) if k in _DETAIL)
        t = (e.t.us - START.us) / 1e6
        table.add_row(str(e.seq), f"{t:9.1f} s", "-" if e.channel is None else str(e.channel + 1), e.kind.value,
                      detail[:90])  # fmt: skip
    console.print(table)
    for ch in summary["channels"]:  # type: ignore[attr-defined]
        console.print(f"channel {ch['channel']}: {ch['delivered_ml']:.3f} mL delivered, final {ch['final_state']}")
    console.print(f"\nreport:  {out / 'report.html'}")
    console.print(f"summary: {out / 'summary.json'}\nevents:  {out / 'events.jsonl'}")
