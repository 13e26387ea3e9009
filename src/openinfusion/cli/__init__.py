"""The ``openinfusion`` command: thin, it parses, calls the layers below and renders."""

from __future__ import annotations

import typer

from openinfusion.cli import assurance as assurance_cli
from openinfusion.cli import campaign as campaign_cli
from openinfusion.cli import hl7 as hl7_cli
from openinfusion.cli import lab as lab_cli
from openinfusion.cli import library as library_cli
from openinfusion.cli import panel as panel_cli
from openinfusion.cli import pharmacy, schema, sim, statechart
from openinfusion.cli import server as server_cli
from openinfusion.cli import trace as trace_cli
from openinfusion.cli import ward as ward_cli

app = typer.Typer(
    name="openinfusion",
    help="Open, software-defined smart infusion pump: firmware core, virtual hardware, drug library.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """openinfusion: run `openinfusion COMMAND --help` for a command's options."""


@app.command()
def version() -> None:
    """Print the openinfusion version."""
    from openinfusion import __version__

    typer.echo(__version__)


app.registered_commands.extend(statechart.app.registered_commands)
app.registered_commands.extend(sim.app.registered_commands)
app.registered_commands.extend(schema.app.registered_commands)
app.add_typer(lab_cli.app)
app.add_typer(campaign_cli.app)
app.registered_commands.extend(assurance_cli.app.registered_commands)
app.add_typer(trace_cli.app)
app.add_typer(hl7_cli.app)
library_cli.app.registered_commands.extend(pharmacy.app.registered_commands)  # library report, whatif
app.add_typer(library_cli.app)
app.registered_commands.extend(pharmacy.ward_app.registered_commands)  # ward-week
app.registered_commands.extend(server_cli.app.registered_commands)  # server
app.add_typer(server_cli.users_app)  # users add
app.add_typer(server_cli.audit_app)  # audit verify
app.registered_commands.extend(ward_cli.app.registered_commands)  # ward
app.registered_commands.extend(panel_cli.app.registered_commands)  # panel, train


def main() -> None:
    """Console entry point."""
    app()
