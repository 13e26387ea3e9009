"""``openinfusion ward``: virtual pumps with scripted nurses, connected to a hospital server.

``--server local`` (the default) runs the whole system in this process with no setup: server and central
station (SQLite in ``--data``, started afresh), the in-process link and the ward. ``--server URL --mqtt
mqtts://HOST:PORT --certs DIR`` runs only the ward, its pumps connecting to the broker with their
certificates from DIR (``<pump>.pem``, ``<pump>.key``, ``ca.pem``, ``order-key.pem``: what commissioning
returned). It runs until interrupted, or for ``--for`` (e.g. ``90s``, ``5m``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import shutil
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.agent.agent import AgentConfig
from openinfusion.agent.link.mqtt import Endpoint, MqttPumpLink
from openinfusion.agent.ward import Clock, Ward, WardSpec
from openinfusion.cli.common import console, guarded
from openinfusion.druglib.package import load_public_key
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import InputError
from openinfusion.server.interop_links import InteropLinks, link_settings, start_links
from openinfusion.web.system import Served, build_app, local_system

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
DEFAULT_LIBRARY = Path("examples/library/example-library.yaml")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``2h`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise InputError("--for", f"expected a duration like 90s, 5m or 2h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def remote_options(server: str, mqtt: str | None, certs: Path | None) -> tuple[str, Path]:
    """The broker and credentials a pump needs to join the server at ``server`` (an http(s) URL)."""
    if urlsplit(server).scheme not in {"http", "https"} or mqtt is None or certs is None:
        raise InputError("--server", "with a server URL, give --mqtt mqtts://HOST:PORT and --certs DIR")
    return mqtt, certs


def order_key(certs: Path) -> Ed25519PublicKey:
    """The server's order-signing key from a commissioning directory (``order-key.pem``)."""
    path = certs / "order-key.pem"
    if not path.exists():
        raise InputError(str(path), "missing: save the order key commissioning returned (POST /api/devices)")
    return load_public_key(path.read_bytes(), str(path))


def certified_link(mqtt: str, certs: Path, pump: str) -> MqttPumpLink:
    """``pump``'s MQTT link with its commissioned credentials from ``certs`` (``<pump>.pem``, ``.key``, ``ca.pem``)."""
    cert, key = certs / f"{pump}.pem", certs / f"{pump}.key"
    if not cert.exists():
        raise InputError(str(cert), "missing: commission the pump first (POST /api/devices)")
    return MqttPumpLink(Endpoint.parse(mqtt, certs / "ca.pem", cert, key), pump)


def run_paced(ward: Ward, speed: float, seconds: float | None) -> None:
    """Step the ward so that virtual time runs ``speed`` times the wall clock, until ``seconds`` have passed."""
    start = time.monotonic()
    while seconds is None or time.monotonic() - start < seconds:
        behind = (time.monotonic() - start) * speed - float(ward.now.seconds)
        if behind >= 1.0:
            ward.step(min(behind, 10.0))
        else:
            ward.poll()
            time.sleep(min(0.2, (1.0 - behind) / speed))


