"""The story of a run as a nurse reads it: clock times, drugs and doses, alarms, library checks, screens.

Built from the pump's event log (the record of truth) and from the pump's screen captured at key
moments during the run (:class:`ScreenRecorder`): program started, alarm raised, secondary, bolus,
titration, VTBI complete, and the end. Times are clock times (:mod:`.timebase`): the wall clock when the
scenario gives ``start``, otherwise hh:mm:ss from the scenario's start. Everything here
is plain text and rows, for the terminal (``openinfusion simulate``/``demo``) and the HTML report.

"Delivered" is the pump's own count (the mechanism's motion measured by its encoder); "into patient" is
what a balance at the catheter tip would have weighed. They differ by what the line's compliance holds
under pressure, what an occlusion back-off took back, and air (docs/physics.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from openinfusion.pump.alarms import CATALOGUE, AlarmCode
from openinfusion.pump.eventlog import EventKind, JsonValue, LoggedEvent
from openinfusion.pump.pca import PcaProgram
from openinfusion.sim.run import Simulation
from openinfusion.sim.screen import LABELS, channel_label, channel_status
from openinfusion.sim.timebase import TimeBase
from openinfusion.units import Duration, Instant, format_decimal

DELIVERED_VS_PATIENT: Final = (
    "Delivered is the pump's own count of what its mechanism pushed (encoder-measured); into patient is "
    "what reached the catheter tip (a virtual balance). They differ by the volume the tubing holds under "
    "pressure, what an occlusion back-off drew back, and air."
)

# The moments at which the pump's screen is captured for the report, with how the moment is named.
MOMENTS: Final = {
    EventKind.INFUSION_STARTED: "infusion started",
    EventKind.ALARM_RAISED: "alarm",
    EventKind.SECONDARY_STARTED: "secondary started",
    EventKind.SECONDARY_COMPLETED: "secondary completed",
    EventKind.TITRATION_CONFIRMED: "titration confirmed",
    EventKind.BOLUS_STARTED: "bolus started",
    EventKind.VTBI_COMPLETE: "VTBI complete",
}

TOLD: Final = {
    EventKind.PROGRAM_CONFIRMED, EventKind.BASIC_INFUSION, EventKind.INFUSION_STARTED, EventKind.INFUSION_STOPPED,
    EventKind.RATE_CHANGED, EventKind.TITRATION_PENDING, EventKind.TITRATION_CONFIRMED,
    EventKind.TITRATION_CANCELLED, EventKind.BOLUS_STARTED, EventKind.BOLUS_COMPLETED, EventKind.SECONDARY_STARTED,
    EventKind.SECONDARY_COMPLETED, EventKind.VTBI_COMPLETE, EventKind.KVO_STARTED, EventKind.PCA_DEMAND,
    EventKind.ALARM_RAISED, EventKind.ALARM_ESCALATED, EventKind.ALARM_LATCHED, EventKind.ALARM_CLEARED,
    EventKind.ALARM_RESET, EventKind.ALARM_ACKNOWLEDGED, EventKind.AUDIO_PAUSED, EventKind.DERS_CHECK,
    EventKind.DERS_OVERRIDE, EventKind.DERS_CANCEL, EventKind.EVENT_REFUSED, EventKind.FAULT_INJECTED,
    EventKind.FAILSAFE, EventKind.WATCHDOG,
}  # fmt: skip


def q(value: JsonValue) -> str:
    """``{"value": "125", "unit": "mL/h"}`` as ``125 mL/h``; anything else as text."""
    if isinstance(value, Mapping) and set(value) == {"value", "unit"}:
        if value["unit"] == "s" and Fraction(str(value["value"])) >= 60:  # a duration a nurse reads in minutes
            return f"{format_decimal(Fraction(str(value['value'])) / 60, 2)} min"
        places = 2 if value["unit"] == "mL" else 3  # a volume to 0.01 mL; doses and rates to 3 places
        return f"{format_decimal(Fraction(str(value['value'])), places)} {value['unit']}"
    return "" if value is None else str(value)


def _findings(data: Mapping[str, JsonValue]) -> str:
    found = data.get("findings")
    if not isinstance(found, (list, tuple)):  # the log keeps its lists frozen, as tuples
        return ""
    parts = []
    for f in found:
        if isinstance(f, Mapping):
            side = f"{f.get('bound')} {f.get('kind')} limit"
            parts.append(f"{str(f.get('field')).replace('_', ' ')} {q(f.get('entered'))}, {side} {q(f.get('limit'))}")
    return "; ".join(parts)


def sentence(e: LoggedEvent, dose: str = "") -> str | None:
    """One event as a nurse would say it (None for a routine library check that passed).

    ``dose`` is the dose the library check of this program or titration saw, shown next to its mL/h.
    """
    d = e.data
    prio = str(d.get("priority", "")).upper()
    detail = f" - {d['detail']}" if d.get("detail") else ""
    program = d.get("program")
    rate = q(program.get("rate")) if isinstance(program, Mapping) else ""
    if not dose and isinstance(program, Mapping) and program.get("dose"):
        dose = q(program["dose"])  # the program's own dose, when no library check told it
    if dose and rate:
        rate = f"{dose} = {rate}"
    match e.kind:
        case EventKind.ALARM_RAISED:
            return f"{d.get('text')} ({prio}){detail}"
        case EventKind.ALARM_ESCALATED:
            return f"{d.get('text')}: escalated to {prio}, nobody had attended to it"
        case EventKind.ALARM_LATCHED:
            return f"{d.get('text')}: condition gone, alarm stays until reset"
        case EventKind.ALARM_CLEARED | EventKind.ALARM_RESET | EventKind.ALARM_ACKNOWLEDGED:
            how = {EventKind.ALARM_CLEARED: "condition ended", EventKind.ALARM_RESET: "reset by the nurse",
                   EventKind.ALARM_ACKNOWLEDGED: "acknowledged, condition still present"}[e.kind]  # fmt: skip
            return f"{d.get('text')}: {how}"
        case EventKind.AUDIO_PAUSED:
            return "Alarm sounds paused for 2 minutes"
        case EventKind.DERS_CHECK:
            outcome = d.get("outcome")
            if outcome == "proceed":
                return None
            verdict = "HARD LIMIT, blocked" if outcome == "blocked" else "soft limit, needs an override"
            return f"Drug library check ({d.get('action')}): {verdict}: {_findings(d)}"
        case EventKind.DERS_OVERRIDE:
            return f"Soft limit overridden ({d.get('action')}), reason: {d.get('reason')}: {_findings(d)}"
        case EventKind.DERS_CANCEL:
            return "Program changed or cancelled after a limit alert (error caught)"
        case EventKind.BASIC_INFUSION:
            return f"Basic infusion, no drug library limits: {rate}; reason: {d.get('reason') or 'none given'}"
        case EventKind.PROGRAM_CONFIRMED:
            vtbi = q(program.get("vtbi")) if isinstance(program, Mapping) else ""
            return f"Program confirmed: {rate}" + (f", VTBI {vtbi}" if vtbi else ", no VTBI")
        case EventKind.INFUSION_STARTED:
            return f"Infusion started at {q(d.get('rate'))}"
        case EventKind.INFUSION_STOPPED:
            why = f" ({d['reason']})" if d.get("reason") else ""
            so_far = f"; {q(d['delivered'])} delivered so far" if d.get("delivered") else ""
            return f"Infusion stopped{why}{so_far}"
        case EventKind.RATE_CHANGED:
            before = f" from {q(d['previous'])}" if d.get("previous") else ""
            return f"Rate{before} to {q(d.get('rate'))} ({d.get('segment')})"
        case EventKind.TITRATION_PENDING:
            return f"New rate {rate} entered; {q(d.get('rate'))} continues until the nurse confirms"
        case EventKind.TITRATION_CONFIRMED:
            return f"Rate change confirmed: now {q(d.get('rate'))}"
        case EventKind.TITRATION_CANCELLED:
            return "Rate change cancelled; the old rate continues"
        case EventKind.PCA_DEMAND:
            given = d.get("given")
            answer = f"given {q(d.get('amount'))}" if given else f"denied ({d.get('reason')})"
            return f"Patient pressed the PCA button: {answer}"
        case EventKind.EVENT_REFUSED:
            return f"Refused by the pump: {d.get('event')}: {d.get('reason')}"
        case EventKind.FAULT_INJECTED:
            return f"Fault injected: {d.get('fault')}"
        case _:
            extra = ", ".join(f"{k} {q(v)}" for k, v in sorted(d.items()) if k not in ("program", "library"))
            return str(e.kind.value).replace("_", " ").capitalize() + (f": {extra}" if extra else "")


@dataclass(slots=True)
class Screen:
    """The screen of one channel at one moment."""

    time: str
    moment: str
    channel: str
    shown: dict[str, Any]


class ScreenRecorder:
    """Captures each channel's screen at the key moments of a run (hooks the driver's service callback)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.time = TimeBase.of(sim.scenario)
        self.screens: list[Screen] = []
        self._seq = 0
        self._inner = sim.driver.on_service
        sim.driver.on_service = self

    def __call__(self) -> None:
        if self._inner is not None:
            self._inner()
        log = self.sim.pump.log
        for e in log.events(self._seq):
            if e.kind in MOMENTS and e.channel is not None:
                moment = MOMENTS[e.kind] + (f": {e.data.get('code')}" if e.kind is EventKind.ALARM_RAISED else "")
                self._capture(e.channel, moment, e.t)
        self._seq = log.last_seq

    def _capture(self, channel: int, moment: str, t: Instant) -> None:
        shown = channel_status(self.sim.pump.channels[channel], drug_names(self.sim))
        self.screens.append(Screen(self.time(t), moment, LABELS[channel], shown))

    def finish(self) -> None:
        """The screens at the end of the scenario."""
        for i in range(len(self.sim.pump.channels)):
            self._capture(i, "end of scenario", self.sim.world.now)


