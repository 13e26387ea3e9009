"""Dose <-> rate conversion: clinical worked examples (computed by hand) and properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from openinfusion.errors import InputError, ProgramError, UnitError
from openinfusion.pump.dosing import (
    Concentration,
    Patient,
    amount_to_volume,
    dose_to_rate,
    rate_to_dose,
    volume_to_amount,
)
from openinfusion.units import FlowRate, Quantity, Volume, unit

q = Quantity.parse
TENTH = FlowRate.ml_h("0.1")
HUNDREDTH = FlowRate.ml_h("0.01")


def conc(amount: str, volume: str) -> Concentration:
    return Concentration(q(amount), q(volume))


def kg(weight: str) -> Patient:
    return Patient(weight=q(f"{weight} kg"))


# --- worked examples: expected values computed by hand from the clinical numbers ---------------


@pytest.mark.req("OI-PROG-2", "OI-PROG-3")
def test_norepinephrine_weight_based() -> None:
    # 0.1 ug/kg/min x 80 kg = 8 ug/min = 480 ug/h; 4 mg/250 mL = 16 ug/mL; 480 / 16 = 30 mL/h
    result = dose_to_rate(q("0.1 ug/kg/min"), conc("4 mg", "250 mL"), kg("80"), TENTH)
    assert result.exact_rate.value == 30
    assert result.rate == FlowRate.ml_h(30)
    assert result.actual.equals(q("0.1 ug/kg/min"))


@pytest.mark.req("OI-PROG-2")
def test_heparin_units_per_hour() -> None:
    # 25000 [iU] / 500 mL = 50 [iU]/mL; 1000 / 50 = 20 mL/h
    result = dose_to_rate(q("1000 [iU]/h"), conc("25000 [iU]", "500 mL"), Patient(), TENTH)
    assert result.rate == FlowRate.ml_h(20)
    assert result.actual == q("1000 [iU]/h")


@pytest.mark.req("OI-PROG-2", "OI-PROG-3")
def test_dopamine_rounded_rate_and_recomputed_dose() -> None:
    # 5 ug/kg/min x 70 kg = 21 mg/h; 400 mg/250 mL = 1.6 mg/mL; 21 / 1.6 = 13.125 mL/h -> 13.1 at 0.1
    result = dose_to_rate(q("5 ug/kg/min"), conc("400 mg", "250 mL"), kg("70"), TENTH)
    assert result.exact_rate == Quantity(Fraction("13.125"), unit("mL/h"))
    assert result.rate == FlowRate.ml_h("13.1")
    # what 13.1 mL/h really gives: 13.1 x 1600 ug/mL = 20960 ug/h, / 70 kg / 60 min
    assert result.actual == Quantity(Fraction(20960, 70 * 60), unit("ug/kg/min"))


@pytest.mark.req("OI-PROG-2")
def test_rounding_tie_goes_to_even() -> None:
    # the same 13.125 mL/h at 0.01 resolution is exactly halfway: 13.12 (even), not 13.13
    result = dose_to_rate(q("5 ug/kg/min"), conc("400 mg", "250 mL"), kg("70"), HUNDREDTH)
    assert result.rate == FlowRate.ml_h("13.12")
    assert result.actual == Quantity(Fraction(20992, 70 * 60), unit("ug/kg/min"))  # 13.12 x 1600 ug/h


@pytest.mark.req("OI-PROG-2", "OI-PROG-3")
@pytest.mark.parametrize(
    ("dose", "amount", "volume", "patient", "rate_ml_h"),
    [
        # 10 mg/m2/h x 1.8 m2 = 18 mg/h at 1 mg/mL
        ("10 mg/m2/h", "100 mg", "100 mL", Patient(bsa=q("1.8 m2")), "18"),
        # 10 meq/h at 20 meq/100 mL (0.2 meq/mL)
        ("10 meq/h", "20 meq", "100 mL", Patient(), "50"),
        # 1.5 mmol/h at 15 mmol/250 mL (0.06 mmol/mL)
        ("1.5 mmol/h", "15 mmol", "250 mL", Patient(), "25"),
        # 10 ng/kg/min x 50 kg = 30000 ng/h at 10 ug/mL
        ("10 ng/kg/min", "1 mg", "100 mL", kg("50"), "3"),
        # 500 m[iU]/kg/h x 10 kg = 5 [iU]/h at 1 [iU]/mL
        ("500 m[iU]/kg/h", "100 [iU]", "100 mL", kg("10"), "5"),
        # vasopressin 0.04 [iU]/min = 2.4 [iU]/h at 40 [iU]/100 mL
        ("0.04 [iU]/min", "40 [iU]", "100 mL", Patient(), "6"),
        # "mcg" is read as ug: 2 mcg/min = 120 ug/h at 16 ug/mL
        ("2 mcg/min", "4 mg", "250 mL", Patient(), "7.5"),
    ],
)
def test_dose_units(dose: str, amount: str, volume: str, patient: Patient, rate_ml_h: str) -> None:
    result = dose_to_rate(q(dose), conc(amount, volume), patient, HUNDREDTH)
    assert result.rate == FlowRate.ml_h(rate_ml_h)
    assert result.actual.equals(q(dose))


@pytest.mark.req("OI-PROG-2")
def test_rate_to_dose_exact() -> None:
    # 20 mL/h of 50 [iU]/mL = 1000 [iU]/h; per 80 kg = 12.5 [iU]/kg/h
    heparin = conc("25000 [iU]", "500 mL")
    assert rate_to_dose(FlowRate.ml_h(20), heparin, kg("80"), unit("[iU]/kg/h")) == q("12.5 [iU]/kg/h")
    assert rate_to_dose(FlowRate.ml_h(20), heparin, Patient(), unit("[iU]/min")) == Quantity(
        Fraction(1000, 60), unit("[iU]/min")
    )


@pytest.mark.req("OI-PROG-4")
def test_amount_volume_conversions() -> None:
    # heparin bolus 80 [iU]/kg x 70 kg = 5600 [iU] at 50 [iU]/mL = 112 mL
    heparin = conc("25000 [iU]", "500 mL")
    assert amount_to_volume(q("80 [iU]/kg"), heparin, kg("70")) == Volume.ml(112)
    assert volume_to_amount(Volume.ml(112), heparin) == q("5600 [iU]")
    # 1 mg of 4 mg/250 mL is 62.5 mL
    assert amount_to_volume(q("1 mg"), conc("4 mg", "250 mL"), Patient()) == Volume.ml("62.5")


# --- validation -------------------------------------------------------------------------------


@pytest.mark.req("OI-PROG-3")
@pytest.mark.parametrize(("dose", "field"), [("5 ug/kg/min", "patient.weight"), ("10 mg/m2/h", "patient.bsa")])
def test_per_patient_dose_needs_weight_or_bsa(dose: str, field: str) -> None:
    with pytest.raises(ProgramError) as err:
        dose_to_rate(q(dose), conc("400 mg", "250 mL"), Patient(), TENTH)
    assert err.value.where == field


@pytest.mark.req("OI-PROG-3")
@pytest.mark.parametrize(
    ("weight", "bsa", "field"),
    [("0.2 kg", None, "patient.weight"), ("351 kg", None, "patient.weight"), (None, "3.6 m2", "patient.bsa")],
)
def test_implausible_patient(weight: str | None, bsa: str | None, field: str) -> None:
    with pytest.raises(ProgramError) as err:
        Patient(weight=q(weight) if weight else None, bsa=q(bsa) if bsa else None)
    assert err.value.where == field


@pytest.mark.req("OI-UNIT-2")
def test_drug_mass_is_not_patient_weight() -> None:
    with pytest.raises(UnitError) as err:
        Patient(weight=q("70000 g"))
    assert err.value.where == "patient.weight"


@pytest.mark.req("OI-UNIT-2")
@pytest.mark.parametrize(
    ("dose", "amount"),
    [
        ("1000 [iU]/h", "400 mg"),  # activity dose, mass concentration
        ("5 mg/h", "25000 [iU]"),  # mass dose, activity concentration
        ("10 mL/h", "400 mg"),  # a rate is not a dose
        ("5 mg/kg", "400 mg"),  # an amount is not a dose rate
        ("5 mg/kg/kg/h", "400 mg"),  # not a dose shape
    ],
)
def test_dose_unit_must_fit_concentration(dose: str, amount: str) -> None:
    with pytest.raises(UnitError) as err:
        dose_to_rate(q(dose), conc(amount, "250 mL"), kg("70"), TENTH)
    assert err.value.where == "dose"


@pytest.mark.req("OI-PROG-2")
@pytest.mark.parametrize("dose", ["0 mg/h", "-1 mg/h", "0.00001 mg/h"])
def test_dose_must_give_a_positive_rate(dose: str) -> None:
    with pytest.raises(ProgramError) as err:
        dose_to_rate(q(dose), conc("400 mg", "250 mL"), Patient(), TENTH)
    assert err.value.where == "dose"


@pytest.mark.req("OI-UNIT-2")
@pytest.mark.parametrize(
    ("amount", "volume"), [("0 mg", "250 mL"), ("4 mg", "0 mL"), ("4 mg/kg", "250 mL"), ("4 mg", "250 mg")]
)
def test_bad_concentration(amount: str, volume: str) -> None:
    with pytest.raises(InputError) as err:
        conc(amount, volume)
    assert err.value.where.startswith("concentration.")


@pytest.mark.req("OI-UNIT-2")
def test_concentration_from_single_quantity() -> None:
    assert Concentration.from_quantity(q("4 mg/mL")).per_ml() == conc("400 mg", "100 mL").per_ml()
    assert Concentration.from_quantity(q("16 mcg/mL")).per_ml().equals(conc("4 mg", "250 mL").per_ml())
    for bad in ("4 mg", "4 mg/h", "4 mg/kg/mL"):
        with pytest.raises(UnitError):
            Concentration.from_quantity(q(bad))


# --- properties -------------------------------------------------------------------------------

RESOLUTIONS = st.sampled_from([HUNDREDTH, TENTH, FlowRate.ml_h(1)])
CONCENTRATIONS = st.builds(
    lambda mg, ml: conc(f"{mg} mg", f"{ml} mL"),
    st.integers(1, 5000),
    st.sampled_from([20, 50, 100, 250, 500, 1000]),
)
WEIGHTS = st.integers(3, 3500).map(lambda tenths: Patient(weight=Quantity(Fraction(tenths, 10), unit("kg"))))
DOSE_UNITS = st.sampled_from(["ug/kg/min", "mg/kg/h", "ng/kg/min", "mg/h", "ug/min"])
DOSES = st.builds(
    lambda thousandths, u: Quantity(Fraction(thousandths, 1000), unit(u)), st.integers(1, 10**7), DOSE_UNITS
)


@pytest.mark.req("OI-PROG-2")
@given(DOSES, CONCENTRATIONS, WEIGHTS, RESOLUTIONS)
def test_round_trip_within_half_a_step(dose: Quantity, c: Concentration, p: Patient, res: FlowRate) -> None:
    try:
        result = dose_to_rate(dose, c, p, res)
    except ProgramError:
        assume(False)  # rounds to zero: refused, covered by test_dose_must_give_a_positive_rate
        raise
    half_step = rate_to_dose(res, c, p, dose.unit).value / 2
    assert abs(result.actual.value - dose.value) <= half_step
    assert result.rate.nl_per_h % res.nl_per_h == 0
    assert result.actual == rate_to_dose(result.rate, c, p, dose.unit)


@pytest.mark.req("OI-PROG-2")
@given(st.integers(1, 99_990), CONCENTRATIONS, WEIGHTS, DOSE_UNITS, RESOLUTIONS)
def test_rate_dose_rate_is_exact(steps: int, c: Concentration, p: Patient, u: str, res: FlowRate) -> None:
    rate = FlowRate(steps * res.nl_per_h)
    dose = rate_to_dose(rate, c, p, unit(u))
    result = dose_to_rate(dose, c, p, res)
    assert result.rate == rate
    assert result.exact_rate == rate.quantity()
    assert result.actual == dose


@pytest.mark.req("OI-PROG-2", "OI-UNIT-2")
@given(st.integers(1, 10**6), CONCENTRATIONS, WEIGHTS, RESOLUTIONS)
def test_unit_choice_does_not_change_rate(thousandths: int, c: Concentration, p: Patient, res: FlowRate) -> None:
    in_mg = Quantity(Fraction(thousandths, 1000), unit("mg/h"))
    in_ug = Quantity(Fraction(thousandths), unit("ug/h"))
    try:
        a, b = dose_to_rate(in_mg, c, p, res), dose_to_rate(in_ug, c, p, res)
    except ProgramError:
        assume(False)
        raise
    assert a.exact_rate == b.exact_rate
    assert a.rate == b.rate
    assert a.actual.equals(b.actual)


@pytest.mark.req("OI-PROG-2", "OI-PROG-3")
@given(st.integers(1, 10**5), CONCENTRATIONS, st.integers(3, 1000), st.integers(1, 10))
def test_per_kg_dose_scales_with_weight(ug_per_kg_min: int, c: Concentration, tenths: int, factor: int) -> None:
    assume(tenths * factor <= 3500)
    dose = Quantity(Fraction(ug_per_kg_min, 100), unit("ug/kg/min"))

    def exact(weight_tenths: int) -> Fraction:
        patient = Patient(weight=Quantity(Fraction(weight_tenths, 10), unit("kg")))
        try:
            return dose_to_rate(dose, c, patient, HUNDREDTH).exact_rate.value
        except ProgramError:
            assume(False)
            raise

    assert exact(tenths * factor) == factor * exact(tenths)
