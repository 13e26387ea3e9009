"""The virtual pump's screen as data: what a nurse sees, read-only, as plain JSON-able values.

Pure: it reads the core's public state (channels, alarms, power, library) at the pump's present and
changes nothing. Every number is formatted with its unit here, without trailing zeros (ISMP), so the
browser only places text.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from openinfusion.pump.alarms import ActiveAlarm
from openinfusion.pump.channel import Channel
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import DoseProgram, SecondaryProgram
from openinfusion.pump.pump import Pump
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, FlowRate, Instant, Volume, format_decimal

LABELS = "ABCD"  # a channel as people read it, as on the pump's screen; files and JSON number them 1-4


def channel_label(index: int | None, *, numbered: bool = False) -> str:
    """Whose an event is, as a person reads it: the channel's letter (index 0 is A) or ``"pump"``.

    ``numbered`` adds the 1-based number that scenario files and the JSON outputs use: ``"A (1)"``.
    """
    if index is None:
        return "pump"
    return f"{LABELS[index]} ({index + 1})" if numbered else LABELS[index]


STATUS_TEXT = {
    ChannelState.IDLE: "No program",
    ChannelState.PROGRAMMING: "Programming",
    ChannelState.READY: "Ready to start",
    ChannelState.INFUSING: "Infusing",
    ChannelState.PAUSED: "Paused",
    ChannelState.ALARM: "Stopped: alarm",
    ChannelState.KVO: "KVO",
    ChannelState.COMPLETE: "Infusion complete",
    ChannelState.FAILSAFE: "Out of service",
}


def ml(v: Volume | None, places: int = 1) -> str | None:
    return None if v is None else f"{format_decimal(v.in_ml, places)} mL"


def ml_h(r: FlowRate) -> str:
    return f"{format_decimal(r.in_ml_h, 1)} mL/h"


def hhmm(d: Duration | None) -> str | None:
    """``1 h 05 min`` (a duration a nurse reads), or ``45 s`` under a minute."""
    if d is None:
        return None
    s = int(d.seconds)
    if s < 60:
        return f"{s} s"
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def clock(t: Duration) -> str:
    """hh:mm:ss from the start."""
    s = int(t.seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _dose(ch: Channel) -> str | None:
    """The programmed dose rate in its unit (shown next to mL/h), as the clinician entered it.

    The rate is the dose converted and rounded to the pump's resolution (dosing.py); the screen shows the
    dose ordered, not the few-per-mille difference the rounding makes.
    """
    program = ch.active
    shown = ch.state not in (ChannelState.KVO, ChannelState.COMPLETE)
    if isinstance(program, DoseProgram) and shown:
        return f"{format_decimal(program.dose.value, 3)} {program.dose.unit.code}"
    return None


def _drug(ch: Channel) -> dict[str, Any]:
    sel, program = ch.selection, ch.program
    conc = getattr(program, "concentration", None)
    return {
        "drug": None if sel is None else sel.drug,
        "concentration": (sel.concentration if sel is not None and sel.concentration else None)
        or (None if conc is None else str(conc)),
        "basic": program is not None and sel is None,
    }


def channel_status(ch: Channel, names: dict[str, str]) -> dict[str, Any]:
    """One channel's screen."""
    counters = ch.live_counters()
    program = ch.program
    secondary = isinstance(ch.active, SecondaryProgram) and ch.state is ChannelState.INFUSING
    status = "Secondary" if secondary else STATUS_TEXT[ch.state]
    pending = ch.pending
    drug = _drug(ch)
    out: dict[str, Any] = {
        "index": ch.index,
        "label": LABELS[ch.index],
        "state": ch.state.value,
        "status": status,
        **drug,
        "drug_name": names.get(drug["drug"] or "", drug["drug"]),
        "rate": ml_h(ch.rate()),
        "programmed_rate": None if program is None else ml_h((ch.active or program).primary_rate()),
        "dose": _dose(ch),
        "vtbi": None if program is None else ml(program.planned_vtbi()),
        "vtbi_left": _left(program.planned_vtbi() if program else None, counters.delivered),
        "infused_primary": ml(counters.delivered, 2),
        "infused_secondary": ml(counters.secondary, 2),
        "infused_kvo": ml(counters.kvo, 2),
        "time_left": hhmm(ch.time_left()),
        "pending_titration": None if pending is None else ml_h(pending.primary_rate()),
        "pca": _pca(ch),
    }
    return out


def _left(vtbi: Volume | None, delivered: Volume) -> str | None:
    return None if vtbi is None else ml(Volume(max(vtbi.nl - delivered.nl, 0)))


def _pca(ch: Channel) -> dict[str, Any] | None:
    program, ledger = ch.program, ch.pca
    if not isinstance(program, PcaProgram) or ledger is None:
        return None
    given = [d for d in ledger.demands if d.given]
    unit = program.demand_dose.unit.code
    total = sum((d.amount.value for d in given), Fraction(0))
    return {
        "demand_dose": f"{format_decimal(program.demand_dose.value, 3)} {unit}",
        "lockout": hhmm(program.lockout),
        "demands": len(ledger.demands),
        "given": len(given),
        "denied": len(ledger.demands) - len(given),
        "total_demands": f"{format_decimal(total, 3)} {ledger.concentration.amount.unit.code}",
    }


def alarm_status(a: ActiveAlarm, now: Instant) -> dict[str, Any]:
    return {
        "instance": a.instance,
        "code": a.code.value,
        "channel": None if a.channel is None else LABELS[a.channel],
        "channel_index": a.channel,
        "priority": a.priority.value,
        "text": a.text,
        "detail": a.detail,
        "state": a.state.value,
        "escalated": a.escalated,
        "since": hhmm(now.since(a.onset)),
        "stops": a.spec.stops_delivery,
    }


def pump_status(pump: Pump, time: Callable[[Instant], str], names: dict[str, str]) -> dict[str, Any]:
    """The whole screen: channels, alarms (highest first), annunciation, battery, library, and the time as
    ``time`` reads the pump's clock (sim/timebase.py)."""
    now = pump.hw.clock.now()
    ann = pump.alarms.annunciation(now)
    power = pump.hw.power.status()
    lib = pump.library_identity
    return {
        "time": time(now),
        "channels": [channel_status(ch, names) for ch in pump.channels],
        "alarms": [alarm_status(a, now) for a in ann.active],
        "annunciation": {
            "priority": None if ann.priority is None else ann.priority.value,
            "audible": ann.audible,
            "paused_for": None if ann.paused_until is None else hhmm(ann.paused_until.since(now)),
        },
        "battery": {
            "on_mains": power.on_mains,
            "percent": round(power.charge_permille / 10),
            "minutes": int(power.remaining.seconds // 60),
        },
        "library": None if lib is None else {"owner": lib.owner, "name": lib.name, "version": lib.version},
        "care_area": pump.config.care_area,
        "phase": pump.phase.value,
    }
