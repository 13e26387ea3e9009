"""The device registry and live fleet state.

Lifecycle: a biomed engineer commissions a pump (serial, care area, location), which issues its client
certificate; decommissioning revokes the certificate (CRL) and the server refuses the pump's messages from
then on. Live state is the pump's last status message; a pump silent for ``offline_after`` shows offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.errors import InputError
from openinfusion.server import audit
from openinfusion.server.db.models import Pump
from openinfusion.server.pki import CertificateAuthority, Issued


@dataclass(frozen=True, slots=True)
class Commissioned:
    pump: Pump
    credentials: Issued | None  # None when commissioned without a certificate (in-process link)


def _snapshot(p: Pump) -> dict[str, Any]:
    return {"care_area": p.care_area, "location": p.location, "lifecycle": p.lifecycle, "cert_serial": p.cert_serial}


def commission(
    db: Db,
    pump_id: str,
    *,
    care_area: str,
    location: str,
    actor: str,
    ca: CertificateAuthority | None,
) -> Commissioned:
    """Register ``pump_id`` (or re-commission a decommissioned one) and issue its certificate."""
    if not _valid_id(pump_id):
        raise InputError("pump_id", "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not care_area.strip():
        raise InputError("care_area", "required")
    existing = db.get(Pump, pump_id)
    if existing is not None and existing.lifecycle == "commissioned":
        raise InputError("pump_id", f"pump {pump_id} is already commissioned")
    issued = ca.issue(pump_id) if ca is not None else None
    now = datetime.now(UTC)
    before = None if existing is None else _snapshot(existing)
    pump = existing or Pump(id=pump_id, commissioned_at=now)
    pump.care_area, pump.location, pump.lifecycle = care_area.strip(), location.strip(), "commissioned"
    pump.commissioned_at, pump.decommissioned_at = now, None
    pump.cert_serial = None if issued is None else str(issued.serial)
    db.add(pump)
    db.flush()
    audit.record(db, actor, "device.commission", f"pump:{pump_id}", before, _snapshot(pump))
    return Commissioned(pump, issued)


def _valid_id(pump_id: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", pump_id) is not None


def decommission(db: Db, pump_id: str, actor: str, ca: CertificateAuthority | None) -> Pump:
    """Take a pump out of service: its certificate is revoked and its messages refused."""
    pump = db.get(Pump, pump_id)
    if pump is None or pump.lifecycle != "commissioned":
        raise InputError("pump_id", f"no commissioned pump {pump_id}")
    before = _snapshot(pump)
    pump.lifecycle, pump.decommissioned_at = "decommissioned", datetime.now(UTC)
    db.flush()
    if ca is not None:
        revoked = db.execute(
            select(Pump.cert_serial).where(Pump.lifecycle == "decommissioned", Pump.cert_serial.is_not(None))
        ).scalars()
        ca.write_crl([int(s) for s in revoked if s])
    audit.record(db, actor, "device.decommission", f"pump:{pump_id}", before, _snapshot(pump))
    return pump


def apply_status(db: Db, pump: Pump, status: m.Status, at: datetime) -> None:
    """Store a pump's status as its live state."""
    pump.model, pump.firmware = status.model, status.firmware
    pump.last_seen = at
    pump.library_hash = None if status.library is None else status.library.hash
    pump.library_version = None if status.library is None else status.library.version
    pump.staged_hash = None if status.staged_library is None else status.staged_library.hash
    pump.status = status.model_dump(mode="json")


def online(pump: Pump, now: datetime, offline_after: timedelta) -> bool:
    return pump.last_seen is not None and now - pump.last_seen <= offline_after


def fleet(db: Db, care_area: str | None = None) -> list[Pump]:
    query = select(Pump).where(Pump.lifecycle == "commissioned").order_by(Pump.care_area, Pump.id)
    if care_area is not None:
        query = query.where(Pump.care_area == care_area)
    return list(db.execute(query).scalars())
