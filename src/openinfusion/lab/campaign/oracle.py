"""The oracle: judge a run from the simulator's physical truth, never from the pump's event log.

Each property is a function of (the scenario as drawn, the spec's criteria, the :class:`Observation`).
The expectation comes from what the clinician programmed (the scenario), computed here with exact
unit arithmetic, independently of the pump core's own dose and plan code. Delivered volume is the
physics' volume into the patient; mechanism motion is the shaft and swept volume; alarms are the
annunciator's signal requests (and the watchdog's hardware alarm). Properties and their sources:

``no_flow_when_stopped``   no mechanism displacement while the channel is not delivering (UMN-GPCA-REQ-06)
``accuracy``               delivered volume within tolerance of the programmed profile at every sample,
                           or a medium/high alarm within the deadline (IEC 60601-2-24 accuracy claims)
``vtbi_limit``             never more than the programmed total (plus boluses, secondaries, KVO, tolerance)
``pca_limits``             drug delivered in any 1 h / 4 h window within the PCA limits
``release_bolus``          bolus after an occlusion is released <= 0.5 mL (FDA infusion pump guidance)
``required_alarm``         occlusion, air, door, set, battery and watchdog alarms within their deadlines
``monitor_trip``           a controller fault (motor stall, encoder slip beyond tolerance) trips the
                           monitor (high-priority alarm) within its deadline
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from openinfusion.errors import UnitError
from openinfusion.lab.campaign.observe import OFF, Observation
from openinfusion.lab.campaign.spec import Oracle
from openinfusion.pump.dosing import Concentration
from openinfusion.sim.devices import CLOCK_TOLERANCE_FRACTION, CLOCK_TOLERANCE_US
from openinfusion.sim.scenario import Scenario, TimelineEvent
from openinfusion.units import Quantity

DELIVERING: Final = frozenset({"infusing", "kvo"})
ALERTING: Final = frozenset({"high", "medium"})

#: Property -> the requirement IDs (safety/requirements.yaml) its evidence supports.
PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "no_flow_when_stopped": ("UMN-GPCA-REQ-06", "OI-ALM-12"),
    "accuracy": ("OI-DEL-1", "OI-SAFE-2"),
    "vtbi_limit": ("OI-PROG-7", "OI-VOL-1"),
    "pca_limits": ("OI-PCA-1",),
    "release_bolus": ("OI-ALM-3",),
    "required_alarm": ("OI-ALM-2", "OI-ALM-4", "UMN-GPCA-REQ-21", "OI-ALM-6", "OI-ALM-8", "OI-POST-2"),
    "monitor_trip": ("OI-SAFE-1", "OI-ALM-9"),
    "run_crashed": ("OI-SAFE-3",),  # an exception escaped the pump on its hardware (the runner records it)
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One property broken at ``t_s`` (s of scenario time); ``cause`` is a short stable label for clustering."""

    prop: str
    t_s: float
    cause: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"property": self.prop, "t_s": round(self.t_s, 3), "cause": self.cause, "detail": self.detail}


def _s(q: Quantity) -> float:
    return float(q.in_("s"))


def _ml(q: Quantity) -> float:
    return float(q.in_("mL"))


