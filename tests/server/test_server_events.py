"""The event store is queryable by patient and by drug (SQLite and PostgreSQL): every event a channel logs
while it serves a patient carries that patient's id (the agent sends it with the event), and a query
returns exactly those events, none of another patient or pump. Events that arrive out of order or again
are stored once and acknowledged only up to the first gap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hospitalkit import Station, make_system, run
from openinfusion.agent import messages as m
from openinfusion.errors import ProgramError
from openinfusion.pump.dosing import Patient
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.server import fleet
from openinfusion.server.db.models import Alarm, Event, LinkRejection, Pump
from openinfusion.server.hospital import Hospital
from openinfusion.server.settings import Settings
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
        logged = {e.seq: e for e in served_bed.pump.log.events()}
        assert [e["channel"] for e in found] == [logged[e["seq"]].to_json()["channel"] for e in found]
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


@pytest.mark.req("OI-NET-2")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_out_of_order_and_repeated_events_are_stored_once_and_acknowledged_without_gaps(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    db_url = None if backend == "sqlite" else request.getfixturevalue("pg_url")
    hospital = Hospital(Settings(data_dir=tmp_path / "server", db_url=db_url))
    try:
        with hospital.sessions.begin() as db:
            fleet.commission(db, "vp-0001", care_area="ICU", location="", actor="biomed", ca=None)

        def send(*seqs: int) -> tuple[int, int]:
            records = tuple(
                m.EventRecord(seq=s, t_us=s, at=dt.datetime.now(dt.UTC), kind="self_test", channel=None, data={})
                for s in seqs
            )
            hospital.handle("vp-0001", m.encode(m.up("vp-0001", dt.datetime.now(dt.UTC), m.Events(events=records))))
            with hospital.sessions() as db:
                count = db.execute(select(func.count()).select_from(Event)).scalar_one()
                pump = db.get(Pump, "vp-0001")
                assert pump is not None
                return pump.stored_through, count

        assert send(3, 4) == (0, 2)  # beyond a gap: stored, not acknowledged
        assert send(1, 2) == (2, 4)  # the gap filled: acknowledged up to it
        assert send(3, 4, 5) == (5, 5)  # the resend after the ack: 3 and 4 not stored twice
        assert send(1, 2, 5) == (5, 5)  # a late duplicate changes nothing
    finally:
        hospital.stop()


def test_a_patient_id_is_printable_text_of_1_to_64_characters() -> None:
    assert Patient(id="MRN-0042").id == "MRN-0042"
    for bad in ("", "   ", "x" * 65, "MRN\n42"):
        with pytest.raises(ProgramError, match=r"patient\.id"):
            Patient(id=bad)


@pytest.mark.req("OI-NET-3")
def test_an_alarm_is_committed_before_the_rest_of_its_batch_is_decoded(tmp_path: Path) -> None:
    hospital = Hospital(Settings(data_dir=tmp_path / "server"))
    try:
        with hospital.sessions.begin() as db:
            fleet.commission(db, "vp-0001", care_area="ICU", location="", actor="biomed", ca=None)
        now = dt.datetime.now(dt.UTC)
        data = {"instance": 1, "code": "occlusion_downstream", "priority": "high", "text": "t"}
        alarm = m.EventRecord(seq=1, t_us=1, at=now, kind="alarm_raised", channel=0, data=data)
        hospital.handle_many([
            ("vp-0001", b'{"v":1,"body":{"type":"status"}}'),  # refused when decoded: the refusal is timed
            ("vp-0001", m.encode(m.up("vp-0001", now, m.Events(events=(alarm,))))),
        ])  # fmt: skip
        with hospital.sessions() as db:
            stored = db.execute(select(Alarm.received_at)).scalar_one()
            refused = db.execute(select(LinkRejection.at)).scalar_one()
        assert stored < refused  # the status ahead of the alarm in the batch was decoded after the alarm's commit
    finally:
        hospital.stop()
