"""The server's event store as interop's :class:`~openinfusion.interop.gateway.EventSource` (auto-documentation).

Everything is read from the database, so every server process documents alike:

* events: the stored event log of each pump (:class:`~openinfusion.server.db.models.Event`), as the pump
  logged them;
* status: the pump's last status message, with wall-clock time from its newest event (``at - t_us``);
* orders: every auto-programmed order (an ``interop.order`` entry of the audit trail holds what the EHR
  ordered and how it was mapped, written in the transaction that created the signed command). The link from
  an order to the program that ran it is the pump's event log: the ``program_confirmed`` event whose
  ``order`` is the command's id (decision 0033).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.agent.agent import CONFIRMED_AT_PUMP
from openinfusion.interop.gateway import ChannelStatus, OrderRecord, OrderState, PumpStatus
from openinfusion.interop.orders import InfusionOrder
from openinfusion.pump.eventlog import EventKind, LoggedEvent, decode_quantity, encode_quantity
from openinfusion.server.db.models import AuditEntry, Event, Order, Pump
from openinfusion.server.hospital import Hospital
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume

ORDER_ACTION: Final = "interop.order"
_STATES: Final = {
    "sent": OrderState.PENDING,
    "pending": OrderState.PENDING,
    "confirmed": OrderState.RUNNING,
    "refused": OrderState.REJECTED,
    "expired": OrderState.EXPIRED,
}
_QUANTITIES: Final = ("vtbi", "rate", "strength", "diluent", "duration", "weight", "bsa")
_TEXTS: Final = ("order_id", "control", "order_namespace", "caregiver", "patient_id", "patient_name", "drug_code",
                 "drug_system", "drug_text", "indication", "pump_id", "care_area")  # fmt: skip


def aware(when: datetime) -> datetime:
    """SQLite returns naive datetimes: they are UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _q(value: Any) -> Quantity | None:
    return None if value is None else decode_quantity(value)


def order_json(record: OrderRecord) -> dict[str, Any]:
    """What the audit entry keeps of an order record (the order as read, and as mapped)."""
    o = record.order
    order: dict[str, Any] = {name: getattr(o, name) for name in _TEXTS}
    order |= {name: None if getattr(o, name) is None else encode_quantity(getattr(o, name)) for name in _QUANTITIES}
    order |= {"requested_at": o.requested_at.isoformat(), "channel": o.channel, "notes": list(o.notes)}
    return {
        "order": order, "pump_id": record.pump_id, "channel": record.channel, "drug": record.drug,
        "drug_label": record.drug_label, "concentration": record.concentration,
        "dose": None if record.dose is None else encode_quantity(record.dose),
        "rate": encode_quantity(record.rate.quantity()),
        "vtbi": None if record.vtbi is None else encode_quantity(record.vtbi.quantity()),
        "findings": list(record.findings), "received_at": record.received_at.isoformat(),
    }  # fmt: skip


def order_record(data: Mapping[str, Any], row: Order, confirmed_seq: int | None) -> OrderRecord:
    """The order record of an ``interop.order`` audit entry, in the state its command has now."""
    o = data["order"]
    order = InfusionOrder(
        order_id=o["order_id"], control=o["control"], order_namespace=o["order_namespace"],
        requested_at=datetime.fromisoformat(o["requested_at"]), caregiver=o["caregiver"], patient_id=o["patient_id"],
        patient_name=o["patient_name"], drug_code=o["drug_code"], drug_system=o["drug_system"],
        drug_text=o["drug_text"], indication=o["indication"], vtbi=_q(o["vtbi"]), rate=_q(o["rate"]),
        strength=_q(o["strength"]), diluent=_q(o["diluent"]), duration=_q(o["duration"]), pump_id=o["pump_id"],
        channel=o["channel"], weight=_q(o["weight"]), bsa=_q(o["bsa"]), care_area=o["care_area"],
        notes=tuple(o["notes"]),
    )  # fmt: skip
    vtbi = _q(data["vtbi"])
    state = _STATES.get(row.state, OrderState.PENDING)
    return OrderRecord(
        order=order, pump_id=data["pump_id"], channel=data["channel"], state=state,
        received_at=datetime.fromisoformat(data["received_at"]), drug=data["drug"], drug_label=data["drug_label"],
        concentration=data["concentration"], dose=_q(data["dose"]), rate=FlowRate.of(decode_quantity(data["rate"])),
        vtbi=None if vtbi is None else Volume.of(vtbi), findings=tuple(data["findings"]),
        confirmed_by=_confirmed_by(row) if confirmed_seq is not None else None, confirmed_seq=confirmed_seq,
        history=[(aware(row.updated_at), f"{row.state}: {row.reason}")],
    )  # fmt: skip


def _confirmed_by(row: Order) -> str | None:
    """The clinician the pump named when it acknowledged the confirmation, if it did."""
    by = row.reason.removeprefix(f"{CONFIRMED_AT_PUMP} by ")
    return by if row.state == "confirmed" and by != row.reason and by else None


