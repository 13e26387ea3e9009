"""The hospital server as the Infusion Order Consumer: an EHR order becomes a signed remote-program command.

:class:`ServerGateway` implements interop's :class:`~openinfusion.interop.gateway.OrderGateway` on the one
remote-programming path the server has (:func:`openinfusion.server.orders.create`: Ed25519-signed, nonce,
expiry; the pump keeps it pending until a clinician confirms it there). No second path: PCD-03 and FHIR
orders differ from the station's only in where they come from.

``deliver`` checks the pump as the fleet knows it (commissioned, running, channel free, no order already
waiting, not running another patient's order, request not stale), maps the order through the pump's
active drug library (the release the server distributed, verified with the pharmacy's keys) and the DERS
check (:func:`~openinfusion.interop.mapping.plan_order`), then creates the command, keeps what the EHR
ordered in the audit trail (``interop.order``, same transaction) and sends the command over the pump
link. Every refusal is a :class:`~openinfusion.interop.gateway.Delivery` with its PIV code, never an
exception. A rate change (PCD-03 ``XO``) of a remote order is refused (9016): titration is made at the pump.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import load_package
from openinfusion.errors import InputError
from openinfusion.interop.gateway import Delivery, OrderRecord, OrderState
from openinfusion.interop.mapping import Formulary, Plan, PumpTarget, plan_order
from openinfusion.interop.orders import InfusionOrder, OrderError, PivCode
from openinfusion.interop.ward import check_age
from openinfusion.pump.ders import DersIndex
from openinfusion.pump.eventlog import encode_quantity, encode_rate, encode_volume
from openinfusion.pump.programs import DoseProgram, RateLimits
from openinfusion.server import audit, orders
from openinfusion.server.db.models import Order, Pump, Release
from openinfusion.server.hospital import Hospital
from openinfusion.server.interop_store import ORDER_ACTION, order_json, orders_in
from openinfusion.sim.params import PeristalticParams
from openinfusion.units import Quantity

_FREE: Final = frozenset({"idle", "complete", "programming"})
_ALARMED: Final = frozenset({"alarm", "failsafe"})
_MODEL: Final = PeristalticParams()  # the fleet's pump model (openinfusion-virtual LVP): its rate grid
LIMITS: Final = RateLimits(min_rate=_MODEL.min_rate, max_rate=_MODEL.max_rate, resolution=_MODEL.resolution)


def _wire(q: Quantity | None) -> m.WireQuantity | None:
    return None if q is None else m.WireQuantity.model_validate(encode_quantity(q))


def ordered_program(plan: Plan) -> m.OrderedProgram:
    """The signed command's program: the plan's entry, rate and VTBI, with the EHR's identifiers."""
    program, order = plan.program, plan.order
    vtbi = program.planned_vtbi()
    dose = program if isinstance(program, DoseProgram) else None
    return m.OrderedProgram(
        area=plan.selection.area, drug=plan.selection.drug, therapy=plan.selection.therapy,
        concentration=plan.selection.concentration,
        rate=m.WireQuantity.model_validate(encode_rate(program.primary_rate())),
        vtbi=None if vtbi is None else m.WireQuantity.model_validate(encode_volume(vtbi)),
        dose=None if dose is None else _wire(dose.dose),
        strength=None if dose is None else _wire(dose.concentration.amount),
        volume=None if dose is None else _wire(dose.concentration.volume),
        weight=_wire(plan.patient.weight), bsa=_wire(plan.patient.bsa),
        patient=order.patient_id[:120], placer=order.reference[:120],
    )  # fmt: skip


