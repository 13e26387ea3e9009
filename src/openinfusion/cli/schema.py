"""``openinfusion scenario-schema``: the JSON Schema of scenario files, generated from their pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final

import typer

from openinfusion.cli.common import guarded
from openinfusion.sim.scenario import Scenario

app = typer.Typer()

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


def scenario_schema() -> str:
    """The JSON Schema (draft 2020-12) of a scenario file, as the text of docs/scenario.schema.json.

    Generated from :class:`openinfusion.sim.scenario.Scenario` (field names as written in the file);
    sorted keys, two-space indent and a trailing newline, so the same models always give the same bytes.
    """
    schema = {"$schema": DRAFT, **Scenario.model_json_schema(by_alias=True)}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command("scenario-schema")
@guarded()
def scenario_schema_command(
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file instead of printing it")] = None,
) -> None:
    """Print the JSON Schema of scenario files (or write it with --out), generated from the scenario models."""
    text = scenario_schema()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
