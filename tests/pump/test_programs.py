"""Infusion programs: validation names the field, plans total their VTBI exactly, rates stay on the grid."""

from __future__ import annotations

from fractions import Fraction
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import InputError, ProgramError
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.mechanism import MechanismCalibration, MechanismKind
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
    Segment,
    SegmentKind,
    Step,
    Titration,
    VolumeOverTimeProgram,
    kvo_rate_for,
    plan_volume,
)
from openinfusion.units import US_PER_H, ZERO_RATE, Duration, FlowRate, Quantity, Volume

q = Quantity.parse
ml, ml_h = Volume.ml, FlowRate.ml_h
# A large-volume pump: 0.1 to 999 mL/h in 0.1 mL/h steps (the CW library's max rate,
# shared/reference/drug-library-examples.md §9.1; Alaris GP 0.1-1200 mL/h, standards-and-safety.md §3).
LVP = RateLimits(min_rate=ml_h("0.1"), max_rate=ml_h(999), resolution=ml_h("0.1"))
MILRINONE = Concentration(q("40 mg"), q("200 mL"))  # 200 ug/mL


def where_of(build: object) -> str:
    assert callable(build)
    with pytest.raises(InputError) as err:
        build()
    return err.value.where


# --- limits and segments ----------------------------------------------------------------------


@pytest.mark.req("OI-PROG-1")
def test_limits_from_mechanism() -> None:
    mechanism = MechanismCalibration(
        kind=MechanismKind.SYRINGE,
        steps_per_rev=4,
        counts_per_step=1,
        cumulative_nl=(0, 10, 20, 30, 40),
        min_rate=ml_h("0.01"),
        max_rate=ml_h(200),
        resolution=ml_h("0.01"),
    )
    limits = RateLimits.of(mechanism)
    assert limits.check(ml_h("0.01"), "r") == ml_h("0.01")
    assert where_of(lambda: limits.check(ml_h("200.01"), "program.rate")) == "program.rate"
    assert where_of(lambda: limits.check(ml_h("0.015"), "program.rate")) == "program.rate"


@pytest.mark.req("OI-PROG-1")
@pytest.mark.parametrize(
    "fields",
    [
        {"kind": SegmentKind.PRIMARY, "rate": ZERO_RATE, "volume": ml(1)},
        {"kind": SegmentKind.WAIT, "rate": ml_h(1), "duration": Duration.min(1)},
        {"kind": SegmentKind.WAIT, "rate": ZERO_RATE},
        {"kind": SegmentKind.STEP, "rate": ml_h(1), "volume": ml(1), "duration": Duration.min(1)},
        {"kind": SegmentKind.STEP, "rate": ml_h(1), "volume": Volume(0)},
        {"kind": SegmentKind.BASAL, "rate": ZERO_RATE, "volume": ml(1)},
        {"kind": SegmentKind.STEP, "rate": ml_h(-1)},
    ],
)
def test_invalid_segments(fields: dict[str, object]) -> None:
    with pytest.raises(ProgramError):
        Segment(label="x", **fields)  # type: ignore[arg-type]


def test_plan_volume_of_unbounded_plan_is_none() -> None:
    plan = ContinuousProgram(rate=ml_h(5), vtbi=None, limits=LVP).plan()
    assert plan_volume(plan) is None


# --- validation names the field (OI-PROG-1) ---------------------------------------------------


@pytest.mark.req("OI-PROG-1", "OI-IN-1")
@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ContinuousProgram(rate=ml_h(0), vtbi=None, limits=LVP), "program.rate"),
        (lambda: ContinuousProgram(rate=ml_h(-5), vtbi=None, limits=LVP), "program.rate"),
        (lambda: ContinuousProgram(rate=ml_h(1000), vtbi=None, limits=LVP), "program.rate"),
        (lambda: ContinuousProgram(rate=ml_h("12.34"), vtbi=None, limits=LVP), "program.rate"),
        (lambda: ContinuousProgram(rate=ml_h(10), vtbi=Volume(0), limits=LVP), "program.vtbi"),
        (lambda: VolumeOverTimeProgram(vtbi=ml(100), duration=Duration(0), limits=LVP), "program.duration"),
        (lambda: VolumeOverTimeProgram(vtbi=ml(1000), duration=Duration.min(30), limits=LVP), "program.duration"),
        (lambda: VolumeOverTimeProgram(vtbi=ml(-1), duration=Duration.h(1), limits=LVP), "program.vtbi"),
        (lambda: SecondaryProgram(rate=ml_h(100), vtbi=Volume(0), limits=LVP), "program.vtbi"),
        (lambda: MultistepProgram(steps=(), limits=LVP), "program.steps"),
        (lambda: MultistepProgram(steps=(Step(ml_h(1), ml(1)),) * 26, limits=LVP), "program.steps"),
        (
            lambda: MultistepProgram(steps=(Step(ml_h(1), ml(1)), Step(ml_h(0), ml(1))), limits=LVP),
            "program.steps[1].rate",
        ),
        (lambda: MultistepProgram(steps=(Step(ml_h(1), Volume(0)),), limits=LVP), "program.steps[0].vtbi"),
        (
            lambda: IntermittentProgram(
                dose_volume=ml(100), rate=ml_h(100), interval=Duration.h(1), doses=2, limits=LVP
            ),
            "program.interval",
        ),
        (
            lambda: IntermittentProgram(
                dose_volume=ml(100), rate=ml_h(100), interval=Duration.h(6), doses=0, limits=LVP
            ),
            "program.doses",
        ),
    ],
)
def test_invalid_program_names_field(build: object, field: str) -> None:
    assert where_of(build) == field


