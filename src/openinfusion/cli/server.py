"""Server commands: ``openinfusion server``, ``openinfusion users add``, ``openinfusion audit verify``.

Thin: each parses, calls :mod:`openinfusion.server` / :mod:`openinfusion.web.system`, and prints. Passwords
come from a prompt or standard input, never from an argument (arguments show in process lists and shells'
histories).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from openinfusion.agent.link.mqtt import Endpoint, MqttServerLink
from openinfusion.cli.common import console, guarded
from openinfusion.druglib.package import load_public_key
from openinfusion.errors import InputError
from openinfusion.server import audit, auth
from openinfusion.server.broker import SERVER_IDENTITY, client_files
from openinfusion.server.hospital import Hospital
from openinfusion.server.roles import Role
from openinfusion.server.settings import DEFAULT_DATA, Settings
from openinfusion.web.system import build_app

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
users_app = typer.Typer(name="users", help="Server users (no default credentials).", add_completion=False)
audit_app = typer.Typer(name="audit", help="The server's hash-chained audit trail.", add_completion=False)

Db = Annotated[str | None, typer.Option("--db", help="Database URL (default: a SQLite file in --data).")]
Data = Annotated[Path, typer.Option("--data", help="Server data: SQLite file, device CA, order key.")]


def _settings(data: Path, db: str | None, **extra: object) -> Settings:
    return Settings(data_dir=data, db_url=db, **extra)  # type: ignore[arg-type]


@app.command("server")
@guarded()
def server(
    *,
    db: Db = None,
    data: Data = DEFAULT_DATA,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="Broker mqtts://HOST:PORT (default: no broker).")] = None,
    mqtt_ca: Annotated[Path | None, typer.Option("--mqtt-ca", help="The broker's CA (default: the device CA).")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    library_key: Annotated[
        list[Path] | None, typer.Option("--library-key", help="A pharmacy public key (PEM) releases must verify with.")
    ] = None,
    escalate_after: Annotated[float, typer.Option("--escalate-after", help="Seconds before escalation.")] = 60.0,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="HTTPS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="HTTPS key (PEM).")] = None,
    broker_pid: Annotated[
        Path | None,
        typer.Option("--broker-pid", help="Mosquitto's pid_file: told to reload the CRL at decommissioning."),
    ] = None,
) -> None:
    """Run the hospital server: API, central station (/station/) and, with --mqtt, the pump link."""
    keys = tuple(load_public_key(p.read_bytes(), str(p)) for p in library_key or ())
    settings = _settings(data, db, library_keys=keys, escalate_after_s=escalate_after, broker_pid_file=broker_pid)
    link = None
    hospital = Hospital(settings)
    if mqtt is not None:
        cert, key = client_files(hospital.ca, SERVER_IDENTITY, data / "pki" / "server")
        endpoint = Endpoint.parse(mqtt, mqtt_ca or hospital.ca.cert_path, cert, key)
        link = MqttServerLink(endpoint, f"{SERVER_IDENTITY}-{port}")
    hospital.link = link
    if (tls_cert is None) != (tls_key is None):
        raise InputError("--tls-cert/--tls-key", "give both or neither")
    console.print(f"central station: {'https' if tls_cert else 'http'}://{host}:{port}/station/  (API docs: /docs)")
    uvicorn.run(
        build_app(hospital),
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    )


def read_password(confirm: bool = True) -> str:
    """A password from the terminal (asked twice) or, when stdin is not a terminal, its first line."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InputError("password", "standard input gave no password")
        return line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return password


@users_app.command("add")
@guarded()
def users_add(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    role: Annotated[Role, typer.Option("--role", help="nurse, pharmacist, biomed or admin.")],
    db: Db = None,
    data: Data = DEFAULT_DATA,
) -> None:
    """Create a user; the password is read from a prompt or standard input, never from an argument."""
    password = read_password()
    hospital = Hospital(_settings(data, db))
    try:
        with hospital.sessions.begin() as session:
            auth.add_user(session, name, role, password, actor="cli")
    finally:
        hospital.engine.dispose()
    console.print(f"user {name} added with role {role.value}", highlight=False)


@audit_app.command("verify")
@guarded()
def audit_verify(db: Db = None, data: Data = DEFAULT_DATA) -> None:
    """Recompute the audit trail's hash chain; exit 1 at the first entry that was altered or removed."""
    hospital = Hospital(_settings(data, db))
    try:
        with hospital.sessions() as session:
            result = audit.verify(session)
    finally:
        hospital.engine.dispose()
    if not result.ok:
        raise InputError("audit", result.reason)
    console.print(f"audit trail intact: {result.entries} entries", highlight=False)
