"""Units: strict UCUM parsing over the closed set, exact conversion, integer hot-path types."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import UnitError
from openinfusion.units import Duration, FlowRate, Quantity, Volume, exact, parse_unit


@pytest.mark.req("OI-UNIT-1")
@pytest.mark.parametrize("code", ["mL/h", "ug/kg/min", "[iU]/h", "meq/h", "mg/m2/h", "mL/(kg.h)", "mmol", "ng/kg/min"])
def test_accepts_infusion_units(code: str) -> None:
    assert parse_unit(code).code == code


@pytest.mark.req("OI-UNIT-1", "OI-IN-1")
@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("mL/hr", "use 'h'"),
        ("cc/h", "use 'mL'"),
        ("U/h", "banned"),
        ("units/h", "[iU]"),
        ("mEq/h", "'meq'"),
        ("lb", "kg only"),
        ("µg/min", "micro sign"),
        ("ml/h", "case-sensitive"),
        ("furlong", "known units"),
    ],
)
def test_rejects_unknown_units_with_location_and_hint(code: str, hint: str) -> None:
    with pytest.raises(UnitError) as err:
        parse_unit(code, "program.dose.unit")
    assert err.value.where == "program.dose.unit"
    assert hint in err.value.why


@pytest.mark.req("OI-UNIT-1")
@pytest.mark.parametrize("code", ["", "mL/", "/h", "mL//h", "(mL", "mL h", "mL)"])
def test_rejects_malformed_codes(code: str) -> None:
    with pytest.raises(UnitError):
        parse_unit(code)


@pytest.mark.req("OI-UNIT-1")
def test_mcg_is_an_alias_of_ug_and_output_is_canonical() -> None:
    assert parse_unit("mcg/kg/min").code == "ug/kg/min"
    assert Quantity.of(1, "mcg").equals(Quantity.of(1, "ug"))


@pytest.mark.req("OI-UNIT-2")
def test_exact_conversions() -> None:
    assert Quantity.of(1, "mg").in_("ug") == 1000
    assert Quantity.of(5, "mL/h").in_("mL/min") == Fraction(1, 12)
    assert Quantity.of("0.1", "ug/kg/min").in_("mg/kg/h") == Fraction(6, 1000)


@pytest.mark.req("OI-UNIT-2")
def test_patient_weight_is_not_a_drug_mass() -> None:
    with pytest.raises(UnitError):
        Quantity.of(1, "kg").to("g")
    with pytest.raises(UnitError):
        Quantity.of(1, "ug/kg/min").to("ug/min")
    per_kg = Quantity.of("0.1", "ug/kg/min") * Quantity.of(80, "kg")
    assert per_kg.in_("ug/min") == 8


@pytest.mark.req("OI-UNIT-2")
@given(st.fractions(min_value=0, max_value=10**6), st.sampled_from(["g", "mg", "ug", "ng"]))
def test_mass_conversion_round_trips_exactly(value: Fraction, code: str) -> None:
    q = Quantity(value, parse_unit(code))
    assert q.to("ng").to(code).value == value


def test_floats_are_read_as_the_decimal_a_person_typed() -> None:
    assert exact(0.1) == Fraction(1, 10)
    with pytest.raises(UnitError):
        exact(float("nan"))
    with pytest.raises(UnitError):
        exact(True)


@pytest.mark.req("OI-VOL-1")
@given(st.integers(1, 1_200_000_000), st.integers(0, 10**12))
def test_volume_over_time_is_exact_and_inverse_is_conservative(rate_nl_h: int, us: int) -> None:
    rate = FlowRate(rate_nl_h)
    v = rate.volume_in(Duration(us))
    assert v.nl == rate_nl_h * us // 3_600_000_000
    assert rate.volume_in(rate.time_for(v)).nl >= v.nl


@pytest.mark.req("OI-VOL-1")
def test_hot_path_types_carry_their_units() -> None:
    assert str(Volume.ml("2.5")) == "2.5 mL"
    assert str(FlowRate.ml_h("0.01")) == "0.01 mL/h"
    assert FlowRate.of(Quantity.of(1, "mL/min")) == FlowRate.ml_h(60)
    assert Duration.min(2) == Duration.s(120)
