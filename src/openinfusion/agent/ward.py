"""A virtual ward: N pumps (the core on virtual hardware), each with its agent and a scripted nurse.

Theory of operation
-------------------
Every bedside advances in virtual time by fixed steps (:meth:`Ward.step`). The nurse's script is drawn
from one random stream per pump and acts only at virtual instants, never on anything the network says,
so the same seed gives the same event log at every pump whatever the link does (the fault tests compare
a ward run through broker, server and database failures with one run without faults, event for event).
A step runs the pump up to the next scripted action or the step's end, acts, then lets the agent poll.

The script, per infusion: wait; program a library entry of the pump's care area at a usual value and
start; infuse for a while; sometimes a downstream occlusion (the pump alarms; the nurse comes after a
while, clears the line, resets the alarm and resumes); stop and clear. Remote orders waiting at the pump
are confirmed by the nurse on her next visit (:attr:`Ward.confirm_orders`), never by the network: she scans
the bed's wristband (:func:`patient_id`) and the bag hung (:attr:`Bedside.hung`, the ordered drug unless a
scenario hangs another) and reads the rate; a mismatch is logged by the pump and she leaves the order alone.
At a bed marked :attr:`Bedside.orders_only` she programs nothing herself (a pump kept free for EHR orders).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openinfusion.agent.agent import AgentConfig, BedsideCheck, PumpAgent
from openinfusion.agent.link import PumpLink
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import release_package
from openinfusion.errors import InputError, OpenInfusionError
from openinfusion.pharmacy.ward import assign_areas, patient_for, recipes
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import decode_quantity
from openinfusion.pump.programs import KvoSettings, RateLimits
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration, FlowRate, Instant

MAX_PUMPS: Final = 10_000
P_OCCLUSION: Final = 0.3  # an infusion that occludes once
_RELEASED: Final = dt.date(2026, 1, 1)
_KVO: Final = KvoSettings(enabled=True, rate=FlowRate.ml_h(1))


@dataclass(frozen=True, slots=True, kw_only=True)
class WardSpec:
    pumps: int
    library: Library
    seed: int = 1
    time_origin: dt.datetime = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
    agent: AgentConfig = field(default_factory=AgentConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.pumps <= MAX_PUMPS:
            raise InputError("--pumps", f"between 1 and {MAX_PUMPS}, got {self.pumps}")


def ward_keys(seed: int) -> tuple[Ed25519PrivateKey, Ed25519PrivateKey]:
    """The pharmacy's author and approver keys of a virtual ward (deterministic per seed; a real pump trusts its
    hospital's). Two keys: a pump accepts a library only when two distinct trusted keys signed it."""
    author, approver = (
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"virtual-ward:{seed}:{role}".encode()).digest())
        for role in ("author", "approver")
    )
    return author, approver


def ward_trust(seed: int) -> tuple[Ed25519PublicKey, Ed25519PublicKey]:
    """The public keys a virtual ward's pumps and server trust for library releases."""
    author, approver = ward_keys(seed)
    return author.public_key(), approver.public_key()


def ward_release(library: Library, seed: int, released: dt.date = _RELEASED) -> bytes:
    """``library`` compiled, signed by the ward's author and approved by its second pharmacist."""
    author, approver = ward_keys(seed)
    return release_package(library, released, ("ward author", author), ("ward approver", approver))


def pump_id(index: int) -> str:
    return f"vp-{index + 1:04d}"


def patient_id(index: int) -> str:
    """The patient in the bed of pump ``index`` (their wristband; an order for them names this MRN)."""
    return f"MRN-{index + 1:04d}"