@pytest.mark.req("OI-PROG-1", "OI-PROG-3")
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dose": q("0.5 ug/kg/min"), "patient": Patient()}, "program.patient.weight"),
        ({"dose": q("0 ug/kg/min")}, "program.dose"),
        ({"dose": q("500 ug/kg/min")}, "program.dose"),  # 2400 mL/h: above the pump's maximum
        ({"dose": q("0.5 [iU]/kg/min")}, "program.dose"),  # wrong amount dimension
        ({"loading": LoadingDose(q("50 [iU]/kg"), Duration.min(10))}, "program.loading.amount"),
        ({"loading": LoadingDose(q("50 ug/kg"), Duration.s(1))}, "program.loading.pace"),  # 72000 mL/h
        ({"loading": LoadingDose(q("50 ug/kg"), Duration.min(10)), "vtbi": ml(20)}, "program.vtbi"),
    ],
)
def test_invalid_dose_program_names_field(kwargs: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "dose": q("0.5 ug/kg/min"),
        "concentration": MILRINONE,
        "patient": Patient(weight=q("80 kg")),
        "limits": LVP,
    }
    assert where_of(lambda: DoseProgram(**(fields | kwargs))) == field  # type: ignore[arg-type]


# --- plans ------------------------------------------------------------------------------------


@pytest.mark.req("OI-PROG-6")
def test_continuous_and_volume_over_time_plans() -> None:
    assert ContinuousProgram(rate=ml_h(125), vtbi=ml(1000), limits=LVP).plan() == (
        Segment(kind=SegmentKind.PRIMARY, rate=ml_h(125), volume=ml(1000), label="primary"),
    )
    # 100 mL over 3 h is 33.33... mL/h: 33.3 on the grid; the plan still delivers exactly 100 mL
    vot = VolumeOverTimeProgram(vtbi=ml(100), duration=Duration.h(3), limits=LVP)
    assert vot.primary_rate() == ml_h("33.3")
    assert plan_volume(vot.plan()) == ml(100) == vot.planned_vtbi()


@pytest.mark.req("OI-PROG-2", "OI-PROG-4")
def test_dose_program_with_loading_dose() -> None:
    # milrinone, 80 kg, 200 ug/mL: load 50 ug/kg = 4000 ug = 20 mL over 10 min = 120 mL/h;
    # maintenance 0.5 ug/kg/min = 2400 ug/h = 12 mL/h; the 200 mL VTBI leaves 180 mL after the load
    program = DoseProgram(
        dose=q("0.5 ug/kg/min"),
        concentration=MILRINONE,
        patient=Patient(weight=q("80 kg")),
        vtbi=ml(200),
        loading=LoadingDose(q("50 ug/kg"), Duration.min(10)),
        limits=LVP,
    )
    assert program.plan() == (
        Segment(kind=SegmentKind.LOADING, rate=ml_h(120), volume=ml(20), label="loading dose"),
        Segment(kind=SegmentKind.PRIMARY, rate=ml_h(12), volume=ml(180), label="maintenance"),
    )
    assert plan_volume(program.plan()) == program.planned_vtbi() == ml(200)
    assert program.primary_rate() == ml_h(12)


