"""Run one drawn scenario and record the simulator's physical truth for the oracle.

What is recorded comes from the virtual devices, never from the pump's event log: per sample, the
volume that reached the patient (:class:`~openinfusion.sim.run.Simulation` keeps the true series);
at every service of the core, each channel's mechanism displacement, shaft steps and line state
(``VirtualPump.truth()``), the power state, and the annunciator's signal requests (time, priority,
audible) as the loudspeaker and lights received them. The channel states the core claims are
recorded alongside, because a property ("no flow while not delivering") compares a claim with the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from openinfusion.pump.eventlog import EventKind
from openinfusion.sim.run import START, Simulation
from openinfusion.sim.scenario import Scenario
from openinfusion.sim.series import SeriesMode

F64 = np.ndarray[Any, np.dtype[np.float64]]
OFF: Final = "off"  # the state recorded while the pump has no power (its firmware claims nothing)


@dataclass(slots=True)
class Observation:
    """The truth of one run. Times are seconds since scenario time 0; volumes mL."""

    t_s: list[float] = field(default_factory=list)  # service instants
    state: list[str] = field(default_factory=list)  # channel 1's state claimed by the core after the service
    displaced_ml: list[float] = field(default_factory=list)  # pushed into the line by the mechanism (truth)
    steps: list[int] = field(default_factory=list)  # shaft steps (truth)
    pulses: list[int] = field(default_factory=list)  # driver pulses issued to the motor (truth)
    powered: list[bool] = field(default_factory=list)
    sample_t_s: F64 = field(default_factory=lambda: np.zeros(0))
    patient_ml: F64 = field(default_factory=lambda: np.zeros(0))  # per sample, into the patient (truth)
    signals: list[tuple[float, str | None, bool]] = field(default_factory=list)  # annunciator requests
    hardware_alarms_s: list[float] = field(default_factory=list)  # the hardware alarm circuits sounded from
    hardware_was_on: bool = False
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # coverage only (event log)
    alarm_codes: list[str] = field(default_factory=list)  # coverage only (event log)
    refusals: int = 0


# The simulated library signers of every campaign run: one compiled, signed package per worker process and library
# file (sim.run caches it by file content and signer; decision record 0039). Key ids appear in no record.
SIGNER: Final = "campaign"


def simulate(scenario_data: dict[str, Any], library_dir: Path) -> tuple[Simulation, Observation]:
    """Run the scenario (its library named relative to ``library_dir``) and observe it."""
    scenario = Scenario.model_validate(scenario_data)
    sim = Simulation(scenario, str(library_dir / f"{scenario.name}.yaml"), series=SeriesMode.FULL, signer=SIGNER)
    obs = Observation()
    world = sim.world
    motor = world.channel(0).motor
    recorded: Callable[[], None] | None = sim.driver.on_service

    def look() -> None:
        """The truth now; the channel state the running core claims, or ``off`` while the firmware is off."""
        truth = world.truth()
        ch = truth.channels[0]
        obs.t_s.append((world.now.us - START.us) / 1e6)
        obs.state.append(sim.pump.channels[0].state.value if truth.powered else OFF)
        obs.displaced_ml.append(ch.displaced_ml)
        obs.steps.append(ch.shaft_steps)
        obs.pulses.append(motor.issued_steps())
        obs.powered.append(truth.powered)
        if world.annunciator.hardware_alarm and not obs.hardware_was_on:
            obs.hardware_alarms_s.append(obs.t_s[-1])  # the watchdog's or the power-fail buzzer's onset
        obs.hardware_was_on = world.annunciator.hardware_alarm

    def observe() -> None:
        if recorded is not None:
            recorded()
        look()

    sim.driver.on_service = observe
    sim.driver.on_power = look  # the firmware stopped: no service follows until it boots again
    observe()
    sim.run()
    obs.signals = [((t.us - START.us) / 1e6, p, a) for t, p, a in world.annunciator.requests]
    if sim.series.rows(0):
        obs.sample_t_s = sim.series.series(0, "t_s") - START.us / 1e6
        obs.patient_ml = sim.series.series(0, "cumulative_patient_ml")
    for e in sim.pump.log.events():
        if e.kind is EventKind.STATE_CHANGED:
            obs.transitions.append((str(e.data["source"]), str(e.data["event"]), str(e.data["target"])))
        elif e.kind is EventKind.ALARM_RAISED:
            obs.alarm_codes.append(str(e.data["code"]))
    obs.refusals = len(sim.refusals)
    return sim, obs