class ServerGateway:
    """Interop's OrderGateway on the server's remote programming (see the module docstring)."""

    def __init__(self, hospital: Hospital, clock: Any = None) -> None:
        self.hospital = hospital
        self._now = clock or (lambda: datetime.now(UTC))
        self._libraries: dict[str, tuple[Library, DersIndex, Formulary]] = {}  # by release package SHA-256

    def deliver(self, order: InfusionOrder) -> Delivery:
        """Create the order's signed command and send it to the pump (see the module docstring)."""
        try:
            command, plan = self.command(order)
        except OrderError as e:
            return Delivery(order, False, e.code, e.where, e.why)
        self.hospital.send(order.pump_id, command)
        findings = tuple(f"soft limit: {f}" for f in plan.result.findings)
        return Delivery(order, True, warnings=findings, notes=plan.notes)

    def command(self, order: InfusionOrder) -> tuple[m.RemoteProgram, Plan]:
        """Check and map ``order`` and create (store and audit) its signed command; :class:`OrderError` if refused."""
        if order.control == "XO":
            raise OrderError(order.at("control"), "a rate change of a remote order is entered at the pump",
                             PivCode.OTHER)  # fmt: skip
        now = self._now()
        check_age(order, now)
        with self.hospital.sessions.begin() as db:
            pump = db.get(Pump, order.pump_id)
            if pump is None or pump.lifecycle != "commissioned":
                raise OrderError(order.at("pump"), f"no commissioned pump {order.pump_id!r}", PivCode.UNKNOWN_INFUSER)
            channel = self._channel(db, pump, order, now)
            library, index, formulary = self._library(db, pump, order)
            target = PumpTarget(index, pump.care_area, LIMITS, library.info.version)
            plan = plan_order(order, formulary, target)
            lifetime = timedelta(seconds=self.hospital.settings.order_lifetime_s)
            actor = f"ehr:{order.caregiver}"[:64]
            try:
                row, command = orders.create(db, self.hospital.order_key, pump_id=pump.id, channel=channel - 1,
                                             program=ordered_program(plan), actor=actor, lifetime=lifetime)  # fmt: skip
            except InputError as e:
                raise OrderError(order.at("pump"), e.why, PivCode.UNKNOWN_INFUSER) from None
            record = OrderRecord(
                order=order, pump_id=pump.id, channel=channel, state=OrderState.PENDING, received_at=now,
                drug=plan.selection.drug, drug_label=plan.display_name, concentration=plan.selection.concentration,
                dose=plan.program.dose if isinstance(plan.program, DoseProgram) else None,
                rate=plan.program.primary_rate(), vtbi=plan.program.planned_vtbi(),
                findings=tuple(str(f) for f in plan.result.findings),
            )  # fmt: skip
            audit.record(db, actor, ORDER_ACTION, f"order:{row.id}", None, order_json(record))
        return command, plan

    def _channel(self, db: Db, pump: Pump, order: InfusionOrder, now: datetime) -> int:
        """The 1-based channel the order is for, checked free as the pump's last status says."""
        status = pump.status or {}
        where = order.at("pump")
        if status.get("phase") != "running":
            raise OrderError(where, f"pump {pump.id} is not running ({status.get('phase', 'never reported')})",
                             PivCode.CANNOT_ACCEPT)  # fmt: skip
        channels = status.get("channels", [])
        number = order.channel if order.channel is not None else (1 if len(channels) == 1 else 0)
        if not 1 <= number <= len(channels):
            raise OrderError(where, f"pump {pump.id} has channels 1..{len(channels)}: name one as <pump>/<channel>",
                             PivCode.UNKNOWN_INFUSER)  # fmt: skip
        state = channels[number - 1]["state"]
        if state in _ALARMED:
            raise OrderError(where, f"channel {number} is in {state}", PivCode.ALARMING)
        if state not in _FREE:
            raise OrderError(where, f"channel {number} is {state}", PivCode.INFUSER_BUSY)
        waiting = db.execute(
            select(Order.id).where(Order.pump_id == pump.id, Order.channel == number - 1,
                                   Order.state.in_(("sent", "pending")), Order.expires_at > now)
        ).first()  # fmt: skip
        if waiting is not None:
            raise OrderError(where, f"channel {number} already has a pending order", PivCode.INFUSER_BUSY)
        busy = {c["index"] + 1 for c in channels if c["state"] not in _FREE}
        for record in orders_in(db, pump.id):
            if (
                record.channel in busy
                and record.state is OrderState.RUNNING
                and record.order.patient_id != order.patient_id
            ):
                raise OrderError(order.at("patient"), f"pump {pump.id} runs an order for another patient",
                                 PivCode.PATIENT_MISMATCH)  # fmt: skip
        return number

    def _library(self, db: Db, pump: Pump, order: InfusionOrder) -> tuple[Library, DersIndex, Formulary]:
        """The pump's active library, as released by the pharmacy (signatures verified)."""
        release = None
        if pump.library_hash is not None:
            release = db.execute(select(Release).where(Release.library_hash == pump.library_hash).limit(1)).scalar()
        if release is None:
            raise OrderError(order.at("pump"), f"pump {pump.id} runs no drug library the server distributed",
                             PivCode.CANNOT_ACCEPT)  # fmt: skip
        if release.sha256 not in self._libraries:
            library, _ = load_package(release.package, self.hospital.settings.library_keys)
            self._libraries[release.sha256] = library, DersIndex.build(library), Formulary(library)
        return self._libraries[release.sha256]