class _Judge:
    """Shared views of one run's truth."""

    def __init__(self, scenario: Scenario, oracle: Oracle, obs: Observation, air_limit_ml: float) -> None:
        self.scenario = scenario
        self.o = oracle
        self.obs = obs
        self.t = np.asarray(obs.t_s)
        self.disp = np.asarray(obs.displaced_ml)
        self.syringe = scenario.pump.mechanism == "syringe"
        alarms = [t for t, p, _ in obs.signals if p in ALERTING]
        alarms += obs.hardware_alarms_s
        self.alarm_times = np.sort(np.asarray(alarms, dtype=float))
        self.events: list[TimelineEvent] = list(scenario.timeline)
        self.end_s = _s(scenario.duration)
        # Once the set is out of the pump with its clamp open, gravity drives the flow: what reaches the patient
        # after that is judged by the alarm the pump must raise (required_alarm), not as the pump's delivery.
        taken_out = [_at(e) for e in self.events if getattr(e, "do", None) == "free_flow" and e.on]  # type: ignore[union-attr]
        self.pumped_until = min(taken_out, default=self.end_s)
        kept = obs.sample_t_s <= self.pumped_until
        self.sample_t_s, self.patient_ml = obs.sample_t_s[kept], obs.patient_ml[kept]
        self.air_limit_ml = air_limit_ml

    def state_at(self, t: float) -> str:
        i = int(np.searchsorted(self.t, t, side="right")) - 1
        return self.obs.state[i] if i >= 0 else "idle"

    def first_alarm_after(self, t: float) -> float | None:
        i = int(np.searchsorted(self.alarm_times, t, side="left"))
        return float(self.alarm_times[i]) if i < self.alarm_times.size else None

    def patient_at(self, t: float) -> float:
        if self.sample_t_s.size == 0:
            return 0.0
        return float(np.interp(t, self.sample_t_s, self.patient_ml))

    def displaced_at(self, t: float) -> float:
        return float(np.interp(t, self.t, self.disp)) if self.t.size else 0.0

    def mech_rate_ml_h(self, t: float, span_s: float = 300.0) -> float:
        lo = max(0.0, t - span_s)
        if t - lo <= 0:
            return 0.0
        return max(0.0, (self.displaced_at(t) - self.displaced_at(lo)) * 3600.0 / (t - lo))

    def alarm_required(
        self, prop: str, cause: str, at: float, deadline_s: float, until: float | None
    ) -> list[Violation]:
        """A medium/high alarm is required within ``deadline_s`` of ``at`` if the condition lasts that long."""
        due = at + deadline_s
        if due > self.end_s or (until is not None and until < due):
            return []
        alarm = self.first_alarm_after(at - 1e-6)
        if alarm is not None and alarm <= due:
            return []
        return [Violation(prop, due, cause, f"no medium/high alarm within {deadline_s:.0f} s of {cause} at {at:.1f} s")]

    @property
    def tol(self) -> float:
        return (self.o.accuracy_percent_syringe if self.syringe else self.o.accuracy_percent_lvp) / 100


# --- the programmed profile, computed here ----------------------------------------------------------


def _nominal_rate_ml_h(scenario: Scenario, program: Any) -> float | None:
    """The constant programmed rate of a continuous, dose or volume-over-time program (None otherwise)."""
    if program.type == "continuous":
        return float(program.rate.in_("mL/h"))
    if program.type == "volume_over_time":
        return float(program.vtbi.in_("mL") / program.duration.in_("h"))
    if program.type == "dose" and program.loading is None:
        dose: Quantity = program.dose
        per = dose.unit.code.split("/")
        if "kg" in per and scenario.patient.weight is not None:
            dose = dose * scenario.patient.weight
        elif "m2" in per and scenario.patient.bsa is not None:
            dose = dose * scenario.patient.bsa
        conc: Concentration = program.concentration
        per_ml = conc.amount / conc.volume if conc.volume is not None else None
        if per_ml is None:
            return None
        try:
            rate: float = float((dose / per_ml).in_("mL/h"))
        except UnitError:
            return None
        return rate
    return None


def _planned_total_ml(program: Any) -> float | None:
    match program.type:
        case "continuous" | "dose":
            return None if program.vtbi is None else _ml(program.vtbi)
        case "volume_over_time":
            return _ml(program.vtbi)
        case "multistep":
            return sum(_ml(s.vtbi) for s in program.steps)
        case "ramp_taper":
            return _ml(program.total_volume)
        case "intermittent":
            return _ml(program.dose_volume) * int(program.doses)
    return None


def _program(j: _Judge) -> Any | None:
    for e in j.events:
        if getattr(e, "do", None) == "program":
            return e.program  # type: ignore[union-attr]
    return None