def _event(row: Event) -> LoggedEvent:
    channel = row.channel
    return LoggedEvent(row.seq, Instant(row.t_us), EventKind(row.kind), channel, row.data)


def _wire(value: Any, unit: str) -> Quantity | None:
    return None if value is None else decode_quantity(value, f"status.{unit}")


class StoreSource:
    """Interop's EventSource over the server's database (see the module docstring)."""

    def __init__(self, hospital: Hospital) -> None:
        self.hospital = hospital

    def pump_ids(self) -> tuple[str, ...]:
        with self.hospital.sessions() as db:
            rows = db.execute(select(Pump.id).where(Pump.lifecycle == "commissioned").order_by(Pump.id)).scalars()
            return tuple(rows)

    def events(self, pump_id: str, since_seq: int = 0) -> tuple[LoggedEvent, ...]:
        with self.hospital.sessions() as db:
            rows = db.execute(
                select(Event).where(Event.pump_id == pump_id, Event.seq > since_seq).order_by(Event.seq)
            ).scalars()
            return tuple(_event(r) for r in rows)

    def status(self, pump_id: str) -> PumpStatus:
        with self.hospital.sessions() as db:
            pump = db.get(Pump, pump_id)
            newest = db.execute(
                select(Event).where(Event.pump_id == pump_id).order_by(Event.seq.desc()).limit(1)
            ).scalar()
            records = orders_in(db, pump_id)
        body: Mapping[str, Any] = (pump.status if pump is not None else None) or {}
        origin = datetime.now(UTC) if newest is None else aware(newest.at) - timedelta(microseconds=newest.t_us)
        running = {r.channel: r for r in records if r.state is OrderState.RUNNING}
        patient = next((r.order.patient_id for r in reversed(records) if r.state is not OrderState.EXPIRED), None)
        library = body.get("library")
        return PumpStatus(
            pump_id=pump_id, at=origin + timedelta(microseconds=int(body.get("t_us", 0))), time_origin=origin,
            library=None if not library else f"{library['owner']} {library['version']}",
            care_area=None if pump is None else pump.care_area, patient_id=patient,
            channels=tuple(_channel(c, body.get("alarms", ()), running) for c in body.get("channels", ())),
        )  # fmt: skip

    def orders(self, pump_id: str) -> tuple[OrderRecord, ...]:
        with self.hospital.sessions() as db:
            return orders_in(db, pump_id)


def orders_in(db: Db, pump_id: str) -> tuple[OrderRecord, ...]:
    """The auto-programmed orders of ``pump_id``, oldest first, linked to their programs by the event log."""
    rows = {o.id: o for o in db.execute(select(Order).where(Order.pump_id == pump_id)).scalars()}
    if not rows:
        return ()
    entries = db.execute(
        select(AuditEntry).where(AuditEntry.action == ORDER_ACTION, AuditEntry.target.in_([f"order:{i}" for i in rows]))
        .order_by(AuditEntry.id)
    ).scalars()  # fmt: skip
    confirmed = db.execute(
        select(Event).where(Event.pump_id == pump_id, Event.kind == EventKind.PROGRAM_CONFIRMED.value)
    ).scalars()
    seq_of = {str(e.data["order"]): e.seq for e in confirmed if isinstance(e.data.get("order"), str)}
    out = []
    for entry in entries:
        order_id = entry.target.removeprefix("order:")
        if entry.after is not None and order_id in rows:
            out.append(order_record(entry.after, rows[order_id], seq_of.get(order_id)))
    return tuple(out)


def _mmhg(value: Any) -> float | None:
    """A wire pressure (``mm[Hg]``, outside the units of dosing) as the core's float mmHg."""
    if not isinstance(value, Mapping) or value.get("unit") != "mm[Hg]":
        return None
    return float(value["value"])


def _channel(c: Mapping[str, Any], alarms: Any, running: Mapping[int, OrderRecord]) -> ChannelStatus:
    number = int(c["index"]) + 1
    record = running.get(number) if c["state"] not in ("idle", "programming") else None
    remaining, left = _wire(c.get("vtbi_remaining"), "vtbi_remaining"), _wire(c.get("time_remaining"), "time")
    infused = Volume.of(decode_quantity(c["infused"], "status.infused"))
    return ChannelStatus(
        number=number, state=c["state"], rate=FlowRate.of(decode_quantity(c["rate"], "status.rate")), delivered=infused,
        vtbi=None if remaining is None else Volume(infused.nl + Volume.of(remaining).nl),
        remaining=None if remaining is None else Volume.of(remaining),
        time_left=None if left is None else Duration.of(left),
        drug_label=None if record is None else record.drug_label, concentration=c.get("concentration"),
        dose=_wire(c.get("dose"), "dose"), order_id=None if record is None else record.order.order_id,
        alarms=tuple(a["code"] for a in alarms if a.get("channel") in (None, int(c["index"]))),
        pressure_mmhg=_mmhg(c.get("pressure")),
    )  # fmt: skip
