"""``openinfusion panel`` and ``openinfusion train``: the virtual pump's front panel in a browser."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Annotated, Final

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from openinfusion.agent.agent import AgentConfig
from openinfusion.cli.common import console, guarded
from openinfusion.cli.ward import certified_link, order_key, remote_options
from openinfusion.errors import InputError, ScenarioError
from openinfusion.sim.scenario import ChannelSpec, PumpSpec, load_scenario
from openinfusion.web.panel.app import create_app
from openinfusion.web.panel.session import PanelSession
from openinfusion.web.training.app import training_app
from openinfusion.web.training.exercise import load_exercise

app = typer.Typer()

BEDSIDE: Final = Path("examples/panel/bedside.yaml")
EXERCISES: Final = Path("examples/exercises")
HOST: Final = "127.0.0.1"


def serve(web: FastAPI, port: int, browser: bool, pages: list[str]) -> None:
    """Serve ``web`` on localhost until Ctrl-C; open the first page in a browser unless told not to."""
    urls = [f"http://{HOST}:{port}{p}" for p in pages]
    for u in urls:
        console.print(f"  {u}", highlight=False)
    console.print("Ctrl-C stops the pump.")
    if browser:
        threading.Timer(1.0, webbrowser.open, args=(urls[0],)).start()
    uvicorn.run(web, host=HOST, port=port, log_level="warning")


@app.command("panel")
@guarded()
def panel(
    *,
    port: Annotated[int, typer.Option(help="Port to serve on (localhost)", min=1, max=65535)] = 8400,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser")] = False,
    situation: Annotated[Path, typer.Option(help="Scenario giving the pump, library and what runs")] = BEDSIDE,
    speed: Annotated[float, typer.Option(help="Pump time per real second (1 = real time, up to 600)")] = 1.0,
    channels: Annotated[
        int | None, typer.Option(help="Channels on the pump (1-4; default: the situation's)", min=1, max=4)
    ] = None,
    server: Annotated[str | None, typer.Option(help="Join the hospital server at this URL (default: alone)")] = None,
    mqtt: Annotated[str | None, typer.Option(help="With --server: its broker, mqtts://HOST:PORT")] = None,
    certs: Annotated[Path | None, typer.Option(help="With --server: the pump's commissioning files")] = None,
    pump_id: Annotated[str | None, typer.Option(help="With --server: the pump id (default: in --certs)")] = None,
) -> None:
    """Open the front panel of a virtual pump (the real core on virtual hardware) at http://127.0.0.1:PORT/."""
    scenario, _ = load_scenario(situation)
    if channels is not None:
        scenario = scenario.model_copy(update={"channels": [*scenario.channels, *[ChannelSpec()] * 4][:channels]})
    if server is None:
        session = PanelSession(scenario, str(situation), speed)
    else:
        broker, creds = remote_options(server, mqtt, certs)
        ident = pump_id or commissioned_id(creds)
        scenario = scenario.model_copy(update={"pump": with_id(scenario.pump, ident)})
        session = PanelSession(scenario, str(situation), speed)
        session.join(certified_link(broker, creds, ident), AgentConfig(order_keys=(order_key(creds),)))
        console.print(f"pump {ident} joins {broker}; central station at {server.rstrip('/')}/station/")
    console.print(f"virtual pump: {scenario.name}, {len(scenario.channels)} channel(s)")
    serve(create_app(session), port, not no_browser, ["/"])


def with_id(pump: PumpSpec, ident: str) -> PumpSpec:
    try:
        return PumpSpec.model_validate({**dict(pump), "id": ident})
    except ValidationError as e:
        raise InputError("--pump-id", f"{ident!r}: {e.errors()[0]['msg']}") from None


def commissioned_id(certs: Path) -> str:
    """The one pump whose key is in ``certs`` (``<pump>.key``, as commissioning returned it)."""
    keys = sorted(p.stem for p in certs.glob("*.key"))
    if len(keys) != 1:
        found = ", ".join(keys) or "none"
        raise InputError("--pump-id", f"{certs} holds the keys of {found}: name the pump with --pump-id")
    return keys[0]


def exercise_path(name: str) -> Path:
    """An exercise by file or by name in examples/exercises (``occlusion`` -> ``occlusion.yaml``)."""
    path = Path(name)
    if path.exists():
        return path
    candidate = EXERCISES / f"{name.removesuffix('.yaml')}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in EXERCISES.glob("*.yaml"))) or "none"
    raise ScenarioError(name, f"no such exercise file or name; the exercises are: {known}")


@app.command("train")
@guarded()
def train(
    exercise: Annotated[str, typer.Argument(help="Exercise file, or its name in examples/exercises")],
    port: Annotated[int, typer.Option(help="Port to serve on (localhost)", min=1, max=65535)] = 8400,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser")] = False,
) -> None:
    """Run a training EXERCISE on the front panel, with the instructor's view and the debrief."""
    path = exercise_path(exercise)
    ex = load_exercise(path)
    session = PanelSession(ex.situation, str(path), ex.speed)
    console.print(f"exercise: {ex.title}")
    serve(training_app(ex, session), port, not no_browser, ["/", "/instructor", "/debrief"])
