"""``openinfusion simulate`` and ``openinfusion demo``: run scenarios on virtual hardware.

Both print what a nurse needs to read (sim/story.py): per-channel totals with "delivered" against
"into patient", alarms with priority, escalation and end, drug-library checks, overrides and hard
blocks, PCA totals, battery in minutes; the demo adds the timeline in clock time and the pump's screen
at key moments. Actions the pump refused are listed as a warning; with ``--strict`` they also make the
exit code 3 (docs/scenarios.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from openinfusion.cli.common import console, err_console, guarded
from openinfusion.sim.outputs import write_outputs
from openinfusion.sim.report import screen_drug, screen_rate, with_story
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import load_scenario
from openinfusion.sim.series import SeriesMode
from openinfusion.sim.story import DELIVERED_VS_PATIENT, ScreenRecorder, Story, tell

app = typer.Typer()

DEMO = Path("examples/scenarios/demo.yaml")
EXIT_REFUSED: Final = 3  # --strict: the scenario ran, but the pump refused some of its actions


def _run(
    scenario_path: Path, out: Path, quiet: bool, series: SeriesMode = SeriesMode.DECIMATED
) -> tuple[Simulation, dict[str, object], Story]:
    scenario, digest = load_scenario(scenario_path)
    sim = Simulation(scenario, str(scenario_path), series)
    recorder = ScreenRecorder(sim)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, disable=quiet, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"simulating {scenario.name}", total=1.0)
        sim.run(lambda done: bar.update(task, completed=done))
    recorder.finish()
    summary = write_outputs(sim, out, digest)
    story = tell(sim, recorder.screens)
    report = out / "report.html"
    report.write_text(with_story(report.read_text(encoding="utf-8"), story), encoding="utf-8")
    return sim, summary, story


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table whose cells are plain text (never Rich markup: "[iU]" stays as written)."""
    t = Table(title=title, title_justify="left", show_lines=False)
    for h in header:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*(Text(str(c)) for c in r))
    return t


def print_story(story: Story, *, full: bool) -> None:
    """What a nurse reads in the terminal; ``full`` adds the timeline and the pump's screens."""
    if full:
        console.print(table(f"What happened ({story.heading})", ["time", "ch", "drug", "what happened"],
                            story.timeline))  # fmt: skip
    alarms = [(a.raised, a.channel, a.text, a.priority, a.escalated or "-", a.ended, a.how) for a in story.alarms]
    if alarms:
        console.print(table("Alarms", ["raised", "ch", "alarm", "priority", "escalated", "ended", "how"], alarms))
    else:
        console.print("No alarms.")
    if story.ders:
        console.print(table("Drug library checks, overrides and hard blocks",
                            ["time", "ch", "action", "drug", "values checked", "outcome"], story.ders))  # fmt: skip
    if full and story.screens:
        rows = [(s.time, s.moment, s.channel, s.shown["status"], screen_drug(s.shown), screen_rate(s.shown),
                 s.shown["vtbi_left"] or "-", s.shown["infused_primary"], s.shown["infused_secondary"])
                for s in story.screens]  # fmt: skip
        console.print(table("The pump's screen at key moments", ["time", "moment", "ch", "status", "drug",
                            "dose = rate", "VTBI left", "infused", "secondary"], rows))  # fmt: skip
    for ch, text in story.pca:
        console.print(Text(f"PCA channel {ch}: {text}"))
    console.print(table("Totals", ["ch", "delivered (pump)", "into patient", "air past detector", "final state"],
                        story.totals))  # fmt: skip
    console.print(Text(DELIVERED_VS_PATIENT, style="dim"))
    console.print(Text(f"Battery: {story.battery}"))


def warn_refusals(story: Story, strict: bool) -> None:
    """List what the pump refused; with ``strict`` end with exit code 3."""
    if not story.refused:
        return
    err_console.print(
        Text(f"warning: the pump refused {len(story.refused)} action(s) of this scenario:", "bold yellow")
    )
    for t, ch, why in story.refused:
        err_console.print(Text(f"  {t} {'pump' if ch == 'pump' else 'channel ' + ch}: {why}"))
    if strict:
        raise typer.Exit(EXIT_REFUSED)


STRICT = Annotated[bool, typer.Option("--strict", help="Exit with code 3 if the pump refused any scenario action")]


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
    strict: STRICT = False,
) -> None:
    """Run SCENARIO on virtual hardware; write summary.json, events.jsonl, series.parquet and report.html."""
    _, summary, story = _run(scenario, out, quiet=as_json, series=series)
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
    else:
        print_story(story, full=False)
        console.print(f"report: {out / 'report.html'}")
    warn_refusals(story, strict)


@app.command("demo")
@guarded()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/demo"),
    scenario: Annotated[Path, typer.Option(help="Scenario to run")] = DEMO,
    strict: STRICT = False,
) -> None:
    """Run the demo scenario on virtual hardware, tell what happened, and say where the report is."""
    sim, _, story = _run(scenario, out, quiet=False)
    console.print(Text(f"{sim.scenario.name}: {sim.scenario.description.strip()}"))
    print_story(story, full=True)
    console.print(f"\nreport:  {out / 'report.html'}")
    console.print(f"summary: {out / 'summary.json'}\nevents:  {out / 'events.jsonl'}")
    warn_refusals(story, strict)
