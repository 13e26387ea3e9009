"""Turn validated scenario specs into pump-core objects (programs, boluses, settings).

Core constructors validate; their errors are re-raised as :class:`ScenarioError` located in the
scenario file (``FILE: channels[0].program.rate: ...``), so a bad program in a scenario is one clear
line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from openinfusion.errors import InputError, ScenarioError
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.library import LibrarySelection
from openinfusion.pump.mechanism import MechanismCalibration
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import (
    Bolus,
    ContinuousProgram,
    DoseProgram,
    IntermittentProgram,
    KvoSettings,
    LoadingDose,
    MultistepProgram,
    NearEndSettings,
    Program,
    RampTaperProgram,
    RateLimits,
    SecondaryProgram,
    Step,
    Titration,
    VolumeOverTimeProgram,
)
from openinfusion.pump.sensing.flow import LineCompliance
from openinfusion.pump.sensing.occlusion import OcclusionConfig, Sensitivity
from openinfusion.sim.scenario import (
    BolusEvent,
    ContinuousSpec,
    DoseSpec,
    IntermittentSpec,
    MultistepSpec,
    PatientSpec,
    PcaSpec,
    ProgramSpec,
    PumpSpec,
    RampTaperSpec,
    SecondarySpec,
    TitrateEvent,
    VolumeOverTimeSpec,
)
from openinfusion.units import Duration, FlowRate, Quantity, Volume

T = TypeVar("T")


def located(file: str, where: str, build: Callable[[], T]) -> T:
    """Run ``build``; an :class:`InputError` becomes a ScenarioError at ``file: where.<field>``."""
    try:
        return build()
    except InputError as e:
        inner = e.where
        for prefix in ("program", "bolus", "secondary"):  # the core's own name for what the spec holds
            inner = inner.removeprefix(f"{prefix}.").removeprefix(prefix)
        path = f"{where}.{inner}" if inner else where
        raise ScenarioError(f"{file}: {path}", e.why) from None


def patient(spec: PatientSpec) -> Patient:
    return Patient(weight=spec.weight, bsa=spec.bsa)


def _volume(q: Quantity | None) -> Volume | None:
    return None if q is None else Volume.of(q)


def _pace(duration: Quantity | None, rate: Quantity | None) -> Duration | FlowRate:
    if duration is not None:
        return Duration.of(duration)
    assert rate is not None  # the spec's validator guarantees one of the two
    return FlowRate.of(rate)


def program(spec: ProgramSpec, cal: MechanismCalibration, who: PatientSpec) -> Program:
    """The core program a scenario spec describes (validated by its constructor)."""
    limits = RateLimits.of(cal)
    match spec:
        case ContinuousSpec():
            return ContinuousProgram(rate=FlowRate.of(spec.rate), vtbi=_volume(spec.vtbi), limits=limits)
        case VolumeOverTimeSpec():
            return VolumeOverTimeProgram(vtbi=Volume.of(spec.vtbi), duration=Duration.of(spec.duration), limits=limits)
        case DoseSpec():
            loading = spec.loading
            return DoseProgram(
                dose=spec.dose,
                concentration=spec.concentration,
                patient=patient(who),
                vtbi=_volume(spec.vtbi),
                loading=None if loading is None else LoadingDose(loading.amount, _pace(loading.duration, loading.rate)),
                limits=limits,
            )
        case MultistepSpec():
            steps = tuple(Step(FlowRate.of(s.rate), Volume.of(s.vtbi)) for s in spec.steps)
            return MultistepProgram(steps=steps, limits=limits)
        case RampTaperSpec():
            return RampTaperProgram(
                total_volume=Volume.of(spec.total_volume),
                total_duration=Duration.of(spec.total_duration),
                ramp_up=Duration.of(spec.ramp_up),
                ramp_down=Duration.of(spec.ramp_down),
                increments=spec.increments,
                limits=limits,
            )
        case IntermittentSpec():
            return IntermittentProgram(
                dose_volume=Volume.of(spec.dose_volume),
                rate=FlowRate.of(spec.rate),
                interval=Duration.of(spec.interval),
                doses=spec.doses,
                limits=limits,
            )
        case PcaSpec():
            return PcaProgram(
                concentration=spec.concentration,
                demand_dose=spec.demand_dose,
                lockout=Duration.of(spec.lockout),
                basal=spec.basal,
                loading=spec.loading,
                limit_1h=spec.limit_1h,
                limit_4h=spec.limit_4h,
                demand_rate=FlowRate.of(spec.demand_rate),
                limits=limits,
            )


def selection(spec: ProgramSpec | SecondarySpec, care_area: str | None, where: str) -> LibrarySelection | None:
    """The library selection a program spec names (None: not from the library)."""
    chosen = spec.from_library
    if chosen is None:
        return None
    if care_area is None:
        raise ScenarioError(f"{where}.from_library", "programming from the library needs pump.care_area")
    return LibrarySelection(
        area=care_area,
        drug=chosen.drug,
        therapy=chosen.therapy,
        concentration=chosen.concentration,
        custom_concentration=chosen.custom_concentration,
    )


def secondary(spec: SecondarySpec, cal: MechanismCalibration) -> SecondaryProgram:
    return SecondaryProgram(rate=FlowRate.of(spec.rate), vtbi=Volume.of(spec.vtbi), limits=RateLimits.of(cal))


def bolus(event: BolusEvent, cal: MechanismCalibration, running: Program | None, who: PatientSpec) -> Bolus:
    """A clinician bolus of a volume or an amount of the running program's drug."""
    size: Volume | Quantity
    if event.volume is not None:
        size = Volume.of(event.volume)
    else:
        assert event.amount is not None  # the spec's validator guarantees one of the two
        size = event.amount
    conc = getattr(running, "concentration", None)
    return Bolus.request(
        size,
        _pace(event.duration, event.rate),
        RateLimits.of(cal),
        concentration=conc if isinstance(conc, Concentration) else None,
        patient=patient(who),
    )


def titration(event: TitrateEvent) -> Titration:
    if event.rate is not None:
        return Titration(FlowRate.of(event.rate))
    assert event.dose is not None  # the spec's validator guarantees one of the two
    return Titration(event.dose)


def channel_settings(spec: PumpSpec, compliance_nl_per_mmhg: int, container: Volume | None) -> ChannelSettings:
    """Channel settings from the scenario's pump section (KVO defaults: 1 mL/h LVP, 0.1 mL/h syringe), with the
    nominal compliance of the channel's own set or syringe line for its occlusion back-off, and the container
    volume the pump knows (a syringe's from its plunger position, an LVP bag's as the nurse entered it)."""
    default_kvo = FlowRate.ml_h(1) if spec.mechanism == "peristaltic" else FlowRate.ml_h("0.1")
    kvo_rate = FlowRate.of(spec.kvo.rate) if spec.kvo.rate is not None else default_kvo
    settings = ChannelSettings(
        kvo=KvoSettings(enabled=spec.kvo.enabled, rate=kvo_rate),
        sensitivity=Sensitivity[spec.sensitivity.upper()],
        occlusion=OcclusionConfig(compliance=LineCompliance(compliance_nl_per_mmhg)),
        container=container,
    )
    if spec.near_end is not None:
        settings = replace(settings, near_end=NearEndSettings(Duration.of(spec.near_end)))
    if spec.callback is not None:
        settings = replace(settings, callback=Duration.of(spec.callback))
    return settings
