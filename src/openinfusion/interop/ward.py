"""An in-memory ward of real virtual pumps: the reference :class:`OrderGateway` and :class:`EventSource`.

Each pump is the firmware core (:class:`openinfusion.pump.pump.Pump`) on virtual hardware
(:class:`openinfusion.sim.virtual_pump.VirtualPump`) with the ward's signed drug library. Time is
simulated and moves only through :meth:`VirtualWard.advance`; wall-clock time is ``time_origin`` plus
pump time, the same for every pump.

Auto-programming with the nurse in the loop (OI-IOP-1; interop.md §2.2 step 5):

1. :meth:`deliver` checks the pump (known, running, channel free, same patient, request not stale),
   maps the order through the library and the pump's DERS check (:func:`plan_order`), and leaves it
   PENDING on the channel. Nothing moves.
2. At the pump the clinician :meth:`confirm` s what they verified: patient ID, drug, dose and rate.
   Any mismatch with the order is shown (returned) and logged in the pump's event log as a refused
   confirmation; nothing starts. A soft limit needs the override reason here. An order left pending for
   more than 30 minutes expires and must be sent again.
3. Only then is the program entered through the core (which runs its own DERS gate again) and started.
   The order record keeps the sequence number of the program's PROGRAM_CONFIRMED event, which links
   every later event of that program to the order (PCD-10, FHIR MedicationAdministration).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np

from openinfusion.druglib.model import Library
from openinfusion.druglib.package import simulation_release
from openinfusion.errors import DoseLimitError, InputError, TransitionRefusedError
from openinfusion.interop.gateway import ChannelStatus, Delivery, OrderRecord, OrderState, PumpStatus
from openinfusion.interop.mapping import Formulary, Plan, PumpTarget, plan_order
from openinfusion.interop.orders import InfusionOrder, OrderError, PivCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.pump.programs import DoseProgram, KvoSettings, RateLimits, Titration
from openinfusion.pump.pump import Phase, Pump, PumpConfig
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import ChannelConfig, VirtualPumpConfig
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import ML_PER_H, Duration, FlowRate, Instant, Quantity

MAX_ORDER_AGE: Final = dt.timedelta(minutes=15)  # older requests are stale (9022)
MAX_CLOCK_SKEW: Final = dt.timedelta(minutes=5)  # requests further in the future are invalid
PENDING_LIFETIME: Final = dt.timedelta(minutes=30)  # a pending order not confirmed by then expires
_FREE: Final = frozenset({ChannelState.IDLE, ChannelState.COMPLETE, ChannelState.PROGRAMMING})


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the clinician verified at the pump before starting an auto-programmed order."""

    clinician: str
    patient_id: str  # scanned from the wristband
    drug: str  # library drug id of the container hung (scanned from its label)
    rate: FlowRate  # as read on the pump's screen
    dose: Quantity | None = None  # for a dose-based program
    override_reason: str | None = None  # from the library's list, when a soft limit was crossed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a confirmation did: started or not, and every mismatch or refusal, in words."""

    started: bool
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class _Bed:
    world: VirtualPump
    pump: Pump
    driver: Driver
    patient_id: str | None = None


