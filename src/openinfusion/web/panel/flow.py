"""The smart-pump programming flows, screen by screen: what the nurse is asked, in order.

A :class:`Flow` is one task on one channel (program, secondary, PCA, titration, bolus). Its steps are
data (:class:`Step`): a choice from the library (drug, concentration), a number on the keypad (the
core's safe-entry model, :mod:`openinfusion.pump.entry`), then a review. The flow only collects
answers; the programs are built by the same builders the scenarios use (:mod:`openinfusion.sim.build`)
and checked by the pump itself (DERS), so the panel can never accept what the pump would refuse.

Numeric fields are bounded at entry by what the pump could do: a rate by the mechanism's range and
the care area's maximum, a dose by the dose the pump's maximum rate would give at this concentration
and weight. Drug-library limits are left to the pump's DERS check at confirmation, so that every
soft-limit alert and hard block is logged (OI-DERS-5) and shown with the limit crossed (decision 0021).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, Literal

from openinfusion.druglib.model import Basis, Drug, Entry, Library, Mode, quantity_text
from openinfusion.errors import InputError
from openinfusion.pump.dosing import Concentration, Patient, rate_to_dose
from openinfusion.pump.entry import FieldSpec, NumberEntry, Outcome, Status
from openinfusion.pump.programs import RateLimits
from openinfusion.units import FlowRate, Quantity, format_decimal

Task = Literal["program", "secondary", "pca", "titrate", "bolus"]
TASKS: Final[tuple[Task, ...]] = ("program", "secondary", "pca", "titrate", "bolus")


@dataclass(frozen=True, slots=True)
class Option:
    """One choice on a list screen: its id (sent back when pressed), label and a hint line."""

    id: str
    label: str
    hint: str = ""
    high_alert: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """A question: ``choose`` from options, or a ``number`` in a field; ``name`` keys the answer."""

    name: str
    title: str
    kind: Literal["choose", "number"]
    options: tuple[Option, ...] = ()
    spec: FieldSpec | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """A library entry the nurse can pick in the pump's care area."""

    drug: Drug
    entry: Entry

    @property
    def key(self) -> str:
        return self.drug.id if self.entry.therapy is None else f"{self.drug.id}/{self.entry.therapy}"

    @property
    def label(self) -> str:
        therapy = "" if self.entry.therapy is None else f" ({self.entry.therapy})"
        return f"{self.drug.display_name}{therapy}"


def choices(library: Library, area: str, task: Task) -> tuple[Choice, ...]:
    """The entries of ``area`` offered for ``task`` (PCA entries for PCA, others for the rest), by name."""
    found = [Choice(d, e) for d, e in library.entries() if e.area == area]
    pca = [c for c in found if c.entry.mode is Mode.PCA]
    other = [c for c in found if c.entry.mode is not Mode.PCA]
    return tuple(sorted(pca if task == "pca" else other, key=lambda c: c.drug.display_name.lower()))


def find_choice(library: Library, area: str, task: Task, text: str) -> Choice | None:
    """The entry named ``text``: its id, generic or display name, or a listed synonym (brand name)."""
    wanted = text.strip().lower()
    for c in choices(library, area, task):
        names = {c.key, c.drug.id, c.drug.generic_name, c.drug.display_name, *c.drug.synonyms}
        if wanted in {n.lower() for n in names}:
            return c
    return None


def _number(
    name: str, title: str, unit: str, high: Fraction, decimals: int, *, current: Fraction | None = None
) -> Step:
    """A keypad question: from the smallest positive step to ``high`` (floored to the resolution)."""
    step = Fraction(1, 10**decimals)
    high = Fraction(int(high * 10**decimals), 10**decimals)
    return Step(name, title, "number", spec=FieldSpec(title, unit, step, max(high, 2 * step), decimals, current))