def drug_names(sim: Simulation) -> dict[str, str]:
    """Drug id -> display name (tall man) from the active library."""
    active = sim.pump.library.active
    if active is None:
        return {}
    return {e.drug: e.display_name for e in active.index.entries.values()}


def advisories(sim: Simulation) -> dict[tuple[str, str, str | None], str]:
    """(care area, drug, therapy) -> the advisory the pump's screen shows when that entry is chosen."""
    active = sim.pump.library.active
    if active is None:
        return {}
    return {key: e.advisory for key, e in active.index.entries.items() if e.advisory}


@dataclass(slots=True)
class AlarmSpan:
    raised: str
    channel: str
    text: str
    priority: str
    detail: str
    escalated: str = ""
    latched: str = ""
    ended: str = "still active at the end"
    how: str = ""


@dataclass(slots=True)
class Story:
    """Everything a nurse reads about a run (plain rows of text); ``heading`` says what its times are."""

    heading: str = "hh:mm:ss from the start"
    timeline: list[tuple[str, str, str, str]] = field(default_factory=list)  # time, channel, drug, what happened
    alarms: list[AlarmSpan] = field(default_factory=list)
    ders: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    screens: list[Screen] = field(default_factory=list)
    pca: list[tuple[str, str]] = field(default_factory=list)  # channel, totals text
    totals: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # ch, delivered, into patient, air, state
    battery: str = ""
    refused: list[tuple[str, str, str]] = field(default_factory=list)


