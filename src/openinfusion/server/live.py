"""Live fleet state of one server process: each pump's newest status, written to the database every few seconds.

Statuses are most of the link's load (1 per pump per second) and each replaces the one before, so the process
keeps the newest per pump in memory and writes the changed ones in one statement at least every
:data:`FLUSH_S` (and whenever the link is idle). The database stays the only state that matters: a process
that stops loses at most the statuses of its last interval, which the pumps replace within a second; a new
process starts empty and reads each pump's row on its first status. Several processes may run: each writes
the statuses it received, and a write never replaces a status received later (``last_seen`` is compared).

A status goes the slow way (the pump's ORM row, :func:`openinfusion.server.fleet.apply_status` and the library
distribution) when this process holds none for the pump yet, when its library, staged library, model or
firmware changed, or while the pump is not on its care area's current release; otherwise only the memory
changes (:meth:`LiveStatus.put`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.server.db.models import Pump

FLUSH_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Held:
    status: m.Status
    at: datetime  # when the server received it


def shape(s: m.Status) -> tuple[object, ...]:
    """What the registry and the library distribution read from a status: a change takes the slow way."""
    return s.library, s.staged_library, s.model, s.firmware


class LiveStatus:
    """The newest status per pump (thread-safe: the link thread writes, housekeeping flushes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}
        self._dirty: set[str] = set()

    def get(self, pump: str) -> Held | None:
        return self._held.get(pump)

    def put(self, pump: str, held: Held, *, written: bool) -> None:
        with self._lock:
            self._held[pump] = held
            if written:
                self._dirty.discard(pump)
            else:
                self._dirty.add(pump)

    def forget(self, pump: str) -> None:
        with self._lock:
            self._held.pop(pump, None)
            self._dirty.discard(pump)

    def take_dirty(self) -> dict[str, Held]:
        with self._lock:
            due = {p: self._held[p] for p in self._dirty if p in self._held}
            self._dirty.clear()
            return due

    def restore(self, due: dict[str, Held]) -> None:
        """After a failed write: the statuses not replaced since are due again."""
        with self._lock:
            self._dirty.update(p for p, held in due.items() if self._held.get(p) is held)

    def drug(self, pump: str, channel: int | None) -> str | None:
        held = self._held.get(pump)
        if held is None or channel is None:
            return None
        return next((c.drug for c in held.status.channels if c.index == channel), None)


def write(db: Db, due: dict[str, Held]) -> None:
    """Write the statuses in ``due`` (one statement), none over a status received later."""
    table = cast(Table, Pump.__table__)
    db.execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            or_(table.c.last_seen.is_(None), table.c.last_seen <= bindparam("b_seen")),
        )
        .values(status=bindparam("b_status"), last_seen=bindparam("b_seen")),
        [{"b_id": p, "b_seen": h.at, "b_status": h.status.model_dump(mode="json")} for p, h in due.items()],
    )
