"""Draw one campaign run: a scenario (pump, patient, program, clinician timeline, faults) from a spec and an index.

Run ``i`` of a campaign is drawn from ``numpy.random.default_rng([spec.seed, i])`` alone, so any run is
reproducible from (spec, index) on any machine, in any order. The scenario is the ordinary scenario
model of the simulator (:mod:`openinfusion.sim.scenario`), so whatever a run draws is also a scenario
file a person can read and rerun with ``openinfusion simulate``.

Programs: every program type of the scenario model. Drug programs come from the drug library: a
care-area entry, one of its standard concentrations and a dose drawn log-uniform between the entry's
limits (a share above the soft maximum, to exercise overrides). Rate programs are basic infusions.
Patients: weight by care area (neonates around 3 kg, children 5 to 60 kg, adults a normal law of
mean 80 kg, SD 18 kg, cut at 40 and 180 kg); BSA from weight (Mosteller with a drawn height).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np

from openinfusion.druglib.model import Basis, Entry, Library, LimitField, Mode, quantity_text
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.lab.campaign.faultmodel import (
    FaultKindInfo,
    draw_device_params,
    draw_physical_fields,
    fault_catalogue,
    restoring,
)
from openinfusion.lab.campaign.spec import CampaignSpec
from openinfusion.units import Quantity

PROGRAM_TYPES: Final = ("continuous", "dose", "volume_over_time", "multistep", "ramp_taper", "intermittent", "pca")
SYRINGES_ML: Final = (10, 20, 50)
BASIC_REASON: Final = "campaign: basic infusion"
OVERRIDE_REASON: Final = "Physician order"


@dataclass(frozen=True, slots=True)
class DrawnFault:
    """One fault of a run: its kind, when (s), its channel (1-based, None pump-wide) and parameters."""

    kind: str
    at_s: float
    channel: int | None
    params: dict[str, Any]
    until_s: float | None = None  # when a physical fault is undone (None: never)


@dataclass(frozen=True, slots=True)
class RunCase:
    """A drawn run: the scenario (as data) and what was drawn, for the oracle's context and clustering."""

    index: int
    scenario: dict[str, Any]
    program_type: str
    mechanism: str
    drug: str | None
    faults: tuple[DrawnFault, ...]
    behaviours: tuple[str, ...]
    notes: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def load_library(path: str) -> Library:
    """The library at ``path`` (validated; cached per process)."""
    return read_yaml(Path(path)).require()


def air_limit_ml(library_path: Path, area: str | None) -> float:
    """The single-bubble air-in-line limit (mL) of care area ``area`` in the library (0.25 mL if none)."""
    for a in load_library(str(library_path)).care_areas:
        if a.id == area:
            return float(a.air_in_line.in_("mL"))
    return 0.25


def _fmt(x: float, unit: str, digits: int = 3) -> str:
    """A quantity text with ``digits`` significant digits (exact decimal, no exponent)."""
    if x <= 0:
        return f"0 {unit}"
    places = max(0, digits - 1 - math.floor(math.log10(x)))
    return f"{round(x, places):.{places}f} {unit}"


def _rate(ml_h: float) -> str:
    """A rate text on the pump's 0.01 mL/h resolution."""
    return f"{max(0.1, round(ml_h, 2)):.2f} mL/h"


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _weight_kg(rng: np.random.Generator, area: str) -> float:
    if "NICU" in area:
        return round(float(np.clip(rng.lognormal(math.log(2.5), 0.4), 0.5, 6.0)), 2)
    if "PICU" in area or "PED" in area:
        return round(_log_uniform(rng, 5.0, 60.0), 1)
    return round(float(np.clip(rng.normal(80.0, 18.0), 40.0, 180.0)), 1)


def _bsa_m2(rng: np.random.Generator, weight_kg: float) -> float:
    height_cm = float(np.clip(rng.normal(170.0, 10.0), 140.0, 200.0)) if weight_kg > 30 else 50 + 2.2 * weight_kg
    return round(math.sqrt(height_cm * weight_kg / 3600.0), 2)


def _bounds_of(entry: Entry, which: LimitField) -> tuple[Quantity | None, Quantity | None, Quantity | None]:
    b = entry.limit(which)
    if b is None:
        return None, None, None
    lo = b.soft_min or b.hard_min
    return lo, b.soft_max, b.hard_max


