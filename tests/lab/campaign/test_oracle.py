"""The oracle judges from truth: each property fires on a truth that breaks it and stays quiet otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from openinfusion.lab.campaign.observe import Observation
from openinfusion.lab.campaign.oracle import judge
from openinfusion.lab.campaign.spec import Oracle

RATE = 60.0  # mL/h: 1 mL per minute


def _scenario(timeline: list[dict[str, Any]], program: dict[str, Any] | None = None) -> dict[str, Any]:
    prog = program or {"type": "continuous", "rate": f"{RATE} mL/h", "vtbi": "100 mL"}
    return {
        "schema": "openinfusion.scenario/1",
        "name": "o",
        "seed": 1,
        "duration": "3600 s",
        "channels": [{}],
        "timeline": [{"at": "0 s", "do": "program", "program": prog}, {"at": "0 s", "do": "start"}, *timeline],
    }


def _obs(states: list[tuple[float, str]], disp_per_s: float = RATE / 3600, end: float = 3600.0) -> Observation:
    """Services at the given (t, state) and every 60 s; the mechanism moves only while delivering."""
    obs = Observation()
    times = sorted({t for t, _ in states} | set(np.arange(0.0, end + 1, 60.0).tolist()))
    disp = 0.0
    for k, t in enumerate(times):
        state = next(s for tt, s in reversed(states) if tt <= t)
        if k:
            prev_state = obs.state[-1]
            disp += (t - times[k - 1]) * disp_per_s if prev_state in {"infusing", "kvo"} else 0.0
        obs.t_s.append(t)
        obs.state.append(state)
        obs.displaced_ml.append(disp)
        obs.steps.append(int(disp * 1000))
        obs.pulses.append(int(disp * 1000))
        obs.powered.append(True)
    obs.sample_t_s = np.asarray(obs.t_s)
    obs.patient_ml = np.asarray(obs.displaced_ml)
    return obs


def _props(scenario: dict[str, Any], obs: Observation) -> list[str]:
    return [v.prop for v in judge(scenario, Oracle(), obs)]


@pytest.mark.req("UMN-GPCA-REQ-06", "OI-ALM-12")
def test_flow_while_paused_is_a_violation() -> None:
    obs = _obs([(0.0, "infusing"), (600.0, "paused")])
    assert _props(_scenario([{"at": "600 s", "do": "pause"}]), obs) == []
    obs.displaced_ml = [d + (0.5 if t > 900 else 0.0) for t, d in zip(obs.t_s, obs.displaced_ml, strict=True)]
    assert _props(_scenario([{"at": "600 s", "do": "pause"}]), obs) == []  # no motor motion, no free flow
    obs.pulses = [p + (500 if t > 900 else 0) for t, p in zip(obs.t_s, obs.pulses, strict=True)]
    assert "no_flow_when_stopped" in _props(_scenario([{"at": "600 s", "do": "pause"}]), obs)
    free = _obs([(0.0, "infusing"), (600.0, "paused")])
    free.patient_ml = free.patient_ml + np.where(free.sample_t_s > 900, 2.0, 0.0)  # a free flow while paused
    assert "no_flow_when_stopped" in _props(_scenario([{"at": "600 s", "do": "pause"}]), free)


@pytest.mark.req("OI-DEL-1", "OI-SAFE-2")
def test_silent_under_delivery_is_a_violation_an_alarm_answers_it() -> None:
    obs = _obs([(0.0, "infusing")], disp_per_s=0.8 * RATE / 3600)  # 20 % under, no alarm
    assert _props(_scenario([]), obs) == ["accuracy"]
    obs.signals = [(900.0, "high", True)]
    assert _props(_scenario([]), obs) == []
    assert _props(_scenario([]), _obs([(0.0, "infusing")], disp_per_s=0.97 * RATE / 3600)) == []


@pytest.mark.req("OI-PROG-7", "OI-VOL-1")
def test_delivery_beyond_vtbi_is_a_violation() -> None:
    small = {"type": "continuous", "rate": f"{RATE} mL/h", "vtbi": "10 mL"}
    obs = _obs([(0.0, "infusing")])  # 60 mL in the hour against a 10 mL VTBI
    assert "vtbi_limit" in _props(_scenario([], small), obs)
    assert "vtbi_limit" not in _props(_scenario([]), obs)


@pytest.mark.req("OI-ALM-3")
def test_release_bolus_above_half_a_millilitre_is_a_violation() -> None:
    timeline = [{"at": "600 s", "do": "occlusion", "on": True}, {"at": "1200 s", "do": "occlusion", "on": False}]
    obs = _obs([(0.0, "infusing"), (700.0, "alarm")])
    obs.signals = [(700.0, "high", True)]
    assert _props(_scenario(timeline), obs) == []
    obs.patient_ml = obs.patient_ml + np.where(obs.sample_t_s > 1200, 0.8, 0.0)  # 0.8 mL rushes out at release
    assert "release_bolus" in _props(_scenario(timeline), obs)


@pytest.mark.req("OI-ALM-2", "OI-ALM-6")
def test_required_alarms_within_their_deadlines() -> None:
    door = [{"at": "600 s", "do": "door", "closed": False}, {"at": "1800 s", "do": "door", "closed": True}]
    obs = _obs([(0.0, "infusing"), (602.0, "alarm")])
    assert "required_alarm" in _props(_scenario(door), obs)  # stopped, but never said so
    obs.signals = [(602.0, "high", True)]
    assert _props(_scenario(door), obs) == []
    obs.signals = [(660.0, "high", True)]  # a minute late
    assert _props(_scenario(door), obs) == ["required_alarm"]
    occl = [{"at": "600 s", "do": "occlusion", "on": True}]
    assert "required_alarm" in _props(_scenario(occl), _obs([(0.0, "infusing")]))  # pumping against it, silent


@pytest.mark.req("OI-SAFE-1", "OI-ALM-9")
def test_controller_fault_must_trip_the_monitor() -> None:
    stall = [{"at": "600 s", "do": "fault", "fault": "motor_stall", "channel": 1, "params": {"flagged": False}}]
    obs = _obs([(0.0, "infusing")])
    obs.steps = [s if t <= 600 else obs.steps[10] for t, s in zip(obs.t_s, obs.steps, strict=True)]
    assert "monitor_trip" in _props(_scenario(stall), obs)
    obs.signals = [(700.0, "high", True)]
    assert "monitor_trip" not in _props(_scenario(stall), obs)


@pytest.mark.req("OI-PCA-1")
def test_pca_hour_limit_from_the_truth() -> None:
    pca = {
        "type": "pca",
        "concentration": "1 mg/mL",
        "demand_dose": "1 mg",
        "lockout": "10 min",
        "demand_rate": "60 mL/h",
        "limit_1h": "4 mg",
    }
    obs = _obs([(0.0, "infusing")], disp_per_s=3.0 / 3600)  # 3 mg in an hour: within
    assert _props(_scenario([], pca), obs) == []
    obs = _obs([(0.0, "infusing")], disp_per_s=6.0 / 3600)  # 6 mg in an hour
    assert "pca_limits" in _props(_scenario([], pca), obs)


@pytest.mark.req("OI-ALM-6", "OI-VOL-1")
def test_gravity_flow_with_the_set_out_is_judged_by_the_alarm_not_as_delivery() -> None:
    out = [{"at": "600 s", "do": "free_flow", "on": True}]
    obs = _obs([(0.0, "infusing"), (602.0, "alarm")])
    obs.patient_ml = obs.patient_ml + np.where(obs.sample_t_s > 600, 0.2 * (obs.sample_t_s - 600), 0.0)  # gravity
    assert _props(_scenario(out), obs) == ["required_alarm"]  # taken out while infusing, and never said so
    obs.signals = [(602.0, "high", True)]
    assert _props(_scenario(out), obs) == []  # the pump alarmed: the flow that follows is not its delivery
    early = _obs([(0.0, "infusing"), (300.0, "paused"), (602.0, "alarm")])
    early.signals = [(602.0, "high", True)]
    early.patient_ml = early.patient_ml + np.where(early.sample_t_s > 400, 2.0, 0.0)  # flow before the set is out
    assert "no_flow_when_stopped" in _props(_scenario([{"at": "300 s", "do": "pause"}, *out]), early)


@pytest.mark.req("OI-ALM-6", "OI-ALM-8")
def test_a_pump_switched_off_owes_no_alarm_and_the_power_fail_buzzer_counts() -> None:
    key_off = [{"at": "600 s", "do": "power", "on": False}, {"at": "900 s", "do": "load", "loaded": False}]
    obs = _obs([(0.0, "infusing"), (600.0, "off")])
    obs.powered = [t < 600 for t in obs.t_s]
    assert _props(_scenario(key_off), obs) == []  # off by the key: neither accuracy nor the set alarm is owed
    cell = [{"at": "600 s", "do": "fault", "fault": "battery_cell_failure", "params": {"detected_by_gauge": True}}]
    dead = _obs([(0.0, "infusing"), (600.0, "off")])
    dead.powered = [t < 600 for t in dead.t_s]
    battery = {**_scenario(cell), "pump": {"on_mains": False}}
    assert "required_alarm" in _props(battery, dead)
    dead.hardware_alarms_s = [600.0]  # the power-fail buzzer on its hold-up capacitor
    assert "required_alarm" not in _props(battery, dead)
