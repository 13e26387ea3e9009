"""One virtual pump at the bedside: the real core on virtual hardware, paced in real time, and its panel.

:class:`PanelSession` receives widget presses (:mod:`.widgets`), runs the programming flows
(:mod:`.flow`), calls the core's clinician actions, and records every press and action with the pump's
time (for training scores and keystroke counts). Whatever the pump refuses is shown with its reason;
nothing the panel does bypasses the core's checks.

:meth:`PanelSession.join` makes the pump a member of a hospital fleet through the same agent and link
as a ward's pumps (:mod:`openinfusion.agent`): status and every event go to the server, its library
releases are staged by the core, and its remote orders wait on the panel until a nurse confirms them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from openinfusion.agent.agent import AgentConfig, PumpAgent
from openinfusion.agent.link import PumpLink
from openinfusion.druglib.model import Library
from openinfusion.errors import DoseLimitError, InputError, OpenInfusionError, TransitionRefusedError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.dosing import Concentration
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.programs import Bolus, DoseProgram, RateLimits, Titration
from openinfusion.pump.pump import Pump
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim import build
from openinfusion.sim.realtime import Realtime
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import (
    ContinuousSpec,
    DoseSpec,
    FromLibrary,
    PatientSpec,
    PcaSpec,
    Scenario,
    SecondarySpec,
    read_library,
)
from openinfusion.sim.screen import LABELS, pump_status
from openinfusion.sim.timebase import TimeBase
from openinfusion.units import Duration, FlowRate, Quantity, Volume
from openinfusion.web.panel.flow import Flow, Task
from openinfusion.web.panel.widgets import BY_ID, as_data

log = logging.getLogger(__name__)
PCA_DEMAND_RATE: Final = FlowRate.ml_h(60)  # how fast a demand dose runs (a typical PCA pump's)


@dataclass(frozen=True, slots=True)
class Press:
    """One widget press or clinician action as recorded: pump time (``t_us``, microseconds since power-on, the
    event log's time base), what, and the outcome."""

    t_us: int
    channel: int | None
    widget: str
    arg: str | None
    ok: bool
    detail: str = ""


class PanelSession:
    """The panel of one pump running ``scenario`` (its starting situation); ``file`` locates its library."""

    def __init__(
        self, scenario: Scenario, file: str, speed: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.scenario = scenario
        self.rt = Realtime(Simulation(scenario, file), speed, clock)
        self.library = _library(scenario, file)
        self.flows: dict[int, Flow] = {}
        self.alerts: dict[int, dict[str, Any]] = {}  # a limit alert waiting for the nurse, per channel
        self.pending_titration: dict[int, str] = {}
        self.presses: list[Press] = []
        self.message = ""
        self.alert_field: str | None = None  # the field a limit alert concerns ("dose"), to change it
        self.names = {d.id: d.display_name for d in self.library.drugs} if self.library else {}
        self.agent: PumpAgent | None = None
        self.time = TimeBase.of(scenario)  # how the panel and the debrief show pump time

    @property
    def pump(self) -> Pump:
        return self.rt.sim.pump

    # --- the fleet ---------------------------------------------------------------------------------

    def join(
        self,
        link: PumpLink,
        config: AgentConfig,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Talk to a hospital server over ``link``; events carry the wall-clock time of the pump's power-on
        plus pump time (at a speed above 1 they run ahead of the wall clock)."""
        origin = wall() - dt.timedelta(microseconds=self.rt.sim.world.now.us)
        self.agent = PumpAgent(self.pump, link, config, wall=wall, monotonic=monotonic, time_origin=origin)

    def tick(self) -> None:
        """Run the pump up to the present and let its agent talk (the app's pacing loop, a few times a second)."""
        self.rt.sync()
        if self.agent is not None:
            self.agent.pump = self.pump  # a power cycle boots a new core on the same event log
            try:
                self.agent.poll()
            except Exception:  # the communication side failing never stops the pump's pacing
                log.exception("pump agent poll failed; the pump runs on, the link retries next tick")

    def _order(self, action: str, order_id: str) -> str:
        if self.agent is None:
            raise InputError("order", "this pump is not connected to a server")
        if action == "order_decline":
            self.agent.decline(order_id)
            return f"order {order_id} declined"
        try:
            self.agent.confirm(order_id)  # programs and starts through the core's checks; tells the server
        except OpenInfusionError as e:
            raise InputError(f"order {order_id}", str(e)) from None
        return f"order {order_id} confirmed and started"

    def orders(self) -> list[dict[str, Any]]:
        """The server's orders waiting at this pump for a nurse's confirmation, as the panel lists them."""
        if self.agent is None:
            return []
        out = []
        for order in self.agent.pending.values():
            p = order.program
            drug = self.names.get(p.drug, p.drug)
            out.append(
                {
                    "id": order.order,
                    "channel": LABELS[order.channel],  # the agent refuses orders for channels the pump lacks
                    "text": f"{drug}{' ' + p.concentration if p.concentration else ''}"
                    + ("" if p.dose is None else f" {p.dose.value} {p.dose.unit}")
                    + f" at {p.rate.value} {p.rate.unit}"
                    + ("" if p.vtbi is None else f", VTBI {p.vtbi.value} {p.vtbi.unit}"),
                    "expires": order.expires.astimezone().strftime("%H:%M:%S"),
                }
            )
        return out

    # --- presses -----------------------------------------------------------------------------------

    def press(self, widget: str, channel: int | None = None, arg: str | None = None, at_ms: int | None = None) -> None:
        """Press ``widget`` (on ``channel``, with ``arg``: an option id or a reason); a refusal is shown, not raised."""
        self.rt.sync()
        w = BY_ID.get(widget)
        at = int(time.monotonic() * 1000) if at_ms is None else at_ms
        if w is None:
            self._record(channel, widget, arg, False, f"unknown widget {widget!r}")
            return
        if channel is not None and not 0 <= channel < len(self.pump.channels):
            last = len(self.pump.channels) - 1
            why = f"no channel index {channel}: this pump has channels A to {LABELS[last]} (indexes 0 to {last})"
            self._record(channel, widget, arg, False, why)
            return
        if w.action == "key":
            arg = w.id.removeprefix("key_")
        try:
            detail = self._dispatch(w.action, channel, arg, at)
            self._record(channel, widget, arg, True, detail)
        except (TransitionRefusedError, DoseLimitError, InputError) as e:
            self._record(channel, widget, arg, False, str(e))
            if channel in self.alerts:  # the channel's screen shows the limit; the message line points to it
                self.message = f"Drug library limit on channel {LABELS[channel]}: see its screen"
        self.rt.sim.driver.service()

    def _record(self, channel: int | None, widget: str, arg: str | None, ok: bool, detail: str) -> None:
        self.message = detail if detail else ""
        self.presses.append(Press(self.rt.sim.world.now.us, channel, widget, arg, ok, detail))

    def _dispatch(self, action: str, ch: int | None, arg: str | None, at_ms: int) -> str:
        pump = self.pump
        if action == "audio_pause":
            pump.audio_pause()
            return "alarm sounds paused for 2 minutes"
        if action in ("order_confirm", "order_decline"):
            return self._order(action, arg or "")
        if ch is None:
            raise InputError("channel", f"{action} needs a channel")
        simple: dict[str, Callable[[int], None]] = {
            "start": pump.start, "pause": pump.pause, "resume": pump.resume, "clear": pump.clear,
            "pca_demand": pump.pca_demand,
        }  # fmt: skip
        if action in simple:
            simple[action](ch)
            return ""
        if action in ("program", "secondary", "pca", "titrate", "bolus"):
            return self._open(action, ch)  # type: ignore[arg-type]
        if action == "reset_alarm":
            return self._reset(ch, arg)
        if action in ("confirm_titration", "cancel_titration"):
            getattr(pump, action)(ch)
            self.pending_titration.pop(ch, None)
            return "rate change confirmed" if action == "confirm_titration" else "rate change cancelled"
        flow = self.flows.get(ch)
        if flow is None:
            raise InputError("screen", "no programming screen is open on this channel")
        return self._on_screen(flow, action, ch, arg, at_ms)

    def _reset(self, ch: int, arg: str | None) -> str:
        listed = [a for a in self.pump.alarms.active() if a.channel in (ch, None)]
        if arg:
            listed = [a for a in listed if a.code.value == arg]
        if not listed:
            raise InputError("reset_alarm", "no alarm to reset on this channel")
        top = listed[0]
        if not self.pump.reset_alarm(top.channel, AlarmCode(top.code)):
            raise TransitionRefusedError(top.state.value, "reset", "the condition is still present: fix it first")
        return f"{top.text}: reset"

    # --- flows -------------------------------------------------------------------------------------

    def _open(self, task: Task, ch: int) -> str:
        if self.library is None:
            raise InputError("library", "no drug library on this pump")
        channel = self.pump.channels[ch]
        area = self.pump.config.care_area
        if area is None:
            raise InputError("care_area", "the pump has no care area: programming from the library needs one")
        cal = self.rt.sim.world.calibrations[ch]
        limits = RateLimits.of(cal)
        area_max = self.library_area_max(area)
        flow = Flow(task, ch, self.library, area, limits, min(limits.max_rate.in_ml_h, area_max))
        running = channel.active
        if task in ("titrate", "bolus"):
            if running is None:
                raise TransitionRefusedError(channel.state.value, task, "nothing is running on this channel")
            if task == "titrate" and isinstance(running, DoseProgram):
                flow.current, flow.current_unit = running.dose.value, running.dose.unit.code
            elif task == "titrate":
                flow.current, flow.current_unit = running.primary_rate().in_ml_h, "mL/h"
            conc = getattr(running, "concentration", None)
            if isinstance(conc, Concentration):
                flow.running_conc, flow.running_patient = conc, getattr(running, "patient", None)
                if task == "bolus":
                    flow.current_unit = conc.amount.unit.code
        elif task in ("program", "pca") and channel.state in (ChannelState.IDLE, ChannelState.COMPLETE):
            self.pump.begin_programming(ch)
        flow.start()
        self.flows[ch] = flow
        self.alerts.pop(ch, None)
        return ""

    def library_area_max(self, area: str) -> Fraction:
        assert self.library is not None
        found = next((a for a in self.library.care_areas if a.id == area), None)
        return Fraction(999) if found is None else found.max_rate.in_("mL/h")

    def _on_screen(self, flow: Flow, action: str, ch: int, arg: str | None, at_ms: int) -> str:
        if action == "choose":
            flow.choose(arg or "")
        elif action == "key":
            flow.key(arg or "", at_ms)
        elif action == "back":
            flow.back()
        elif action == "change":
            self.alerts.pop(ch, None)
            flow.goto(self.alert_field or "")
        elif action == "cancel":
            return self._cancel(flow, ch)
        elif action == "confirm":
            return self._confirm(flow, ch, None)
        elif action == "override":
            return self._confirm(flow, ch, arg)
        return ""  # the screen shows the flow's own message

    def _cancel(self, flow: Flow, ch: int) -> str:
        del self.flows[ch]
        self.alerts.pop(ch, None)
        if self.pump.channels[ch].state is ChannelState.PROGRAMMING:
            self.pump.cancel_programming(ch)
            return "programming cancelled"
        return "cancelled"

    def _confirm(self, flow: Flow, ch: int, reason: str | None) -> str:
        if not flow.review:
            raise InputError("confirm", "answer every question first")
        try:
            done = self._execute(flow, ch, reason)
        except DoseLimitError as e:
            self.alerts[ch] = self._alert(ch, e)
            self.alert_field = e.where.removeprefix("program.")
            raise
        del self.flows[ch]
        self.alerts.pop(ch, None)
        return done

    def _alert(self, ch: int, e: DoseLimitError) -> dict[str, Any]:
        last = next(x for x in reversed(self.pump.log.events()) if x.kind is EventKind.DERS_CHECK and x.channel == ch)
        hard = last.data.get("outcome") == "blocked"
        reasons = (
            [] if hard or self.pump.library.active is None else list(self.pump.library.active.index.override_reasons)
        )
        return {"kind": "hard" if hard else "soft", "why": e.why, "reasons": reasons}

    def _execute(self, flow: Flow, ch: int, reason: str | None) -> str:
        pump, a = self.pump, flow.answers
        cal = self.rt.sim.world.calibrations[ch]
        c = flow.choice
        if flow.task == "titrate":
            new = a["new"]
            change = Titration(
                FlowRate.ml_h(new) if flow.current_unit == "mL/h" else Quantity.of(new, flow.current_unit or "")
            )
            pump.titrate(ch, change, override_reason=reason)
            self.pending_titration[ch] = f"{flow.lines()[-1][1]}"
            return "check the new value, then confirm the change"
        if flow.task == "bolus":
            unit = flow.current_unit or "mL"
            size = Volume.ml(a["amount"]) if unit == "mL" else Quantity.of(a["amount"], unit)
            bolus = Bolus.request(
                size, Duration.min(a["duration"]), RateLimits.of(cal),
                concentration=flow.running_conc, patient=flow.running_patient,
            )  # fmt: skip
            pump.bolus(ch, bolus, override_reason=reason)
            return "bolus started"
        assert c is not None
        conc = flow.concentration()
        lib = FromLibrary(drug=c.drug.id, therapy=c.entry.therapy, concentration=a.get("concentration"))
        entered = flow.patient()
        who = PatientSpec(weight=entered.weight, bsa=entered.bsa)
        common: dict[str, Any] = {"from_library": lib, "override_reason": reason}
        if flow.task == "secondary":
            spec2 = SecondarySpec(rate=Quantity.of(a["rate"], "mL/h"), vtbi=Quantity.of(a["vtbi"], "mL"), **common)
            selection = build.selection(spec2, pump.config.care_area, "secondary")
            pump.secondary(ch, build.secondary(spec2, cal), selection=selection, override_reason=reason)
            return "secondary infusion started"
        if flow.task == "pca":
            assert conc is not None
            unit = c.entry.dose_unit.code
            spec: Any = PcaSpec(
                type="pca", concentration=conc, demand_dose=Quantity.of(a["demand_dose"], unit),
                lockout=Quantity.of(a["lockout"], "min"), demand_rate=PCA_DEMAND_RATE.quantity(),
                limit_4h=Quantity.of(a["limit_4h"], unit), **common,
            )  # fmt: skip
        elif "dose" in a:
            assert conc is not None
            spec = DoseSpec(
                type="dose", dose=Quantity.of(a["dose"], c.entry.dose_unit.code), concentration=conc,
                vtbi=Quantity.of(a["vtbi"], "mL"), **common,
            )  # fmt: skip
        else:
            rate, vtbi = Quantity.of(a["rate"], "mL/h"), Quantity.of(a["vtbi"], "mL")
            spec = ContinuousSpec(type="continuous", rate=rate, vtbi=vtbi, **common)
        program = build.program(spec, cal, who)
        pump.program(
            ch, program, selection=build.selection(spec, pump.config.care_area, "program"),
            patient=build.patient(who), override_reason=reason,
        )  # fmt: skip
        return "program accepted: check the line and press Start"

    # --- the screen --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the page draws, at the pump's present."""
        self.rt.sync()
        status = pump_status(self.pump, self.time, self.names)
        screens = {str(ch): flow.screen() for ch, flow in self.flows.items()}
        for ch, alert in self.alerts.items():
            screens.setdefault(str(ch), {})["alert"] = alert
        for ch, text in self.pending_titration.items():
            if self.pump.channels[ch].pending is None:
                continue
            screens[str(ch)] = {"kind": "titration", "title": "Confirm the change", "channel": ch, "new": text}
        return {
            **status,
            "screens": screens,
            "message": self.message,
            "keystrokes": len(self.presses),
            "speed": self.rt.speed,
            "frozen": self.rt.frozen,
            "scenario": self.scenario.name,
            "server": None if self.agent is None else {"connected": self.agent.link.connected},
            "orders": self.orders(),
        }

    def widgets(self) -> list[dict[str, Any]]:
        return as_data()


def _library(scenario: Scenario, file: str) -> Library | None:
    return None if scenario.library is None else read_library(Path(file).parent / scenario.library)
