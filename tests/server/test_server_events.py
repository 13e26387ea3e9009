"""The event store is queryable by patient and by drug (SQLite and PostgreSQL): every event a channel logs
while it serves a patient carries that patient's id (the agent sends it with the event), and a query
returns exactly those events, none of another patient or pump."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hospitalkit import Station, make_system, run
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.web.system import build_app


@pytest.fixture(params=["sqlite", "postgresql"])
def ward_station(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Station]:
    db_url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    system = make_system(tmp_path / "data", pumps=3, db_url=db_url)
    with TestClient(build_app(system.hospital, manage=False), base_url="https://testserver") as client:
        yield Station(system, client)
    system.hospital.stop()


def _served(log: tuple[LoggedEvent, ...], patient: str) -> list[int]:
    """The seqs the pump logged on a channel while it served ``patient`` (from its own log)."""
    seqs, current = [], {}
    for e in log:
        if e.kind is EventKind.PATIENT_CHANGED and e.channel is not None:
            current[e.channel] = e.data.get("patient_id")
        if e.channel is not None and current.get(e.channel) == patient:
            seqs.append(e.seq)
    return seqs


def test_events_are_queryable_by_patient_and_by_drug(ward_station: Station) -> None:
    system = ward_station.system
    run(system, 900)
    served = {b.wristband: b for b in system.ward.beds if b.wristband and _served(b.pump.log.events(), b.wristband)}
    assert len(served) >= 2, "fewer than two beds' patients were served"
    ward_station.login("nurse")
    for patient, served_bed in served.items():  # each bed's patient: that bed's events, and no other's
        expected = _served(served_bed.pump.log.events(), patient)
        found = ward_station.client.get("/api/events", params={"patient": patient, "limit": 5000}).json()
        assert sorted(e["seq"] for e in found) == expected
        assert {(e["pump_id"], e["patient"]) for e in found} == {(served_bed.pump.config.pump_id, patient)}
    bed = next(b for b in served.values() if any(e.kind is EventKind.PROGRAM_CONFIRMED for e in b.pump.log.events()))
    pump, patient = bed.pump.config.pump_id, bed.wristband
    confirmed = [e for e in bed.pump.log.events() if e.kind is EventKind.PROGRAM_CONFIRMED]
    drug = str(confirmed[0].data["selection"]["drug"])  # type: ignore[index]
    found = ward_station.client.get("/api/events", params={"drug": drug, "limit": 5000}).json()
    assert {e["drug"] for e in found} == {drug}
    assert {(pump, c.seq) for c in confirmed if c.data["selection"]["drug"] == drug} <= {  # type: ignore[index]
        (e["pump_id"], e["seq"]) for e in found
    }
    both = ward_station.client.get("/api/events", params={"drug": drug, "patient": patient}).json()
    assert both and all(e["drug"] == drug and e["patient"] == patient for e in both)
