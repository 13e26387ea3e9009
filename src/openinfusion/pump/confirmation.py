"""From accepted programs to the frozen confirmed values the safety monitor is handed (OI-SAFE-4).

This copies what the clinician entered and confirmed (rate, VTBI, dose, concentration, weight, pace,
durations) into :mod:`openinfusion.pump.confirmed` values. It computes nothing: no plan, no converted
rate, so a fault in either cannot reach the monitor's expectation through here.
"""

from __future__ import annotations

from openinfusion.pump.confirmed import (
    AtDose,
    AtRate,
    ConfirmedBolus,
    ConfirmedProgram,
    ConfirmedTitration,
    Drug,
    Intermittent,
    OverTime,
    Part,
    Pca,
    RampTaper,
)
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import (
    Bolus,
    ContinuousProgram,
    DoseProgram,
    IntermittentProgram,
    KvoSettings,
    MultistepProgram,
    Program,
    RampTaperProgram,
    SecondaryProgram,
    Titration,
    VolumeOverTimeProgram,
)
from openinfusion.units import ZERO_RATE, FlowRate


def _drug(concentration: Concentration, patient: Patient | None) -> Drug:
    patient = patient or Patient()
    return Drug(amount=concentration.amount, volume=concentration.volume, weight=patient.weight, bsa=patient.bsa)


def confirmed_program(program: Program, kvo: KvoSettings) -> ConfirmedProgram:
    """The confirmed values of ``program``, with the channel's KVO rate (0 when KVO is off)."""
    return ConfirmedProgram(parts=_parts(program), kvo=kvo.rate if kvo.enabled else ZERO_RATE)


def _parts(program: Program) -> tuple[Part, ...]:
    match program:
        case ContinuousProgram():
            return (AtRate(rate=program.rate, volume=program.vtbi, titratable=True),)
        case SecondaryProgram():
            return (AtRate(rate=program.rate, volume=program.vtbi, titratable=True),)
        case VolumeOverTimeProgram():
            return (OverTime(volume=program.vtbi, duration=program.duration),)
        case DoseProgram():
            loading = program.loading
            return (
                AtDose(
                    dose=program.dose, drug=_drug(program.concentration, program.patient), vtbi=program.vtbi,
                    loading=None if loading is None else loading.amount,
                    loading_pace=None if loading is None else loading.pace,
                ),
            )  # fmt: skip
        case MultistepProgram():
            return tuple(AtRate(rate=s.rate, volume=s.vtbi) for s in program.steps)
        case RampTaperProgram():
            return (
                RampTaper(
                    volume=program.total_volume, duration=program.total_duration, ramp_up=program.ramp_up,
                    ramp_down=program.ramp_down, increments=program.increments,
                ),
            )  # fmt: skip
        case IntermittentProgram():
            return (
                Intermittent(
                    dose_volume=program.dose_volume, rate=program.rate, interval=program.interval, doses=program.doses
                ),
            )
        case PcaProgram():
            return (
                Pca(
                    drug=_drug(program.concentration, None), demand_dose=program.demand_dose,
                    demand_rate=program.demand_rate, lockout=program.lockout, basal=program.basal,
                    loading=program.loading, limit_1h=program.limit_1h, limit_4h=program.limit_4h,
                ),
            )  # fmt: skip
    raise TypeError(f"no confirmed form for {type(program).__name__}")


def confirmed_bolus(bolus: Bolus, concentration: Concentration | None, patient: Patient | None) -> ConfirmedBolus:
    """A bolus as confirmed: its volume and rate, and the amount asked for (converted by the monitor)."""
    drug = None if concentration is None or bolus.amount is None else _drug(concentration, patient)
    return ConfirmedBolus(volume=bolus.volume, rate=bolus.rate, amount=bolus.amount, drug=drug)


def confirmed_titration(change: Titration) -> ConfirmedTitration:
    """A titration as confirmed: the new rate, or the new dose rate."""
    if isinstance(change.new, FlowRate):
        return ConfirmedTitration(rate=change.new)
    return ConfirmedTitration(dose=change.new)