class VirtualWard:
    """Virtual pumps on one library, in one simulated time (see the module docstring)."""

    def __init__(self, library: Library, *, time_origin: dt.datetime, seed: int = 0) -> None:
        if time_origin.tzinfo is None:
            raise InputError("time_origin", "needs a UTC offset")
        self.library = library
        self.formulary = Formulary(library)
        self.time_origin = time_origin
        self.seed = seed
        self._keys, self._package = simulation_release(library, f"ward:{seed}")
        self._beds: dict[str, _Bed] = {}
        self._orders: dict[str, list[OrderRecord]] = {}
        self._plans: dict[int, Plan] = {}  # id(record) -> the plan it was made from
        self._t = Instant(0)

    # --- pumps and time -----------------------------------------------------------------------------

    def add_pump(self, pump_id: str, care_area: str | None, channels: int = 1) -> Pump:
        """A new LVP pump of ``channels`` channels in ``care_area``, powered on and through its self-test."""
        if pump_id in self._beds or not pump_id.strip() or "/" in pump_id:
            raise InputError("pump_id", f"{pump_id!r} is empty, has a '/' or is already on the ward")
        rng = np.random.default_rng([self.seed, len(self._beds)])
        world = VirtualPump(VirtualPumpConfig(channels=(ChannelConfig(),) * channels, record_series=False), rng)
        settings = tuple(ChannelSettings(kvo=KvoSettings(enabled=True, rate=FlowRate.ml_h(1))) for _ in range(channels))
        config = PumpConfig(
            pump_id=pump_id, channels=settings, care_area=care_area, time_origin=self.time_origin.isoformat()
        )
        pump = Pump(world.hardware, world.calibrations, config, trusted_keys=self._keys, library_package=self._package)
        driver = Driver(world, pump)
        driver.run_until(self._t)
        self._beds[pump_id] = _Bed(world, pump, driver)
        self._orders[pump_id] = []
        return pump

    def pump(self, pump_id: str) -> Pump:
        """The pump's firmware core (its front panel acts through this)."""
        return self._bed(pump_id).pump

    def hardware(self, pump_id: str) -> VirtualPump:
        """The pump's virtual hardware, for scenario controls (occlude a line, open a door)."""
        return self._bed(pump_id).world

    def _bed(self, pump_id: str, where: str = "pump") -> _Bed:
        bed = self._beds.get(pump_id)
        if bed is None:
            raise OrderError(where, f"no pump {pump_id!r} on this ward", PivCode.UNKNOWN_INFUSER)
        return bed

    def now(self) -> dt.datetime:
        """Wall-clock time of the ward (time_origin + simulated time)."""
        return self.time_origin + dt.timedelta(microseconds=self._t.us)

    def advance(self, duration: Duration) -> None:
        """Run every pump on its virtual hardware for ``duration``."""
        self._t = self._t + duration
        for bed in self._beds.values():
            bed.driver.run_until(self._t)

    def associate(self, pump_id: str, patient_id: str | None) -> None:
        """Bind the pump to a patient (PCIM association), or release it (None)."""
        self._bed(pump_id).patient_id = patient_id

    # --- OrderGateway ---------------------------------------------------------------------------------

    def deliver(self, order: InfusionOrder) -> Delivery:
        try:
            if order.control == "XO":
                return self._change(order)
            record = self._pending(order)
        except OrderError as e:
            return Delivery(order, False, e.code, e.where, e.why)
        return Delivery(order, True, warnings=record.findings, notes=self._plans[id(record)].notes)

    def _change(self, order: InfusionOrder) -> Delivery:
        """XO: a new rate or dose for the order's running program, held by the pump until the clinician confirms it."""
        bed = self._bed(order.pump_id, order.at("pump"))
        self._check_time(order)
        record = next((r for r in reversed(self._orders[order.pump_id])
                       if r.order.order_id == order.order_id and r.state is OrderState.RUNNING), None)  # fmt: skip
        if record is None:
            raise OrderError(order.at("order_id"), f"no running order {order.order_id} on pump {order.pump_id}",
                             PivCode.INVALID_PARAMETER)  # fmt: skip
        if order.patient_id != record.order.patient_id:
            raise OrderError(order.at("patient"), f"order {order.order_id} is for {record.order.patient_id}",
                             PivCode.PATIENT_MISMATCH)  # fmt: skip
        if order.rate is None:
            raise OrderError(order.at("rate"), "a change needs the new rate or dose rate", PivCode.MISSING_PARAMETER)
        expected = record.dose.unit if record.dose is not None else ML_PER_H
        if not order.rate.unit.same_dimension(expected):
            raise OrderError(order.at("rate_unit"), f"{order.rate.unit.code} cannot change a program dosed in "
                             f"{expected.code}", PivCode.UNITS_NOT_LIBRARY)  # fmt: skip
        change = Titration(order.rate if record.dose is not None else FlowRate.of(order.rate))
        try:
            bed.pump.titrate(record.channel - 1, change)
        except DoseLimitError as e:
            code = PivCode.HARD_LIMIT if "hard limit" in e.why else PivCode.OUT_OF_RANGE
            raise OrderError(order.at("rate"), e.why, code) from None
        except TransitionRefusedError as e:
            raise OrderError(order.at("pump"), e.reason, PivCode.CANNOT_ACCEPT) from None
        except InputError as e:
            raise OrderError(order.at("rate"), e.why, PivCode.INVALID_PARAMETER) from None
        record.history.append((self.now(), f"change to {order.rate} requested; waits for confirmation at the pump"))
        return Delivery(order, True, notes=order.notes)

    def _pending(self, order: InfusionOrder) -> OrderRecord:
        bed = self._bed(order.pump_id, order.at("pump"))
        pump = bed.pump
        number = order.channel if order.channel is not None else (1 if len(pump.channels) == 1 else 0)
        if not 1 <= number <= len(pump.channels):
            raise OrderError(order.at("pump"), f"pump {order.pump_id} has channels 1..{len(pump.channels)}: "
                               "name one as <pump>/<channel>", PivCode.UNKNOWN_INFUSER)  # fmt: skip
        self._check_time(order)
        if pump.phase is not Phase.RUNNING:
            raise OrderError(order.at("pump"), f"pump is {pump.phase.value.replace('_', ' ')}", PivCode.CANNOT_ACCEPT)
        channel = pump.channels[number - 1]
        if channel.state is ChannelState.ALARM or channel.state is ChannelState.FAILSAFE:
            raise OrderError(order.at("pump"), f"channel {number} is in {channel.state.value}", PivCode.ALARMING)
        if channel.state not in _FREE:
            raise OrderError(order.at("pump"), f"channel {number} is {channel.state.value}", PivCode.INFUSER_BUSY)
        if self.pending(order.pump_id, number) is not None:
            raise OrderError(order.at("pump"), f"channel {number} already has a pending order", PivCode.INFUSER_BUSY)
        if bed.patient_id is not None and bed.patient_id != order.patient_id:
            raise OrderError(order.at("patient"), f"the pump is associated with another patient, not "
                               f"{order.patient_id}", PivCode.PATIENT_MISMATCH)  # fmt: skip
        active = pump.library.active
        if active is None:
            raise OrderError(order.at("pump"), "the pump has no active drug library", PivCode.CANNOT_ACCEPT)
        target = PumpTarget(active.index, pump.config.care_area, RateLimits.of(channel.cal), active.identity.version)
        plan = plan_order(order, self.formulary, target)
        bed.patient_id = order.patient_id
        record = _record(plan, order.pump_id, number, self.now())
        self._plans[id(record)] = plan
        self._orders[order.pump_id].append(record)
        return record

    def _check_time(self, order: InfusionOrder) -> None:
        check_age(order, self.now())

    # --- at the pump ------------------------------------------------------------------------------------

    def pending(self, pump_id: str, channel: int) -> OrderRecord | None:
        """The order waiting on ``channel`` (1-based), if any: what the pump's screen shows."""
        return next(
            (r for r in self._orders.get(pump_id, []) if r.channel == channel and r.state is OrderState.PENDING), None
        )

    def confirm(self, pump_id: str, channel: int, confirmation: Confirmation) -> Outcome:
        """The clinician confirms the pending order (see the module docstring, step 2 and 3)."""
        bed = self._bed(pump_id)
        record = self.pending(pump_id, channel)
        if record is None:
            return Outcome(False, (f"no pending order on channel {channel}",))
        mismatches = _mismatches(record, confirmation)
        pump, index = bed.pump, channel - 1
        now = bed.world.now
        if self.now() - record.received_at > PENDING_LIFETIME:
            record.state = OrderState.EXPIRED
            mismatches = [f"the order was pending for more than {_minutes(PENDING_LIFETIME)}: it must be sent again"]
        if mismatches:
            reason = f"order {record.order.reference}: " + "; ".join(mismatches)
            pump.log.append(now, EventKind.EVENT_REFUSED, index, event="confirm_order", reason=reason)
            record.history.append((self.now(), f"confirmation refused by {confirmation.clinician}: {reason}"))
            return Outcome(False, tuple(mismatches))
        plan = self._plans[id(record)]
        try:
            pump.program(index, plan.program, selection=plan.selection, patient=plan.patient,
                         override_reason=confirmation.override_reason, order=record.order.order_id)  # fmt: skip
        except (DoseLimitError, TransitionRefusedError, InputError) as e:
            record.history.append((self.now(), f"programming refused: {e}"))
            return Outcome(False, (str(e),))
        record.confirmed_by = confirmation.clinician
        record.confirmed_seq = _last(pump, EventKind.PROGRAM_CONFIRMED, index)
        record.state = OrderState.PROGRAMMED
        record.history.append((self.now(), f"confirmed and programmed by {confirmation.clinician}"))
        return self.start(pump_id, channel)

    def start(self, pump_id: str, channel: int) -> Outcome:
        """Start a confirmed, programmed order (again after a refused start, e.g. door open)."""
        bed = self._bed(pump_id)
        record = next((r for r in self._orders[pump_id] if r.channel == channel and r.state is OrderState.PROGRAMMED),
                      None)  # fmt: skip
        if record is None:
            return Outcome(False, (f"no confirmed order waiting to start on channel {channel}",))
        try:
            bed.pump.start(channel - 1)
        except TransitionRefusedError as e:
            record.history.append((self.now(), f"start refused: {e.reason}"))
            return Outcome(False, (e.reason,))
        record.state = OrderState.RUNNING
        record.history.append((self.now(), "started"))
        return Outcome(True)

    def reject(self, pump_id: str, channel: int, clinician: str, reason: str) -> None:
        """The clinician rejects the pending order at the pump (reported as 9023 where asked)."""
        record = self.pending(pump_id, channel)
        if record is None:
            raise InputError("channel", f"no pending order on channel {channel}")
        record.state = OrderState.REJECTED
        record.history.append((self.now(), f"rejected by {clinician}: {reason}"))

    # --- EventSource ---------------------------------------------------------------------------------------

    def pump_ids(self) -> tuple[str, ...]:
        return tuple(self._beds)

    def events(self, pump_id: str, since_seq: int = 0) -> tuple[LoggedEvent, ...]:
        return self._bed(pump_id).pump.log.events(since_seq)

    def orders(self, pump_id: str) -> tuple[OrderRecord, ...]:
        self._bed(pump_id)
        return tuple(self._orders[pump_id])

    def status(self, pump_id: str) -> PumpStatus:
        bed = self._bed(pump_id)
        pump = bed.pump
        identity = pump.library_identity
        channels = []
        for ch in pump.channels:
            record = self._running(pump_id, ch.index + 1, ch.state)
            program = ch.program
            vtbi = None if program is None else program.planned_vtbi()
            dose = program.dose if isinstance(program, DoseProgram) else None
            channels.append(
                ChannelStatus(
                    number=ch.index + 1,
                    state=ch.state.value,
                    rate=ch.rate(),
                    delivered=ch.live_counters().total,
                    vtbi=vtbi,
                    remaining=ch.remaining(),
                    time_left=ch.time_left() if program is not None else None,
                    drug_label=None if record is None else record.drug_label,
                    concentration=None if ch.selection is None else ch.selection.concentration,
                    dose=dose,
                    order_id=None if record is None else record.order.order_id,
                    alarms=tuple(a.code.value for a in pump.alarms.active(ch.index)),
                    pressure_mmhg=ch.line_pressure_mmhg,
                )
            )
        library = None if identity is None else f"{identity.owner} {identity.version}"
        return PumpStatus(pump_id, self.now(), self.time_origin, library, pump.config.care_area, bed.patient_id,
                          tuple(channels))  # fmt: skip

    def _running(self, pump_id: str, channel: int, state: ChannelState) -> OrderRecord | None:
        if state in (ChannelState.IDLE, ChannelState.PROGRAMMING):
            return None
        found = [r for r in self._orders[pump_id] if r.channel == channel and r.confirmed_seq is not None]
        return found[-1] if found else None


