"""Sensor conditions -> alarm codes, declared as a table.

Theory of operation
-------------------
Each service the channel reads every sensor batch once, runs the software sensors (occlusion,
upstream occlusion, air) and gathers what they found into one :class:`Findings` snapshot. Every
row of :data:`SENSOR_ALARMS` then reads the snapshot and says whether its condition is present
(``True``), absent (``False``) or undecided (``None``: leave the alarm as it is, e.g. a pressure
still high while the motor is stopped), and how its alarm clears (:class:`Clear`). Rows are applied
in table order, which is also the order their alarm events are logged.

The alarm's own behaviour (priority, latching, whether it stops delivery or forces failsafe) is the
alarm catalogue's (:mod:`openinfusion.pump.alarms`); this table only says *when* a condition holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.sensing.air import AirVerdict
from openinfusion.pump.sensing.flowcheck import FlowDeviation, FlowVerdict
from openinfusion.pump.sensing.occlusion import OcclusionVerdict, UpstreamVerdict
from openinfusion.units import Volume


class Clear(Enum):
    """How a sensor condition's alarm is cleared by sensing."""

    WHEN_ABSENT = "when absent"  # a level: raised while present, its condition cleared when absent
    AT_ONCE = "at once"  # an event: raised and its condition cleared at once (the alarm latches until reset)
    NEVER = "never"  # a fault: raised; sensing never clears it


@dataclass(frozen=True, slots=True, kw_only=True)
class Findings:
    """Everything the channel's sensors and software sensors found in one service."""

    pumping: bool  # delivering at a rate above zero
    has_program: bool  # delivering or stopped by an alarm (door and set matter)
    pressure_fault: str | None  # why the pressure readings cannot be used (None: usable)
    occlusion: OcclusionVerdict
    upstream: UpstreamVerdict
    air_fault: bool  # the detector reports a fault
    air_check_failed: bool  # the detector failed its last simulated-air check (OI-SAFE-10)
    air: AirVerdict | None  # None: no bubble in this batch
    air_single_limit: Volume
    air_window: Volume
    door_closed: bool
    set_loaded: bool
    motor_stalled: bool
    motor_overcurrent: bool
    encoder_fault: bool
    flow: FlowVerdict | None  # None: no flow sensor fitted
    temperature_mc: int | None  # housing temperature, milli-degrees Celsius (None: no sensor)
    overheat_mc: int = 55_000  # Tpoh, open-pca-requirements.md R6.4.0(8)
    container_left: Volume | None  # what the container (bag, syringe) still holds by the count
    container_low: Volume  # Vlra, R6.8.0(9)
    container_empty: Volume  # Vers, R6.8.0(10)

    @property
    def at_end_stop(self) -> bool:
        """The driver stalls with the container all but empty by the count: a syringe run to its end."""
        left = self.container_left
        return self.motor_stalled and left is not None and left <= self.container_low


@dataclass(frozen=True, slots=True)
class SensorAlarm:
    """One row: the alarm, its condition in words and as a predicate, its detail text, how it clears."""

    code: AlarmCode
    condition: str
    present: Callable[[Findings], bool | None]
    detail: Callable[[Findings], str]
    clear: Clear


def _while_pumping(occluded: bool, pumping: bool) -> bool | None:
    """An occlusion is raised only while pumping, cleared once the pressure is gone, else left alone."""
    if not occluded:
        return False
    return True if pumping else None


def _flow(f: Findings, deviation: FlowDeviation) -> bool | None:
    """A flow deviation: present, absent once a window was judged, else (window filling, no sensor) unknown."""
    if f.flow is None or not f.flow.decided:
        return None
    return f.flow.deviation is deviation


def _flow_detail(f: Findings) -> str:
    if f.flow is None:
        return ""
    free = "free flow: " if f.flow.free_flow else ""
    return f"{free}measured {f.flow.measured}, programmed {f.flow.programmed}"


def _container_low(f: Findings) -> bool:
    return f.has_program and f.container_left is not None and f.container_left <= f.container_low


def _container_empty(f: Findings) -> bool:
    left = f.container_left
    return f.has_program and left is not None and (left <= f.container_empty or f.at_end_stop)