def _at(e: Any) -> float:
    return _s(e.at)


# --- properties -------------------------------------------------------------------------------------


def no_flow_when_stopped(j: _Judge) -> list[Violation]:
    out = []
    eps = _ml(j.o.no_flow_epsilon)
    steps, pulses = j.obs.steps, j.obs.pulses
    for i in range(len(j.obs.t_s) - 1):
        if j.obs.state[i] in DELIVERING:
            continue
        moved = j.disp[i + 1] - j.disp[i]
        # truth is sampled on the physics grid: the shaft may still catch up with pulses issued before the stop;
        # a violation is a new forward pulse while stopped, or the shaft going beyond what was issued
        commanded = max(pulses[i], steps[i])
        if (pulses[i + 1] > pulses[i] or steps[i + 1] > commanded) and moved > eps:
            out.append(
                Violation(
                    "no_flow_when_stopped",
                    j.obs.t_s[i + 1],
                    f"flow_in_{j.obs.state[i]}",
                    f"{moved:.4f} mL pushed while {j.obs.state[i]} ({j.obs.t_s[i]:.1f}-{j.obs.t_s[i + 1]:.1f} s)",
                )
            )
    return (out + _free_flow(j))[:1]


def _free_flow(j: _Judge) -> list[Violation]:
    """Fluid reaching the patient during a stop beyond what the line's compliance may release (a free flow)."""
    allowed = _ml(j.o.release_bolus_max) + _ml(j.o.floor)
    stops: list[tuple[float, float]] = []
    for i, state in enumerate(j.obs.state):
        end = j.obs.t_s[i + 1] if i + 1 < len(j.obs.t_s) else j.end_s
        if state in DELIVERING:
            continue
        if stops and stops[-1][1] == j.obs.t_s[i]:
            stops[-1] = (stops[-1][0], end)
        else:
            stops.append((j.obs.t_s[i], end))
    for a, until in stops:
        if a >= j.pumped_until:
            break
        b = min(until, j.pumped_until)
        flowed = j.patient_at(b) - j.patient_at(a)
        if flowed > allowed:
            detail = f"{flowed:.3f} mL reached the patient while stopped ({a:.1f}-{b:.1f} s), allowed {allowed:.3f} mL"
            return [Violation("no_flow_when_stopped", b, "free_flow", detail)]
    return []


# Changes that end the accuracy window: the clinician's, the power key, and the set taken out (free flow).
_CHANGES: Final = frozenset(
    {"titrate", "bolus", "secondary", "pause", "clear", "begin_programming", "program", "power", "free_flow"}
)


def accuracy(j: _Judge) -> list[Violation]:
    program = _program(j)
    if program is None:
        return []
    rate = _nominal_rate_ml_h(j.scenario, program)
    starts = [_at(e) for e in j.events if getattr(e, "do", None) == "start"]
    if rate is None or not starts or not any(s in DELIVERING for s in j.obs.state):
        return []
    t0 = starts[0]
    changes = [_at(e) for e in j.events if getattr(e, "do", None) in _CHANGES and _at(e) > t0]
    t_end = min([j.end_s, *changes])
    total = _planned_total_ml(program)
    if total is not None:
        t_end = min(t_end, t0 + total / rate * 3600.0)
    ts = j.sample_t_s
    sel = (ts >= t0) & (ts <= t_end)
    if not sel.any():
        return []
    t = ts[sel]
    actual = j.patient_ml[sel] - j.patient_at(t0)
    expected = rate * (t - t0) / 3600.0
    lag_s = _s(j.o.startup_syringe if j.syringe else j.o.startup_lvp)
    allowed = j.tol * expected + rate * lag_s / 3600.0 + _ml(j.o.floor)
    bad = np.flatnonzero(np.abs(actual - expected) > allowed)
    if bad.size == 0:
        return []
    k = int(bad[0])
    t_bad = float(t[k])
    alarm = j.first_alarm_after(t0)
    if alarm is not None and alarm <= t_bad + _s(j.o.accuracy_alarm_within):
        return []  # the pump told the clinician (before, or within the deadline)
    if t_bad + _s(j.o.accuracy_alarm_within) > j.end_s and alarm is None:
        return []  # the run ended inside the deadline: not judged
    sign = "over" if actual[k] > expected[k] else "under"
    return [
        Violation(
            "accuracy",
            t_bad,
            f"{sign}_delivery",
            f"{actual[k]:.3f} mL delivered vs {expected[k]:.3f} mL programmed at {t_bad:.1f} s "
            f"(allowed +/-{allowed[k]:.3f} mL), no medium/high alarm within "
            f"{_s(j.o.accuracy_alarm_within):.0f} s",
        )
    ]