@dataclass(slots=True)
class Flow:
    """One programming task on one channel: the answers so far and the step being asked."""

    task: Task
    channel: int
    library: Library
    area: str
    limits: RateLimits
    max_rate: Fraction  # mL/h: the smaller of the mechanism's and the care area's maximum
    current: Fraction | None = None  # the running dose or rate, for titration (10x check)
    current_unit: str | None = None
    running_conc: Concentration | None = None  # the running program's (titration and bolus)
    running_patient: Patient | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    entry: NumberEntry | None = None
    index: int = 0
    review: bool = False
    message: str = ""

    # --- the steps ---------------------------------------------------------------------------------

    @property
    def choice(self) -> Choice | None:
        key = self.answers.get("drug")
        return (
            None
            if key is None
            else next((c for c in choices(self.library, self.area, self.task) if c.key == key), None)
        )

    def steps(self) -> list[Step]:
        """The questions this task asks, given the answers so far (weight only for per-kg dosing...)."""
        if self.task == "titrate":
            unit = self.current_unit or "mL/h"
            high = self.max_rate if unit == "mL/h" else self._max_dose(unit)
            title = "New rate" if unit == "mL/h" else "New dose"
            return [_number("new", title, unit, high, 1 if unit == "mL/h" else 3, current=self.current)]
        if self.task == "bolus":
            unit = self.current_unit or "mL"
            return [
                _number("amount", "Bolus", unit, Fraction(500), 2),
                _number("duration", "Bolus over", "min", Fraction(60), 0),
            ]
        steps = [Step("drug", "Choose the drug", "choose", options=self._drug_options())]
        c = self.choice
        if c is None:
            return steps
        if c.entry.concentrations:
            opts = tuple(Option(k.key, k.key) for k in c.entry.concentrations)
            steps.append(Step("concentration", "Concentration", "choose", options=opts))
        shape = c.entry.shape
        if self.task == "pca":
            unit = c.entry.dose_unit.code
            steps += [
                _number("demand_dose", "Demand dose", unit, Fraction(100), 2),
                _number("lockout", "Lockout", "min", Fraction(120), 0),
                _number("limit_4h", "4-hour limit", unit, Fraction(1000), 2),
            ]
            return steps
        if shape is not None and shape.basis is Basis.WEIGHT:
            steps.append(_number("weight", "Patient weight", "kg", Fraction(500), 1))
        if shape is not None and shape.basis is Basis.BSA:
            steps.append(_number("bsa", "Body surface area", "m2", Fraction(5), 2))
        if self.task == "program" and not c.entry.rate_only and c.entry.mode is Mode.CONTINUOUS:
            unit = c.entry.dose_unit.code
            steps.append(_number("dose", "Dose", unit, self._max_dose(unit), 3))
        else:
            steps.append(_number("rate", "Rate", "mL/h", self.max_rate, 1))
        steps.append(_number("vtbi", "Volume to be infused", "mL", Fraction(9999), 1))
        return steps

    def _drug_options(self) -> tuple[Option, ...]:
        return tuple(
            Option(c.key, c.label, ", ".join(c.drug.synonyms), c.drug.high_alert)
            for c in choices(self.library, self.area, self.task)
        )

    def concentration(self) -> Concentration | None:
        key = self.answers.get("concentration")
        c = self.choice
        if key is None or c is None:
            return None
        found = next(k for k in c.entry.concentrations if k.key == key)
        if found.volume is None:
            return None
        return Concentration(found.amount, found.volume)

    def patient(self) -> Patient:
        """The patient as entered so far (weight in kg, BSA in m2)."""
        weight, bsa = self.answers.get("weight"), self.answers.get("bsa")
        return Patient(
            weight=None if weight is None else Quantity.of(weight, "kg"),
            bsa=None if bsa is None else Quantity.of(bsa, "m2"),
        )

    def _max_dose(self, unit: str) -> Fraction:
        """The dose at the pump's maximum rate (what it could deliver at this concentration and weight)."""
        conc = self.concentration() or self.running_conc
        if conc is None:
            return Fraction(100000)
        who = self.running_patient or self.patient()
        try:
            top = rate_to_dose(FlowRate.ml_h(self.max_rate), conc, who, Quantity.of(1, unit).unit).value
        except InputError:  # a unit this concentration cannot give: the pump's check refuses it later
            top = Fraction(100000)
        return top

    @property
    def step(self) -> Step | None:
        steps = self.steps()
        return None if self.review or self.index >= len(steps) else steps[self.index]

    # --- input -------------------------------------------------------------------------------------

    def choose(self, option: str) -> None:
        step = self.step
        if step is None or step.kind != "choose" or option not in {o.id for o in step.options}:
            self.message = f"{option!r} is not one of the choices"
            return
        self.answers[step.name] = option
        self.message = ""
        self._next()

    def key(self, key: str, at_ms: int) -> Outcome | None:
        step = self.step
        if step is None or step.kind != "number" or self.entry is None:
            self.message = "no number is being entered"
            return None
        out = self.entry.press(key, at_ms)
        self.message = out.reason
        if out.status is Status.COMMITTED and out.value is not None:
            if out.tenfold and self.answers.get("_tenfold_ok") != out.display:
                self.answers["_tenfold_ok"] = out.display  # Enter again confirms the 10x change
                self.message = f"{out.reason}: check the order, press Enter again to confirm"
                return out
            self.answers[step.name] = out.value.value
            self._next()
        return out

    def _next(self) -> None:
        self.index += 1
        step = self.step
        if step is None:
            self.review = True
            self.entry = None
        elif step.kind == "number" and step.spec is not None:
            self.entry = NumberEntry(step.spec)

    def back(self) -> None:
        """One step back (from review, to the last question)."""
        self.review = False
        self.index = max(0, self.index - 1)
        step = self.step
        self.entry = NumberEntry(step.spec) if step is not None and step.spec is not None else None
        self.message = ""

    def start(self) -> None:
        self.index = -1
        self._next()

    def goto(self, name: str) -> None:
        """Back to the question ``name`` (after a limit alert: change the value)."""
        names = [s.name for s in self.steps()]
        self.index = names.index(name) - 1 if name in names else len(names) - 2
        self.review = False
        self._next()

    # --- what the screen shows -----------------------------------------------------------------------

    def lines(self) -> list[tuple[str, str]]:
        """The review screen: each answer with its unit."""
        out: list[tuple[str, str]] = []
        c = self.choice
        if c is not None:
            out.append(("Drug", c.label + ("  HIGH-ALERT" if c.drug.high_alert else "")))
        titles = {"concentration": "Concentration"}
        for s in self.steps():
            if s.name in self.answers and s.name != "drug":
                v = self.answers[s.name]
                text = f"{format_decimal(v)} {s.spec.unit}" if s.spec is not None else str(v)
                out.append((titles.get(s.name, s.title), text))
        return out

    def screen(self) -> dict[str, Any]:
        step = self.step
        c = self.choice
        base: dict[str, Any] = {
            "task": self.task,
            "channel": self.channel,
            "message": self.message,
            "advisory": None if c is None else (c.entry.advisory or c.drug.advisory),
            "lines": [list(x) for x in self.lines()],
        }
        if step is None:
            return {**base, "kind": "review", "title": "Review and confirm"}
        if step.kind == "choose":
            title = step.title if step.name != "concentration" else "Choose the concentration"
            opts = [{"id": o.id, "label": o.label, "hint": o.hint, "high_alert": o.high_alert} for o in step.options]
            return {**base, "kind": "choose", "title": title, "options": opts}
        assert step.spec is not None and self.entry is not None
        spec = step.spec
        return {
            **base, "kind": "number", "title": f"{step.title} ({spec.unit})", "display": self.entry.text,
            "unit": spec.unit,
            "range": f"{format_decimal(spec.minimum)} to {format_decimal(spec.maximum)} {spec.unit}",
            "current": None if spec.current is None else f"{format_decimal(spec.current)} {spec.unit}",
        }  # fmt: skip

    def concentration_text(self) -> str | None:
        conc = self.concentration()
        return None if conc is None else f"{quantity_text(conc.amount)} / {quantity_text(conc.volume)}"
