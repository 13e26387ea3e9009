"""The simulator's fault model, enumerated from the simulator itself (never a hand list).

Two sources make up "every fault kind of the simulator":

- injectable device faults: the members of :class:`openinfusion.sim.faults.FaultKind`, each with its
  frozen dataclass in the ``Fault`` union (scenario event ``do: fault``);
- physical events of the scenario timeline: every member of
  :data:`openinfusion.sim.scenario.TimelineEvent` that is neither a clinician action nor ``fault``
  (occlusion, air, door, set loading, mains, head height, and whatever the simulator adds later).

A kind added to either source is drawn by the campaign automatically: parameters are drawn from the
dataclass or pydantic field types (booleans, bounded numbers, literals, durations). Only quantity
fields with a unit need a magnitude law, given in :data:`MAGNITUDES`; a kind with a quantity field that
has no law is reported as *not drawable* (:func:`fault_catalogue`), so a new kind is never silently skipped.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args, get_origin

import numpy as np
from pydantic import BaseModel

from openinfusion.errors import OpenInfusionError
from openinfusion.sim import faults as sim_faults
from openinfusion.sim import scenario as sim_scenario
from openinfusion.units import Duration

#: Timeline events a clinician (or the pump's user) causes: not faults.
CLINICIAN_EVENTS: Final = frozenset(
    {"program", "titrate", "bolus", "secondary", "audio_pause", "reset_alarm", "fault"}
    | set(get_args(sim_scenario.ClinicianAction))
)

#: Magnitude laws for quantity fields of physical events: (event, field) -> (unit, log10 low, log10 high).
#: Air: 5 uL to 1 mL, log-uniform (below and well above a typical 50-100 uL single-bubble limit).
#: Fill: a container of 1 mL to 1 L hung mid-infusion, log-uniform: small ones run empty during the run.
MAGNITUDES: Final[dict[tuple[str, str], tuple[str, float, float]]] = {
    ("air", "volume"): ("mL", float(np.log10(0.005)), 0.0),
    ("fill", "volume"): ("mL", 0.0, 3.0),
}

#: The value that makes a physical event abnormal (its "fault" value); the normal value restores it.
ABNORMAL: Final[dict[str, tuple[str, bool]]] = {
    "occlusion": ("on", True),
    "door": ("closed", False),
    "load": ("loaded", False),
    "mains": ("on", False),
}


@dataclass(frozen=True, slots=True)
class FaultKindInfo:
    """One kind of fault the campaign can draw: ``name`` as a scenario writes it."""

    name: str
    source: Literal["device", "physical"]
    per_channel: bool
    drawable: bool
    why_not: str = ""


def _event_models() -> dict[str, type[BaseModel]]:
    """Timeline event models by their ``do`` value."""
    union = get_args(sim_scenario.TimelineEvent)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in get_args(union):
        for value in get_args(model.model_fields["do"].annotation):
            models[str(value)] = model
    return models


def _device_classes() -> dict[str, type[Any]]:
    """Fault dataclasses by their kind's name."""
    return {cls.kind.value: cls for cls in get_args(sim_faults.Fault)}


def physical_event_models() -> dict[str, type[BaseModel]]:
    """The scenario's physical events (not clinician actions), by name."""
    return {name: m for name, m in _event_models().items() if name not in CLINICIAN_EVENTS}


def _quantity_fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, f in model.model_fields.items()
        if name not in {"at", "channel", "do"} and "Quantity" in repr(f.annotation)
    ]


def fault_catalogue() -> tuple[FaultKindInfo, ...]:
    """Every fault kind of the simulator, device faults first, in the simulator's own order."""
    classes = _device_classes()
    accepted = set(get_args(sim_scenario.FaultEvent.model_fields["fault"].annotation))
    kinds = []
    for kind in sim_faults.FaultKind:
        ok = kind.value in classes and kind.value in accepted
        why = "" if ok else "no fault dataclass or not accepted by the scenario's fault event"
        kinds.append(FaultKindInfo(kind.value, "device", kind.per_channel, ok, why))
    for name, model in physical_event_models().items():
        missing = [f for f in _quantity_fields(model) if (name, f) not in MAGNITUDES]
        why = f"no magnitude law for {', '.join(missing)}" if missing else ""
        per_channel = "channel" in model.model_fields
        kinds.append(FaultKindInfo(name, "physical", per_channel, not missing, why))
    return tuple(kinds)