def vtbi_limit(j: _Judge) -> list[Violation]:
    program = _program(j)
    total = None if program is None else _planned_total_ml(program)
    if total is None or j.patient_ml.size == 0:
        return []
    extra = 0.0
    for e in j.events:
        do = getattr(e, "do", None)
        if do == "bolus" and getattr(e, "volume", None) is not None:
            extra += _ml(e.volume)  # type: ignore[union-attr,arg-type]
        elif do == "secondary":
            extra += _ml(e.secondary.vtbi)  # type: ignore[union-attr]
    kvo_ml_h = 0.1 if j.syringe else 1.0
    if j.scenario.pump.kvo.rate is not None:
        kvo_ml_h = float(j.scenario.pump.kvo.rate.in_("mL/h"))
    allowed = (total + extra) * (1 + j.tol) + kvo_ml_h * j.end_s / 3600.0 + _ml(j.o.floor)
    delivered = float(j.patient_ml.max())
    if delivered <= allowed:
        return []
    k = int(np.argmax(j.patient_ml > allowed))
    return [
        Violation(
            "vtbi_limit",
            float(j.sample_t_s[k]),
            "beyond_vtbi",
            f"{delivered:.3f} mL delivered; programmed {total:.3f} mL + {extra:.3f} mL extra, allowed {allowed:.3f} mL",
        )
    ]


def pca_limits(j: _Judge) -> list[Violation]:
    program = _program(j)
    if program is None or program.type != "pca" or j.patient_ml.size == 0:
        return []
    conc: Concentration = program.concentration
    if conc.volume is None:
        return []
    per_ml = conc.amount / conc.volume
    out = []
    for label, limit, window_s in (("1h", program.limit_1h, 3600.0), ("4h", program.limit_4h, 14400.0)):
        if limit is None:
            continue
        limit_ml = float((limit / per_ml).in_("mL"))
        allowed = limit_ml * (1 + j.tol) + _ml(j.o.floor)
        t, v = j.sample_t_s, j.patient_ml
        before = np.interp(t - window_s, t, v, left=float(v[0]))
        in_window = v - before
        k = int(np.argmax(in_window))
        if in_window[k] > allowed:
            out.append(
                Violation(
                    "pca_limits",
                    float(t[k]),
                    f"limit_{label}",
                    f"{in_window[k]:.3f} mL in {label} window ending {t[k]:.1f} s; limit {limit} = "
                    f"{limit_ml:.3f} mL (allowed {allowed:.3f} mL)",
                )
            )
    return out


def release_bolus(j: _Judge) -> list[Violation]:
    out = []
    w = _s(j.o.release_window)
    for e in j.events:
        if getattr(e, "do", None) == "occlusion" and not e.on and e.side == "downstream":  # type: ignore[union-attr]
            t_r = _at(e)
            if t_r + w > j.end_s:
                continue
            released = (j.patient_at(t_r + w) - j.patient_at(t_r)) - (j.displaced_at(t_r + w) - j.displaced_at(t_r))
            if released > _ml(j.o.release_bolus_max):
                out.append(
                    Violation(
                        "release_bolus",
                        t_r,
                        "release_bolus",
                        f"{released:.3f} mL released in {w:.0f} s after the occlusion was removed at {t_r:.1f} s",
                    )
                )
    return out


