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


def _fields(row: object, *names: str) -> dict[str, Any]:
    """The attributes ``names`` of ``row``, datetimes as ISO 8601 text."""
    values = {name: getattr(row, name) for name in names}
    return {name: v.isoformat() if isinstance(v, datetime) else v for name, v in values.items()}


def _channel(index: int | None) -> int | None:
    """A channel as people number them (from 1); None for the whole pump."""
    return None if index is None else index + 1


def alarm(a: Alarm) -> dict[str, Any]:
    return _fields(
        a, "id", "pump_id", "code", "priority", "text", "care_area", "raised_at", "received_at", "active", "level",
        "forwarded_to", "escalated_to", "escalated_at", "acknowledged_by", "acknowledged_at", "ended_at",
    ) | {"channel": _channel(a.channel)}  # fmt: skip


def release(r: Release) -> dict[str, Any]:
    return _fields(r, "id", "owner", "name", "version", "library_hash", "sha256", "size", "uploaded_by", "uploaded_at")


def deployment(d: Deployment) -> dict[str, Any]:
    return _fields(d, "pump_id", "state", "offset", "detail", "updated_at")


def order(o: Order) -> dict[str, Any]:
    fields = _fields(o, "id", "pump_id", "program", "state", "reason", "expires_at", "created_by", "created_at")
    return fields | {"channel": _channel(o.channel)}


def event(e: Event) -> dict[str, Any]:
    fields = _fields(e, "pump_id", "seq", "t_us", "at", "kind", "drug", "patient", "data")
    return fields | {"channel": _channel(e.channel)}  # as the pump's own event log numbers it (from 1)