# --- parameter drawing ------------------------------------------------------------------------------


def _scaled(rng: np.random.Generator, default: float) -> float:
    """A magnitude around ``default`` (log-normal, sigma 1): small and large faults alike."""
    return float(round(default * float(np.exp(rng.normal(0.0, 1.0))), 4))


def _draw_value(rng: np.random.Generator, hint: Any, default: Any) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is bool:
        return bool(rng.random() < 0.5)
    if origin is Literal:
        return args[int(rng.integers(len(args)))]
    if hint is int:
        high = max(4, 4 * int(default)) if isinstance(default, int) else 16
        return int(rng.integers(1 if default else 0, high + 1))
    if hint is float:
        return _scaled(rng, float(default) if isinstance(default, float | int) and default else 1.0)
    if hint is Duration:
        return Duration.s(_scaled(rng, float(default.seconds) if isinstance(default, Duration) else 1.0))
    if type(None) in args:  # Optional[X]: the default (None) half of the time
        inner = next(a for a in args if a is not type(None))
        return None if rng.random() < 0.5 else _draw_value(rng, inner, 100.0 if inner is float else default)
    return default


def draw_device_params(rng: np.random.Generator, name: str) -> dict[str, bool | int | float | str]:
    """Random parameters for device fault ``name``, as the scenario's ``params`` (durations as ``X_s``).

    Values the fault rejects (its ``__post_init__`` bounds) are redrawn up to 5 times, then defaults are used.
    """
    cls = _device_classes()[name]
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    for _ in range(5):
        values = {f.name: _draw_value(rng, hints[f.name], f.default) for f in fields}
        try:
            cls(**values)
        except OpenInfusionError:
            continue
        params: dict[str, bool | int | float | str] = {}
        for key, value in values.items():
            if isinstance(value, Duration):
                params[f"{key}_s"] = float(value.seconds)
            elif value is not None:
                params[key] = value
        return params
    return {}


def draw_physical_fields(rng: np.random.Generator, name: str, mechanism: str) -> dict[str, Any]:
    """Random fields (beyond ``at``, ``channel``, ``do``) for physical event ``name``."""
    model = physical_event_models()[name]
    out: dict[str, Any] = {}
    for field_name, f in model.model_fields.items():
        if field_name in {"at", "channel", "do"}:
            continue
        law = MAGNITUDES.get((name, field_name))
        if law is not None:
            unit, lo, hi = law
            out[field_name] = f"{10 ** rng.uniform(lo, hi):.4f} {unit}"
            continue
        abnormal = ABNORMAL.get(name)
        if abnormal is not None and abnormal[0] == field_name:
            out[field_name] = abnormal[1]
            continue
        hint = f.annotation
        if get_origin(hint) is Literal:
            choices = [
                a for a in get_args(hint) if not (name == "occlusion" and a == "upstream" and mechanism == "syringe")
            ]
            out[field_name] = choices[int(rng.integers(len(choices)))]
        elif hint is float:
            lo_f, hi_f = _bounds(f)
            out[field_name] = round(float(rng.uniform(lo_f, hi_f)), 3)
        elif hint is bool:
            out[field_name] = bool(rng.random() < 0.5)
    return out


def _bounds(f: Any) -> tuple[float, float]:
    lo, hi = 0.0, 1.0
    for m in f.metadata:
        lo = float(getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo)
        hi = float(getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi)
    return lo, hi


def restoring(name: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of the event that ends an abnormal physical event (None if it has no normal value)."""
    abnormal = ABNORMAL.get(name)
    if abnormal is None:
        return None
    restored = dict(fields)
    restored[abnormal[0]] = not abnormal[1]
    return restored
