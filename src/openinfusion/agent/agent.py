"""The pump agent: publishes a pump's status and every event, and takes the server's commands.

Theory of operation
-------------------
The driver calls :meth:`PumpAgent.poll` from the pump's own loop (after services); the agent never
runs on a network thread and the core never waits on it. Each poll:

1. drains the link's inbound queue; each message is decoded (:func:`~openinfusion.agent.messages.decode_down`),
   checked (addressed to this pump, id not seen before) and acted on, or refused: the reason is kept in
   :attr:`PumpAgent.refusals` and reported to the server as a ``notice``;
2. sends the events the server has not acknowledged, in sequence order, in batches, each with the patient
   its channel served then (the last ``patient_changed`` before it). The pump's own event
   log is the buffer: nothing is copied or dropped while offline. After a reconnection, or when
   acknowledgements stall for ``resend_after_s``, it goes back to the last acknowledged event and sends
   again (the server stores each (pump, seq) once);
3. sends a status every ``status_interval_s`` and at once when a channel state, an alarm or a library changes.

Commands never change a running infusion by themselves (OI-NET-1); events reach the server exactly once (OI-NET-2):

* a library release is pulled in chunks (resumable from the bytes held), its SHA-256 checked, then handed to
  :meth:`Pump.receive_library`, which verifies the signature and only stages it; the core activates it
  when no infusion runs (OI-DERS-6);
* a remote program must carry a valid server signature over (pump, order), an unseen nonce and an expiry
  in the future (at most :data:`MAX_ORDER_LIFETIME` ahead); it then waits in :attr:`PumpAgent.pending` until a
  clinician at the pump calls :meth:`PumpAgent.confirm`, which programs and starts through the same guarded
  core actions (DERS included) as the keypad. A replayed, expired, foreign or unsigned order is refused.
  With a :class:`BedsideCheck` (what the clinician verified: wristband, bag label, the rate on the screen) a
  mismatch with the order is logged in the pump's event log (``event_refused``, ``confirm_order``), reported
  to the server and starts nothing; the order stays pending. The program carries the order id into its
  ``program_confirmed`` event (auto-documentation links by the event log).
"""

from __future__ import annotations

import base64
import hashlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.agent import messages as m
from openinfusion.agent.link import PumpLink
from openinfusion.agent.wire import status_message
from openinfusion.errors import InputError, OpenInfusionError
from openinfusion.pump.ders import LibraryEventKind
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, EventLog, decode_quantity
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.programs import ContinuousProgram, DoseProgram, Program, RateLimits
from openinfusion.pump.pump import Pump
from openinfusion.pump.status import snapshot
from openinfusion.units import FlowRate, Quantity, Volume

MAX_ORDER_LIFETIME: Final = timedelta(hours=1)
CONFIRMED_AT_PUMP: Final = "confirmed at the pump"  # the acknowledgement's reason; " by <clinician>" when known
SEEN_IDS: Final = 4096  # message ids remembered for duplicate detection
MAX_REFUSALS: Final = 1000
EVENTS_PER_BATCH: Final = 50
IN_FLIGHT: Final = 2000  # events sent but not yet acknowledged, at most


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    model: str = "openinfusion-virtual"
    firmware: str = "0.1.0"
    status_interval_s: float = 1.0
    resend_after_s: float = 5.0
    order_keys: tuple[Ed25519PublicKey, ...] = ()  # the server's order-signing keys (commissioning)


@dataclass(frozen=True, slots=True)
class BedsideCheck:
    """What the clinician verified at the pump before confirming an order."""

    clinician: str
    patient: str | None  # scanned from the wristband (checked when the order names a patient)
    drug: str  # library drug id of the container hung (scanned from its label)
    rate: FlowRate  # as read on the pump's screen
    dose: Quantity | None = None  # for a dose-based order


@dataclass(frozen=True, slots=True)
class Refusal:
    at: datetime
    message: str | None  # its id, when it had a readable one
    reason: str


@dataclass(slots=True)
class _Download:
    release: str
    size: int
    sha256: str
    data: bytearray
    asked_at: float