def check_age(order: InfusionOrder, now: dt.datetime) -> None:
    """Refuse a request older than :data:`MAX_ORDER_AGE` (9022) or too far in the future (9004)."""
    age = now - order.requested_at
    if age > MAX_ORDER_AGE:
        raise OrderError(order.at("requested_at"), f"requested {_minutes(age)} ago (stale after "
                         f"{_minutes(MAX_ORDER_AGE)})", PivCode.STALE)  # fmt: skip
    if -age > MAX_CLOCK_SKEW:
        raise OrderError(order.at("requested_at"), f"requested {_minutes(-age)} in the future",
                         PivCode.INVALID_PARAMETER)  # fmt: skip


def _record(plan: Plan, pump_id: str, channel: int, now: dt.datetime) -> OrderRecord:
    program = plan.program
    findings = tuple(f"soft limit: {f}" for f in plan.result.findings)
    record = OrderRecord(
        order=plan.order, pump_id=pump_id, channel=channel, state=OrderState.PENDING, received_at=now,
        drug=plan.selection.drug, drug_label=plan.display_name, concentration=plan.selection.concentration,
        dose=program.dose if isinstance(program, DoseProgram) else None, rate=program.primary_rate(),
        vtbi=program.planned_vtbi(), findings=findings,
    )  # fmt: skip
    record.history.append((now, "pending at the pump" + (f" ({'; '.join(findings)})" if findings else "")))
    return record


def _mismatches(record: OrderRecord, confirmation: Confirmation) -> list[str]:
    found = []
    if confirmation.patient_id != record.order.patient_id:
        found.append(f"patient {confirmation.patient_id} is not the order's {record.order.patient_id}")
    if confirmation.drug != record.drug:
        found.append(f"drug {confirmation.drug} is not the order's {record.drug}")
    if record.dose is not None and (confirmation.dose is None or not confirmation.dose.equals(record.dose)):
        found.append(f"dose {confirmation.dose} is not the order's {record.dose}")
    if confirmation.rate != record.rate:
        found.append(f"rate {confirmation.rate} is not the order's {record.rate}")
    return found


def _last(pump: Pump, kind: EventKind, channel: int) -> int | None:
    for event in reversed(pump.log.events()):
        if event.kind is kind and event.channel == channel:
            return event.seq
    return None


def _minutes(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"