@app.command("ward")
@guarded()
def ward(
    *,
    server: Annotated[str, typer.Option("--server", help="'local' (whole system here) or the server's URL.")] = "local",
    pumps: Annotated[int, typer.Option("--pumps", min=1, max=10_000)] = 6,
    speed: Annotated[float, typer.Option("--speed", min=0.1, max=1000, help="Virtual seconds per second.")] = 1.0,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long (e.g. 90s, 5m).")] = None,
    library: Annotated[Path, typer.Option("--library", help="The drug library the ward is programmed from.")] = (
        DEFAULT_LIBRARY
    ),
    seed: Annotated[int, typer.Option("--seed")] = 1,
    data: Annotated[Path, typer.Option("--data", help="Local mode: server data (emptied at start).")] = Path(
        "out/ward"
    ),
    port: Annotated[int, typer.Option("--port", help="Local mode: the central station's port.")] = 8000,
    escalate_after: Annotated[float, typer.Option("--escalate-after", help="Local mode: seconds.")] = 60.0,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="Remote mode: broker mqtts://HOST:PORT.")] = None,
    certs: Annotated[Path | None, typer.Option("--certs", help="Remote mode: the pumps' credentials.")] = None,
    hl7_port: Annotated[
        int | None,
        typer.Option("--hl7-port", help="Local mode: MLLP port for orders (default 2575, any free one if taken)."),
    ] = None,
    ehr: Annotated[
        str | None, typer.Option("--ehr", help="Local mode: the EHR's MLLP HOST:PORT (RRG^O16, PCD-10/01/04).")
    ] = None,
    hl7_tls: Annotated[tuple[Path, Path] | None, typer.Option("--hl7-tls", help="CERT KEY: MLLP over TLS.")] = None,
    ehr_ca: Annotated[Path | None, typer.Option("--ehr-ca", help="CA of the EHR's TLS certificate.")] = None,
    order_beds: Annotated[
        int,
        typer.Option("--order-beds", min=0, help="Local mode: the first N pumps infuse only what EHR orders bring."),
    ] = 1,
) -> None:
    """Run a virtual ward (with --server local: the whole system, central station included)."""
    seconds = None if for_ is None else parse_duration(for_)
    lib = read_yaml(library).require()
    if server == "local":
        if data.exists():
            shutil.rmtree(data)
        settings = link_settings(hl7_port, ehr, hl7_tls, ehr_ca)  # bad options refused before anything starts
        system = local_system(data, lib, pumps=pumps, seed=seed, escalate_after_s=escalate_after)
        links = start_links(system.hospital, settings, fall_back=hl7_port is None)
        for bed in system.ward.beds[:order_beds]:
            bed.orders_only = True
        served = Served(build_app(system.hospital), "127.0.0.1", port)
        try:
            served.start()
            console.print(f"central station: http://127.0.0.1:{port}/station/  ({pumps} pumps, speed x{speed:g})")
            _print_links(links, port, system.ward)
            console.print("log in as (passwords are new each run; there are no default credentials):")
            for name, (role, password) in system.passwords.items():
                console.print(f"  {name:<11} {role:<11} {password}", highlight=False, markup=False)
            console.print("Ctrl-C stops." if seconds is None else f"running for {seconds:g} s", highlight=False)
            run_paced(system.ward, speed, seconds)
        except KeyboardInterrupt:
            pass
        finally:
            links.stop()
            served.stop()
        _summary(system.ward)
        return
    mqtt, certs = remote_options(server, mqtt, certs)
    spec = WardSpec(
        pumps=pumps,
        library=lib,
        seed=seed,
        time_origin=dt.datetime.now(dt.UTC),
        agent=AgentConfig(order_keys=(order_key(certs),)),
    )
    link = functools.partial(certified_link, mqtt, certs)
    remote = Ward(spec, link, Clock(lambda: dt.datetime.now(dt.UTC), time.monotonic))
    console.print(f"{pumps} pumps connecting to {mqtt}; central station at {server.rstrip('/')}/station/")
    with contextlib.suppress(KeyboardInterrupt):
        run_paced(remote, speed, seconds)
    _summary(remote)


def _print_links(links: InteropLinks, port: int, ward_: Ward) -> None:
    tls = " (TLS)" if links.settings.server_tls is not None else ""
    console.print(f"HL7 MLLP listener (PCD-03 orders in): 127.0.0.1:{links.port}{tls}", highlight=False)
    ehr = links.settings.ehr
    none = "EHR: none (--ehr HOST:PORT); acknowledgements go back on the order's connection"
    console.print(f"EHR (RRG^O16, PCD-10/01/04 out): {ehr[0]}:{ehr[1]}" if ehr else none, highlight=False)
    console.print(f"FHIR R4 (after logging in): http://127.0.0.1:{port}/fhir/", highlight=False)
    beds = ", ".join(f"{b.pump.config.pump_id} {b.area} {b.wristband}{' (orders only)' * b.orders_only}"
                     for b in ward_.beds[:6])  # fmt: skip
    console.print(f"beds (pump, care area, patient): {beds}{', ...' if len(ward_.beds) > 6 else ''}", highlight=False)


def _summary(ward_: Ward) -> None:
    events = sum(bed.pump.log.last_seq for bed in ward_.beds)
    acked = sum(bed.agent.acked for bed in ward_.beds)
    console.print(
        f"ward stopped at {float(ward_.now.seconds):.0f} s virtual time: "
        f"{events} events logged, {acked} stored by the server",
        highlight=False,
    )
