"""The composition root: a server process (API + central station) and, for one machine, a whole system.

:func:`build_app` wires the hospital, the API and the station pages. :class:`Served` runs uvicorn on a thread
(so a ward can run on the main thread). :func:`local_system` is the no-setup system of the README's first
command: SQLite, the in-process link, a commissioned ward whose library release the server knows, alarm
assignments, and one user per role with a fresh random password (there are no default credentials).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from openinfusion.agent.agent import AgentConfig
from openinfusion.agent.link.inprocess import Bus
from openinfusion.agent.ward import Clock, Ward, WardSpec, pump_id, ward_trust
from openinfusion.druglib.model import Library
from openinfusion.errors import InputError
from openinfusion.server import alarms, auth, fleet, library
from openinfusion.server.app import create_app
from openinfusion.server.hospital import Hospital
from openinfusion.server.roles import Role
from openinfusion.server.settings import Settings
from openinfusion.web import station


def build_app(hospital: Hospital, *, manage: bool = True) -> FastAPI:
    app = create_app(hospital, manage=manage)
    station.install(app)
    return app


class Served:
    """uvicorn serving ``app`` on a background thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self, timeout_s: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                config = self.server.config
                raise InputError(
                    "--port", f"the web server did not start on {config.host}:{config.port} (port in use?)"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass(frozen=True, slots=True)
class LocalSystem:
    hospital: Hospital
    bus: Bus
    ward: Ward
    passwords: dict[str, tuple[str, str]]  # user -> (role, password)


DEMO_USERS = (
    ("nurse", Role.NURSE),
    ("charge", Role.NURSE),
    ("pharmacist", Role.PHARMACIST),
    ("biomed", Role.BIOMED),
    ("admin", Role.ADMIN),
)


def local_system(
    data_dir: Path,
    library_: Library,
    *,
    pumps: int,
    seed: int,
    escalate_after_s: float,
    db_url: str | None = None,
    resend_after_s: float = 5.0,
) -> LocalSystem:
    """Server state, in-process link and ward, set up as a hospital would, in an empty ``data_dir``."""
    settings = Settings(
        data_dir=data_dir, db_url=db_url, escalate_after_s=escalate_after_s, library_keys=ward_trust(seed)
    )
    bus = Bus()
    hospital = Hospital(settings, bus.server())
    now = dt.datetime.now(dt.UTC)
    spec = WardSpec(
        pumps=pumps,
        library=library_,
        seed=seed,
        time_origin=now,
        agent=AgentConfig(order_keys=(hospital.order_key.public_key(),), resend_after_s=resend_after_s),
    )
    ward = Ward(spec, bus.pump, Clock(lambda: dt.datetime.now(dt.UTC), time.monotonic))
    passwords: dict[str, tuple[str, str]] = {}
    with hospital.sessions.begin() as db:
        for name, role in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            auth.add_user(db, name, role, password, actor="setup")
            passwords[name] = (role.value, password)
        release = library.upload(db, ward.package, "setup", settings.library_keys)
        areas = sorted({bed.area for bed in ward.beds})
        library.target(db, release.id, areas, "setup")
        for area in areas:
            alarms.assign(db, area, "nurse", "charge", "setup")
        for i, bed in enumerate(ward.beds):
            fleet.commission(db, pump_id(i), care_area=bed.area, location=f"bed {i + 1}", actor="setup", ca=None)
    return LocalSystem(hospital, bus, ward, passwords)
