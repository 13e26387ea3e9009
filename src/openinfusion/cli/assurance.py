"""``openinfusion assurance``: the safety assurance case (GSN) and the SysML v2 / ReqIF exports (docs/assurance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from openinfusion.assurance.case import write_case
from openinfusion.cli.common import console, guarded
from openinfusion.errors import InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("assurance")
@guarded()
def assurance(
    out: Annotated[Path, typer.Option(help="Directory for assurance.html, gsn.dot, *.sysml, *.reqif.")] = Path(
        "out/assurance"
    ),
    root: Annotated[Path, typer.Option(help="Repository root (safety/, tests/, src/).")] = Path("."),
    campaign: Annotated[Path | None, typer.Option(help="A campaign directory (with report.json).")] = None,
    junit: Annotated[Path | None, typer.Option(help="pytest JUnit XML of the test run.")] = None,
) -> None:
    """Generate the assurance case from safety/, the trace, test and campaign results."""
    if not (root / "safety").is_dir():
        raise InputError("--root", f"{root} has no safety/ directory")
    for given, what in ((campaign, "--campaign"), (junit, "--junit")):
        if given is not None and not given.exists():
            raise InputError(what, f"no such path {given}")
    written = write_case(root, out, campaign=campaign, junit=junit)
    console.print("wrote " + ", ".join(escape(str(p)) for p in written), highlight=False, soft_wrap=True)
