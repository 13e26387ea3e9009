"""The pump's DERS check and library slot (issue 5, items 4-5): soft, hard, units, staged activation."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from druglib_helpers import TRUSTED, base_data, check, entry, release, sample_library
from openinfusion.druglib.model import LimitField
from openinfusion.druglib.package import identity_of
from openinfusion.errors import ProgramError
from openinfusion.pump.ders import (
    BoundSide,
    DersIndex,
    DersRequest,
    LibraryEventKind,
    LibrarySlot,
    LimitFinding,
    LimitKind,
    Verdict,
)
from openinfusion.units import Duration, FlowRate, Quantity, Volume

LIBRARY = check(base_data()).require()
INDEX = DersIndex.build(LIBRARY)
KG70 = Quantity.parse("70 kg")
DOPAMINE = "400 mg/250 mL"


def q(text: str) -> Quantity:
    return Quantity.parse(text)


def dopamine(**values: object) -> DersRequest:
    fields: dict[str, object] = {"area": "ICU", "drug": "dopamine", "concentration": DOPAMINE, "weight": KG70}
    return DersRequest(**(fields | values))  # type: ignore[arg-type]


def only(result_findings: tuple[LimitFinding, ...]) -> tuple[LimitField, LimitKind, BoundSide, str, str]:
    (f,) = result_findings
    return f.field, f.kind, f.bound, str(f.entered), str(f.limit)


@pytest.mark.req("OI-DERS-3")
def test_program_within_limits_is_ok() -> None:
    result = INDEX.check(dopamine(dose=q("5 ug/kg/min"), rate=FlowRate.ml_h("13.1"), vtbi=Volume.ml(250)))
    assert (result.verdict, result.findings) == (Verdict.OK, ())
    assert INDEX.authorize(result).proceed


@pytest.mark.req("OI-DERS-3")
@pytest.mark.parametrize(
    ("dose", "verdict", "expected"),
    [
        (
            "25 ug/kg/min",
            Verdict.SOFT,
            (LimitField.DOSE, LimitKind.SOFT, BoundSide.UPPER, "25 ug/kg/min", "20 ug/kg/min"),
        ),
        (
            "0.5 ug/kg/min",
            Verdict.SOFT,
            (LimitField.DOSE, LimitKind.SOFT, BoundSide.LOWER, "0.5 ug/kg/min", "0.9 ug/kg/min"),
        ),
        (
            "35 ug/kg/min",
            Verdict.HARD,
            (LimitField.DOSE, LimitKind.HARD, BoundSide.UPPER, "35 ug/kg/min", "30 ug/kg/min"),
        ),
        # entered in mg/kg/min: converted exactly, shown in the library's unit next to the limit
        (
            "0.035 mg/kg/min",
            Verdict.HARD,
            (LimitField.DOSE, LimitKind.HARD, BoundSide.UPPER, "35 ug/kg/min", "30 ug/kg/min"),
        ),
    ],
)
def test_dose_beyond_a_limit_gives_one_structured_finding(
    dose: str, verdict: Verdict, expected: tuple[LimitField, LimitKind, BoundSide, str, str]
) -> None:
    result = INDEX.check(dopamine(dose=q(dose)))
    assert result.verdict is verdict
    assert only(result.findings) == expected  # beyond hard, only the hard limit is reported


@pytest.mark.req("OI-DERS-3", "OI-UNIT-1")
def test_limits_are_inclusive_and_exact() -> None:
    assert INDEX.check(dopamine(dose=q("0.02 mg/kg/min"))).verdict is Verdict.OK  # exactly the soft maximum
    just_above = INDEX.check(dopamine(dose=q("0.0200000001 mg/kg/min")))
    assert just_above.verdict is Verdict.SOFT
    assert just_above.findings[0].entered.value == Fraction("20.0000001")


@pytest.mark.req("OI-DERS-3")
def test_care_area_caps_rate_vtbi_and_patient_weight() -> None:
    result = INDEX.check(
        dopamine(dose=q("5 ug/kg/min"), rate=FlowRate.ml_h(1000), vtbi=Volume.ml(3001), weight=q("15 kg"))
    )
    assert result.verdict is Verdict.HARD
    assert {(f.field, f.kind, f.bound, str(f.limit)) for f in result.findings} == {
        (LimitField.WEIGHT, LimitKind.HARD, BoundSide.LOWER, "20 kg"),
        (LimitField.RATE, LimitKind.HARD, BoundSide.UPPER, "999 mL/h"),
        (LimitField.VTBI, LimitKind.HARD, BoundSide.UPPER, "3000 mL"),
    }
    heavy = INDEX.check(dopamine(dose=q("5 ug/kg/min"), weight=q("250 kg")))
    assert only(heavy.findings) == (LimitField.WEIGHT, LimitKind.SOFT, BoundSide.UPPER, "250 kg", "200 kg")


@pytest.mark.req("OI-DERS-3")
def test_intermittent_custom_concentration_and_duration() -> None:
    base = {"area": "ICU", "drug": "vancomycin", "dose": q("1 g")}
    strong = INDEX.check(DersRequest(**base, custom_concentration=q("6 mg/mL"), duration=Duration.min(60)))  # type: ignore[arg-type]
    assert only(strong.findings) == (LimitField.CONCENTRATION, LimitKind.SOFT, BoundSide.UPPER, "6 mg/mL", "5.1 mg/mL")
    fast = INDEX.check(DersRequest(**base, concentration="1 g/200 mL", duration=Duration.min(20)))  # type: ignore[arg-type]
    assert only(fast.findings) == (LimitField.DURATION, LimitKind.HARD, BoundSide.LOWER, "20 min", "25 min")
    dilute = INDEX.check(DersRequest(**base, custom_concentration=q("500 ug/mL")))  # type: ignore[arg-type]
    assert only(dilute.findings) == (LimitField.CONCENTRATION, LimitKind.HARD, BoundSide.LOWER, "0.5 mg/mL", "1 mg/mL")


@pytest.mark.req("OI-DERS-4")
def test_bolus_and_titration_are_checked_like_the_first_program() -> None:
    insulin = {"area": "ICU", "drug": "insulin-regular", "concentration": "100 [iU]/100 mL"}
    assert INDEX.check(DersRequest(**insulin, dose=q("10 [iU]/h"))).verdict is Verdict.OK  # type: ignore[arg-type]
    titrated = INDEX.check(DersRequest(**insulin, dose=q("25 [iU]/h")))  # type: ignore[arg-type]
    assert only(titrated.findings)[:3] == (LimitField.DOSE, LimitKind.SOFT, BoundSide.UPPER)
    bolus = INDEX.check(DersRequest(**insulin, dose=q("10 [iU]/h"), bolus_dose=q("16 [iU]")))  # type: ignore[arg-type]
    assert only(bolus.findings) == (LimitField.BOLUS_DOSE, LimitKind.HARD, BoundSide.UPPER, "16 [iU]", "15 [iU]")


@pytest.mark.req("OI-DERS-4")
def test_pca_settings_are_checked() -> None:
    index = DersIndex.build(sample_library())
    result = index.check(
        DersRequest(
            area="MED-SURG",
            drug="morphine",
            therapy="pca",
            concentration="1 mg/1 mL",
            pca_demand_dose=q("3 mg"),
            pca_lockout=Duration.min(3),
            pca_limit_4h=q("30 mg"),
        )
    )
    assert result.verdict is Verdict.SOFT
    assert [(f.field, f.bound, str(f.limit)) for f in result.findings] == [
        (LimitField.PCA_DEMAND_DOSE, BoundSide.UPPER, "2 mg"),
        (LimitField.PCA_LOCKOUT, BoundSide.LOWER, "5 min"),
    ]


@pytest.mark.req("OI-DERS-3")
def test_soft_limit_needs_a_listed_reason_and_hard_limit_always_blocks() -> None:
    soft = INDEX.check(dopamine(dose=q("25 ug/kg/min")))
    assert not INDEX.authorize(soft).proceed
    assert not INDEX.authorize(soft, "because I said so").proceed
    decision = INDEX.authorize(soft, "Titration per protocol")
    assert decision.proceed and decision.override_reason == "Titration per protocol"
    hard = INDEX.check(dopamine(dose=q("35 ug/kg/min")))
    blocked = INDEX.authorize(hard, "Titration per protocol")
    assert not blocked.proceed
    assert "hard maximum 30 ug/kg/min" in blocked.why  # the limit is shown


@pytest.mark.req("OI-UNIT-1", "OI-IN-1")
@pytest.mark.parametrize(
    ("request_", "where", "why"),
    [
        (lambda: dopamine(dose=q("350 ug/min")), "program.dose", "cannot be checked"),
        (lambda: dopamine(weight=None, dose=q("5 ug/kg/min")), "program.weight", "per kg"),
        (lambda: dopamine(concentration="800 mg/250 mL"), "program.concentration", "not a standard concentration"),
        (
            lambda: dopamine(concentration=None, custom_concentration=q("2 mg/mL")),
            "program.custom_concentration",
            "not allowed",
        ),
        (lambda: dopamine(concentration=None), "program.concentration", "choose a concentration"),
        (lambda: DersRequest(area="NICU", drug="dopamine", concentration=DOPAMINE), "program.drug", "no entry"),
    ],
)
def test_requests_that_do_not_fit_the_entry_are_refused(request_: object, where: str, why: str) -> None:
    with pytest.raises(ProgramError) as caught:
        INDEX.check(request_())  # type: ignore[operator]
    assert caught.value.where == where and why in caught.value.why


@pytest.mark.req("OI-IN-1")
def test_request_values_are_validated_when_built() -> None:
    with pytest.raises(ProgramError, match="not both"):
        dopamine(custom_concentration=q("2 mg/mL"))
    with pytest.raises(ProgramError, match="negative"):
        dopamine(dose=q("-1 ug/kg/min"))


_doses = st.decimals(min_value=0, max_value=60, places=4)


@pytest.mark.req("OI-DERS-3", "OI-UNIT-1")
@given(_doses, st.sampled_from(["ug/kg/min", "mg/kg/min", "ng/kg/min", "ug/kg/h"]))
def test_verdict_matches_the_library_bounds(value: Decimal, code: str) -> None:
    dose = Quantity.of(value, code)
    bounds = LIBRARY.drugs[0].entries[0].limit(LimitField.DOSE)
    assert bounds is not None and bounds.hard_max and bounds.soft_min and bounds.soft_max
    expected = (
        Verdict.HARD
        if dose > bounds.hard_max
        else Verdict.SOFT
        if dose > bounds.soft_max or dose < bounds.soft_min
        else Verdict.OK
    )
    assert INDEX.check(dopamine(dose=dose)).verdict is expected


# --- the library slot: verify, stage, activate ------------------------------------------------------

PACKAGE = release(LIBRARY)


@pytest.mark.req("OI-DERS-2", "OI-DERS-5", "OI-DERS-6")
def test_new_library_is_staged_and_activates_only_when_no_infusion_runs() -> None:
    slot, event = LibrarySlot().receive(PACKAGE, TRUSTED)
    assert event.kind is LibraryEventKind.STAGED and event.identity == identity_of(LIBRARY)
    assert slot.active is None and slot.staged is not None
    busy, nothing = slot.activate(infusing=True)
    assert (busy, nothing) == (slot, None)
    idle, activated = slot.activate(infusing=False)
    assert activated is not None and activated.kind is LibraryEventKind.ACTIVATED
    assert idle.staged is None and idle.active is not None
    assert idle.active.identity.hash == identity_of(LIBRARY).hash
    assert idle.active.index.check(dopamine(dose=q("5 ug/kg/min"))).verdict is Verdict.OK


@pytest.mark.req("OI-DERS-2", "OI-DERS-5")
def test_refused_package_keeps_the_last_good_library_and_says_why() -> None:
    good, _ = LibrarySlot().receive(PACKAGE, TRUSTED)
    good, _ = good.activate(infusing=False)
    data = base_data()
    data["library"]["version"] = "2"
    entry(data, "dopamine")["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    foreign = release(check(data).require(), author=("C. Stranger", Ed25519PrivateKey.generate()))
    tampered = PACKAGE.replace(b'"30 ug/kg/min"', b'"90 ug/kg/min"')
    for bad in (foreign, tampered, b"", PACKAGE[:-2]):
        after, event = good.receive(bad, TRUSTED)
        assert after == good  # active library unchanged, nothing staged
        assert event.kind is LibraryEventKind.REJECTED and event.identity is None
        assert event.reason.startswith("package refused")


@pytest.mark.req("OI-UNIT-1")
def test_a_value_in_another_representation_is_converted_never_compared_at_the_wrong_scale() -> None:
    as_quantity = INDEX.check(dopamine(dose=q("5 ug/kg/min"), rate=q("1.0005 L/h")))  # type: ignore[arg-type]
    assert only(as_quantity.findings) == (LimitField.RATE, LimitKind.HARD, BoundSide.UPPER, "1000.5 mL/h", "999 mL/h")
    epidural = DersIndex.build(sample_library())
    request = DersRequest(
        area="LD",
        drug="bupivacaine-fentanyl",
        therapy="epidural",
        bolus_rate=FlowRate.ml_h(960),  # type: ignore[arg-type]
    )
    assert only(epidural.check(request).findings) == (
        LimitField.BOLUS_RATE,
        LimitKind.SOFT,
        BoundSide.UPPER,
        "16 mL/min",
        "14 mL/min",
    )
