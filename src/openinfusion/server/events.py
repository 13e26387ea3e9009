"""The event store: every event of every pump exactly once (unique (pump, seq); OI-NET-2), queryable by
pump, patient (the id the agent sends with each event: its channel's patient then), drug and time.

Events arrive in batches, possibly again (the agent resends what was not acknowledged) and possibly out of
order. :func:`store` inserts only the sequence numbers not yet held and advances ``Pump.stored_through``,
the highest seq up to which nothing is missing: that is what the server acknowledges, so the agent resends
from the first gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.server.db.models import Event, Pump


def _drug(data: Mapping[str, Any], status: Mapping[str, Any] | None, channel: int | None) -> str | None:
    for holder in (data, data.get("selection"), data.get("program")):
        if isinstance(holder, Mapping) and isinstance(holder.get("drug"), str):
            return str(holder["drug"])[:120]
    if status is not None and channel is not None:
        for ch in status.get("channels", ()):
            if ch.get("index") == channel and isinstance(ch.get("drug"), str):
                return str(ch["drug"])[:120]
    return None


def store(db: Db, pump: Pump, records: Iterable[m.EventRecord]) -> list[Event]:
    """Insert the events not yet stored; returns the new rows (in seq order). One query: the seqs held from
    the first one that could matter (those beyond the batch arrived out of order earlier)."""
    batch = sorted({r.seq: r for r in records}.values(), key=lambda r: r.seq)
    if not batch:
        return []
    db.flush()  # earlier messages of the same batch may hold events of this pump
    first = min(batch[0].seq, pump.stored_through + 1)
    held = set(db.execute(select(Event.seq).where(Event.pump_id == pump.id, Event.seq >= first)).scalars())
    new = [
        Event(
            pump_id=pump.id,
            seq=r.seq,
            t_us=r.t_us,
            at=r.at,
            kind=r.kind,
            channel=r.channel,
            drug=_drug(r.data, pump.status, r.channel),
            patient=r.patient,
            data=r.data,
        )
        for r in batch
        if r.seq not in held
    ]
    db.add_all(new)
    known = held | {r.seq for r in batch}
    through = pump.stored_through
    while through + 1 in known:
        through += 1
    pump.stored_through = through
    return new


def query(
    db: Db,
    *,
    pump: str | None = None,
    patient: str | None = None,
    drug: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[Event]:
    """Events matching every filter given, newest first (at most ``limit``)."""
    q = select(Event)
    for column, value in ((Event.pump_id, pump), (Event.patient, patient), (Event.drug, drug), (Event.kind, kind)):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(Event.at >= since)
    if until is not None:
        q = q.where(Event.at < until)
    return list(db.execute(q.order_by(Event.at.desc(), Event.id.desc()).limit(max(1, min(limit, 5000)))).scalars())
