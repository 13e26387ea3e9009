"""The boundary between interop and the pumps: two small protocols the server will implement.

* :class:`OrderGateway`: deliver a validated :class:`~openinfusion.interop.orders.InfusionOrder` to a
  pump channel as a PENDING program (DERS checked against the pump's library); the answer is a
  :class:`Delivery`, accepted or refused with its PIV code and reason. Nothing starts: the clinician
  confirms patient, drug, dose and rate at the pump first (nurse in the loop).
* :class:`EventSource`: per pump, the event log entries (the pump's record of truth), the current
  :class:`PumpStatus` and the :class:`OrderRecord` s that link programs to orders (auto-documentation).

:class:`openinfusion.interop.ward.VirtualWard` implements both over real virtual pumps; the server
wires them to its remote programming and event store (docs/interop.md, "Wiring").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

from openinfusion.interop.orders import InfusionOrder, PivCode
from openinfusion.pump.eventlog import LoggedEvent
from openinfusion.units import Duration, FlowRate, Quantity, Volume


class OrderState(Enum):
    """Where an order is at the pump."""

    PENDING = "pending"  # shown at the pump, waiting for the clinician
    RUNNING = "running"  # confirmed, programmed and started
    PROGRAMMED = "programmed"  # confirmed and programmed, not yet started (e.g. door open at start)
    REJECTED = "rejected"  # the clinician rejected it at the pump
    EXPIRED = "expired"  # not confirmed in time: it must be sent again
    REPLACED = "replaced"  # cleared: another program took the channel


@dataclass(frozen=True, slots=True)
class Delivery:
    """The gateway's answer to an order: pending at the pump, or refused (code, where, why)."""

    order: InfusionOrder
    accepted: bool
    code: PivCode | None = None
    where: str = ""
    why: str = ""
    warnings: tuple[str, ...] = ()  # soft-limit findings the clinician must override at the pump
    notes: tuple[str, ...] = ()  # deviations from the profile we tolerated (how the order was read)


@dataclass(slots=True)
class OrderRecord:
    """One order at a pump channel, linked to the program that runs it (``confirmed_seq``)."""

    order: InfusionOrder
    pump_id: str
    channel: int  # 1-based
    state: OrderState
    received_at: datetime
    drug: str  # library drug id
    drug_label: str  # display name (tall-man) as the pump shows it
    concentration: str | None
    dose: Quantity | None
    rate: FlowRate
    vtbi: Volume | None
    findings: tuple[str, ...] = ()
    confirmed_by: str | None = None
    confirmed_seq: int | None = None  # seq of the PROGRAM_CONFIRMED event this order became
    history: list[tuple[datetime, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel now: state, rate, volumes, program context (units in the types)."""

    number: int  # 1-based
    state: str  # openinfusion.pump.statechart.ChannelState value
    rate: FlowRate
    delivered: Volume
    vtbi: Volume | None
    remaining: Volume | None
    time_left: Duration | None
    drug_label: str | None
    concentration: str | None
    dose: Quantity | None
    order_id: str | None
    alarms: tuple[str, ...]  # active alarm codes (channel and pump scope)
    pressure_mmhg: float | None = None  # downstream line pressure, filtered (gauge mmHg, as the core measures)


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """A pump now: identity, library and care area, patient, channels."""

    pump_id: str
    at: datetime
    time_origin: datetime  # wall-clock time of pump time 0 (event times are offsets from it)
    library: str | None  # owner/version of the active library
    care_area: str | None
    patient_id: str | None
    channels: tuple[ChannelStatus, ...]


class OrderGateway(Protocol):
    """Deliver orders to pumps as pending programs."""

    def deliver(self, order: InfusionOrder) -> Delivery:
        """Put ``order`` on its pump channel as PENDING, or refuse it (never starts anything)."""
        ...


class EventSource(Protocol):
    """Read pumps for auto-documentation."""

    def pump_ids(self) -> tuple[str, ...]: ...

    def events(self, pump_id: str, since_seq: int = 0) -> tuple[LoggedEvent, ...]:
        """The pump's event log entries with ``seq > since_seq``."""
        ...

    def status(self, pump_id: str) -> PumpStatus: ...

    def orders(self, pump_id: str) -> tuple[OrderRecord, ...]:
        """Every order delivered to the pump, oldest first."""
        ...
