"""Core values to and from their wire form: exact quantities with UCUM codes, library identities, status."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from openinfusion.agent import messages as m
from openinfusion.druglib.package import LibraryIdentity
from openinfusion.pump.eventlog import encode_duration, encode_quantity, encode_rate, encode_volume
from openinfusion.pump.status import PumpStatus
from openinfusion.units import Duration, FlowRate, Quantity, Volume

if TYPE_CHECKING:
    from openinfusion.agent.agent import AgentConfig


def quantity(q: Quantity | Volume | FlowRate | Duration) -> m.WireQuantity:
    """mL for volumes, mL/h for rates, s for durations, a quantity's own unit otherwise."""
    match q:
        case Volume():
            fields = encode_volume(q)
        case FlowRate():
            fields = encode_rate(q)
        case Duration():
            fields = encode_duration(q)
        case _:
            fields = encode_quantity(q)
    return m.WireQuantity.model_validate(fields)


def pressure(mmhg: float | None) -> m.WireQuantity | None:
    """A line pressure to 0.1 mmHg (UCUM ``mm[Hg]``); None when unknown or not finite."""
    if mmhg is None or not math.isfinite(mmhg):
        return None
    return m.WireQuantity(value=f"{mmhg:.1f}", unit="mm[Hg]")


def library(identity: LibraryIdentity | None) -> m.WireLibrary | None:
    return None if identity is None else m.WireLibrary.model_validate(identity.to_json())


def status_message(status: PumpStatus, config: AgentConfig, last_seq: int, pending: tuple[str, ...]) -> m.Status:
    return m.Status(
        model=config.model,
        firmware=config.firmware,
        t_us=status.t.us,
        phase=status.phase,
        on_mains=status.on_mains,
        battery_permille=status.battery_permille,
        battery_remaining=quantity(status.battery_remaining),
        library=library(status.library),
        staged_library=library(status.staged_library),
        last_seq=last_seq,
        channels=tuple(
            m.ChannelReport(
                index=c.index,
                state=c.state,
                drug=c.drug,
                concentration=c.concentration,
                dose=None if c.dose is None else quantity(c.dose),
                rate=quantity(c.rate),
                infused=quantity(c.infused),
                vtbi_remaining=None if c.vtbi_remaining is None else quantity(c.vtbi_remaining),
                time_remaining=None if c.time_remaining is None else quantity(c.time_remaining),
                pressure=pressure(c.line_pressure_mmhg),
            )
            for c in status.channels
        ),
        alarms=tuple(
            m.AlarmReport(instance=a.instance, code=a.code, channel=a.channel, priority=a.priority, state=a.state)
            for a in status.alarms
        ),
        pending_orders=pending,
    )