class Bedside:
    """One pump, its driver and agent, and the nurse who looks after it."""

    def __init__(self, index: int, area: str, spec: WardSpec, *, link: PumpLink, package: bytes, clock: Clock) -> None:
        self.area = area
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, index])
        world_rng = np.random.default_rng([spec.seed, index, 1])
        self.world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW, record_series=False), world_rng)
        config = PumpConfig(pump_id=pump_id(index), channels=(ChannelSettings(kvo=_KVO),), care_area=area)
        self.pump = Pump(self.world.hardware, self.world.calibrations, config, ward_trust(spec.seed), package)
        self.driver = Driver(self.world, self.pump)
        self.agent = PumpAgent(
            self.pump,
            link,
            spec.agent,
            wall=clock.wall,
            monotonic=clock.monotonic,
            time_origin=spec.time_origin,
        )
        self.recipes = recipes(spec.library).get(area, ())
        self.limits = RateLimits.of(self.world.calibrations[0])
        self.wristband: str | None = patient_id(index)
        self.hung: str | None = None  # the drug of the bag hung for an order (None: the ordered one)
        self.orders_only = False  # True: this nurse starts nothing herself, only what EHR orders bring
        self._queried: set[str] = set()  # orders she found wrong: she does not confirm them again
        self._script = self._nurse()
        self._next_at, self._action = next(self._script)

    def _at(self, seconds: float) -> Instant:
        return self.world.now + Duration.s(round(seconds, 3))

    def _nurse(self) -> Iterator[tuple[Instant, Callable[[], None]]]:
        """The nurse's actions, each at a virtual instant (a generator: the script reads top to bottom)."""
        rng = self.rng
        while True:
            yield self._at(rng.uniform(20, 120)), self._program
            if self.pump.channels[0].state is not ChannelState.INFUSING:
                yield self._at(rng.uniform(30, 90)), self._tidy
                continue
            if rng.random() < P_OCCLUSION:
                yield self._at(rng.uniform(60, 600)), lambda: self.world.channel(0).set_occlusion("downstream", True)
                yield self._at(rng.uniform(60, 300)), self._clear_occlusion
            yield self._at(rng.uniform(300, 1200)), self._stop

    def _program(self) -> None:
        if not self.recipes or self.orders_only:
            return
        recipe = self.recipes[int(self.rng.integers(len(self.recipes)))]
        measured = patient_for(self.rng, next(a for a in self.spec.library.care_areas if a.id == self.area))
        patient = dataclasses.replace(measured, id=self.wristband)  # the bed's patient, whose wristband she scans
        try:
            program = recipe.program(recipe.usual(self.rng), self.limits, patient, self.rng)
            self.pump.program(0, program, selection=recipe.selection, patient=patient)
            self.pump.start(0)
        except OpenInfusionError:
            if self.pump.channels[0].state is ChannelState.PROGRAMMING:
                self.pump.cancel_programming(0)

    def _tidy(self) -> None:
        """Clear what did not start (a refused program); an orders-only bed waits for its next order instead."""
        if not self.orders_only:
            self._stop()

    def _clear_occlusion(self) -> None:
        self.world.channel(0).set_occlusion("downstream", False)
        self.driver.service()
        for alarm in self.pump.alarms.active(0):
            self.pump.reset_alarm(0, alarm.code)
        if self.pump.channels[0].state is ChannelState.PAUSED:
            self._try(lambda: self.pump.resume(0))

    def _stop(self) -> None:
        ch = self.pump.channels[0]
        if ch.state is ChannelState.INFUSING:
            self._try(lambda: self.pump.pause(0))
        for alarm in self.pump.alarms.active(0):
            self.pump.reset_alarm(0, alarm.code)
        if ch.state in {ChannelState.READY, ChannelState.PAUSED, ChannelState.COMPLETE, ChannelState.KVO}:
            self._try(lambda: self.pump.clear(0))

    def _confirm(self, order_id: str) -> None:
        """Verify the order at the bedside (wristband, bag, screen) and confirm it, or leave it if it differs."""
        p = self.agent.pending[order_id].program
        rate = FlowRate.of(decode_quantity(p.rate.model_dump(), "order.rate"))
        dose = None if p.dose is None else decode_quantity(p.dose.model_dump(), "order.dose")
        check = BedsideCheck("nurse", self.wristband, self.hung or p.drug, rate, dose)
        self._queried.add(order_id)  # confirmed, or refused for a mismatch: either way not tried again
        self.agent.confirm(order_id, check=check)

    @staticmethod
    def _try(action: Callable[[], None]) -> None:
        with contextlib.suppress(OpenInfusionError):  # refused: logged by the pump; the nurse moves on
            action()

    def advance(self, to: Instant, confirm_orders: bool) -> None:
        """Run the pump and the nurse's script up to virtual instant ``to``, then let the agent poll."""
        while self._next_at <= to:
            self.driver.run_until(self._next_at)
            self.driver.service()
            self._action()
            self._next_at, self._action = next(self._script)
        self.driver.run_until(to)
        if confirm_orders:
            self._queried &= self.agent.pending.keys()  # only orders still waiting are remembered
            for order in [o for o in self.agent.pending if o not in self._queried]:
                self._try(functools.partial(self._confirm, order))
        self.agent.poll()


@dataclass(slots=True)
class Clock:
    """The agent's clocks: wall time (aware) and a monotonic second counter."""

    wall: Callable[[], dt.datetime]
    monotonic: Callable[[], float]


class Ward:
    """Every bedside of a virtual ward, stepped together in virtual time."""

    def __init__(self, spec: WardSpec, links: Callable[[str], PumpLink], clock: Clock) -> None:
        self.spec = spec
        self.package = ward_release(spec.library, spec.seed)
        areas = assign_areas(spec.library, spec.pumps)
        self.beds = tuple(
            Bedside(i, areas[i], spec, link=links(pump_id(i)), package=self.package, clock=clock)
            for i in range(spec.pumps)
        )
        self.now = Instant(0)
        self.confirm_orders = True

    def step(self, dt_s: float = 1.0) -> None:
        """Advance every pump by ``dt_s`` seconds of virtual time."""
        self.now = self.now + Duration.s(round(dt_s, 3))
        for bed in self.beds:
            bed.advance(self.now, self.confirm_orders)

    def poll(self) -> None:
        """Let every agent talk without advancing time (after a fault ends, to drain what is buffered)."""
        for bed in self.beds:
            bed.agent.poll()