def _draw_in(
    rng: np.random.Generator, entry: Entry, which: LimitField, unit: str, fallback: tuple[float, float]
) -> float:
    """A value in ``unit`` between the entry's limits for ``which`` (5 % of draws between soft and hard max)."""
    lo_q, soft_hi, hard_hi = _bounds_of(entry, which)
    lo = float(lo_q.in_(unit)) if lo_q is not None else None
    hi = float(soft_hi.in_(unit)) if soft_hi is not None else None
    if lo is None and hi is None:
        lo, hi = fallback
    elif lo is None:
        lo = hi / 20 if hi is not None else fallback[0]
    elif hi is None:
        hi = lo * 10
    assert lo is not None and hi is not None
    if hard_hi is not None and rng.random() < 0.05:
        return _log_uniform(rng, hi, max(hi * 1.0001, float(hard_hi.in_(unit))))
    return _log_uniform(rng, max(lo, 1e-9), max(hi, lo * 1.0001))


def _library_entries(library: Library, mode: Mode, *, rate_only: bool | None = None) -> list[tuple[str, Entry]]:
    out = []
    for drug in library.drugs:
        for entry in drug.entries:
            if entry.mode is not mode or not any(c.volume is not None for c in entry.concentrations):
                continue
            if rate_only is not None and entry.rate_only != rate_only:
                continue
            out.append((drug.id, entry))
    return out


def _basic_area(library: Library, rng: np.random.Generator) -> str:
    areas = [a.id for a in library.care_areas if a.basic_infusion]
    return areas[int(rng.integers(len(areas)))]