@pytest.mark.req("OI-PROG-4")
def test_loading_dose_at_a_rate_then_unbounded_maintenance() -> None:
    program = DoseProgram(
        dose=q("0.5 ug/kg/min"),
        concentration=MILRINONE,
        patient=Patient(weight=q("80 kg")),
        loading=LoadingDose(q("4 mg"), ml_h(60)),
        limits=LVP,
    )
    loading, maintenance = program.plan()
    assert (loading.kind, loading.rate, loading.volume) == (SegmentKind.LOADING, ml_h(60), ml(20))
    assert (maintenance.kind, maintenance.volume) == (SegmentKind.PRIMARY, None)
    assert program.planned_vtbi() is None


@pytest.mark.req("OI-PROG-5")
def test_secondary_then_primary_resumes_at_its_rate() -> None:
    primary = ContinuousProgram(rate=ml_h(80), vtbi=ml(1000), limits=LVP)
    secondary = SecondaryProgram(rate=ml_h(200), vtbi=ml(100), limits=LVP)
    plan = secondary.plan_over(primary.plan())
    assert [s.kind for s in plan] == [SegmentKind.SECONDARY, SegmentKind.PRIMARY]
    assert (plan[0].rate, plan[0].volume) == (ml_h(200), ml(100))
    assert plan[1].rate == primary.rate
    assert plan_volume(plan) == ml(1100)
    with pytest.raises(ProgramError):
        secondary.plan_over(plan)


@pytest.mark.req("OI-PROG-6")
@given(st.lists(st.tuples(st.integers(1, 9990), st.integers(1, 10**10)), min_size=1, max_size=25))
def test_multistep_plan_is_the_steps_in_order(steps: list[tuple[int, int]]) -> None:
    program = MultistepProgram(steps=tuple(Step(FlowRate(r * 100_000), Volume(v)) for r, v in steps), limits=LVP)
    plan = program.plan()
    assert [(s.rate.nl_per_h, s.volume) for s in plan] == [(r * 100_000, Volume(v)) for r, v in steps]
    assert plan[-1].label == f"step {len(steps)}/{len(steps)}"
    assert plan_volume(plan) == Volume(sum(v for _, v in steps)) == program.planned_vtbi()


@pytest.mark.req("OI-PROG-6")
def test_ramp_taper_worked_example() -> None:
    # 2000 mL over 12 h, 1 h up and 1 h down in one step: ideal plateau 2000/11 = 181.8 mL/h;
    # the steps run at half of it, 90.909 -> 90.9 mL/h, 90.9 mL each; the plateau takes the other
    # 1818.2 mL over its 10 h: 181.82 -> 181.8 mL/h
    program = RampTaperProgram(
        total_volume=ml(2000),
        total_duration=Duration.h(12),
        ramp_up=Duration.h(1),
        ramp_down=Duration.h(1),
        increments=1,
        limits=LVP,
    )
    assert [(s.kind, s.rate, s.volume) for s in program.plan()] == [
        (SegmentKind.RAMP, ml_h("90.9"), ml("90.9")),
        (SegmentKind.PRIMARY, ml_h("181.8"), ml("1818.2")),
        (SegmentKind.RAMP, ml_h("90.9"), ml("90.9")),
    ]
    assert program.primary_rate() == ml_h("181.8")


@pytest.mark.req("OI-PROG-6")
@given(
    st.integers(1, 5000),  # total volume, mL
    st.integers(60, 24 * 60),  # total duration, min
    st.integers(0, 180),  # ramp up, min
    st.integers(0, 180),  # ramp down, min
    st.integers(1, 10),  # increments
)
def test_ramp_taper_total_is_exact(volume_ml: int, total_min: int, up_min: int, down_min: int, n: int) -> None:
    try:
        program = RampTaperProgram(
            total_volume=ml(volume_ml),
            total_duration=Duration.min(total_min),
            ramp_up=Duration.min(up_min),
            ramp_down=Duration.min(down_min),
            increments=n,
            limits=LVP,
        )
    except ProgramError as err:  # infeasible parameters are refused with a field of the program
        assert err.where in {"program.total_duration", "program.total_volume", "program.increments"}
        return
    plan = program.plan()
    assert plan_volume(plan) == ml(volume_ml)
    rates = [s.rate for s in plan]
    peak = next(i for i, s in enumerate(plan) if s.kind is SegmentKind.PRIMARY)
    assert rates[:peak] == sorted(rates[:peak])
    assert rates[peak + 1 :] == sorted(rates[peak + 1 :], reverse=True)
    assert all(LVP.check(r, "rate") == r for r in rates)
    # the run time misses the total only by the plateau rate's rounding (at most half a step) and
    # the steps' volumes being whole nanolitres (at most the time of 1 nL at the step's rate, each)
    planned_us = sum(d.us for s in plan if (d := s.planned_duration()) is not None)
    plateau = plan[peak]
    plateau_us = Duration.min(total_min - up_min - down_min).us
    slack_us = plateau_us * Fraction(LVP.resolution.nl_per_h, 2 * plateau.rate.nl_per_h) + sum(
        Fraction(US_PER_H, s.rate.nl_per_h) + 1 for s in plan
    )
    assert abs(planned_us - Duration.min(total_min).us) <= slack_us