def _drug_label(d: Mapping[str, JsonValue], names: Mapping[str, str]) -> str | None:
    sel = d.get("selection")
    if not isinstance(sel, Mapping):
        return None
    drug = str(sel.get("drug"))
    conc = f" {sel['concentration']}" if sel.get("concentration") else ""
    return f"{names.get(drug, drug)}{conc}"


def tell(sim: Simulation, screens: list[Screen]) -> Story:
    """The story of a finished run."""
    names, advised = drug_names(sim), advisories(sim)
    time = TimeBase.of(sim.scenario)
    story = Story(heading=time.heading, screens=screens)
    primary: dict[int, str] = {}
    secondary: dict[int, str] = {}
    drugs: dict[int, str] = {}  # what each channel is running now
    spans: dict[int, AlarmSpan] = {}
    doses: dict[int | None, str] = {}  # the dose the last library check of each channel saw
    for e in sim.pump.log.events():
        values = e.data.get("values")
        if e.kind is EventKind.DERS_CHECK and isinstance(values, Mapping):
            doses[e.channel] = q(values.get("dose"))
        elif e.kind is EventKind.BASIC_INFUSION:
            doses.pop(e.channel, None)  # no library check: no dose to show
        ch = channel_label(e.channel)
        label = _drug_label(e.data, names)
        if e.channel is not None:
            _track(e, label, primary, secondary, drugs)
        _alarm(e, time(e.t), ch, spans)
        if e.kind in (EventKind.DERS_CHECK, EventKind.DERS_OVERRIDE):
            _ders(e, time(e.t), ch, label or "", story, advised=advised)
        if e.kind in TOLD:
            text = sentence(e, doses.get(e.channel, "") if e.kind in _DOSED else "")
            if text is not None:
                drug = drugs.get(e.channel, "") if e.channel is not None else ""
                story.timeline.append((time(e.t), ch, drug, text))
    story.alarms = sorted(spans.values(), key=lambda s: s.raised)
    story.refused = [(time.at_s(t), channel_label(c), r) for t, c, r in sim.refusals]
    _totals(sim, story)
    return story


def _track(
    e: LoggedEvent, label: str | None, primary: dict[int, str], secondary: dict[int, str], drugs: dict[int, str]
) -> None:
    """Which drug a channel runs: the primary's, or the secondary's while it runs."""
    assert e.channel is not None
    i, d = e.channel, e.data
    passed = e.kind is EventKind.DERS_CHECK and d.get("outcome") == "proceed"
    if label and (passed or e.kind is EventKind.DERS_OVERRIDE):
        (secondary if d.get("action") == "secondary" else primary)[i] = label
    if e.kind is EventKind.BASIC_INFUSION:
        (secondary if d.get("action") == "secondary" else primary)[i] = "basic infusion (no library)"
    if e.kind is EventKind.SECONDARY_STARTED and i in secondary:
        drugs[i] = secondary[i]
    elif e.kind is not EventKind.SECONDARY_STARTED and (i not in drugs or e.kind is EventKind.SECONDARY_COMPLETED):
        drugs[i] = primary.get(i, "")
    if e.kind is EventKind.PROGRAM_CONFIRMED:
        drugs[i] = primary.get(i, "")