class _Draw:
    """The state of one run's draw (one generator, consumed in a fixed order)."""

    def __init__(self, spec: CampaignSpec, library: Library, index: int) -> None:
        self.spec = spec
        self.library = library
        self.index = index
        self.rng = np.random.default_rng([spec.seed, index])
        rng = self.rng
        lo_s, hi_s = float(spec.duration.min.in_("s")), float(spec.duration.max.in_("s"))
        self.duration_s = round(_log_uniform(rng, lo_s, hi_s) if hi_s > lo_s else lo_s)
        self.mechanism = "syringe" if rng.random() < spec.syringe_fraction else "peristaltic"
        self.syringe_ml = SYRINGES_ML[int(rng.integers(len(SYRINGES_ML)))]
        self.program_type = PROGRAM_TYPES[int(rng.integers(len(PROGRAM_TYPES)))]
        self.timeline: list[dict[str, Any]] = []
        self.behaviours: list[str] = []
        self.drug: str | None = None
        self.area: str = _basic_area(library, rng)
        self.patient: dict[str, Any] = {}
        self.rate_ml_h = 0.0  # the nominal primary rate (for the draw of volumes only)

    def t(self, lo: float = 0.0, hi: float | None = None) -> float:
        """A random time (s, 0.1 s resolution) in [lo, hi] of the run."""
        hi = self.duration_s if hi is None else min(hi, self.duration_s)
        return min(round(float(self.rng.uniform(lo, max(lo, hi))), 1), float(self.duration_s))

    def max_rate(self) -> float:
        return 1200.0 if self.mechanism == "peristaltic" else 150.0

    def rate(self) -> float:
        """A rate (mL/h) on the pump's 0.01 mL/h resolution, log-uniform over the mechanism's usual range."""
        lo, hi = (1.0, 500.0) if self.mechanism == "peristaltic" else (0.1, 50.0)
        return round(_log_uniform(self.rng, lo, hi), 2 if self.rng.random() < 0.5 else 1)

    def planned_ml(self) -> float:
        """The primary program's total volume (mL) as drawn; large for programs without one."""
        program = self.timeline[0]["program"]
        if "vtbi" in program:
            return float(Quantity.parse(program["vtbi"]).in_("mL"))
        if "steps" in program:
            return sum(float(Quantity.parse(st["vtbi"]).in_("mL")) for st in program["steps"])
        if "total_volume" in program:
            return float(Quantity.parse(program["total_volume"]).in_("mL"))
        if "dose_volume" in program:
            return float(Quantity.parse(program["dose_volume"]).in_("mL"))
        return 1000.0

    def vtbi_for(self, rate: float) -> float:
        """A VTBI for ``rate``: often reached within the run (VTBI completion and KVO are exercised)."""
        ml = rate * self.duration_s / 3600 * float(self.rng.uniform(0.3, 1.6))
        cap = 0.95 * self.syringe_ml if self.mechanism == "syringe" else 1000.0
        return float(np.clip(ml, 0.5, cap))

    # --- programs -------------------------------------------------------------------------------

    def program(self) -> dict[str, Any]:
        kind = self.program_type
        if kind == "dose":
            drawn = self._dose_program()
            if drawn is not None:
                return drawn
            kind = self.program_type = "continuous"
        if kind == "pca":
            drawn = self._pca_program()
            if drawn is not None:
                return drawn
            kind = self.program_type = "continuous"
        rate = self.rate()
        self.rate_ml_h = rate
        basic = {"basic_reason": BASIC_REASON}
        if kind == "continuous":
            return {"type": "continuous", "rate": _rate(rate), "vtbi": _fmt(self.vtbi_for(rate), "mL"), **basic}
        if kind == "volume_over_time":
            vtbi = self.vtbi_for(rate)
            return {
                "type": "volume_over_time",
                "vtbi": _fmt(vtbi, "mL"),
                "duration": _fmt(vtbi / rate * 60, "min"),
                **basic,
            }
        if kind == "multistep":
            n = int(self.rng.integers(2, 5))
            steps = [{"rate": _rate(self.rate()), "vtbi": _fmt(self.vtbi_for(rate) / n, "mL")} for _ in range(n)]
            return {"type": "multistep", "steps": steps, **basic}
        if kind == "ramp_taper":
            hours = max(1.0, self.duration_s / 3600 * float(self.rng.uniform(0.8, 1.5)))
            total = min(rate * hours, 0.95 * self.syringe_ml if self.mechanism == "syringe" else 3000.0)
            ramp = round(hours * 60 * float(self.rng.uniform(0.05, 0.3)))
            return {
                "type": "ramp_taper",
                "total_volume": _fmt(total, "mL"),
                "total_duration": _fmt(hours, "h"),
                "ramp_up": f"{max(1, ramp)} min",
                "ramp_down": f"{max(1, ramp)} min",
                "increments": int(self.rng.integers(1, 6)),
                **basic,
            }
        dose_volume = float(self.rng.uniform(25, 250)) if self.mechanism == "peristaltic" else self.syringe_ml / 4
        dose_min = dose_volume / max(rate, 10.0) * 60
        interval_min = int(dose_min // 10 + self.rng.integers(2, 12)) * 10
        return {
            "type": "intermittent",
            "dose_volume": _fmt(dose_volume, "mL"),
            "rate": _rate(max(rate, 10.0)),
            "interval": f"{interval_min} min",
            "doses": int(self.rng.integers(1, 5)),
            **basic,
        }

    def _patient_for(self, entry: Entry) -> None:
        w = _weight_kg(self.rng, entry.area)
        self.patient = {"weight": f"{w} kg", "bsa": f"{_bsa_m2(self.rng, w)} m2"}

    def _dose_program(self) -> dict[str, Any] | None:
        entries = _library_entries(self.library, Mode.CONTINUOUS, rate_only=False)
        if not entries:
            return None
        drug, entry = entries[int(self.rng.integers(len(entries)))]
        concs = [c for c in entry.concentrations if c.volume is not None]
        conc = concs[int(self.rng.integers(len(concs)))]
        self._patient_for(entry)
        unit = entry.dose_unit.code
        dose = _draw_in(self.rng, entry, LimitField.DOSE, unit, (0.01, 1.0))
        self.drug, self.area = drug, entry.area
        spec: dict[str, Any] = {
            "type": "dose",
            "dose": _fmt(dose, unit),
            "concentration": f"{quantity_text(conc.amount)} / "
            f"{quantity_text(conc.volume) if conc.volume is not None else ''}",
            "from_library": {"drug": drug, "therapy": entry.therapy, "concentration": conc.key},
            "override_reason": OVERRIDE_REASON,
        }
        rate = self._dose_rate(dose, unit, conc.amount, conc.volume)
        if rate is not None:
            self.rate_ml_h = rate
            spec["vtbi"] = _fmt(min(self.vtbi_for(rate), float(conc.volume.in_("mL")) if conc.volume else 1e9), "mL")
        return spec

    def _dose_rate(self, dose: float, unit: str, amount: Quantity, volume: Quantity | None) -> float | None:
        """The nominal rate (mL/h) of a dose (for drawing a VTBI; the oracle computes its own)."""
        if volume is None:
            return None
        q = Quantity.parse(_fmt(dose, unit))
        shape = Entry(area="x", mode=Mode.CONTINUOUS, dose_unit=q.unit).shape
        if shape is not None and shape.basis is Basis.WEIGHT:
            q = q * Quantity.parse(self.patient["weight"])
        elif shape is not None and shape.basis is Basis.BSA:
            q = q * Quantity.parse(self.patient["bsa"])
        try:
            return float((q / (amount / volume)).in_("mL/h"))
        except Exception:  # a dose unit not per time: no nominal rate
            return None

    def _pca_program(self) -> dict[str, Any] | None:
        entries = _library_entries(self.library, Mode.PCA)
        if not entries:
            return None
        drug, entry = entries[int(self.rng.integers(len(entries)))]
        conc = next(c for c in entry.concentrations if c.volume is not None)
        self._patient_for(entry)
        self.drug, self.area = drug, entry.area
        unit = entry.dose_unit.code
        demand = _draw_in(self.rng, entry, LimitField.PCA_DEMAND_DOSE, unit, (0.5, 2.0))
        lockout = _draw_in(self.rng, entry, LimitField.PCA_LOCKOUT, "min", (5.0, 15.0))
        spec: dict[str, Any] = {
            "type": "pca",
            "concentration": f"{quantity_text(conc.amount)} / {quantity_text(conc.volume)}"
            if conc.volume is not None
            else quantity_text(conc.amount),
            "demand_dose": _fmt(demand, unit),
            "lockout": f"{max(1, round(lockout))} min",
            "demand_rate": _rate(float(self.rng.uniform(30, 120)) if self.mechanism == "peristaltic" else 20.0),
            "limit_1h": _fmt(demand * float(self.rng.uniform(2, 6)), unit),
            "limit_4h": _fmt(demand * float(self.rng.uniform(6, 16)), unit),
            "from_library": {"drug": drug, "therapy": entry.therapy, "concentration": conc.key},
            "override_reason": OVERRIDE_REASON,
        }
        if self.rng.random() < 0.5:
            spec["basal"] = _fmt(demand * float(self.rng.uniform(0.1, 0.5)), f"{unit}/h")
        if self.rng.random() < 0.5:
            spec["loading"] = _fmt(demand * float(self.rng.uniform(1, 3)), unit)
        return spec

    # --- the clinician --------------------------------------------------------------------------

    def response_delay(self) -> float:
        c = self.spec.clinician
        lo = float(c.response_min.in_("s"))
        hi = float(c.late_max.in_("s")) if self.rng.random() < c.late_response else max(lo, 120.0)
        return min(round(float(self.rng.uniform(lo, max(lo, hi))), 1), float(self.duration_s))

    def clinician(self, start_s: float) -> None:
        c, rng = self.spec.clinician, self.rng
        rate_like = self.program_type in {"continuous", "dose"}
        if rate_like and rng.random() < c.titration:
            at = self.t(start_s + 60)
            event: dict[str, Any] = {"at": f"{at} s", "do": "titrate"}
            factor = float(rng.uniform(0.5, 2.0))
            key = "dose" if self.program_type == "dose" else "rate"
            current = Quantity.parse(self.timeline[0]["program"][key])
            scaled = float(current.value) * factor
            event[key] = _fmt(scaled, current.unit.code) if key == "dose" else _rate(scaled)
            event["override_reason"] = OVERRIDE_REASON
            if rng.random() >= c.unconfirmed_titration:
                event["confirm_after"] = f"{self.response_delay() if rng.random() < 0.3 else 5.0} s"
                self.behaviours.append("titration")
            else:
                self.behaviours.append("unconfirmed_titration")
            self.timeline.append(event)
        if self.program_type != "pca" and rng.random() < c.secondary:
            rate = self.rate()
            vol = float(
                np.clip(
                    rate * float(rng.uniform(0.1, 0.6)),
                    1.0,
                    0.5 * self.syringe_ml if self.mechanism == "syringe" else 250.0,
                )
            )
            self.timeline.append(
                {
                    "at": f"{self.t(start_s + 30)} s",
                    "do": "secondary",
                    "secondary": {"rate": _rate(rate), "vtbi": _fmt(vol, "mL"), "basic_reason": BASIC_REASON},
                }
            )
            self.behaviours.append("secondary")
        if self.program_type != "pca" and rng.random() < c.bolus:
            vol = float(rng.uniform(0.5, 2.0 if self.mechanism == "syringe" else 20.0))
            vol = min(vol, 0.25 * self.planned_ml())  # a bolus never exceeds what remains (OI-PROG-4)
            bolus_rate = float(rng.uniform(50, 300)) if self.mechanism == "peristaltic" else 50.0
            self.timeline.append(
                {
                    "at": f"{self.t(start_s + 30)} s",
                    "do": "bolus",
                    "volume": _fmt(max(vol, 0.1), "mL"),
                    "rate": _rate(bolus_rate),
                    "override_reason": OVERRIDE_REASON,
                }
            )
            self.behaviours.append("bolus")
        if rng.random() < c.pause:
            at = self.t(start_s + 30)
            self.timeline.append({"at": f"{at} s", "do": "pause"})
            self.timeline.append({"at": f"{self.t(at, at + self.response_delay())} s", "do": "resume"})
            self.behaviours.append("pause")
        if self.program_type == "pca" and c.pca_demands_per_hour > 0:
            at = start_s
            while True:
                at += float(rng.exponential(3600.0 / c.pca_demands_per_hour))
                if at >= self.duration_s:
                    break
                self.timeline.append({"at": f"{round(at, 1)} s", "do": "pca_demand"})
            self.behaviours.append("pca_demands")

    # --- faults ---------------------------------------------------------------------------------

    def faults(self, kinds: tuple[FaultKindInfo, ...], start_s: float) -> list[DrawnFault]:
        weights = np.asarray(self.spec.faults_per_run, dtype=float)
        n = int(self.rng.choice(len(weights), p=weights / weights.sum()))
        drawable = [k for k in kinds if k.drawable]
        drawn: list[DrawnFault] = []
        for _ in range(n):
            info = drawable[int(self.rng.integers(len(drawable)))]
            at = self.t(start_s)
            channel = 1 if info.per_channel else None
            if info.source == "device":
                params = draw_device_params(self.rng, info.name)
                self.timeline.append(
                    {"at": f"{at} s", "do": "fault", "fault": info.name, "channel": channel, "params": params}
                )
                drawn.append(DrawnFault(info.name, at, channel, params))
                continue
            fields = draw_physical_fields(self.rng, info.name, self.mechanism)
            if info.name == "fill" and self.mechanism == "syringe":
                continue  # a syringe is not refilled mid-run (the scenario model refuses it); drawn, not applied
            event = {"at": f"{at} s", "do": info.name, **fields}
            if channel is not None:
                event["channel"] = channel
            self.timeline.append(event)
            undo = restoring(info.name, fields)
            until = None
            if undo is not None and self.rng.random() < 0.8:
                until = self.t(at + 5, at + float(self.rng.uniform(10, 1800)))
                self.timeline.append({**event, **undo, "at": f"{until} s"})
                resume_at = min(self.duration_s, until + self.response_delay())
                self.timeline.append({"at": f"{round(resume_at, 1)} s", "do": "resume"})
            drawn.append(DrawnFault(info.name, at, channel, fields, until))
        return drawn


def draw_run(spec: CampaignSpec, library_path: Path, index: int) -> RunCase:
    """Run ``index`` of the campaign ``spec`` (the library at ``library_path``)."""
    library = load_library(str(library_path))
    d = _Draw(spec, library, index)
    program = d.program()
    start_s = d.t(0, 30)
    d.timeline.append({"at": "0 s", "do": "program", "program": program})
    d.timeline.append({"at": f"{start_s} s", "do": "start"})
    d.clinician(start_s)
    faults = d.faults(fault_catalogue(), start_s)
    battery = 100.0 if d.rng.random() < 0.7 else round(float(d.rng.uniform(1, 60)), 1)
    pump: dict[str, Any] = {
        "mechanism": d.mechanism,
        "care_area": d.area,
        "battery_charge_percent": battery,
        "on_mains": bool(d.rng.random() < 0.8),
    }
    if d.mechanism == "syringe":
        pump["syringe"] = f"{d.syringe_ml} mL"
    d.timeline.sort(key=lambda e: Fraction(Quantity.parse(e["at"]).in_("s")))
    scenario: dict[str, Any] = {
        "schema": "openinfusion.scenario/1",
        "name": f"{spec.name}-{index}",
        "description": f"campaign {spec.name}, run {index}",
        "seed": int(d.rng.integers(0, 2**31)),
        "duration": f"{d.duration_s} s",
        "library": library_path.name,
        "pump": pump,
        "patient": d.patient,
        # a temperature fault needs the optional sensor that reads it (without one the scenario model refuses it)
        "channels": [{"temperature_sensor": True} if any(f.kind == "temperature" for f in faults) else {}],
        "timeline": d.timeline,
    }
    if spec.sample_period is not None:
        scenario["sample_period"] = str(spec.sample_period)
    return RunCase(
        index,
        scenario,
        d.program_type,
        d.mechanism,
        d.drug,
        tuple(faults),
        tuple(d.behaviours),
        {"battery_percent": battery, "on_mains": pump["on_mains"]},
    )
