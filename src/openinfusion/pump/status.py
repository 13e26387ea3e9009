"""A read-only snapshot of a pump for its communication processor (the agent) and displays.

:func:`snapshot` reads the core's public state and changes nothing: calling it between services,
any number of times, leaves every channel, alarm and log exactly as it was. Volumes are integer nL,
rates nL/h and durations us (the core's own types), so nothing is rounded here.
"""

from __future__ import annotations

from dataclasses import dataclass

from openinfusion.druglib.package import LibraryIdentity
from openinfusion.pump.pump import Pump
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStatus:
    """One channel now: its state, what it infuses and how much is left."""

    index: int  # 0-based
    state: str  # a ChannelState value
    drug: str | None  # from the library selection (None: basic infusion or no program)
    concentration: str | None
    dose: Quantity | None  # the programmed dose of a dose-based program
    rate: FlowRate  # delivered now (0 unless infusing or KVO)
    infused: Volume  # since the program started, all containers
    vtbi_remaining: Volume | None  # None: no VTBI
    time_remaining: Duration | None  # None: runs until stopped
    line_pressure_mmhg: float | None = None  # downstream, filtered, gauge (the core's unit for pressures)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmStatus:
    instance: int
    code: str
    channel: int | None
    priority: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpStatus:
    pump_id: str
    t: Instant
    phase: str
    on_mains: bool
    battery_permille: int  # fuel gauge 0..1000
    battery_remaining: Duration
    library: LibraryIdentity | None
    staged_library: LibraryIdentity | None
    channels: tuple[ChannelStatus, ...]
    alarms: tuple[AlarmStatus, ...]


def _channel(pump: Pump, i: int) -> ChannelStatus:
    ch = pump.channels[i]
    program, selection = ch.program, ch.selection
    dose = getattr(program, "dose", None)
    return ChannelStatus(
        index=i,
        state=ch.state.value,
        drug=None if selection is None else selection.drug,
        concentration=None if selection is None else selection.concentration_text,
        dose=dose if isinstance(dose, Quantity) else None,
        rate=ch.rate(),
        infused=ch.live_counters().total,
        vtbi_remaining=ch.remaining(),
        time_remaining=ch.time_left(),
        line_pressure_mmhg=ch.line_pressure_mmhg,
    )


def snapshot(pump: Pump) -> PumpStatus:
    """The pump as it stands at its clock's present instant (read-only)."""
    power = pump.hw.power.status()
    staged = pump.library.staged
    return PumpStatus(
        pump_id=pump.config.pump_id,
        t=pump.hw.clock.now(),
        phase=pump.phase.value,
        on_mains=power.on_mains,
        battery_permille=power.charge_permille,
        battery_remaining=power.remaining,
        library=pump.library_identity,
        staged_library=None if staged is None else staged.identity,
        channels=tuple(_channel(pump, i) for i in range(len(pump.channels))),
        alarms=tuple(
            AlarmStatus(
                instance=a.instance,
                code=a.code.value,
                channel=a.channel,
                priority=a.priority.value,
                state=a.state.value,
            )
            for a in pump.alarms.active()
        ),
    )