class _Patients:
    """Which patient each channel served at each seq, read from the log's ``patient_changed`` events, so every
    event is sent with its patient (also when sent again after a reconnection)."""

    def __init__(self) -> None:
        self._read = 0  # the log is read up to this seq
        self._changes: dict[int, tuple[list[int], list[str | None]]] = {}  # channel -> (seqs, patient ids)

    def at(self, log: EventLog, seq: int, channel: int | None) -> str | None:
        if seq > self._read:
            for e in log.events(self._read):
                if e.kind is EventKind.PATIENT_CHANGED and e.channel is not None:
                    seqs, ids = self._changes.setdefault(e.channel, ([], []))
                    value = e.data.get("patient_id")
                    seqs.append(e.seq)
                    ids.append(value if isinstance(value, str) else None)
            self._read = log.last_seq
        if channel is None or channel not in self._changes:
            return None
        seqs, ids = self._changes[channel]
        i = bisect_right(seqs, seq)
        return ids[i - 1] if i else None


class PumpAgent:
    """The communication processor of one pump."""

    def __init__(
        self,
        pump: Pump,
        link: PumpLink,
        config: AgentConfig,
        *,
        wall: Callable[[], datetime],
        monotonic: Callable[[], float],
        time_origin: datetime,
    ) -> None:
        self.pump = pump
        self.link = link
        self.config = config
        self.status_interval_s = config.status_interval_s
        self._wall = wall
        self._mono = monotonic
        self._origin = time_origin
        self.acked = 0  # the server stored every event up to this seq
        self._sent = 0
        self._last_progress = monotonic()
        self._epoch = link.epoch
        self._last_status = float("-inf")
        self._last_shape: object = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._nonces: dict[str, datetime] = {}
        self._outbox: list[m.UpMessage] = []
        self._download: _Download | None = None
        self._patients = _Patients()
        self.pending: dict[str, m.RemoteProgram] = {}
        self.refusals: list[Refusal] = []

    @property
    def pump_id(self) -> str:
        return self.pump.config.pump_id

    # --- the loop ------------------------------------------------------------------------------------

    def poll(self) -> None:
        """Receive, then send what is due. Cheap when there is nothing to do; never blocks."""
        for data in self.link.receive():
            self._handle(data)
        if not self.link.connected:
            return
        if self.link.epoch != self._epoch:  # reconnected: resend from the last acknowledgement
            self._epoch = self.link.epoch
            self._sent = self.acked
            self._last_status = float("-inf")
            if self._download is not None:
                self._ask()
        self._flush_outbox()
        self._send_events()
        self._send_status()
        self._check_download()

    def _send(self, body: m.Status | m.Events | m.CommandAck | m.ChunkRequest | m.Notice) -> bool:
        return self.link.publish(m.encode(m.up(self.pump_id, self._wall(), body)))

    def _queue(self, body: m.CommandAck | m.ChunkRequest | m.Notice) -> None:
        self._outbox.append(m.up(self.pump_id, self._wall(), body))
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        while self._outbox and self.link.connected:
            if not self.link.publish(m.encode(self._outbox[0])):
                return
            self._outbox.pop(0)

    def _send_events(self) -> None:
        now = self._mono()
        if self._sent > self.acked and now - self._last_progress > self.config.resend_after_s:
            self._sent, self._last_progress = self.acked, now  # acknowledgements stalled: go back
        last = self.pump.log.last_seq
        while self._sent < last and self._sent - self.acked < IN_FLIGHT:
            batch = self.pump.log.events(self._sent)[:EVENTS_PER_BATCH]
            records = tuple(
                m.EventRecord(
                    seq=e.seq,
                    t_us=e.t.us,
                    at=self._origin + timedelta(microseconds=e.t.us),
                    kind=e.kind.value,
                    channel=e.channel,
                    patient=self._patients.at(self.pump.log, e.seq, e.channel),
                    data=e.to_json()["data"],
                )
                for e in batch
            )
            if not self._send(m.Events(events=records)):
                return
            self._sent = records[-1].seq

    def _send_status(self) -> None:
        status = snapshot(self.pump)
        shape = (
            tuple(c.state for c in status.channels),
            tuple((a.instance, a.state) for a in status.alarms),
            status.library,
            status.staged_library,
        )
        due = self._mono() - self._last_status >= self.status_interval_s
        if (due or shape != self._last_shape) and self._send(
            status_message(status, self.config, self.pump.log.last_seq, tuple(self.pending))
        ):
            self._last_status, self._last_shape = self._mono(), shape

    # --- inbound ---------------------------------------------------------------------------------------

    def _refuse(self, message: str | None, reason: str) -> None:
        self.refusals.append(Refusal(self._wall(), message, reason))
        del self.refusals[:-MAX_REFUSALS]
        self._queue(m.Notice(refused=message, reason=reason[:500]))

    def _handle(self, data: bytes) -> None:
        try:
            message = m.decode_down(data)
        except m.LinkError as e:
            self._refuse(None, str(e))
            return
        if message.pump != self.pump_id:
            self._refuse(message.id, f"addressed to pump {message.pump}, not {self.pump_id}")
            return
        if message.id in self._seen:
            self._refuse(message.id, "duplicate message id (already acted on)")
            return
        self._seen[message.id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        body = message.body
        match body:
            case m.EventsAck():
                if body.through > self.acked:
                    self.acked = min(body.through, self.pump.log.last_seq)
                    self._sent = max(self._sent, self.acked)
                    self._last_progress = self._mono()
            case m.LibraryOffer():
                self._offer(body)
            case m.LibraryChunk():
                self._chunk(message.id, body)
            case m.RemoteProgram():
                self._order(message.id, body)
            case m.Config():
                self.status_interval_s = body.status_interval_s
                self._queue(m.CommandAck(command=body.config, outcome="applied"))

    # --- library download ---------------------------------------------------------------------------

    def _offer(self, offer: m.LibraryOffer) -> None:
        d = self._download
        if d is None or (d.release, d.size, d.sha256) != (offer.release, offer.size, offer.sha256):
            self._download = _Download(offer.release, offer.size, offer.sha256, bytearray(), self._mono())
        self._ask()  # resumes from the bytes already held

    def _ask(self) -> None:
        d = self._download
        assert d is not None
        d.asked_at = self._mono()
        self._queue(m.ChunkRequest(release=d.release, offset=len(d.data)))

    def _check_download(self) -> None:
        d = self._download
        if d is not None and self._mono() - d.asked_at > self.config.resend_after_s:
            self._ask()

    def _chunk(self, message: str, chunk: m.LibraryChunk) -> None:
        d = self._download
        if d is None or chunk.release != d.release:
            self._refuse(message, f"chunk of release {chunk.release}, which this pump did not ask for")
            return
        if chunk.offset != len(d.data):
            return  # a late duplicate of a chunk already held: the one asked for is on its way
        try:
            part = base64.b64decode(chunk.data, validate=True)
        except ValueError:
            self._refuse(message, "library chunk: data is not base64")
            return
        if not part or len(d.data) + len(part) > d.size:
            self._refuse(message, "library chunk: empty or beyond the offered size")
            self._download = None
            return
        d.data.extend(part)
        if len(d.data) < d.size:
            self._ask()
            return
        self._download = None
        if hashlib.sha256(d.data).hexdigest() != d.sha256:
            self._queue(m.CommandAck(command=d.release, outcome="rejected", reason="SHA-256 differs from the offer"))
            return
        event = self.pump.receive_library(bytes(d.data))  # verified by the core; staged, never forced active
        active = self.pump.library_identity
        if event.kind is LibraryEventKind.REJECTED:
            outcome: m.Outcome = "rejected"
        elif event.identity is not None and active is not None and active.hash == event.identity.hash:
            outcome = "activated"
        else:
            outcome = "staged"
        self._queue(m.CommandAck(command=d.release, outcome=outcome, reason=event.reason[:500]))

    # --- remote programming ---------------------------------------------------------------------------

    def _order(self, message: str, order: m.RemoteProgram) -> None:
        now = self._wall()
        self._nonces = {n: t for n, t in self._nonces.items() if t > now}
        reason = self._order_problem(order, now)
        if reason is not None:
            self._refuse(message, f"order {order.order}: {reason}")
            self._queue(m.CommandAck(command=order.order, outcome="refused", reason=reason))
            return
        self._nonces[order.nonce] = order.expires
        self.pending[order.order] = order
        self._queue(m.CommandAck(command=order.order, outcome="pending", reason="awaiting confirmation at the pump"))

    def _order_problem(self, order: m.RemoteProgram, now: datetime) -> str | None:
        if not _signed_by(self.config.order_keys, m.signed_bytes(self.pump_id, order), order.signature):
            return "signature missing or not from a trusted server key"
        if order.nonce in self._nonces or order.order in self.pending:
            return "replayed (nonce already used)"
        if order.expires <= now:
            return f"expired at {order.expires.isoformat()}"
        if order.expires - now > MAX_ORDER_LIFETIME:
            return "expiry too far ahead (at most 1 h)"
        if order.channel >= len(self.pump.channels):
            return f"no channel {order.channel + 1} on this pump"
        return None

    def confirm(self, order_id: str, *, override_reason: str | None = None, check: BedsideCheck | None = None) -> None:
        """A clinician at the pump confirms a pending order: programmed and started through the core's guards.

        Raises :class:`InputError` (and tells the server) if the order is unknown, expired, does not match
        ``check`` (it then stays pending) or is refused by the pump.
        """
        order = self.pending.get(order_id)
        if order is None:
            raise InputError("order", f"no pending order {order_id}")
        if order.expires <= self._wall():
            del self.pending[order_id]
            self._queue(m.CommandAck(command=order_id, outcome="expired", reason="expired before confirmation"))
            raise InputError("order", f"order {order_id} expired at {order.expires.isoformat()}")
        problems = [] if check is None else mismatches(order.program, check)
        if problems:
            reason = f"order {order.program.placer or order_id}: " + "; ".join(problems)
            self.pump.log.append(self.pump.hw.clock.now(), EventKind.EVENT_REFUSED, order.channel,
                                 event="confirm_order", reason=reason)  # fmt: skip
            self._queue(m.CommandAck(command=order_id, outcome="pending", reason=f"not confirmed: {reason}"[:500]))
            raise InputError("order", reason)
        del self.pending[order_id]
        p = order.program
        try:
            program, patient = ordered_program(p, RateLimits.of(self.pump.cal[order.channel]))
            selection = LibrarySelection(area=p.area, drug=p.drug, therapy=p.therapy, concentration=p.concentration)
            self.pump.program(order.channel, program, selection=selection, patient=patient,
                              override_reason=override_reason, order=order_id)  # fmt: skip
            self.pump.start(order.channel)
        except OpenInfusionError as e:
            self._queue(m.CommandAck(command=order_id, outcome="refused", reason=str(e)[:500]))
            raise
        by = "" if check is None else f" by {check.clinician}"
        self._queue(m.CommandAck(command=order_id, outcome="confirmed", reason=f"{CONFIRMED_AT_PUMP}{by}"[:500]))

    def decline(self, order_id: str) -> None:
        """A clinician at the pump declines a pending order."""
        if self.pending.pop(order_id, None) is not None:
            self._queue(m.CommandAck(command=order_id, outcome="refused", reason="declined at the pump"))


def _q(value: m.WireQuantity | None, where: str) -> Quantity | None:
    return None if value is None else decode_quantity(value.model_dump(), where)


def ordered_program(p: m.OrderedProgram, limits: RateLimits) -> tuple[Program, Patient | None]:
    """The program an order describes, and the patient it was dosed for; a dose-based one must run at ``p.rate``."""
    rate = FlowRate.of(decode_quantity(p.rate.model_dump(), "order.rate"))
    vtbi = _q(p.vtbi, "order.vtbi")
    volume = None if vtbi is None else Volume.of(vtbi)
    weight, bsa = _q(p.weight, "order.weight"), _q(p.bsa, "order.bsa")
    patient = None if weight is None and bsa is None else Patient(weight=weight, bsa=bsa)
    dose, strength, bag = _q(p.dose, "order.dose"), _q(p.strength, "order.strength"), _q(p.volume, "order.volume")
    if dose is None:
        return ContinuousProgram(rate=rate, vtbi=volume, limits=limits), patient
    if strength is None or bag is None:
        raise InputError("order.strength", "a dose-based order needs the container's drug amount and volume")
    program = DoseProgram(dose=dose, concentration=Concentration(strength, bag), patient=patient or Patient(),
                          vtbi=volume, limits=limits)  # fmt: skip
    if program.primary_rate() != rate:
        raise InputError(
            "order.rate", f"the pump computes {program.primary_rate()} for the dose, the order says {rate}"
        )
    return program, patient


def mismatches(p: m.OrderedProgram, check: BedsideCheck) -> list[str]:
    """Every difference between the order and what the clinician verified at the pump, in words."""
    found = []
    if p.patient is not None and check.patient != p.patient:
        found.append(f"patient {check.patient} is not the order's {p.patient}")
    if check.drug != p.drug:
        found.append(f"drug {check.drug} is not the order's {p.drug}")
    ordered = FlowRate.of(decode_quantity(p.rate.model_dump(), "order.rate"))
    if check.rate != ordered:
        found.append(f"rate {check.rate} is not the order's {ordered}")
    dose = _q(p.dose, "order.dose")
    if dose is not None and (check.dose is None or not check.dose.equals(dose)):
        found.append(f"dose {check.dose} is not the order's {dose}")
    return found


def _signed_by(keys: Sequence[Ed25519PublicKey], data: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    for key in keys:
        try:
            key.verify(raw, data)
            return True
        except InvalidSignature:
            continue
    return False
