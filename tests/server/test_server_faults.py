"""Faults while pumps infuse: the network down, the server stopped and restarted, the database unavailable,
a lossy network. Every pump's event log is identical, event for event, to the same ward run without faults
(nothing the link or the server does changes an infusion), and every event reaches the server exactly once
after recovery. Runs on PostgreSQL (a database of its own, made unavailable by refusing connections)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from hospitalkit import PG_ADMIN, make_system, run, settle, wait_for
from openinfusion.server.db.models import Event
from openinfusion.server.hospital import Hospital
from openinfusion.web.system import LocalSystem

PUMPS = 4
PHASE_S = 600  # virtual seconds per phase


def _step(system: LocalSystem, seconds: int) -> None:
    """Advance without waiting for the server (it may be stopped)."""
    for _ in range(seconds):
        system.ward.step(1.0)


def _database_accepts(url: str, accept: bool) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if accept else "false"}')
        if not accept:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def _logs(system: LocalSystem) -> dict[str, str]:
    return {bed.pump.config.pump_id: bed.pump.log.to_jsonl() for bed in system.ward.beds}


@pytest.mark.req("OI-NET-1", "OI-NET-2")
def test_faults_change_no_infusion_and_lose_or_duplicate_no_event(tmp_path: Path, pg_url: str) -> None:
    reference = make_system(tmp_path / "reference", pumps=PUMPS)
    faulty = make_system(tmp_path / "faulty", pumps=PUMPS, db_url=pg_url)
    try:
        run(reference, 5 * PHASE_S)

        run(faulty, PHASE_S)  # normal
        faulty.bus.set_online(False)  # the network is down
        _step(faulty, PHASE_S)
        faulty.bus.set_online(True)
        faulty.hospital.stop()  # the server process stops; pumps keep infusing and sending
        _step(faulty, PHASE_S)
        restarted = Hospital(faulty.hospital.settings, faulty.bus.server())  # ... and starts again
        restarted.start()
        faulty = LocalSystem(restarted, faulty.bus, faulty.ward, faulty.passwords)
        _database_accepts(pg_url, False)  # the database is unavailable
        _step(faulty, PHASE_S)
        faulty.bus.drain()
        _database_accepts(pg_url, True)
        faulty.bus.loss = 0.3  # a lossy network
        run(faulty, PHASE_S)
        faulty.bus.loss = 0.0
        settle(reference)

        def caught_up() -> bool:
            settle(faulty, 1)
            return all(b.agent.acked == b.pump.log.last_seq for b in faulty.ward.beds)

        wait_for(caught_up, what="every event acknowledged after recovery")
        assert _logs(faulty) == _logs(reference)  # event for event, byte for byte
        with faulty.hospital.sessions() as db:
            for bed in faulty.ward.beds:
                pump = bed.pump.config.pump_id
                count, distinct = db.execute(
                    select(func.count(), func.count(func.distinct(Event.seq))).where(Event.pump_id == pump)
                ).one()
                assert count == distinct == bed.pump.log.last_seq > 20
    finally:
        reference.hospital.stop()
        faulty.hospital.stop()
