"""Remote programming: an order becomes a signed command with a nonce and an expiry.

The server signs (Ed25519, its order key) the pump id and every field of the command; the pump refuses an
order that is unsigned, signed by another key, for another pump, expired or replayed (nonce seen), and
keeps a valid one *pending* until a clinician confirms it at the pump. Order states: ``sent`` -> ``pending``
-> ``confirmed`` or ``refused``; ``expired`` when the pump says so (or it never answered before expiry).
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.errors import InputError
from openinfusion.server import audit
from openinfusion.server.db.models import Order, Pump

_STATES = {"pending", "confirmed", "refused", "expired"}


def order_key(path: Path) -> Ed25519PrivateKey:
    """The server's order-signing key, created on first use, readable by the server's user only (0600).

    Like a TLS server key it is stored unencrypted so that the server starts unattended; the file
    permission is its protection (pharmacists' library keys, used by people, are encrypted instead).
    """
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as e:
            raise InputError(str(path), f"not an unencrypted PEM private key ({e})") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(str(path), "not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def create(
    db: Db,
    key: Ed25519PrivateKey,
    *,
    pump_id: str,
    channel: int,
    program: m.OrderedProgram,
    actor: str,
    lifetime: timedelta,
) -> tuple[Order, m.RemoteProgram]:
    pump = db.get(Pump, pump_id)
    if pump is None or pump.lifecycle != "commissioned":
        raise InputError("pump_id", f"no commissioned pump {pump_id}")
    now = datetime.now(UTC)
    unsigned = m.RemoteProgram(
        order=secrets.token_hex(8),
        nonce=secrets.token_hex(16),
        expires=now + lifetime,
        channel=channel,
        program=program,
        signature="-",
    )
    signature = base64.b64encode(key.sign(m.signed_bytes(pump_id, unsigned))).decode()
    command = unsigned.model_copy(update={"signature": signature})
    order = Order(
        id=command.order,
        pump_id=pump_id,
        channel=channel,
        program=program.model_dump(mode="json"),
        nonce=command.nonce,
        expires_at=command.expires,
        state="sent",
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    db.add(order)
    audit.record(
        db, actor, "order.create", f"order:{order.id}", None, {"pump": pump_id, "channel": channel} | order.program
    )
    return order, command


def acknowledged(db: Db, pump: Pump, ack: m.CommandAck, now: datetime) -> bool:
    """Apply the pump's answer to an order; False if ``ack`` is not about one of this pump's orders."""
    order = db.get(Order, ack.command)
    if order is None or order.pump_id != pump.id or ack.outcome not in _STATES:
        return False
    before = {"state": order.state}
    order.state, order.reason, order.updated_at = ack.outcome, ack.reason[:500], now
    audit.record(
        db,
        f"pump:{pump.id}",
        f"order.{ack.outcome}",
        f"order:{order.id}",
        before,
        {"state": ack.outcome, "reason": ack.reason[:200]},
    )
    return True


def expire(db: Db, now: datetime) -> int:
    """Mark orders past their expiry that the pump never confirmed."""
    result = db.execute(
        update(Order)
        .where(Order.state.in_(("sent", "pending")), Order.expires_at < now)
        .values(state="expired", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def listing(db: Db, pump_id: str | None = None, limit: int = 200) -> list[Order]:
    q = select(Order)
    if pump_id is not None:
        q = q.where(Order.pump_id == pump_id)
    return list(db.execute(q.order_by(Order.created_at.desc()).limit(limit)).scalars())