@pytest.mark.req("OI-PROG-1", "OI-PROG-6")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"increments": 0}, "program.increments"),
        ({"ramp_up": Duration.h(6), "ramp_down": Duration.h(6)}, "program.total_duration"),
        ({"ramp_up": Duration.h(-1)}, "program.ramp_up"),
        ({"total_volume": ml(20000)}, "program.total_volume"),  # plateau above 999 mL/h
        ({"total_volume": ml(2), "increments": 10}, "program.increments"),  # steps below 0.1 mL/h
    ],
)
def test_invalid_ramp_taper_names_field(overrides: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "total_volume": ml(2000),
        "total_duration": Duration.h(12),
        "ramp_up": Duration.h(1),
        "ramp_down": Duration.h(1),
        "increments": 4,
        "limits": LVP,
    }
    assert where_of(lambda: RampTaperProgram(**(fields | overrides))) == field  # type: ignore[arg-type]


@pytest.mark.req("OI-PROG-6")
def test_intermittent_worked_example() -> None:
    # 100 mL at 200 mL/h takes 30 min; every 6 h, 4 doses: waits of 5 h 30 min, starts at 0, 6, 12, 18 h
    program = IntermittentProgram(dose_volume=ml(100), rate=ml_h(200), interval=Duration.h(6), doses=4, limits=LVP)
    plan = program.plan()
    assert [s.kind for s in plan] == [SegmentKind.INTERMITTENT_DOSE, SegmentKind.WAIT] * 3 + [
        SegmentKind.INTERMITTENT_DOSE
    ]
    assert {s.duration for s in plan if s.kind is SegmentKind.WAIT} == {Duration.min(330)}
    assert plan_volume(plan) == ml(400) == program.planned_vtbi()


@pytest.mark.req("OI-PROG-6")
@given(st.integers(1, 10**9), st.integers(1, 9990), st.integers(1, 48 * 60), st.integers(1, 12))
def test_intermittent_doses_start_interval_apart(volume_nl: int, rate_tenths: int, interval_min: int, n: int) -> None:
    rate, volume, interval = FlowRate(rate_tenths * 100_000), Volume(volume_nl), Duration.min(interval_min)
    if interval <= rate.time_for(volume):
        with pytest.raises(ProgramError):
            IntermittentProgram(dose_volume=volume, rate=rate, interval=interval, doses=n, limits=LVP)
        return
    plan = IntermittentProgram(dose_volume=volume, rate=rate, interval=interval, doses=n, limits=LVP).plan()
    durations = [s.planned_duration() for s in plan]
    starts = [0, *accumulate(d.us for d in durations if d is not None)]
    dose_starts = [starts[i] for i, s in enumerate(plan) if s.kind is SegmentKind.INTERMITTENT_DOSE]
    assert dose_starts == [k * interval.us for k in range(n)]
    assert plan_volume(plan) == Volume(volume_nl * n)


# --- bolus, titration, KVO, near end ----------------------------------------------------------


@pytest.mark.req("OI-PROG-4")
def test_bolus_bounded_by_remaining_volume() -> None:
    bolus = Bolus.request(ml(50), Duration.min(15), LVP)  # 50 mL over 15 min = 200 mL/h
    assert (bolus.volume, bolus.rate) == (ml(50), ml_h(200))
    bolus.check_against(ml(50))
    with pytest.raises(ProgramError) as err:
        bolus.check_against(ml("49.999"))
    assert err.value.where == "bolus.volume"
    assert bolus.segment().kind is SegmentKind.BOLUS


@pytest.mark.req("OI-PROG-4")
def test_bolus_as_amount() -> None:
    # heparin 80 [iU]/kg x 70 kg = 5600 [iU] at 50 [iU]/mL = 112 mL, at 600 mL/h
    heparin = Concentration(q("25000 [iU]"), q("500 mL"))
    bolus = Bolus.request(q("80 [iU]/kg"), ml_h(600), LVP, concentration=heparin, patient=Patient(weight=q("70 kg")))
    assert (bolus.volume, bolus.rate, bolus.amount) == (ml(112), ml_h(600), q("80 [iU]/kg"))
    assert where_of(lambda: Bolus.request(q("80 [iU]/kg"), ml_h(600), LVP, concentration=heparin)) == (
        "bolus.patient.weight"
    )
    assert where_of(lambda: Bolus.request(q("80 [iU]"), ml_h(600), LVP)) == "bolus.amount"
    assert where_of(lambda: Bolus.request(ml(50), Duration.s(10), LVP)) == "bolus.pace"


