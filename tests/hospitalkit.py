"""Shared test kit for the hospital side: a real server (SQLite or PostgreSQL), the in-process link, a
virtual ward, and an HTTP client logged in per role. Nothing is mocked: every test runs the real parts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from openinfusion.druglib.model import Library
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.web.system import LocalSystem, build_app, local_system

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@localhost:5432/test"


@functools.cache
def example_library() -> Library:
    return read_yaml(ROOT / "examples/library/example-library.yaml").require()


def settle(system: LocalSystem, rounds: int = 4) -> None:
    """Let agents and server exchange everything pending (acks, offers, chunks)."""
    for _ in range(rounds):
        system.ward.poll()
        system.bus.drain()


def run(system: LocalSystem, seconds: int, dt_s: float = 1.0) -> None:
    """Advance the ward ``seconds`` of virtual time, the server keeping up."""
    for _ in range(int(seconds / dt_s)):
        system.ward.step(dt_s)
        system.bus.drain()
    settle(system)


@dataclass
class Station:
    system: LocalSystem
    client: TestClient

    def login(self, name: str) -> str:
        """Log in as a demo user; returns the CSRF token."""
        self.client.cookies.clear()
        _, password = self.system.passwords[name]
        r = self.client.post("/api/login", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        csrf: str = r.json()["csrf"]
        return csrf


def make_system(
    data: Path, pumps: int = 3, seed: int = 1, escalate_after_s: float = 60.0, db_url: str | None = None
) -> LocalSystem:
    system = local_system(
        data, example_library(), pumps=pumps, seed=seed, escalate_after_s=escalate_after_s, db_url=db_url,
        resend_after_s=0.3,
    )  # fmt: skip
    system.hospital.settings = dataclasses.replace(system.hospital.settings, reoffer_after_s=0.5)
    system.hospital.start()
    return system


@pytest.fixture
def system(tmp_path: Path) -> Iterator[LocalSystem]:
    s = make_system(tmp_path / "data")
    yield s
    s.hospital.stop()


@pytest.fixture
def station(system: LocalSystem) -> Iterator[Station]:
    system.hospital.settings = dataclasses.replace(system.hospital.settings, stream_max_s=0.3)
    with TestClient(build_app(system.hospital, manage=False), base_url="https://testserver") as client:
        yield Station(system, client)


@functools.cache
def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not running on localhost:5432")
    name = f"oi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@localhost:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def wait_for(condition: object, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def utc(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(**delta)
