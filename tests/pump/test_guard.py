"""One guarded entry: an unexpected exception in any public entry fails the pump safe; a user's error does not.

The exception is injected where a real one would come from: the pump's clock device raises (a driver
failure) on the next read, which every entry makes first.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from openinfusion.errors import CoreFaultError, ProgramError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import Channel
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.hal import Clock
from openinfusion.pump.programs import Bolus, SecondaryProgram, Titration
from openinfusion.pump.pump import Pump
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, FlowRate, Instant, Volume

from rig import Rig

PUMP_SRC = Path(__file__).resolve().parents[2] / "src" / "openinfusion" / "pump"


class FailingClock:
    """The pump's clock device, which raises on the next read once armed (a failed driver)."""

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.armed = False

    def now(self) -> Instant:
        if self.armed:
            self.armed = False
            raise RuntimeError("clock device stopped answering")
        return self.inner.now()


def _rig() -> tuple[Rig, FailingClock]:
    rig = Rig(2)
    clock = FailingClock(rig.pump.hw.clock)
    rig.pump.hw = replace(rig.pump.hw, clock=clock)
    rig.start("100", "500")
    rig.run_for(Duration.min(1))
    return rig, clock


def _secondary(rig: Rig) -> SecondaryProgram:
    return SecondaryProgram(rate=FlowRate.ml_h(50), vtbi=Volume.ml(10), limits=rig.limits())


ENTRIES: dict[str, Callable[[Rig], object]] = {
    "service": lambda r: r.pump.service(),
    "power_on": lambda r: r.pump.power_on(),
    "power_fail": lambda r: r.pump.power_fail(key=False),
    "program": lambda r: r.pump.program(1, r.continuous("10")),
    "begin_programming": lambda r: r.pump.begin_programming(1),
    "cancel_programming": lambda r: r.pump.cancel_programming(1),
    "start": lambda r: r.pump.start(1),
    "pause": lambda r: r.pump.pause(0),
    "resume": lambda r: r.pump.resume(0),
    "clear": lambda r: r.pump.clear(0),
    "titrate": lambda r: r.pump.titrate(0, Titration(new=FlowRate.ml_h(50))),
    "confirm_titration": lambda r: r.pump.confirm_titration(0),
    "cancel_titration": lambda r: r.pump.cancel_titration(0),
    "bolus": lambda r: r.pump.bolus(0, Bolus(volume=Volume.ml(1), rate=FlowRate.ml_h(200), limits=r.limits())),
    "secondary": lambda r: r.pump.secondary(0, _secondary(r), basic_reason="test"),
    "pca_demand": lambda r: r.pump.pca_demand(0),
    "audio_pause": lambda r: r.pump.audio_pause(),
    "reset_alarm": lambda r: r.pump.reset_alarm(0, AlarmCode.OCCLUSION_DOWNSTREAM),
    "receive_library": lambda r: r.pump.receive_library(b"not a library"),
}


def test_every_public_entry_is_listed() -> None:
    public = {n for n, v in vars(Pump).items() if callable(v) and not n.startswith("_")}
    assert public == set(ENTRIES)


@pytest.mark.req("OI-SAFE-9", "OI-SAFE-3")
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_an_exception_in_any_entry_latches_the_motors_and_fails_safe_through_the_table(entry: str) -> None:
    rig, clock = _rig()
    motor = rig.world.hardware.channels[0].motor
    assert rig.pump.channels[0].state is ChannelState.INFUSING
    clock.armed = True
    try:
        ENTRIES[entry](rig)
    except CoreFaultError as e:
        assert entry in str(e) and "clock device stopped answering" in str(e)
    assert all(ch.hw.latch.tripped() for ch in rig.pump.channels)
    assert all(ch.state is ChannelState.FAILSAFE for ch in rig.pump.channels)
    faults = rig.raised(AlarmCode.SYSTEM_FAULT)
    assert faults and entry in str(faults[0].data["detail"]) and "RuntimeError" in str(faults[0].data["detail"])
    changes = [e for e in rig.events(EventKind.STATE_CHANGED) if e.data["target"] == "failsafe"]
    assert {e.data["event"] for e in changes} == {"fault"} and len(changes) == 2
    issued = motor.issued_steps()
    motor.move(10_000, Duration.s(1))  # a latched motor refuses to move, whoever commands it
    rig.driver.run_until(rig.now + Duration.s(5))
    assert motor.issued_steps() == issued


@pytest.mark.req("OI-SAFE-9")
def test_a_users_error_reaches_the_caller_unchanged_and_fails_nothing() -> None:
    rig, _ = _rig()
    with pytest.raises(TransitionRefusedError):
        rig.pump.start(0)  # already infusing
    with pytest.raises(ProgramError):  # more than remains to be infused: refused before anything changes
        rig.pump.bolus(0, Bolus(volume=Volume.ml(999), rate=FlowRate.ml_h(200), limits=rig.limits()))
    rig.run_for(Duration.s(5))
    assert rig.pump.channels[0].state is ChannelState.INFUSING
    assert not rig.raised(AlarmCode.SYSTEM_FAULT)
    assert not rig.events(EventKind.BOLUS_STARTED)


@pytest.mark.req("OI-SAFE-9")
def test_the_fault_transition_commits_even_when_one_of_its_actions_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    rig, clock = _rig()

    def broken(self: Channel, now: Instant) -> None:
        raise RuntimeError("stop path broken")

    monkeypatch.setattr(Channel, "_stop_motor", broken)
    clock.armed = True
    rig.pump.service()
    assert all(ch.state is ChannelState.FAILSAFE for ch in rig.pump.channels)
    assert rig.world.hardware.channels[0].latch.tripped()


def _assignments(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for t in targets:
            for el in t.elts if isinstance(t, ast.Tuple) else [t]:
                if isinstance(el, ast.Attribute) and el.attr == "state":
                    found.append((ast.unparse(el), el.lineno))
    return found


@pytest.mark.req("OI-SAFE-9")
def test_no_code_outside_the_table_assigns_a_channel_state_and_no_invariant_is_an_assert() -> None:
    for path in PUMP_SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Assert)], f"{path.name} uses assert"
        assigned = _assignments(tree)
        if path.name == "channel.py":  # the constructor (IDLE) and _commit (the row's target), nothing else
            assert len(assigned) == 2, assigned
        else:
            assert not assigned, (path.name, assigned)