def _until(j: _Judge, e: Any) -> float | None:
    """When the physical event ``e`` is undone (the next event of its kind on its channel), or None."""
    later = [x for x in j.events if getattr(x, "do", None) == e.do and _at(x) > _at(e)]
    return _at(later[0]) if later else None


def required_alarm(j: _Judge) -> list[Violation]:
    out: list[Violation] = []
    o = j.o
    for e in j.events:
        do = getattr(e, "do", None)
        at = _at(e)
        delivering = j.state_at(at) in DELIVERING
        if do == "occlusion" and e.on and delivering:  # type: ignore[union-attr]
            rate = max(j.mech_rate_ml_h(at), 0.1)
            deadline = min(_s(o.occlusion_alarm_within), 120.0 + 3600.0 * 1.0 / rate)  # ~1 mL pushed against it
            cause = f"occlusion_{e.side}"  # type: ignore[union-attr]
            out += j.alarm_required("required_alarm", cause, at, deadline, _until(j, e))
        elif do in {"door", "load"} and delivering and not getattr(e, "closed", getattr(e, "loaded", True)):
            out += j.alarm_required("required_alarm", f"{do}_open", at, _s(o.door_alarm_within), _until(j, e))
        elif do == "free_flow" and e.on and delivering:  # type: ignore[union-attr]  # the set is out of the pump
            out += j.alarm_required("required_alarm", "free_flow", at, _s(o.door_alarm_within), _until(j, e))
        elif do == "air" and delivering:
            out += _air(j, e, at)
        elif do == "fault" and e.fault == "clock_jump" and _beyond_tolerance(e):  # type: ignore[union-attr]
            # the watchdog sees the disagreement at a kick; kicks come at least once per 10 min window
            out += j.alarm_required("required_alarm", "watchdog_clock_jump", at, 2 * 600.0 + 60.0, None)
        elif do == "fault" and _detected_cell_failure(e) and not _on_mains_at(j, at) and j.state_at(at) != OFF:
            out += j.alarm_required("required_alarm", "battery_cell_failure", at, _s(o.power_alarm_within), None)
    out += _power_loss(j)
    return out


def _beyond_tolerance(e: Any) -> bool:
    """A clock jump the watchdog must see: beyond its stated tolerance over a full 10 min kick interval."""
    jump_us = float(e.params.get("jump_s", 5.0)) * 1e6
    return jump_us > CLOCK_TOLERANCE_US + CLOCK_TOLERANCE_FRACTION * 600e6


def _detected_cell_failure(e: Any) -> bool:
    return bool(e.fault == "battery_cell_failure" and e.params.get("detected_by_gauge", True))


def _on_mains_at(j: _Judge, t: float) -> bool:
    on = j.scenario.pump.on_mains
    for e in j.events:
        if getattr(e, "do", None) == "mains" and _at(e) <= t:
            on = bool(e.on)  # type: ignore[union-attr]
    return on


def _air(j: _Judge, e: Any, at: float) -> list[Violation]:
    """A bubble well above the detection limit must alarm within the deadline of reaching the detector."""
    volume = _ml(e.volume)
    if volume < 1.5 * j.air_limit_ml:  # clearly above the care area's single-bubble limit (estimate error)
        return []
    travel = 0.05 if j.syringe else 0.5
    d0 = j.displaced_at(at)
    reach = np.flatnonzero(j.disp >= d0 + travel + volume)
    reach = reach[j.t[reach] >= at] if reach.size else reach
    if reach.size == 0:
        return []
    t_reach = float(j.t[reach[0]])
    return j.alarm_required("required_alarm", "air_in_line", at, t_reach - at + _s(j.o.air_alarm_within), None)