@pytest.mark.req("OI-PROG-1")
def test_titration() -> None:
    continuous = ContinuousProgram(rate=ml_h(80), vtbi=ml(1000), limits=LVP)
    assert continuous.titrated(Titration(ml_h(100))) == ContinuousProgram(rate=ml_h(100), vtbi=ml(1000), limits=LVP)
    assert where_of(lambda: continuous.titrated(Titration(ml_h(2000)))) == "program.rate"
    assert where_of(lambda: continuous.titrated(Titration(q("1 mg/h")))) == "titration.new"
    assert where_of(lambda: Titration(ml_h(0))) == "titration.new"

    dose = DoseProgram(
        dose=q("0.5 ug/kg/min"),
        concentration=MILRINONE,
        patient=Patient(weight=q("80 kg")),
        loading=LoadingDose(q("50 ug/kg"), Duration.min(10)),
        limits=LVP,
    )
    titrated = dose.titrated(Titration(q("0.375 ug/kg/min")))
    assert titrated.primary_rate() == ml_h(9)  # 0.375 x 80 x 60 / 200
    assert titrated.loading is None
    assert where_of(lambda: dose.titrated(Titration(ml_h(9)))) == "titration.new"

    secondary = SecondaryProgram(rate=ml_h(100), vtbi=ml(50), limits=LVP)
    assert secondary.titrated(Titration(ml_h(50))).rate == ml_h(50)

    fixed: list[Program] = [
        VolumeOverTimeProgram(vtbi=ml(100), duration=Duration.h(1), limits=LVP),
        MultistepProgram(steps=(Step(ml_h(1), ml(1)),), limits=LVP),
        IntermittentProgram(dose_volume=ml(100), rate=ml_h(200), interval=Duration.h(6), doses=2, limits=LVP),
    ]
    for program in fixed:
        assert where_of(lambda p=program: p.titrated(Titration(ml_h(5)))) == "titration"


@pytest.mark.req("OI-PROG-7")
@pytest.mark.parametrize(
    ("program", "kvo", "expected"),
    [
        (
            ContinuousProgram(rate=ml_h(125), vtbi=ml(1000), limits=LVP),
            KvoSettings(enabled=True, rate=ml_h(1)),
            ml_h(1),
        ),
        (
            ContinuousProgram(rate=ml_h("0.5"), vtbi=ml(10), limits=LVP),
            KvoSettings(enabled=True, rate=ml_h(1)),
            ml_h("0.5"),
        ),
        (
            ContinuousProgram(rate=ml_h(125), vtbi=ml(1000), limits=LVP),
            KvoSettings(enabled=False, rate=ml_h(1)),
            ZERO_RATE,
        ),
        (
            MultistepProgram(steps=(Step(ml_h(100), ml(10)), Step(ml_h("0.3"), ml(1))), limits=LVP),
            KvoSettings(enabled=True, rate=ml_h(3)),
            ml_h("0.3"),
        ),
    ],
)
def test_kvo_never_above_programmed_rate(program: Program, kvo: KvoSettings, expected: FlowRate) -> None:
    assert kvo_rate_for(program, kvo) == expected


@pytest.mark.req("OI-PROG-7")
@given(st.integers(1, 9990), st.integers(1, 200))
def test_kvo_property(rate_tenths: int, kvo_tenths: int) -> None:
    program = ContinuousProgram(rate=FlowRate(rate_tenths * 100_000), vtbi=ml(100), limits=LVP)
    kvo = kvo_rate_for(program, KvoSettings(enabled=True, rate=FlowRate(kvo_tenths * 100_000)))
    assert kvo.nl_per_h == min(rate_tenths, kvo_tenths) * 100_000


def test_kvo_enabled_needs_a_rate() -> None:
    assert where_of(lambda: KvoSettings(enabled=True, rate=ZERO_RATE)) == "kvo.rate"


@pytest.mark.req("OI-PROG-8")
def test_near_end() -> None:
    near_end = NearEndSettings(Duration.min(5))
    assert not near_end.due(Duration.min(6))
    assert near_end.due(Duration.min(5))
    assert where_of(lambda: NearEndSettings(Duration(0))) == "near_end.lead"
    assert where_of(lambda: NearEndSettings(Duration.min(241))) == "near_end.lead"
