"""The alarm manager: a distributed, secondary alarm system (IEC 60601-1-8 §6.11), never the primary one (OI-NET-3).

The pump always alarms locally whether or not the server answers (the agent only reports what the core
did). Here each alarm the pump raised is forwarded to the nurse assigned to its care area; if nobody
acknowledges it within ``escalate_after`` it escalates to the charge nurse. Acknowledgement (who, when) is
recorded and audited; it never silences or resets the pump, which only a clinician at the pump can do.
The alarm ends when the pump says its condition ended or it was reset at the pump.

Escalation is a conditional update (``level = 'nurse'``), so several server processes may run it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session as Db

from openinfusion.errors import InputError
from openinfusion.server import audit
from openinfusion.server.db.models import Alarm, Assignment, Event

_ENDS: Final = frozenset({"alarm_cleared", "alarm_reset"})


def _assignment(db: Db, care_area: str) -> Assignment | None:
    return db.get(Assignment, care_area)


def follow(db: Db, pump: str, care_area: str, events: list[Event], now: datetime) -> list[Alarm]:
    """Update alarms from newly stored events of ``pump`` (in ``care_area``); returns the alarms raised."""
    raised: list[Alarm] = []
    for e in events:
        data: dict[str, Any] = e.data
        instance = data.get("instance")
        if e.kind == "alarm_raised" and isinstance(instance, int):
            who = _assignment(db, care_area)
            alarm = Alarm(
                pump_id=pump,
                raised_seq=e.seq,
                instance=instance,
                channel=e.channel,
                code=str(data.get("code", "?"))[:60],
                priority=str(data.get("priority", "?"))[:20],
                text=str(data.get("text", ""))[:200],
                care_area=care_area,
                raised_at=e.at,
                received_at=now,
                forwarded_to=None if who is None else who.nurse,
            )
            db.add(alarm)
            raised.append(alarm)
        elif isinstance(instance, int) and e.kind in _ENDS | {"alarm_acknowledged", "alarm_escalated"}:
            db.flush()
            alarm_row = db.execute(
                select(Alarm)
                .where(Alarm.pump_id == pump, Alarm.instance == instance, Alarm.active.is_(True))
                .order_by(Alarm.raised_seq.desc())
                .limit(1)
            ).scalar()
            if alarm_row is None:
                continue
            if e.kind in _ENDS:
                alarm_row.active, alarm_row.ended_at = False, e.at
            elif e.kind == "alarm_escalated":
                alarm_row.priority = str(data.get("priority", alarm_row.priority))[:20]
            elif alarm_row.acknowledged_at is None:
                alarm_row.acknowledged_by, alarm_row.acknowledged_at = "at the pump", e.at
    db.flush()
    return raised


def escalate_due(db: Db, now: datetime, after: timedelta) -> list[int]:
    """Escalate to the charge nurse every active alarm unacknowledged for ``after``; returns their ids."""
    due = db.execute(
        select(Alarm).where(
            Alarm.active.is_(True),
            Alarm.acknowledged_at.is_(None),
            Alarm.level == "nurse",
            Alarm.received_at <= now - after,
        )
    ).scalars()
    done = []
    for alarm in list(due):
        who = _assignment(db, alarm.care_area)
        charge = None if who is None else who.charge_nurse
        result = db.execute(
            update(Alarm)
            .where(Alarm.id == alarm.id, Alarm.level == "nurse")
            .values(level="charge_nurse", escalated_to=charge, escalated_at=now)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            audit.record(
                db,
                audit.SYSTEM,
                "alarm.escalate",
                f"alarm:{alarm.id}",
                {"level": "nurse", "to": alarm.forwarded_to},
                {"level": "charge_nurse", "to": charge},
            )
            done.append(alarm.id)
    return done


def acknowledge(db: Db, alarm_id: int, who: str) -> Alarm:
    """Record that ``who`` has seen the alarm and is going (the pump keeps alarming until dealt with there)."""
    alarm = db.get(Alarm, alarm_id)
    if alarm is None:
        raise InputError("alarm", f"no alarm {alarm_id}")
    if alarm.acknowledged_at is not None:
        raise InputError("alarm", f"alarm {alarm_id} was already acknowledged by {alarm.acknowledged_by}")
    before = {"acknowledged_by": None, "level": alarm.level}
    alarm.acknowledged_by, alarm.acknowledged_at = who, datetime.now(UTC)
    audit.record(db, who, "alarm.acknowledge", f"alarm:{alarm_id}", before, {"acknowledged_by": who})
    return alarm


def board(db: Db, include_ended: bool = False, limit: int = 200) -> list[Alarm]:
    q = select(Alarm)
    if not include_ended:
        q = q.where(Alarm.active.is_(True))
    return list(db.execute(q.order_by(Alarm.id.desc()).limit(limit)).scalars())


def assign(db: Db, care_area: str, nurse: str | None, charge_nurse: str | None, actor: str) -> Assignment:
    row = db.get(Assignment, care_area)
    before = None if row is None else {"nurse": row.nurse, "charge_nurse": row.charge_nurse}
    if row is None:
        row = Assignment(care_area=care_area)
        db.add(row)
    row.nurse, row.charge_nurse = nurse, charge_nurse
    audit.record(
        db, actor, "assignment.set", f"care_area:{care_area}", before, {"nurse": nurse, "charge_nurse": charge_nurse}
    )
    return row
