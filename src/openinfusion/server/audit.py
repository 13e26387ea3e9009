"""The audit trail: every server action (who, what, when, before and after), append-only and hash-chained.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical JSON of its own fields, so
changing, removing or reordering any entry breaks every hash after it: :func:`verify` finds the first break.
Appends are serialised by locking the newest entry (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
serialises writers itself), so several server processes extend one chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.server.db.models import AuditEntry

GENESIS: Final = "0" * 64
SYSTEM: Final = "system"


def _digest(prev: str, at: datetime, actor: str, action: str, *, target: str, before: Any, after: Any) -> str:
    body = json.dumps(
        {"at": at.isoformat(), "actor": actor, "action": action, "target": target, "before": before, "after": after},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


def record(  # noqa: PLR0917 - an entry reads as a sentence: who did what to what, before and after
    db: Session,
    actor: str,
    action: str,
    target: str,
    /,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in ``db``'s transaction (committed with the change it records)."""
    last = db.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1).with_for_update()).scalar()
    prev = GENESIS if last is None else last.hash
    at = datetime.now(UTC)
    before = json.loads(json.dumps(before, default=str)) if before is not None else None
    after = json.loads(json.dumps(after, default=str)) if after is not None else None
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        target=target,
        before=before,
        after=after,
        prev_hash=prev,
        hash=_digest(prev, at, actor, action, target=target, before=before, after=after),
    )
    db.add(entry)
    db.flush()
    return entry


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    first_break: int | None  # id of the first entry whose hash does not follow
    reason: str

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify(db: Session) -> Verification:
    """Recompute the chain from the first entry; report the first entry that does not follow."""
    prev, count = GENESIS, 0
    for entry in db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
        count += 1
        if entry.prev_hash != prev:
            return Verification(count, entry.id, f"entry {entry.id}: previous hash does not match (entry removed?)")
        expected = _digest(
            prev, entry.at, entry.actor, entry.action, target=entry.target, before=entry.before, after=entry.after
        )
        if entry.hash != expected:
            return Verification(count, entry.id, f"entry {entry.id}: content does not match its hash (altered)")
        prev = entry.hash
    return Verification(count, None, f"{count} entries, chain intact")
