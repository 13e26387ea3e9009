"""The audit trail: every server action recorded, hash-chained; altering or removing an entry is detected."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from hospitalkit import Station
from openinfusion.cli import app
from openinfusion.server import audit
from openinfusion.server.db.models import AuditEntry


def _actions(station: Station) -> list[str]:
    with station.system.hospital.sessions() as db:
        return list(db.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars())


def test_server_actions_are_audited_with_who_what_and_before_after(station: Station) -> None:
    csrf = station.login("admin")
    r = station.client.put(
        "/api/assignments/ADULT-ICU", json={"nurse": "nurse", "charge_nurse": "admin"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    with station.system.hospital.sessions() as db:
        last = db.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
    assert (last.actor, last.action, last.target) == ("admin", "assignment.set", "care_area:ADULT-ICU")
    assert last.before == {"nurse": "nurse", "charge_nurse": "charge"}
    assert last.after == {"nurse": "nurse", "charge_nurse": "admin"}
    actions = _actions(station)
    for expected in ("user.add", "release.upload", "release.target", "device.commission", "login"):
        assert expected in actions


def test_altering_or_removing_an_entry_breaks_the_chain(station: Station) -> None:
    hospital = station.system.hospital
    data = str(hospital.settings.data_dir)
    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify", "--data", data])
    assert intact.exit_code == 0 and "intact" in intact.output
    with hospital.sessions.begin() as db:
        db.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="mallory"))
    with hospital.sessions() as db:
        result = audit.verify(db)
    assert result.first_break == 3 and "altered" in result.reason
    broken = runner.invoke(app, ["audit", "verify", "--data", data])
    assert broken.exit_code == 1 and "entry 3" in broken.output
    with hospital.sessions.begin() as db:
        db.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="setup"))
        db.execute(delete(AuditEntry).where(AuditEntry.id == 5))
    with hospital.sessions() as db:
        result = audit.verify(db)
    assert result.first_break == 6 and "removed" in result.reason
