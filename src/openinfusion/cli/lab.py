"""``openinfusion verify trumpet``, ``verify occlusion`` (IEC 60601-2-24 tests) and ``verify monitor`` (the
safety monitor under injected faults) on the virtual pump. Thin: it runs the tests of :mod:`openinfusion.lab`,
shows progress, writes the outputs and prints a table."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from openinfusion.cli.common import console, guarded
from openinfusion.errors import InputError
from openinfusion.lab import accuracy, monitor, occlusion, report

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
verify = typer.Typer(
    help="Virtual verification: IEC 60601-2-24 tests on the pump core with simulated hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(verify, name="verify")

S = TypeVar("S")
R = TypeVar("R")

Seed = Annotated[int, typer.Option(help="Seed of the virtual pumps (each configuration is a pump built from it).")]
Figures = Annotated[Path | None, typer.Option(help="Also write each figure as PNG into this directory.")]


def _run_all(setups: Sequence[S], label: Callable[[S], str], run: Callable[[S, Callable[[float], None]], R]) -> list[R]:
    """Run every setup with one progress bar each."""
    results = []
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        for setup in setups:
            task = bar.add_task(label(setup), total=1.0)

            def advance(done: float, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            results.append(run(setup, advance))
            bar.update(task, completed=1.0)
    return results


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise InputError("--seed", f"must be a non-negative integer, got {seed}")


def _command() -> str:
    return "openinfusion " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "openinfusion verify"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]pass[/]" if ok else "[bold red]FAIL[/]")


@verify.command("trumpet")
@guarded()
def trumpet(
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/verify/trumpet"),
    seed: Seed = 1,
    figures: Figures = None,
) -> None:
    """Flow accuracy (IEC 60601-2-24 trumpet curves): LVP at 1 and 25 mL/h, 50 mL syringe at 1 mL/h, 2 h each.

    Writes trumpet.json and report.html into OUT.
    """
    _check_seed(seed)
    results = _run_all(accuracy.SETUPS, lambda s: s.label, lambda s, p: accuracy.run_accuracy(s, seed, p))
    written = report.write_trumpet(out, results, seed, _command(), figures)
    table = Table(title=f"Flow accuracy, seed {seed}: second hour, errors in %")
    for col in ("configuration", "A", "vs published", "Ep 2 min", "Ep 31 min", "narrows", "state"):
        table.add_column(col)
    for r in results:
        first, last = r.trumpet.points[0], r.trumpet.points[-1]
        table.add_row(
            r.setup.label, f"{r.trumpet.mean_error_percent:+.2f}",
            f"{_verdict(r.passes_mean)} (+-{r.claim.limit_percent:g})",
            f"{first.ep_max_percent:+.1f}/{first.ep_min_percent:+.1f}",
            f"{last.ep_max_percent:+.1f}/{last.ep_min_percent:+.1f}", _verdict(r.trumpet.narrows), r.final_state,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"wrote {', '.join(str(p) for p in written[:2])}" + (f" and {len(written) - 2} figures" if figures else "")
    )


@verify.command("occlusion")
@guarded()
def occlusion_test(
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/verify/occlusion"),
    seed: Seed = 1,
    figures: Figures = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only the configuration of this key (e.g. lvp-1-high); repeatable."),
    ] = None,
) -> None:
    """Downstream occlusion: time to alarm, back-off and release bolus at HIGH and LOW sensitivity, at 0.1, 0.5,
    1, 5 and 25 mL/h, on an LVP and 10 mL and 50 mL syringes, with the standard set and a 3x compliant one.

    Writes occlusion.json and report.html into OUT.
    """
    _check_seed(seed)
    setups = occlusion.SETUPS
    if only:
        keys = {s.key for s in setups}
        unknown = sorted(set(only) - keys)
        if unknown:
            raise InputError("--only", f"no configuration {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
        setups = tuple(s for s in setups if s.key in only)
    results = _run_all(setups, lambda s: s.label, lambda s, p: occlusion.run_occlusion(s, seed, p))
    written = report.write_occlusion(out, results, seed, _command(), figures)
    table = Table(title=f"Downstream occlusion, seed {seed}")
    for col in ("configuration", "threshold", "alarm after", "bolus", "ECRI", "state"):
        table.add_column(col)
    for r in results:
        if r.void:
            alarm = f"[bold red]void ({r.state_at_occlusion} before)[/]"
        else:
            alarm = "[bold red]no alarm[/]" if r.time_to_alarm_s is None else f"{r.time_to_alarm_s:.1f} s"
        bolus = "-" if r.bolus_ml is None else f"{r.bolus_ml:.4f} mL"
        threshold = f"{r.threshold_mmhg} mmHg ({r.occlusion.setup.sensitivity.value})"
        table.add_row(r.occlusion.setup.label, threshold, alarm, bolus, _verdict(r.passes_ecri), r.final_state)
    console.print(table)
    console.print(
        f"wrote {', '.join(str(p) for p in written[:2])}" + (f" and {len(written) - 2} figures" if figures else "")
    )


@verify.command("monitor")
@guarded()
def monitor_test(
    out: Annotated[Path, typer.Option(help="Output directory")] = Path("out/verify/monitor"),
    seed: Seed = 1,
    figures: Figures = None,
    normal: Annotated[bool, typer.Option(help="Also run the 24 h normal-delivery cases (no false trip)")] = True,
) -> None:
    """The safety monitor against injected delivery-side faults (runaway 1.2x/2x from 15 min, 4 h, 12 h; target
    jump; driver stepping while paused; corrupted calibration; dose conversion 10x), and 24 h of normal delivery
    at 0.1, 1, 25 and 999 mL/h on LVP and syringe.

    Writes monitor.json and report.html into OUT; exits 1 if a case fails.
    """
    _check_seed(seed)
    results = _run_all(monitor.CASES, lambda c: c.label, lambda c, p: monitor.run_case(c, seed))
    runs = (
        _run_all(monitor.NORMAL, lambda s: f"normal {s.label}", lambda s, p: monitor.run_normal(s, seed, p))
        if normal
        else []
    )
    written = report.write_monitor(out, results, runs, seed, _command(), figures=figures)
    table = Table(title=f"Safety monitor under injected faults, seed {seed}")
    for col in ("case", "alarm", "by", "trip after", "excess", "budget", "verdict"):
        table.add_column(col)
    for r in results:
        trip = "-" if r.time_to_trip_s is None else f"{r.time_to_trip_s:.1f} s"
        table.add_row(r.case.label, r.alarm or "[bold red]none[/]", escape(r.check or "-"), trip,
                      f"{r.excess_ml:.4f} mL", f"{r.budget_ml:.3f} mL", _verdict(r.passes))  # fmt: skip
    for n in runs:
        table.add_row(f"normal {n.setup.label}, {n.hours:.1f} h", "none" if n.passes else "[bold red]trip[/]",
                      "-", "-", "-", "-", _verdict(n.passes))  # fmt: skip
    console.print(table)
    console.print(f"wrote {', '.join(str(p) for p in written[:2])}")
    if not all(r.passes for r in results) or not all(n.passes for n in runs):
        raise typer.Exit(1)
