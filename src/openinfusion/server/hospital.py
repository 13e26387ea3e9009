"""The composition root of the hospital side: database, link, CA, keys, and the pump-message handler.

:meth:`Hospital.handle` is the server's end of the link. Every message is decoded and checked before anything
is stored; a refused one is logged with its reason (``link_rejections`` and the log) and changes nothing:

* malformed, oversized, unknown-version or invalid messages (:func:`~openinfusion.agent.messages.decode_up`);
* a message whose ``pump`` differs from the authenticated sender (the MQTT topic the broker's ACL ties to
  the client certificate), or from a pump that is unknown or decommissioned;
* a duplicate message id (seen recently by this process), a stale status, an answer to an unknown command.

Events are stored exactly once (unique (pump, seq)) and acknowledged cumulatively; if the database is
unavailable nothing is acknowledged, so the pump keeps the events and sends them again later. A batch's event
messages are stored and committed before its other messages, so an alarm never waits behind statuses; and a
status that changes nothing the registry reads only updates the process's live state (:mod:`.live`), which is
written to the database every few seconds. The server
never sends anything that could change a running infusion by itself: library offers only stage, orders wait
for a clinician at the pump.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.agent.link import ServerLink
from openinfusion.errors import InputError
from openinfusion.server import alarms, events, fleet, library, live, orders
from openinfusion.server.broker import reload_broker
from openinfusion.server.db import engine_for, migrate, sessions
from openinfusion.server.db.models import LinkRejection, Pump, Release, ReleaseTarget, Tick
from openinfusion.server.live import FLUSH_S, Held, LiveStatus, shape
from openinfusion.server.pki import CertificateAuthority
from openinfusion.server.settings import Settings

log = logging.getLogger("openinfusion.server")
SEEN_IDS: Final = 100_000
TICK_EVERY_S: Final = 0.2
CRL_RELOAD_S: Final = 0.2
IDLE_BATCH: Final = 50  # a batch this small: the link is not busy
EVENTS_TYPE: Final = b'"type":"events"'  # how :func:`~openinfusion.agent.messages.encode` marks an event message

DownBody = m.EventsAck | m.LibraryOffer | m.LibraryChunk | m.RemoteProgram | m.Config


class Hospital:
    """One server process's view of the hospital (stateless apart from the database)."""

    def __init__(self, settings: Settings, link: ServerLink | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine_for(settings.database)
        migrate(self.engine)
        self.sessions = sessions(self.engine)
        self.ca = CertificateAuthority(settings.data_dir / "pki")
        self.order_key = orders.order_key(settings.data_dir / "order-key.pem")
        self.link = link
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_tick = 0.0
        self._targets: dict[str, ReleaseTarget] = {}  # care area -> current release, read once per batch
        self._release_hash: dict[str, str] = {}  # release id -> library hash (releases never change)
        self.live = LiveStatus()
        self._flushed = time.monotonic()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        with self.sessions.begin() as db:
            if db.get(Tick, 1) is None:
                db.add(Tick(id=1, value=0))

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.link is not None:
            self.link.start(self.handle_many)
        self._timer = threading.Thread(target=self._housekeeping, name="alarm-escalation", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        if self.link is not None:
            self.link.stop()
        if self._timer is not None:
            self._timer.join(timeout=5)
        self.flush_statuses()
        self.engine.dispose()

    def _housekeeping(self) -> None:
        while not self._stop.wait(0.5):
            self.housekeeping(datetime.now(UTC))
            if time.monotonic() - self._flushed >= FLUSH_S:  # off the link's thread: alarms do not wait for it
                self.flush_statuses()

    def flush_statuses(self) -> None:
        """Write the live statuses received since the last write (kept for the next try if that fails)."""
        self._flushed = time.monotonic()
        due = self.live.take_dirty()
        if not due:
            return
        try:
            with self.sessions.begin() as db:
                live.write(db, due)
        except SQLAlchemyError as e:
            self.live.restore(due)
            log.warning("live statuses not written: database unavailable (%s)", type(e).__name__)

    def housekeeping(self, now: datetime) -> None:
        """Escalate due alarms and expire unanswered orders (safe to run in every process at once)."""
        try:
            with self.sessions.begin() as db:
                changed = alarms.escalate_due(db, now, timedelta(seconds=self.settings.escalate_after_s))
                changed_orders = orders.expire(db, now)
                if changed or changed_orders:
                    self._tick(db, force=True)
        except SQLAlchemyError as e:
            log.warning("housekeeping skipped: database unavailable (%s)", type(e).__name__)

    def _tick(self, db: Db, force: bool = False) -> None:
        """Tell the central stations something changed (rate-limited per process)."""
        now = time.monotonic()
        if force or now - self._last_tick >= TICK_EVERY_S:
            self._last_tick = now
            db.execute(update(Tick).where(Tick.id == 1).values(value=Tick.value + 1))

    def tick(self) -> int:
        with self.sessions() as db:
            row = db.get(Tick, 1)
            return 0 if row is None else row.value

    # --- the link ---------------------------------------------------------------------------------------

    def send(self, pump: str, body: DownBody) -> bool:
        if self.link is None:
            return False
        return self.link.publish(pump, m.encode(m.down(pump, datetime.now(UTC), body)))

    def revoke(self, pump: str) -> None:
        """After a decommissioning is committed: the broker reloads the CRL, then the pump is dropped."""
        if self.settings.broker_pid_file is not None:
            try:
                reload_broker(self.settings.broker_pid_file)
                time.sleep(CRL_RELOAD_S)  # the broker handles the signal in its next loop
            except InputError as e:
                log.warning("the broker was not told to reload its CRL: %s", e)
        if self.link is not None:
            self.link.evict(pump)

    def reject(self, pump: str, reason: str, side: str = "server") -> None:
        log.warning("link message %s pump %s: %s", "refused from" if side == "server" else "refused by", pump, reason)
        try:
            with self.sessions.begin() as db:
                db.add(LinkRejection(pump_id=pump[:64], side=side, at=datetime.now(UTC), reason=reason[:500]))
        except SQLAlchemyError:
            log.warning("could not record the refusal: database unavailable")

    def handle(self, sender: str, data: bytes) -> None:
        """One message from the pump authenticated as ``sender``."""
        self.handle_many([(sender, data)])

    def _checked(self, sender: str, data: bytes) -> m.UpMessage | None:
        try:
            message = m.decode_up(data)
        except m.LinkError as e:
            self.reject(sender, str(e))
            return None
        if message.pump != sender:
            self.reject(sender, f"message claims to be from pump {message.pump}")
            return None
        if message.id in self._seen:
            self.reject(sender, f"duplicate message id {message.id}")
            return None
        return message

    def handle_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Messages in arrival order: event messages first (alarms never wait behind statuses), then the rest,
        each part in one transaction (one message at a time if that transaction fails).

        Event messages are found by their encoded type before anything is decoded, so an alarm is committed
        without waiting for the batch's statuses to be decoded; a message the marker misplaces is only handled
        later in its batch (every message is decoded and checked either way)."""
        for part in ([i for i in items if EVENTS_TYPE in i[1]], [i for i in items if EVENTS_TYPE not in i[1]]):
            checked = [(sender, msg) for sender, data in part if (msg := self._checked(sender, data)) is not None]
            urgent = [(sender, msg) for sender, msg in checked if isinstance(msg.body, m.Events)]
            for group in (urgent, [c for c in checked if not isinstance(c[1].body, m.Events)]):
                if group:
                    self._store(group)
        if len(items) <= IDLE_BATCH:  # the link has caught up: write now (else housekeeping does, every FLUSH_S)
            self.flush_statuses()

    def _store(self, checked: list[tuple[str, m.UpMessage]]) -> None:
        refused: list[tuple[str, str]] = []
        replies: list[tuple[str, DownBody]] = []
        fresh: dict[str, Held] = {}  # statuses written by this transaction: held once it commits
        now = datetime.now(UTC)
        try:
            with self.sessions.begin() as db, db.no_autoflush:
                rows = {r.id: r for r in db.execute(select(Pump.id, Pump.lifecycle, Pump.care_area,
                        Pump.stored_through).where(Pump.id.in_({sender for sender, _ in checked})))}  # fmt: skip
                self._targets = {t.care_area: t for t in db.execute(select(ReleaseTarget)).scalars()}
                batches: dict[str, tuple[int, list[m.EventRecord]]] = {}
                for sender, message in checked:
                    row = rows.get(sender)
                    try:
                        if row is None or row.lifecycle != "commissioned":
                            raise InputError("pump", "unknown pump" if row is None else "decommissioned pump")
                        match message.body:
                            case m.Events(events=records):
                                batches.setdefault(sender, (row.stored_through, []))[1].extend(records)
                            case m.Status() as status if self._unchanged(sender, row.care_area, status):
                                self.live.put(sender, Held(status, now), written=False)
                            case body:
                                pump = db.get(Pump, sender)
                                assert pump is not None
                                replies += [(sender, r) for r in self._dispatch(db, pump, body, now)]
                                if isinstance(body, m.Status):
                                    fresh[sender] = Held(body, now)
                    except InputError as e:  # raised before the message wrote anything
                        refused.append((sender, str(e)))
                raised = False
                for pump_id, stored in events.store(db, batches, self.live.drug, now).items():
                    raised |= bool(alarms.follow(db, pump_id, rows[pump_id].care_area, stored.new, now))
                    replies.append((pump_id, m.EventsAck(through=stored.through)))
                self._tick(db, force=raised)  # a new alarm reaches the stations without the rate limit
        except SQLAlchemyError as e:
            if len(checked) > 1:
                for sender, message in checked:
                    self._store([(sender, message)])
                return
            log.warning("pump %s message not stored (%s); nothing acknowledged, the pump resends", checked[0][0], e)
            return
        for pump_id, held in fresh.items():
            self.live.put(pump_id, held, written=True)
        for sender, reason in refused:
            self.reject(sender, reason)
        for _, message in checked:
            self._seen[message.id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        for sender, reply in replies:
            self.send(sender, reply)

    def _unchanged(self, pump: str, care_area: str, status: m.Status) -> bool:
        """A status that needs only the live state: the last one held changes nothing the registry reads,
        and the pump runs its care area's current release (else it may be due an offer). Stale: InputError."""
        held = self.live.get(pump)
        if held is None:
            return False
        _stale(held.status.last_seq, held.status.t_us, status)
        if shape(held.status) != shape(status):
            return False
        goal = self._targets.get(care_area)
        return goal is None or (status.library is not None and status.library.hash == self._hash_of(goal.release_id))

    def _hash_of(self, release: str) -> str | None:
        if release not in self._release_hash:
            with self.sessions() as db:
                row = db.get(Release, release)
                if row is None:
                    return None
                self._release_hash[release] = row.library_hash
        return self._release_hash[release]

    def _dispatch(self, db: Db, pump: Pump, body: m.UpBody, now: datetime) -> list[DownBody]:
        match body:
            case m.Status():
                previous = pump.status or {}
                _stale(int(previous.get("last_seq", 0)), int(previous.get("t_us", 0)), body)
                fleet.apply_status(db, pump, body, now)
                goal = self._targets.get(pump.care_area)
                offer = library.on_status(db, pump, goal, now, timedelta(seconds=self.settings.reoffer_after_s))
                return [offer] if offer is not None else []
            case m.CommandAck():
                if not (library.acknowledged(db, pump, body, now) or orders.acknowledged(db, pump, body, now)):
                    raise InputError("command_ack.command", f"unknown command {body.command}")
                return []
            case m.ChunkRequest():
                return [library.chunk(db, pump, body, now)]
            case m.Notice():
                db.add(LinkRejection(pump_id=pump.id, side="pump", at=now, reason=body.reason))
                log.warning("pump %s refused a message: %s", pump.id, body.reason)
                return []
            case _:  # events go through events.store
                raise InputError("message.body", f"unexpected {type(body).__name__}")


def _stale(last_seq: int, t_us: int, status: m.Status) -> None:
    if status.last_seq < last_seq and status.t_us < t_us:
        raise InputError("status", "stale (older than the status already held)")
