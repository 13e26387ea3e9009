"""The event store: every event of every pump exactly once (unique (pump, seq); OI-NET-2), queryable by
pump, patient (the id the agent sends with each event: its channel's patient then), drug and time.

Events arrive in batches, possibly again (the agent resends what was not acknowledged) and possibly out of
order. :func:`store` writes a whole link batch, every pump's events, in one Core statement
(``INSERT ... ON CONFLICT (pump_id, seq) DO NOTHING RETURNING``: the unique constraint, not a read, keeps each
event once) and advances each pump's ``stored_through``, the highest seq up to which nothing is missing, by
the seqs that follow it without a gap. That is what the server acknowledges, so the agent resends from the
first gap; an event stored earlier beyond a gap is counted when the resend reaches it (its insert is then a
no-op). ``stored_through`` only grows (a conditional update), so several processes may store at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.server.db.models import Event, Pump

DrugOf = Callable[[str, int | None], str | None]
"""The drug a pump's channel runs now (from its live status), for events that do not name it."""


def _drug(data: Mapping[str, Any]) -> str | None:
    for holder in (data, data.get("selection"), data.get("program")):
        if isinstance(holder, Mapping) and isinstance(holder.get("drug"), str):
            return str(holder["drug"])[:120]
    return None


@dataclass(frozen=True, slots=True)
class Stored:
    through: int  # every event of the pump up to this seq is stored: what the server acknowledges
    new: list[Event]  # the alarm events this batch stored for the first time (not in the session), seq order


def store(
    db: Db, batches: Mapping[str, tuple[int, Sequence[m.EventRecord]]], drug_of: DrugOf, now: datetime
) -> dict[str, Stored]:
    """Store ``{pump: (its stored_through, records)}`` in one statement; per pump, what it acknowledges."""
    rows: list[dict[str, Any]] = [
        {
            "pump_id": pump,
            "seq": r.seq,
            "t_us": r.t_us,
            "at": r.at,
            "kind": r.kind,
            "channel": r.channel,
            "drug": _drug(r.data) or drug_of(pump, r.channel),
            "patient": r.patient,
            "data": r.data,
        }
        for pump, (_, records) in batches.items()
        for r in {r.seq: r for r in records}.values()
    ]
    if not rows:
        return {}
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    table = cast(Table, Event.__table__)
    insert = dialect.insert(table).on_conflict_do_nothing(index_elements=["pump_id", "seq"])
    inserted = {(str(p), int(q)) for p, q in db.execute(insert.returning(table.c.pump_id, table.c.seq), rows)}
    alarms = sorted(
        (r for r in rows if (r["pump_id"], r["seq"]) in inserted and str(r["kind"]).startswith("alarm_")),
        key=lambda r: r["seq"],
    )
    out = {}
    for pump, (held_through, records) in batches.items():
        seqs, through = {r.seq for r in records}, held_through
        while through + 1 in seqs:
            through += 1
        out[pump] = Stored(through, [Event(**r) for r in alarms if r["pump_id"] == pump])
    pumps = cast(Table, Pump.__table__)
    db.execute(
        update(pumps)
        .where(pumps.c.id == bindparam("b_id"))
        .values(
            stored_through=case(
                (pumps.c.stored_through < bindparam("b_through"), bindparam("b_through")),
                else_=pumps.c.stored_through,
            ),
            last_seen=bindparam("b_seen"),
        ),
        [{"b_id": pump, "b_through": s.through, "b_seen": now} for pump, s in out.items()],
    )
    return out


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
