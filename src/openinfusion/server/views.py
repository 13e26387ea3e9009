"""Read models shared by the JSON API and the central station pages (plain dicts, display-ready)."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from openinfusion.server.db.models import Alarm, Deployment, Event, Order, Pump, Release
from openinfusion.server.fleet import online


def _q(value: Any) -> str:
    """An exact wire quantity as display text ("12.5 mL/h"); "" for none."""
    if not isinstance(value, dict):
        return ""
    number = Fraction(str(value.get("value", "0")))
    shown = f"{float(number):.4g}" if number.denominator != 1 else str(number.numerator)
    return f"{shown} {value.get('unit', '')}"


def _duration(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    seconds = int(Fraction(str(value.get("value", "0"))))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


def pump(p: Pump, now: datetime, offline_after: timedelta) -> dict[str, Any]:
    status: dict[str, Any] = p.status or {}
    alarms = status.get("alarms", [])
    top = sorted(alarms, key=lambda a: {"high": 0, "medium": 1, "low": 2}.get(a.get("priority"), 3))
    return {
        "id": p.id,
        "care_area": p.care_area,
        "location": p.location,
        "model": p.model,
        "firmware": p.firmware,
        "lifecycle": p.lifecycle,
        "online": online(p, now, offline_after),
        "last_seen": None if p.last_seen is None else p.last_seen.isoformat(),
        "library_version": p.library_version,
        "library_hash": p.library_hash,
        "battery_percent": None if "battery_permille" not in status else status["battery_permille"] // 10,
        "on_mains": status.get("on_mains"),
        "alarm": None if not top else {"code": top[0]["code"], "priority": top[0]["priority"]},
        "stored_through": p.stored_through,
        "channels": [
            {
                "channel": c["index"] + 1,
                "state": c["state"],
                "drug": c.get("drug") or "",
                "concentration": c.get("concentration") or "",
                "dose": _q(c.get("dose")),
                "rate": _q(c.get("rate")),
                "infused": _q(c.get("infused")),
                "vtbi_remaining": _q(c.get("vtbi_remaining")),
                "time_remaining": _duration(c.get("time_remaining")),
            }
            for c in status.get("channels", [])
        ],
    }


def alarm(a: Alarm) -> dict[str, Any]:
    return {
        "id": a.id,
        "pump_id": a.pump_id,
        "channel": None if a.channel is None else a.channel + 1,
        "code": a.code,
        "priority": a.priority,
        "text": a.text,
        "care_area": a.care_area,
        "raised_at": a.raised_at.isoformat(),
        "received_at": a.received_at.isoformat(),
        "active": a.active,
        "level": a.level,
        "forwarded_to": a.forwarded_to,
        "escalated_to": a.escalated_to,
        "escalated_at": None if a.escalated_at is None else a.escalated_at.isoformat(),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": None if a.acknowledged_at is None else a.acknowledged_at.isoformat(),
    }


def release(r: Release) -> dict[str, Any]:
    return {
        "id": r.id,
        "owner": r.owner,
        "name": r.name,
        "version": r.version,
        "library_hash": r.library_hash,
        "sha256": r.sha256,
        "size": r.size,
        "uploaded_by": r.uploaded_by,
        "uploaded_at": r.uploaded_at.isoformat(),
    }


def deployment(d: Deployment) -> dict[str, Any]:
    return {
        "pump_id": d.pump_id,
        "state": d.state,
        "offset": d.offset,
        "detail": d.detail,
        "updated_at": d.updated_at.isoformat(),
    }


def order(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "pump_id": o.pump_id,
        "channel": o.channel + 1,
        "program": o.program,
        "state": o.state,
        "reason": o.reason,
        "expires_at": o.expires_at.isoformat(),
        "created_by": o.created_by,
        "created_at": o.created_at.isoformat(),
    }


def event(e: Event) -> dict[str, Any]:
    return {
        "pump_id": e.pump_id,
        "seq": e.seq,
        "t_us": e.t_us,
        "at": e.at.isoformat(),
        "kind": e.kind,
        "channel": e.channel,
        "drug": e.drug,
        "patient": e.patient,
        "data": e.data,
    }
