"""The secondary alarm system: a pump alarm is forwarded to the assigned nurse, escalates to the charge nurse
when nobody acknowledges it, and acknowledgement is recorded; the pump alarms locally regardless."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from hospitalkit import Station, run, settle
from openinfusion.agent.ward import Bedside
from openinfusion.pump.statechart import ChannelState
from openinfusion.server.db.models import Alarm, AuditEntry
from openinfusion.web.system import LocalSystem


def _infusing(system: LocalSystem) -> Bedside:
    for _ in range(40):
        run(system, 10)
        for bed in system.ward.beds:
            if bed.pump.channels[0].state is ChannelState.INFUSING:
                return bed
    raise AssertionError("no pump started an infusion")


def _occlude(system: LocalSystem, bed: Bedside) -> None:
    bed.world.channel(0).set_occlusion("downstream", True)
    for _ in range(60):
        run(system, 5)
        if bed.pump.alarms.active(0):
            return
    raise AssertionError("the occlusion raised no alarm at the pump")


def _alarms(system: LocalSystem) -> list[Alarm]:
    with system.hospital.sessions() as db:
        return list(db.execute(select(Alarm).where(Alarm.active.is_(True))).scalars())


@pytest.mark.req("OI-NET-3")
def test_alarm_forwarded_escalated_and_acknowledged(station: Station) -> None:
    system = station.system
    bed = _infusing(system)
    _occlude(system, bed)
    (alarm,) = [a for a in _alarms(system) if a.pump_id == bed.pump.config.pump_id]
    assert (alarm.forwarded_to, alarm.level, alarm.care_area) == ("nurse", "nurse", bed.area)
    system.hospital.housekeeping(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
    assert _alarms(system)[0].level == "nurse"  # not yet: escalation after 60 s
    system.hospital.housekeeping(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61))
    (escalated,) = [a for a in _alarms(system) if a.id == alarm.id]
    assert (escalated.level, escalated.escalated_to) == ("charge_nurse", "charge")
    csrf = station.login("nurse")
    r = station.client.post(f"/api/alarms/{alarm.id}/ack", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "nurse"
    assert station.client.post(f"/api/alarms/{alarm.id}/ack", headers={"X-CSRF-Token": csrf}).status_code == 409
    assert bed.pump.alarms.active(0)  # acknowledging at the station never silences or resets the pump
    with system.hospital.sessions() as db:
        actions = set(db.execute(select(AuditEntry.action)).scalars())
    assert {"alarm.escalate", "alarm.acknowledge"} <= actions
    # the nurse clears the line and resets the alarm at the pump: the alarm ends at the station too
    bed._clear_occlusion()
    run(system, 5)
    assert not [a for a in _alarms(system) if a.id == alarm.id]
    board = station.client.get("/api/alarms", params={"include_ended": True}).json()
    (ended,) = [a for a in board if a["id"] == alarm.id]
    assert not ended["active"] and ended["ended_at"] is not None  # the station's "Recently ended" shows when


@pytest.mark.req("OI-NET-3")
def test_a_pump_alarms_locally_while_the_server_is_unreachable(system: LocalSystem) -> None:
    bed = _infusing(system)
    system.bus.set_online(False)
    _occlude(system, bed)
    assert bed.pump.alarms.active(0)  # primary alarm at the bedside, no server involved
    assert not _alarms(system)
    system.bus.set_online(True)
    settle(system)
    assert [a.pump_id for a in _alarms(system)] == [bed.pump.config.pump_id]
