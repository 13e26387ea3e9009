"""PCA: program validation, and demand decisions read as timelines (lockout, 1-h and 4-h limits)."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import InputError, ProgramError
from openinfusion.pump.dosing import Concentration
from openinfusion.pump.pca import (
    DemandDecision,
    DenyReason,
    DoseKind,
    PcaLedger,
    PcaProgram,
    decide_demand,
    frequent_requests,
)
from openinfusion.pump.programs import RateLimits, SegmentKind, Titration
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Instant, Quantity, Volume

q = Quantity.parse
MORPHINE = Concentration(q("1 mg"), q("1 mL"))
LIMITS = RateLimits(min_rate=FlowRate.ml_h("0.1"), max_rate=FlowRate.ml_h(999), resolution=FlowRate.ml_h("0.1"))
T0 = Instant(0)


def at(minutes: float | int | str) -> Instant:
    return T0 + Duration.min(minutes)


def pca(**overrides: object) -> PcaProgram:
    """Morphine 1 mg/mL, demand 1 mg, lockout 10 min (the S4S-aligned start in
    shared/reference/drug-library-examples.md §3); the 1 mL demand runs at 60 mL/h, so it lasts 1 min."""
    fields: dict[str, object] = {
        "concentration": MORPHINE,
        "demand_dose": q("1 mg"),
        "lockout": Duration.min(10),
        "demand_rate": FlowRate.ml_h(60),
        "limits": LIMITS,
    }
    return PcaProgram(**(fields | overrides))  # type: ignore[arg-type]


def press(program: PcaProgram, ledger: PcaLedger, now: Instant, **state: bool) -> tuple[DemandDecision, PcaLedger]:
    flags = {"inhibited": False, "infusing": True} | state
    decision = decide_demand(program, ledger, now, **flags)
    return decision, ledger.with_demand(now, decision)


# --- the program ------------------------------------------------------------------------------


@pytest.mark.req("OI-PCA-1", "OI-PROG-1")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lockout": Duration(0)}, "program.lockout"),
        ({"demand_dose": q("0 mg")}, "program.demand_dose"),
        ({"demand_dose": q("1 [iU]")}, "program.demand_dose"),
        ({"demand_dose": q("0.01 ug/kg")}, "program.demand_dose"),
        ({"limit_1h": q("0.5 mg")}, "program.limit_1h"),
        ({"limit_1h": q("10 mg"), "limit_4h": q("8 mg")}, "program.limit_1h"),
        ({"limit_4h": q("800 ug")}, "program.limit_4h"),
        ({"basal": q("10 mg/h"), "limit_1h": q("10 mg")}, "program.limit_1h"),
        ({"basal": q("2 mg/h"), "limit_4h": q("8 mg")}, "program.limit_4h"),
        ({"basal": q("0.02 mg/kg/h")}, "program.basal"),
        ({"basal": q("0.01 mg/h")}, "program.basal"),  # 0.01 mL/h: rounds to 0 at 0.1 mL/h
        ({"loading": q("-2 mg")}, "program.loading"),
        ({"demand_rate": FlowRate.ml_h(1000)}, "program.demand_rate"),
        ({"demand_rate": FlowRate.ml_h(999), "basal": q("1 mg/h")}, "program.demand_rate"),  # 1000 mL/h together
    ],
)
def test_invalid_pca_program_names_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        pca(**overrides)
    assert err.value.where == field


@pytest.mark.req("OI-PCA-1", "OI-PROG-4")
def test_plan_loading_then_basal() -> None:
    program = pca(basal=q("1 mg/h"), loading=q("2 mg"))
    loading, basal = program.plan()
    assert (loading.kind, loading.rate, loading.volume) == (SegmentKind.LOADING, FlowRate.ml_h(60), Volume.ml(2))
    assert (basal.kind, basal.rate, basal.volume, basal.duration) == (SegmentKind.BASAL, FlowRate.ml_h(1), None, None)
    assert program.planned_vtbi() is None
    demand = program.demand_segment()  # on top of the basal (OPENPCA-R5-2-0-2)
    assert (demand.rate, demand.volume) == (
        FlowRate.ml_h(61),
        Volume.ml(1) + FlowRate.ml_h(1).volume_in(Duration.min(1)),
    )

    (no_basal,) = pca().plan()
    assert (no_basal.kind, no_basal.rate) == (SegmentKind.BASAL, ZERO_RATE)


@pytest.mark.req("OI-PCA-1")
def test_basal_titration() -> None:
    program = pca(basal=q("1 mg/h"), loading=q("2 mg"), limit_1h=q("10 mg"))
    titrated = program.titrated(Titration(q("1.5 mg/h")))
    assert titrated.primary_rate() == FlowRate.ml_h("1.5")
    assert titrated.loading is None
    with pytest.raises(ProgramError) as err:
        program.titrated(Titration(q("10 mg/h")))  # basal alone would reach the 1-hour limit
    assert err.value.where == "program.limit_1h"
    with pytest.raises(ProgramError):
        program.titrated(Titration(FlowRate.ml_h(2)))


# --- timelines --------------------------------------------------------------------------------


@pytest.mark.req("OI-PCA-1", "UMN-GPCA-REQ-25")
def test_lockout_runs_from_the_end_of_the_dose() -> None:
    program = pca()
    ledger = PcaLedger.for_program(program)
    first, ledger = press(program, ledger, at(0))
    assert first == DemandDecision(True, None, q("1 mg"))
    during, ledger = press(program, ledger, at("0.5"))  # the dose is still running
    assert during.reason is DenyReason.LOCKOUT
    early, ledger = press(program, ledger, at(5))
    assert (early.given, early.reason) == (False, DenyReason.LOCKOUT)
    assert early.amount == q("0 mg")
    # the dose ended at 1 min; 10 min of lockout end at 11 min
    still, ledger = press(program, ledger, at("10.999"))
    assert still.reason is DenyReason.LOCKOUT
    again, ledger = press(program, ledger, at(11))
    assert again.given
    assert [r.given for r in ledger.demands] == [True, False, False, False, True]
    assert ledger.amount_in(Duration.h(1), at(11)) == q("2 mg")


@pytest.mark.req("OI-PCA-1", "UMN-GPCA-REQ-25")
def test_inhibited_or_not_infusing_is_denied_first() -> None:
    program = pca()
    ledger = PcaLedger.for_program(program)
    decision, ledger = press(program, ledger, at(0), inhibited=True)
    assert decision.reason is DenyReason.INHIBITED
    decision, ledger = press(program, ledger, at(0), inhibited=True, infusing=False)
    assert decision.reason is DenyReason.NOT_INFUSING
    decision, ledger = press(program, ledger, at(1))
    assert decision.given  # denied requests start no lockout


@pytest.mark.req("OI-PCA-1", "UMN-GPCA-REQ-25")
def test_hourly_limit() -> None:
    program = pca(lockout=Duration.min(5), limit_1h=q("3 mg"))
    ledger = PcaLedger.for_program(program)
    for minute in (0, 10, 20):
        decision, ledger = press(program, ledger, at(minute))
        assert decision.given
    decision, ledger = press(program, ledger, at(30))
    assert decision.reason is DenyReason.LIMIT_1H
    decision, ledger = press(program, ledger, at("59.99"))
    assert decision.reason is DenyReason.LIMIT_1H
    # windows are (now - 1 h, now]: at 60 min the dose given at 0 no longer counts
    decision, ledger = press(program, ledger, at(60))
    assert decision.given


@pytest.mark.req("OI-PCA-1")
def test_loading_and_clinician_doses_count() -> None:
    program = pca(lockout=Duration.min(5), limit_1h=q("4 mg"), loading=q("2 mg"))
    ledger = PcaLedger.for_program(program).with_dose(at(0), q("2 mg"), DoseKind.LOADING)
    decision, ledger = press(program, ledger, at(1))
    assert decision.given
    ledger = ledger.with_dose(at(10), q("1000 ug"), DoseKind.CLINICIAN)
    decision, ledger = press(program, ledger, at(20))
    assert decision.reason is DenyReason.LIMIT_1H
    assert ledger.amount_in(Duration.h(1), at(20)) == q("4 mg")


@pytest.mark.req("OI-PCA-1")
def test_four_hour_limit_counts_basal() -> None:
    # basal 1 mg/h reported every 30 min (0.5 mL of 1 mg/mL); demands at 0, 20, 40, 60 min
    program = pca(basal=q("1 mg/h"), limit_4h=q("8 mg"))
    ledger = PcaLedger.for_program(program)
    for minute in range(0, 181, 10):
        if minute and minute % 30 == 0:
            ledger = ledger.with_volume(at(minute), Volume.ml("0.5"))
        if minute in (0, 20, 40, 60):
            decision, ledger = press(program, ledger, at(minute))
            assert decision.given
    # 3 mg basal + 4 mg demand + 1 mg = 8 mg: exactly at the limit, given
    decision, ledger = press(program, ledger, at(180))
    assert decision.given
    # 3 mg basal + 5 mg demand + 1 mg = 9 mg > 8 mg (without basal it would have been 6 mg)
    decision, ledger = press(program, ledger, at(200))
    assert decision.reason is DenyReason.LIMIT_4H


@pytest.mark.req("UMN-GPCA-REQ-26")
def test_frequent_requests_counts_lockout_denials() -> None:
    program = pca(limit_1h=q("2 mg"))
    ledger = PcaLedger.for_program(program)
    for minute in (0, 2, 4, 6, 12, 13, 14, 24):
        _, ledger = press(program, ledger, at(minute))
    reasons = [r.reason for r in ledger.demands]
    lockout = DenyReason.LOCKOUT
    assert reasons == [None, lockout, lockout, lockout, None, lockout, lockout, DenyReason.LIMIT_1H]
    assert frequent_requests(ledger.demands, at(14), Duration.min(15)) == 5
    assert frequent_requests(ledger.demands, at(14), Duration.min(10)) == 3  # (4, 14]: 6, 13, 14
    assert frequent_requests(ledger.demands, at(24), Duration.min(15)) == 2  # 13, 14; a limit denial is not one


# --- ledger -----------------------------------------------------------------------------------


@pytest.mark.req("OI-PCA-1")
def test_ledger_refuses_time_going_backwards() -> None:
    program = pca()
    ledger = PcaLedger.for_program(program).with_volume(at(10), Volume.ml(1))
    with pytest.raises(ProgramError):
        ledger.with_volume(at(9), Volume.ml(1))
    with pytest.raises(ProgramError):
        decide_demand(program, ledger, at(9), inhibited=False, infusing=True)
    with pytest.raises(ProgramError):
        decide_demand(
            pca(concentration=Concentration(q("2 mg"), q("1 mL"))), ledger, at(11), inhibited=False, infusing=True
        )


def test_ledger_keeps_four_hours_of_doses() -> None:
    ledger = PcaLedger(MORPHINE)
    for minute in range(0, 301, 60):
        ledger = ledger.with_volume(at(minute), Volume.ml(1))
    assert [e.at for e in ledger.doses] == [at(m) for m in (120, 180, 240, 300)]
    assert ledger.amount_in(Duration.h(4), at(300)) == q("4 mg")
    with pytest.raises(ProgramError):
        ledger.amount_in(Duration.h(5), at(300))


def test_decision_is_consistent() -> None:
    with pytest.raises(ProgramError):
        DemandDecision(True, DenyReason.LOCKOUT, q("1 mg"))
    with pytest.raises(ProgramError):
        DemandDecision(False, DenyReason.LOCKOUT, q("1 mg"))


# --- property: no window ever holds more than its limit -----------------------------------------

EVENTS = st.lists(
    st.tuples(st.integers(0, 120), st.sampled_from(["press", "press", "press", "basal"])), min_size=1, max_size=80
)


@pytest.mark.req("OI-PCA-1", "UMN-GPCA-REQ-25")
@given(EVENTS, st.integers(1, 15), st.booleans())
def test_limits_hold_in_every_window(events: list[tuple[int, str]], lockout_min: int, with_basal: bool) -> None:
    program = pca(
        lockout=Duration.min(lockout_min),
        basal=q("0.5 mg/h") if with_basal else None,
        limit_1h=q("4 mg"),
        limit_4h=q("10 mg"),
    )
    ledger = PcaLedger.for_program(program)
    now, given_us, counted = T0, [], []  # counted: (us, mg) of everything the ledger was told
    for gap_s, what in events:
        now = now + Duration.s(gap_s * 15)
        if what == "basal":
            ledger = ledger.with_volume(now, Volume.ml("0.1"))
            counted.append((now.us, Fraction(1, 10)))
            continue
        decision, ledger = press(program, ledger, now)
        if decision.given:
            given_us.append(now.us)
            counted.append((now.us, Fraction(1)))
            # at the moment of each demand, the last hour and four hours are within their limits
            for window, limit in ((Duration.h(1), 4), (Duration.h(4), 10)):
                assert sum(mg for t, mg in counted if now.us - t < window.us) <= limit
    if not with_basal:  # demands alone: every window of the run, not only those ending at a demand
        for end in given_us:
            assert sum(1 for t in given_us if 0 <= end - t < Duration.h(1).us) <= 4
    gap_us = (program.demand_time() + program.lockout).us
    assert all(b - a >= gap_us for a, b in pairwise(given_us))
