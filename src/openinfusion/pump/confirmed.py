"""What the clinician confirmed, frozen, as the safety monitor receives it.

These value types carry the numbers a clinician entered and confirmed (rates, volumes, doses,
concentrations, patient weight, durations), never anything the delivery side computed from them: no
plan, no converted rate, no segment. The safety monitor derives its own expected delivery from them
(:mod:`openinfusion.pump.safety_model`), so a fault in the program code, the plan, the dose
conversion or the controller cannot shape what the monitor expects (ARCHITECTURE rule 4, OI-SAFE-4).

They import nothing but units, so both sides can share them without sharing code. The pump builds
them from the programs it accepts (:mod:`openinfusion.pump.confirmation`).
"""

from __future__ import annotations

from dataclasses import dataclass

from openinfusion.units import Duration, FlowRate, Quantity, Volume


@dataclass(frozen=True, slots=True, kw_only=True)
class Drug:
    """A concentration (``amount`` in ``volume``) and the patient measures a per-kg or per-m2 dose needs."""

    amount: Quantity
    volume: Quantity
    weight: Quantity | None = None
    bsa: Quantity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AtRate:
    """``volume`` (None: until stopped) at the confirmed ``rate``; ``titratable`` if a titration changes it."""

    rate: FlowRate
    volume: Volume | None
    titratable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OverTime:
    """``volume`` over ``duration`` (the rate is derived, rounded to the pump's resolution)."""

    volume: Volume
    duration: Duration


@dataclass(frozen=True, slots=True, kw_only=True)
class AtDose:
    """A dose rate (amount[/kg|/m2]/time) of ``drug`` up to ``vtbi`` (None: until stopped), after an optional
    ``loading`` amount (mg, mg/kg ...) given at ``loading_pace`` (a rate, or a duration); the VTBI includes it."""

    dose: Quantity
    drug: Drug
    vtbi: Volume | None
    loading: Quantity | None = None
    loading_pace: Duration | FlowRate | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RampTaper:
    """``volume`` over ``duration``: ``increments`` equal-time steps up over ``ramp_up``, a plateau, down over
    ``ramp_down`` (step ``k`` of ``n`` at ``k/(n+1)`` of the plateau)."""

    volume: Volume
    duration: Duration
    ramp_up: Duration
    ramp_down: Duration
    increments: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Intermittent:
    """``doses`` doses of ``dose_volume`` at ``rate``, starting ``interval`` apart."""

    dose_volume: Volume
    rate: FlowRate
    interval: Duration
    doses: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pca:
    """A PCA prescription: optional loading and demand doses at ``demand_rate``, optional basal dose rate, and the
    dose limits (amounts of the drug) over one and four hours, every source counted."""

    drug: Drug
    demand_dose: Quantity
    demand_rate: FlowRate
    lockout: Duration
    basal: Quantity | None
    loading: Quantity | None
    limit_1h: Quantity | None = None
    limit_4h: Quantity | None = None


Part = AtRate | OverTime | AtDose | RampTaper | Intermittent | Pca


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmedProgram:
    """A confirmed program: its parts in order and the configured KVO rate after its VTBI (0: KVO off)."""

    parts: tuple[Part, ...]
    kvo: FlowRate


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmedBolus:
    """A clinician bolus: ``volume`` (or ``amount`` of ``drug``, which the monitor converts itself) at ``rate``."""

    volume: Volume
    rate: FlowRate
    amount: Quantity | None = None
    drug: Drug | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmedTitration:
    """A confirmed titration of the running program: a new rate, or a new dose rate."""

    rate: FlowRate | None = None
    dose: Quantity | None = None