def _power_loss(j: _Judge) -> list[Violation]:
    """Losing power while delivering must be announced (battery low/depleted) before the pump dies."""
    for i in range(1, len(j.obs.powered)):
        if j.obs.powered[i - 1] and not j.obs.powered[i] and j.obs.state[i - 1] in DELIVERING:
            t_off = j.obs.t_s[i]
            if any(getattr(e, "do", None) == "power" and not e.on and _at(e) == t_off for e in j.events):  # type: ignore[union-attr]
                continue  # switched off with the power key: not a loss of power
            cell = [e for e in j.events if getattr(e, "fault", None) == "battery_cell_failure" and _at(e) <= t_off]
            if cell and not cell[-1].params.get("detected_by_gauge", True):  # type: ignore[union-attr]
                return []  # a sudden, undetectable cell short: no warning is possible
            earlier = j.alarm_times[j.alarm_times <= t_off + 1e-6]
            if earlier.size == 0:
                return [
                    Violation(
                        "required_alarm",
                        t_off,
                        "power_loss_without_alarm",
                        f"the pump lost power at {t_off:.1f} s while delivering with no alarm before",
                    )
                ]
    return []


def _first_move_after(series: np.ndarray[Any, Any], t: np.ndarray[Any, Any], at: float) -> float | None:
    """The first service instant after ``at`` at which ``series`` (pulses or steps) has grown since ``at``."""
    i0 = int(np.searchsorted(t, at, side="right"))
    if i0 == 0 or i0 >= t.size:
        return None
    moved = np.flatnonzero(series[i0:] != series[i0 - 1])
    return float(t[i0 + moved[0]]) if moved.size else None


def monitor_trip(j: _Judge) -> list[Violation]:
    """A stalled shaft (driver pulsing, shaft still) or a slipping encoder beyond twice the accuracy tolerance trips
    the monitor (a medium/high alarm) once motion is asked: within the deadline, or before the fault's volume
    error reaches the floor allowance at the rate before the fault, whichever is later."""
    out: list[Violation] = []
    pulses = np.asarray(j.obs.pulses)
    steps = np.asarray(j.obs.steps)
    deadline = _s(j.o.controller_fault_alarm_within)
    for e in j.events:
        if getattr(e, "do", None) != "fault":
            continue
        fault = e.fault  # type: ignore[union-attr]
        params = e.params  # type: ignore[union-attr]
        floor = _ml(j.o.floor)
        if fault == "motor_stall":
            asked = _first_move_after(pulses, j.t, _at(e))
            rate = max(j.mech_rate_ml_h(_at(e)), 1e-3)  # what stops reaching the patient
            if asked is not None:
                wait = max(deadline, 3600.0 * floor / rate)
                out += j.alarm_required("monitor_trip", "motor_stall", asked, wait, None)
        elif fault == "encoder_slip":
            f = float(params.get("fraction", 0.1))
            moved = _first_move_after(steps, j.t, _at(e))
            excess = max(j.mech_rate_ml_h(_at(e)), 1e-3) * f / max(1 - f, 1e-6)  # over-delivery, mL/h
            if moved is not None and f / max(1 - f, 1e-6) > 2 * j.tol:
                wait = max(deadline, 3600.0 * floor / excess)
                out += j.alarm_required("monitor_trip", "encoder_slip", moved, wait, None)
    return out


CHECKS: Final[dict[str, Callable[[_Judge], list[Violation]]]] = {
    "no_flow_when_stopped": no_flow_when_stopped,
    "accuracy": accuracy,
    "vtbi_limit": vtbi_limit,
    "pca_limits": pca_limits,
    "release_bolus": release_bolus,
    "required_alarm": required_alarm,
    "monitor_trip": monitor_trip,
}


def judge(
    scenario_data: dict[str, Any], oracle: Oracle, obs: Observation, air_limit_ml: float = 0.25
) -> list[Violation]:
    """Every property's violations for one run, in property order (``air_limit_ml``: the care area's
    single-bubble limit, from the library)."""
    j = _Judge(Scenario.model_validate(scenario_data), oracle, obs, air_limit_ml)
    out: list[Violation] = []
    for check in CHECKS.values():
        out += check(j)
    return out