def _occlusion_detail(f: Findings) -> str:
    cause = f.occlusion.cause.value if f.occlusion.cause else ""
    return f"{f.occlusion.pressure_mmhg or 0.0:.0f} mmHg ({cause})"


C = AlarmCode

#: Sensor conditions and the alarms they raise (OI-ALM-3, OI-ALM-4, OI-ALM-5, OI-ALM-12, OI-SAFE-10, OPENPCA-R6-4-0-2,
#: OPENPCA-R6-4-0-3, OPENPCA-R6-4-0-8, OPENPCA-R6-8-0-9, OPENPCA-R6-8-0-10), in order.
SENSOR_ALARMS: Final[tuple[SensorAlarm, ...]] = (
    SensorAlarm(
        C.PRESSURE_SENSOR_FAULT, "a pressure transducer reports a fault or an implausible sample",
        lambda f: f.pressure_fault is not None, lambda f: f.pressure_fault or "", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.OCCLUSION_DOWNSTREAM, "the downstream detector finds an occlusion while pumping",
        lambda f: _while_pumping(f.occlusion.occluded, f.pumping), _occlusion_detail, Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.OCCLUSION_UPSTREAM, "the upstream detector finds a closed clamp or empty container while pumping",
        lambda f: _while_pumping(f.upstream.occluded, f.pumping),
        lambda f: f"{f.upstream.pressure_mmhg or 0.0:.0f} mmHg", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.AIR_SENSOR_FAULT, "the air detector reports a fault or fails its simulated-air check while pumping",
        lambda f: f.air_fault or f.air_check_failed,
        lambda f: "air detector fault" if f.air_fault else "air detector missed a simulated bubble", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.AIR_IN_LINE, "a single bubble over the single-bubble limit",
        lambda f: f.air is not None and f.air.single, lambda f: f"bubble over {f.air_single_limit}", Clear.AT_ONCE,
    ),
    SensorAlarm(
        C.AIR_CUMULATIVE, "more air than the cumulative limit within the window",
        lambda f: f.air is not None and f.air.cumulative,
        lambda f: f"{f.air.air_in_window if f.air else Volume(0)} of air in {f.air_window}", Clear.AT_ONCE,
    ),
    SensorAlarm(
        C.DOOR_OPEN, "the door opened while a program runs or is stopped by an alarm",
        lambda f: f.has_program and not f.door_closed, lambda f: "door opened", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.SET_NOT_LOADED, "door closed without a set (or syringe) while a program runs or is stopped by an alarm",
        lambda f: f.has_program and f.door_closed and not f.set_loaded, lambda f: "set not loaded", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.RESERVOIR_EMPTY, "the container holds less than the empty limit, or a syringe was driven to its end",
        _container_empty, lambda f: f"{f.container_left} left", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.RESERVOIR_LOW, "the container holds less than the low limit while a program runs",
        _container_low, lambda f: f"{f.container_left} left", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.OVER_INFUSION, "the flow sensor measures more than the rate, or flow while stopped (free flow)",
        lambda f: _flow(f, FlowDeviation.OVER), _flow_detail, Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.UNDER_INFUSION, "the flow sensor measures less than the rate over the persistence window",
        lambda f: _flow(f, FlowDeviation.UNDER), _flow_detail, Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.OVERHEATED, "the housing temperature is above Tpoh",
        lambda f: f.temperature_mc is not None and f.temperature_mc > f.overheat_mc,
        lambda f: f"{(f.temperature_mc or 0) / 1000:.1f} C", Clear.WHEN_ABSENT,
    ),
    SensorAlarm(
        C.MOTOR_FAULT, "the motor driver reports a stall (not at a syringe's end) or an overcurrent",
        lambda f: (f.motor_stalled and not f.at_end_stop) or f.motor_overcurrent,
        lambda f: "stall" if f.motor_stalled else "overcurrent", Clear.NEVER,
    ),
    SensorAlarm(
        C.ENCODER_FAULT, "the encoder reports a fault",
        lambda f: f.encoder_fault, lambda f: "encoder reports a fault", Clear.NEVER,
    ),
)  # fmt: skip
if len({row.code for row in SENSOR_ALARMS}) != len(SENSOR_ALARMS):  # pragma: no cover - a broken table
    raise RuntimeError("each alarm code appears once in SENSOR_ALARMS")