def _alarm(e: LoggedEvent, t: str, ch: str, spans: dict[int, AlarmSpan]) -> None:
    instance = e.data.get("instance")
    if not isinstance(instance, int):
        return
    if e.kind is EventKind.ALARM_RAISED and instance not in spans:
        code = AlarmCode(str(e.data.get("code")))
        prio, detail = str(e.data.get("priority")).upper(), str(e.data.get("detail", ""))
        spans[instance] = AlarmSpan(t, ch, CATALOGUE[code].text, prio, detail)
    span = spans.get(instance)
    if span is None:
        return
    if e.kind is EventKind.ALARM_ESCALATED:
        span.escalated = f"to {str(e.data.get('priority')).upper()} at {t}"
    elif e.kind is EventKind.ALARM_LATCHED:
        span.latched = t
    elif e.kind in (EventKind.ALARM_CLEARED, EventKind.ALARM_RESET):
        span.ended, span.how = t, ("condition ended" if e.kind is EventKind.ALARM_CLEARED else "reset")
    elif e.kind is EventKind.ALARM_ACKNOWLEDGED:
        span.how = f"acknowledged at {t}"


def _ders(
    e: LoggedEvent, t: str, ch: str, drug: str, story: Story, *, advised: dict[tuple[str, str, str | None], str]
) -> None:
    d = e.data
    values = d.get("values")
    shown = ", ".join(f"{k.replace('_', ' ')} {q(v)}" for k, v in values.items()) if isinstance(values, Mapping) else ""
    if e.kind is EventKind.DERS_OVERRIDE:
        outcome = f"OVERRIDDEN: {d.get('reason')}"
    else:
        outcome = _OUTCOMES.get((str(d.get("outcome")), str(d.get("verdict"))), str(d.get("outcome")))
    said = f"{outcome}. {_findings(d)}".strip(" .")
    sel = d.get("selection")
    if e.kind is EventKind.DERS_CHECK and d.get("action") in ("program", "secondary") and isinstance(sel, Mapping):
        therapy = sel.get("therapy")
        key = (str(sel.get("area")), str(sel.get("drug")), therapy if isinstance(therapy, str) else None)
        advisory = advised.get(key)
        said += f". Advisory on the screen: {advisory}" if advisory else ""
    story.ders.append((t, ch, str(d.get("action")), drug, shown, said))


_DOSED: Final = {EventKind.PROGRAM_CONFIRMED, EventKind.TITRATION_PENDING}  # events whose program the check saw

_OUTCOMES: Final = {  # (outcome, verdict) of a DERS check
    ("proceed", "ok"): "within limits",
    ("proceed", "soft"): "soft limit crossed: proceeds with the override below",
    ("blocked", "hard"): "HARD LIMIT: blocked",
    ("needs_override", "soft"): "soft limit: alert, not overridden",
}


def _totals(sim: Simulation, story: Story) -> None:
    summary = sim.summary("")
    for i, c in enumerate(summary["channels"]):
        truth = sim.world.channel(i).truth()
        air = truth.air_past_detector.in_ml
        story.totals.append((
            LABELS[i], f"{c['delivered_ml']:.2f} mL", f"{c['into_patient_ml']:.2f} mL", f"{float(air):.3f} mL",
            c["final_state"],
        ))  # fmt: skip
        ch = sim.pump.channels[i]
        if isinstance(ch.program, PcaProgram) and ch.pca is not None:
            demands = ch.pca.demands
            given = [d for d in demands if d.given]
            denied: dict[str, int] = {}
            for d in demands:
                if d.reason is not None:
                    denied[d.reason.value] = denied.get(d.reason.value, 0) + 1
            now = sim.world.now
            h1 = ch.pca.amount_in(Duration.h(1), now)
            h4 = ch.pca.amount_in(Duration.h(4), now)
            why = ", ".join(f"{n} {r}" for r, n in sorted(denied.items())) or "none"
            story.pca.append((LABELS[i], (
                f"{len(demands)} demands: {len(given)} given, {len(demands) - len(given)} denied ({why}); "
                f"in the last hour {h1}, in the last 4 hours {h4} (demands, basal and loading)"
            )))  # fmt: skip
    status = sim.pump.hw.power.status()
    story.battery = (
        f"{'on mains' if status.on_mains else 'on battery'} at the end, charge {status.charge_permille / 10:.0f} %, "
        f"about {int(status.remaining.seconds // 60)} min of running left at the present load"
    )
