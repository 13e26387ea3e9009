"""Random clinician and physical event sequences through a real channel on virtual hardware.

Invariants after every step: volumes are non-negative integers and never beyond VTBI plus KVO; the
motor never moves forward while a stopping alarm is active, the door is open, or air was detected;
every refused event carries a reason.
"""

from contextlib import suppress

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from openinfusion.errors import InputError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.programs import Bolus, SecondaryProgram, Titration
from openinfusion.pump.statechart import DELIVERING, ChannelState
from openinfusion.units import Duration, FlowRate, Volume

from rig import Rig

pytestmark = pytest.mark.req("OI-VOL-1", "OI-ALM-12", "OI-CHAN-1", "UMN-GPCA-REQ-06")

RATES = st.sampled_from(["0.5", "1", "5", "25", "125", "600"])
STEP = Volume.ml("0.0001")  # one motor step of the LVP moves well under 0.1 uL: the completion tolerance


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rig = Rig(seed=11)
        self.vtbi: Volume | None = None
        self.door_closed = True

    @property
    def channel(self):  # type: ignore[no-untyped-def]
        return self.rig.pump.channels[0]

    def _try(self, action) -> None:  # type: ignore[no-untyped-def]
        with suppress(TransitionRefusedError, InputError):  # a refusal is checked by the invariant on the log
            action()

    @initialize(rate=RATES, vtbi=st.one_of(st.none(), st.sampled_from(["0.5", "5", "50"])))
    def infusing(self, rate: str, vtbi: str | None) -> None:
        """Every run starts with an infusion running (the interesting part of the state space)."""
        self.program(rate, vtbi)
        self.rig.pump.start(0)

    @rule(rate=RATES, vtbi=st.one_of(st.none(), st.sampled_from(["0.5", "5", "50"])))
    def program(self, rate: str, vtbi: str | None) -> None:
        def enter() -> None:
            self.rig.pump.program(0, self.rig.continuous(rate, vtbi))
            self.vtbi = None if vtbi is None else Volume.ml(vtbi)

        self._try(enter)

    @rule(action=st.sampled_from(["start", "pause", "resume", "clear", "confirm_titration", "cancel_titration"]))
    def clinician(self, action: str) -> None:
        self._try(lambda: getattr(self.rig.pump, action)(0))

    @rule(rate=RATES)
    def titrate(self, rate: str) -> None:
        self._try(lambda: self.rig.pump.titrate(0, Titration(FlowRate.ml_h(rate))))

    @rule(ml=st.sampled_from(["0.2", "1", "20"]))
    def bolus(self, ml: str) -> None:
        self._try(lambda: self.rig.pump.bolus(0, Bolus.request(Volume.ml(ml), FlowRate.ml_h(300), self.rig.limits())))

    @rule()
    def secondary(self) -> None:
        program = SecondaryProgram(rate=FlowRate.ml_h(100), vtbi=Volume.ml(2), limits=self.rig.limits())
        self._try(lambda: self.rig.pump.secondary(0, program))

    @rule(closed=st.booleans())
    def door(self, closed: bool) -> None:
        self.rig.world.channel(0).set_door(closed)
        self.door_closed = closed

    @rule(on=st.booleans())
    def occlusion(self, on: bool) -> None:
        self.rig.world.channel(0).set_occlusion("downstream", on)

    @rule()
    def air(self) -> None:
        self.rig.world.channel(0).inject_air(Volume.ml("0.3"))

    @rule(code=st.sampled_from([AlarmCode.OCCLUSION_DOWNSTREAM, AlarmCode.AIR_IN_LINE, AlarmCode.DOOR_OPEN]))
    def reset(self, code: AlarmCode) -> None:
        self.rig.pump.reset_alarm(0, code)

    @rule(seconds=st.integers(1, 1200))
    def wait(self, seconds: int) -> None:
        self.rig.run_for(Duration.s(seconds))

    @precondition(lambda self: self.channel.state is not ChannelState.FAILSAFE)
    @rule()
    def no_forward_motion_while_stopped_for_safety(self) -> None:
        ch, alarms = self.channel, self.rig.pump.alarms
        stopped = alarms.stops_delivery(0) or not self.door_closed or ch.state not in DELIVERING
        air = any(a.code in {AlarmCode.AIR_IN_LINE, AlarmCode.AIR_CUMULATIVE} for a in alarms.active(0))
        if stopped or air:
            self.rig.driver.service()  # the core has looked (as on any interrupt)
            self.rig.driver.run_until(self.rig.now + Duration.s(3))  # any back-off (reverse) move is over
            if alarms.stops_delivery(0) or not self.door_closed or self.channel.state not in DELIVERING:
                motor = self.rig.world.hardware.channels[0].motor
                before = motor.issued_steps()
                self.rig.driver.run_until(self.rig.now + Duration.s(20))
                assert motor.issued_steps() <= before, f"forward steps in {self.channel.state} with alarms active"

    @invariant()
    def volumes_are_exact_and_bounded(self) -> None:
        c = self.channel.live_counters()
        assert isinstance(c.delivered.nl, int) and c.delivered.nl >= 0 and c.kvo.nl >= 0
        if self.vtbi is not None and self.channel.program is not None:
            assert c.delivered.nl <= self.vtbi.nl + STEP.nl, (c, self.vtbi)

    @invariant()
    def every_refusal_carries_a_reason(self) -> None:
        for e in self.rig.events(EventKind.EVENT_REFUSED):
            assert str(e.data.get("reason", "")).strip()


ChannelMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestChannelMachine = ChannelMachine.TestCase
