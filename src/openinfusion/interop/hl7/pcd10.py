"""PCD-10 Communicate Infusion Event Data (``ORU^R42^ORU_R01``) out, from the pump's event log.

One event per message (interop.md §2.5, IPEC): the event OBX on the MDS (``MDC_ATTR_EVT_COND`` and
``MDC_ATTR_EVT_SOURCE``) and the channel concerned, with the values at the event. The event log is
the only source (OI-IOP-3): :class:`Pcd10Reporter` walks each pump's log from its cursor, keeps the
channel's context (program, rate, last delivered volume) as the log tells it, and links every event
to the order whose program it belongs to (the order record whose ``confirmed_seq`` is the channel's
last PROGRAM_CONFIRMED): OBR-2 is the order's placer number, OBR-4 its give code, PID its patient.

Events: delivery start and resume (DELIV_START), stop (DELIV_STOP, with the not-delivering reason),
VTBI complete (DELIV_COMP), KVO start (DELIV_START, status kvo), confirmed rate change (DELIV_STOP
transitioning, then DELIV_START at the new rate), clinician bolus start and end (source clinician),
program cleared (PROG_CLEARED). Volumes infused are in every stop, complete and clear.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final

from openinfusion.interop import terminology as mdc
from openinfusion.interop.gateway import EventSource, OrderRecord, PumpStatus
from openinfusion.interop.hl7.message import format_ts
from openinfusion.interop.hl7.observations import (
    ChannelView,
    Obx,
    channel_rows,
    concentration_of,
    obx_segments,
    pump_rows,
    string,
)
from openinfusion.interop.hl7.writer import Sender, components, join, segment
from openinfusion.pump.dosing import Concentration, Patient, rate_to_dose
from openinfusion.pump.eventlog import EventKind, JsonValue, LoggedEvent, decode_quantity
from openinfusion.units import FlowRate, Quantity

DELIVERING: Final = "pump-delivery-status-delivering"
NOT_DELIVERING: Final = "pump-delivery-status-not-delivering"
TRANSITIONING: Final = "pump-delivery-status-transitioning"
KVO: Final = "pump-delivery-status-kvo"
CLINICIAN: Final = "pump-source-info-clinician"


def new_events(
    source: EventSource, cursors: dict[str, int]
) -> Iterator[tuple[str, PumpStatus, tuple[LoggedEvent, ...]]]:
    """Per pump with events past its cursor: (pump id, status, the new events); advances the cursor."""
    for pump_id in source.pump_ids():
        events = source.events(pump_id, cursors.get(pump_id, 0))
        if events:
            yield pump_id, source.status(pump_id), events
            cursors[pump_id] = events[-1].seq


@dataclass(frozen=True, slots=True)
class Report:
    """One message to send: which pump and log entry it documents, and its text."""

    pump_id: str
    seq: int
    kind: str
    text: str


@dataclass(slots=True)
class _Channel:
    """The context the log has told us so far for one channel."""

    rate: Quantity | None = None
    programmed: Quantity | None = None
    vtbi: Quantity | None = None
    delivered: Quantity | None = None
    confirmed_seq: int | None = None


@dataclass
class Pcd10Reporter:
    """Turns new event-log entries into PCD-10 messages (see the module docstring)."""

    source: EventSource
    sender: Sender
    cursors: dict[str, int] = field(default_factory=dict)
    _channels: dict[tuple[str, int], _Channel] = field(default_factory=dict)

    def poll(self) -> list[Report]:
        """PCD-10 messages for every event logged since the last poll, in log order."""
        reports: list[Report] = []
        for pump_id, status, events in new_events(self.source, self.cursors):
            orders = self.source.orders(pump_id)
            for event in sorted(events, key=_same_time_order):
                reports += self._event(pump_id, event, status.time_origin, status.library, orders)
        return reports

    def _event(self, pump_id: str, event: LoggedEvent, origin: datetime, library: str | None,
               orders: tuple[OrderRecord, ...]) -> list[Report]:  # fmt: skip
        if event.channel is None:
            return []
        ctx = self._channels.setdefault((pump_id, event.channel), _Channel())
        data = event.data
        kind = event.kind
        if kind is EventKind.PROGRAM_CONFIRMED:
            program = _mapping(data.get("program"))
            ctx.confirmed_seq, ctx.programmed = event.seq, _q(program.get("rate"))
            ctx.vtbi, ctx.delivered = _q(program.get("vtbi")), None
            return []
        if kind in (EventKind.RATE_CHANGED, EventKind.INFUSION_STARTED, EventKind.KVO_STARTED):
            ctx.rate = _q(data.get("rate")) or ctx.rate
        if "delivered" in data:
            ctx.delivered = _q(data.get("delivered"))
        order = next((o for o in orders if o.confirmed_seq is not None and o.confirmed_seq == ctx.confirmed_seq), None)
        base = self._view(event.channel + 1, ctx, order)
        when = origin + timedelta(microseconds=event.t.us)
        views: list[tuple[mdc.Code, ChannelView]] = []
        match kind:
            case EventKind.INFUSION_STARTED:
                views.append((mdc.EVT_DELIV_START, base))
            case EventKind.KVO_STARTED:
                views.append((mdc.EVT_DELIV_START, replace(base, delivery_status=KVO)))
            case EventKind.INFUSION_STOPPED:
                reason = "pump-stopped-not-specified" if data.get("reason") else "pump-stopped-by-clinician"
                stopped = replace(
                    base, infusing=False, delivery_status=NOT_DELIVERING, not_delivering=reason, rate=None
                )
                views.append((mdc.EVT_DELIV_STOP, stopped))
            case EventKind.VTBI_COMPLETE:
                views.append((mdc.EVT_DELIV_COMP, replace(base, delivery_status=TRANSITIONING)))
            case EventKind.TITRATION_CONFIRMED:
                ctx.programmed = ctx.rate = _q(data.get("rate"))
                views.append((mdc.EVT_DELIV_STOP, replace(base, delivery_status=TRANSITIONING)))
                views.append((mdc.EVT_DELIV_START, self._view(event.channel + 1, ctx, order)))
            case EventKind.BOLUS_STARTED:
                bolus = replace(base, source=CLINICIAN, delivery_status=TRANSITIONING, rate=_q(data.get("rate")),
                                vtbi=_q(data.get("volume")))  # fmt: skip
                views.append((mdc.EVT_DELIV_START, bolus))
            case EventKind.BOLUS_COMPLETED:
                views.append((mdc.EVT_DELIV_COMP, replace(base, source=CLINICIAN, delivery_status=TRANSITIONING)))
            case EventKind.PROGRAM_CLEARED:
                cleared = replace(base, infusing=False, delivery_status=NOT_DELIVERING, rate=None)
                views.append((mdc.EVT_PROG_CLEARED, cleared))
            case _:
                return []
        return [
            Report(
                pump_id, event.seq, code.refid, self._message(pump_id, when, code, view, library=library, order=order)
            )
            for code, view in views
        ]

    @staticmethod
    def _view(number: int, ctx: _Channel, order: OrderRecord | None) -> ChannelView:
        remaining = None
        if ctx.vtbi is not None and ctx.delivered is not None:
            left = ctx.vtbi.value - ctx.delivered.to(ctx.vtbi.unit).value
            remaining = Quantity(left if left > 0 else Fraction(0), ctx.vtbi.unit)
        return ChannelView(
            number=number, infusing=True, delivery_status=DELIVERING, rate=ctx.rate, programmed_rate=ctx.programmed,
            dose=_dose(order, ctx.programmed), vtbi=ctx.vtbi, delivered=ctx.delivered, remaining=remaining,
            drug=None if order is None else order.drug_label,
            concentration=None if order is None else concentration_of(order.concentration),
            weight=None if order is None else order.order.weight,
        )  # fmt: skip

    def _message(self, pump_id: str, when: datetime, code: mdc.Code, view: ChannelView, *, library: str | None,
                 order: OrderRecord | None) -> str:  # fmt: skip
        msh, _ = self.sender.msh("ORU^R42^ORU_R01", accept="AL", application="NE", profile="PCD-10")
        rows: list[Obx] = pump_rows(pump_id, library, None)
        rows.append(Obx((1, 0, 0, 2), mdc.ATTR_EVT_COND, "CWE", code.cwe()))
        rows.append(string((1, 0, 0, 3), mdc.ATTR_EVT_SOURCE, f"1.{view.number}.2.0"))
        rows += channel_rows(view)
        return join([msh, *patient_segments(order), observation_request(when, order, pump_id), *obx_segments(rows)])


def patient_segments(order: OrderRecord | None) -> list[str]:
    """PID (the order's patient, or none known) — PID is required in ORU."""
    if order is None:
        return [segment("PID", "", "", components("UNKNOWN"), "", '""')]
    o = order.order
    name = o.patient_name.rsplit(" ", 1)
    family, given = (name[-1], name[0] if len(name) > 1 else "") if o.patient_name else ('""', "")
    return [segment("PID", "", "", components(o.patient_id), "", components(family, given) if given else family)]


def observation_request(when: datetime, order: OrderRecord | None, pump_id: str, set_id: int = 1) -> str:
    """OBR: placer number and ordered drug (OBR-2, OBR-4) when there is an order, else the pump's drug or unknown."""
    stamp = format_ts(when)
    if order is None:
        unknown = "999999^Medication Unknown^99OI"
        return segment("OBR", str(set_id), "", components(pump_id, "OPENINFUSION"), unknown, "", "", stamp)
    o = order.order
    drug = components(o.drug_code or order.drug, o.drug_text or order.drug_label, o.drug_system or "99OI")
    placer = components(o.order_id, o.order_namespace)
    return segment("OBR", str(set_id), placer, components(pump_id, "OPENINFUSION"), drug, "", "", stamp)


def _dose(order: OrderRecord | None, rate: Quantity | None) -> Quantity | None:
    """The dose rate the programmed ``rate`` delivers for a dose-based order (exact, in the order's unit)."""
    o = None if order is None else order.order
    if order is None or o is None or order.dose is None or rate is None or o.strength is None or o.diluent is None:
        return None
    conc = Concentration(o.strength, o.diluent)
    return rate_to_dose(FlowRate.of(rate), conc, Patient(weight=o.weight, bsa=o.bsa), order.dose.unit)


def _same_time_order(event: LoggedEvent) -> tuple[int, int]:
    """Log order, except that a VTBI completion goes before the KVO start logged at the same instant."""
    return event.t.us, 1 if event.kind is EventKind.KVO_STARTED else 0


def _mapping(value: JsonValue) -> Mapping[str, JsonValue]:
    return value if isinstance(value, Mapping) else {}


def _q(value: JsonValue) -> Quantity | None:
    return None if value is None else decode_quantity(value)
