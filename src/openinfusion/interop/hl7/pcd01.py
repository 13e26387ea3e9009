"""PCD-01 Communicate PCD Data (``ORU^R01^ORU_R01``) out: each pump's status, periodic and on change.

The Device Observation Reporter sends every ``period`` (default 60 s, interop.md §2.1) and at once
when a channel's state, rate, drug or alarms change; never an interpolated value, only what the pump
status says now. One ORDER_OBSERVATION group per channel (OBR per channel, linked to its order when
the program came from one), the pump's MDS in each; the downstream line pressure, when the pump
reports it, with each channel's Delivery-Info (a local code, decision 0034; a pressure change alone
is not a change that sends a report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from openinfusion.interop.gateway import ChannelStatus, EventSource, OrderRecord, PumpStatus
from openinfusion.interop.hl7.observations import ChannelView, channel_rows, concentration_of, obx_segments, pump_rows
from openinfusion.interop.hl7.pcd10 import observation_request, patient_segments
from openinfusion.interop.hl7.writer import Sender, join
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Quantity


@dataclass
class Pcd01Reporter:
    """Periodic and on-change PCD-01 messages (see the module docstring)."""

    source: EventSource
    sender: Sender
    period: timedelta = timedelta(seconds=60)
    _last: dict[str, tuple[datetime, tuple[object, ...]]] = field(default_factory=dict)

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """(pump id, message) for every pump whose period has passed or whose status changed."""
        out = []
        for pump_id in self.source.pump_ids():
            status = self.source.status(pump_id)
            signature = tuple((c.state, c.rate, c.drug_label, c.alarms, c.order_id) for c in status.channels)
            last = self._last.get(pump_id)
            if last is None or now - last[0] >= self.period or last[1] != signature:
                out.append((pump_id, self.message(status, self.source.orders(pump_id))))
                self._last[pump_id] = (now, signature)
        return out

    def message(self, status: PumpStatus, orders: tuple[OrderRecord, ...]) -> str:
        """One PCD-01 for ``status`` (channels linked to their orders)."""
        msh, _ = self.sender.msh("ORU^R01^ORU_R01", accept="AL", application="NE", profile="PCD-01")
        by_id = {o.order.order_id: o for o in orders}
        first = next((by_id[c.order_id] for c in status.channels if c.order_id in by_id), None)
        lines = [msh, *patient_segments(first)]
        for channel in status.channels:
            order = by_id.get(channel.order_id or "")
            rows = pump_rows(status.pump_id, status.library, status.care_area) + channel_rows(_view(channel, order))
            lines.append(observation_request(status.at, order, status.pump_id, channel.number))
            lines += obx_segments(rows)
        return join(lines)


_DELIVERY = {
    ChannelState.INFUSING.value: "pump-delivery-status-delivering",
    ChannelState.KVO.value: "pump-delivery-status-kvo",
}
_STOPPED = {
    ChannelState.PAUSED.value: "pump-stopped-by-clinician",
    ChannelState.ALARM.value: "pump-stopped-alarming",
    ChannelState.FAILSAFE.value: "pump-stopped-alarming",
}


def _view(channel: ChannelStatus, order: OrderRecord | None) -> ChannelView:
    delivering = channel.state in _DELIVERY
    programmed = channel.vtbi is not None or channel.drug_label is not None or channel.rate.nl_per_h > 0
    return ChannelView(
        number=channel.number, infusing=delivering,
        delivery_status=_DELIVERY.get(channel.state, "pump-delivery-status-not-delivering"),
        not_delivering=None if delivering else _STOPPED.get(channel.state, "pump-stopped-not-specified"),
        rate=channel.rate.quantity(), programmed_rate=order.rate.quantity() if order is not None else None,
        dose=channel.dose, vtbi=None if channel.vtbi is None else channel.vtbi.quantity(),
        delivered=channel.delivered.quantity() if programmed else None,
        remaining=None if channel.remaining is None else channel.remaining.quantity(),
        time_left=None if channel.time_left is None else Quantity(channel.time_left.seconds / 60, _MIN),
        drug=channel.drug_label, concentration=concentration_of(channel.concentration),
        weight=None if order is None else order.order.weight, pressure_mmhg=channel.pressure_mmhg,
    )  # fmt: skip


_MIN = Quantity.of(1, "min").unit
