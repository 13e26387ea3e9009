"""Library validation: each deliberately broken library fails with its own rule (issue 5, item 3)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from druglib_helpers import base_data, check, drug, entry, error_rules
from openinfusion.druglib.model import Bounds, Library, LibraryInfo, Severity, bounds_problems
from openinfusion.druglib.rules import ADVISORY_MAX_CHARS
from openinfusion.errors import LibraryError
from openinfusion.units import Quantity

Data = dict[str, Any]


@pytest.mark.req("OI-DERS-1")
def test_base_library_is_valid() -> None:
    report = check(base_data())
    assert report.findings == ()
    assert report.library is not None


def _soft_outside_hard(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["soft_max"] = "35 ug/kg/min"  # hard_max is 30


def _lower_above_upper(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["soft_min"] = "25 ug/kg/min"  # soft_max is 20


def _per_kg_without_weight_limits(d: Data) -> None:
    del d["care_areas"][0]["weight"]


def _duplicate_drug(d: Data) -> None:
    d["drugs"].append(copy.deepcopy(drug(d, "dopamine")))


def _unknown_care_area(d: Data) -> None:
    entry(d, "vancomycin")["area"] = "PICU"


def _custom_bounds_not_containing_standard(d: Data) -> None:
    entry(d, "vancomycin")["limits"]["concentration"]["soft_max"] = "4 mg/mL"  # 1 g/200 mL is 5 mg/mL


def _unreachable_soft_min(d: Data) -> None:
    # 2 mg/h of a 0.04 mg/mL bag needs 50 mL/h; the NICU pumps at most 25 mL/h
    d["drugs"].append(
        {
            "id": "furosemide",
            "generic_name": "furosemide",
            "display_name": "furosemide",
            "therapeutic_class": "loop diuretic",
            "high_alert": False,
            "care_areas": [
                {
                    "area": "NICU",
                    "mode": "continuous",
                    "dose_unit": "mg/h",
                    "concentrations": [{"amount": "4 mg", "volume": "100 mL"}],
                    "limits": {"dose": {"soft_min": "2 mg/h", "soft_max": "5 mg/h", "hard_max": "6 mg/h"}},
                }
            ],
        }
    )


def _advisory_too_long(d: Data) -> None:
    drug(d, "insulin-regular")["advisory"] = "x" * (ADVISORY_MAX_CHARS + 1)


def _bad_unit(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["soft_max"] = "20 mcg/kg/hr"


def _mcg_vs_mg(d: Data) -> None:
    # the same dimension as the dosing unit, but a 1000-fold different scale: refused, not converted
    entry(d, "dopamine")["limits"]["dose"] = {
        "soft_min": "0.0009 mg/kg/min",
        "soft_max": "0.02 mg/kg/min",
        "hard_max": "0.03 mg/kg/min",
    }


def _mixed_units(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["hard_max"] = "0.03 mg/kg/min"


def _dose_unit_not_fitting_mode(d: Data) -> None:
    entry(d, "vancomycin")["dose_unit"] = "mg/h"
    del entry(d, "vancomycin")["limits"]["dose"]


def _custom_without_bounds(d: Data) -> None:
    del entry(d, "vancomycin")["limits"]["concentration"]


def _field_not_in_mode(d: Data) -> None:
    entry(d, "dopamine")["limits"]["pca_lockout"] = {"soft_min": "5 min"}


def _limit_of_wrong_dimension(d: Data) -> None:
    entry(d, "insulin-regular")["limits"]["bolus_dose"] = {"soft_max": "11 [iU]/h"}


def _concentration_of_wrong_amount(d: Data) -> None:
    entry(d, "insulin-regular")["concentrations"] = [{"amount": "100 mg", "volume": "100 mL"}]


def _misspelled_field(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["soft_maximum"] = "20 ug/kg/min"


def _number_without_unit(d: Data) -> None:
    entry(d, "dopamine")["limits"]["dose"]["soft_max"] = 20


def _display_name_of_another_drug(d: Data) -> None:
    drug(d, "dopamine")["display_name"] = "DOBUTamine"


def _basic_infusion_where_disabled(d: Data) -> None:
    d["drugs"].append(
        {
            "id": "basic-infusion",
            "generic_name": "basic infusion",
            "display_name": "basic infusion",
            "kind": "basic",
            "therapeutic_class": "rate only",
            "high_alert": False,
            "care_areas": [{"area": "NICU", "mode": "continuous", "dose_unit": "mL/h"}],
        }
    )


def _unknown_schema(d: Data) -> None:
    d["schema"] = "openinfusion.druglib/2"


def _no_concentration(d: Data) -> None:
    entry(d, "dopamine")["concentrations"] = []


def _duplicate_entry(d: Data) -> None:
    drug(d, "dopamine")["care_areas"].append(copy.deepcopy(entry(d, "dopamine")))


def _vtbi_above_care_area(d: Data) -> None:
    entry(d, "maintenance-fluid", 1)["limits"]["vtbi"] = {"soft_min": "1500 mL"}  # NICU max VTBI 1200 mL


def _empty_care_area(d: Data) -> None:
    drug(d, "maintenance-fluid")["care_areas"].pop(1)  # the NICU's only entry


def _zero_weight_minimum(d: Data) -> None:
    d["care_areas"][0]["weight"]["hard_min"] = "0 kg"


BROKEN: list[tuple[str, Callable[[Data], None], str, str]] = [
    ("empty_care_area", _empty_care_area, "care_areas[NICU]", "NICU"),
    ("zero_patient_minimum", _zero_weight_minimum, "care_areas[ICU].weight.hard_min", "0 kg"),
    ("soft_outside_hard", _soft_outside_hard, "drugs[dopamine].care_areas[ICU].limits.dose.soft_max", "35 ug/kg/min"),
    ("lower_above_upper", _lower_above_upper, "drugs[dopamine].care_areas[ICU].limits.dose.soft_min", "25 ug/kg/min"),
    ("weight_limits_missing", _per_kg_without_weight_limits, "drugs[dopamine].care_areas[ICU].dose_unit", "ug/kg/min"),
    ("duplicate", _duplicate_drug, "drugs[dopamine]", "dopamine"),
    ("unknown_care_area", _unknown_care_area, "drugs[vancomycin].care_areas[PICU].area", "PICU"),
    (
        "custom_bounds_exclude_standard",
        _custom_bounds_not_containing_standard,
        "drugs[vancomycin].care_areas[ICU].concentrations[0]",
        "1 g/200 mL",
    ),
    ("unreachable_soft_min", _unreachable_soft_min, "drugs[furosemide].care_areas[NICU].limits.dose.soft_min", None),
    ("advisory_too_long", _advisory_too_long, "drugs[insulin-regular].advisory", None),
    ("unit", _bad_unit, "drugs[dopamine].care_areas[ICU].limits.dose.soft_max", "20 mcg/kg/hr"),
    ("unit_mismatch", _mcg_vs_mg, "drugs[dopamine].care_areas[ICU].limits.dose", "mg/kg/min"),
    ("mixed_units", _mixed_units, "drugs[dopamine].care_areas[ICU].limits.dose", None),
    ("dose_unit_mode", _dose_unit_not_fitting_mode, "drugs[vancomycin].care_areas[ICU].dose_unit", "mg/h"),
    ("custom_bounds_missing", _custom_without_bounds, "drugs[vancomycin].care_areas[ICU].limits.concentration", None),
    ("field_not_allowed", _field_not_in_mode, "drugs[dopamine].care_areas[ICU].limits.pca_lockout", "pca_lockout"),
    ("unit_dimension", _limit_of_wrong_dimension, "drugs[insulin-regular].care_areas[ICU].limits.bolus_dose", None),
    (
        "concentration_unit",
        _concentration_of_wrong_amount,
        "drugs[insulin-regular].care_areas[ICU].concentrations[0].amount",
        None,
    ),
    ("schema", _misspelled_field, "drugs[dopamine].care_areas[ICU].limits.dose.soft_maximum", None),
    ("schema", _number_without_unit, "drugs[dopamine].care_areas[ICU].limits.dose.soft_max", "20"),
    ("display_name_mismatch", _display_name_of_another_drug, "drugs[dopamine].display_name", "DOBUTamine"),
    ("basic_infusion_disabled", _basic_infusion_where_disabled, "drugs[basic-infusion].care_areas[NICU].area", "NICU"),
    ("unknown_schema", _unknown_schema, "schema", "openinfusion.druglib/2"),
    ("no_concentration", _no_concentration, "drugs[dopamine].care_areas[ICU].concentrations", None),
    ("duplicate", _duplicate_entry, "drugs[dopamine].care_areas[ICU]", "ICU"),
    ("unreachable_minimum", _vtbi_above_care_area, "drugs[maintenance-fluid].care_areas[NICU].limits.vtbi", None),
]


@pytest.mark.req("OI-DERS-1", "OI-UNIT-1", "OI-IN-1", "OI-LIB-VAL-1")
@pytest.mark.parametrize(("rule", "breaker", "where", "value"), BROKEN, ids=[f"{b[0]}:{b[1].__name__}" for b in BROKEN])
def test_broken_library_fails_with_its_own_rule(
    rule: str, breaker: Callable[[Data], None], where: str, value: str | None
) -> None:
    data = base_data()
    breaker(data)
    report = check(data)
    assert report.library is None
    assert error_rules(report) == {rule}, [str(f) for f in report.errors]
    located = [f for f in report.errors if f.where == where]
    assert located, f"no {rule} finding at {where}: {[str(f) for f in report.errors]}"
    if value is not None:
        assert any(value in (f.value or "") for f in located)


@pytest.mark.req("OI-DERS-1")
def test_validation_reports_every_problem_not_just_the_first() -> None:
    data = base_data()
    _soft_outside_hard(data)
    _unknown_care_area(data)
    _advisory_too_long(data)
    entry(data, "insulin-regular")["dose_unit"] = "U/h"  # ISMP-banned 'U'
    report = check(data)
    assert error_rules(report) == {"soft_outside_hard", "unknown_care_area", "advisory_too_long", "unit"}
    banned = next(f for f in report.errors if f.rule == "unit")
    assert banned.where == "drugs[insulin-regular].care_areas[ICU].dose_unit"
    assert "[iU]" in banned.message


@pytest.mark.req("OI-DERS-1")
def test_high_alert_drug_without_hard_upper_limit_is_a_warning() -> None:
    data = base_data()
    del entry(data, "dopamine")["limits"]["dose"]["hard_max"]
    report = check(data)
    assert report.library is not None  # a warning does not block release
    assert [(f.severity, f.rule, f.where) for f in report.findings] == [
        (Severity.WARNING, "high_alert_no_hard_max", "drugs[dopamine].care_areas[ICU].limits.dose")
    ]


@pytest.mark.req("OI-UNIT-1")
def test_mcg_alias_is_the_same_unit_as_ug() -> None:
    data = base_data()
    entry(data, "dopamine")["dose_unit"] = "mcg/kg/min"  # ISMP's abbreviation, normalised to ug
    report = check(data)
    assert report.findings == ()
    assert report.library is not None
    assert report.library.drugs[0].entries[0].dose_unit.code == "ug/kg/min"


@pytest.mark.req("OI-UNIT-1")
def test_soft_maximum_unreachable_at_the_maximum_rate_is_a_warning() -> None:
    # a mg/ug slip in the bag: 80 ug/min of 4 ug in 250 mL would need 300,000 mL/h
    data = base_data()
    data["drugs"].append(
        {
            "id": "norepinephrine",
            "generic_name": "norepinephrine",
            "display_name": "norepinephrine",
            "therapeutic_class": "vasopressor",
            "high_alert": False,
            "care_areas": [
                {
                    "area": "ICU",
                    "mode": "continuous",
                    "dose_unit": "ug/min",
                    "concentrations": [{"amount": "4 ug", "volume": "250 mL"}],
                    "limits": {"dose": {"soft_min": "0.01 ug/min", "soft_max": "80 ug/min"}},
                }
            ],
        }
    )
    report = check(data)
    assert report.library is not None
    assert [f.rule for f in report.warnings] == ["unreachable_soft_max"]


@pytest.mark.req("OI-DERS-1")
def test_an_invalid_library_cannot_be_built_directly() -> None:
    valid = check(base_data()).require()
    with pytest.raises(LibraryError, match="unknown_schema"):
        Library(valid.info, valid.override_reasons, valid.care_areas, valid.drugs, "openinfusion.druglib/0")
    with pytest.raises(LibraryError, match="duplicate"):
        Library(valid.info, valid.override_reasons, valid.care_areas, valid.drugs + valid.drugs[:1])
    with pytest.raises(LibraryError, match="empty_text"):
        Library(LibraryInfo("", "n", "1"), valid.override_reasons, valid.care_areas, valid.drugs)


@pytest.mark.req("OI-IN-1")
def test_require_names_the_first_error_and_counts_the_rest() -> None:
    data = base_data()
    _soft_outside_hard(data)
    _unknown_care_area(data)
    with pytest.raises(LibraryError) as caught:
        check(data).require()
    assert caught.value.where.startswith("drugs[")
    assert "and 1 more errors" in caught.value.why


# --- the bounds invariant, against an independent oracle -----------------------------------------

_values = st.one_of(st.none(), st.decimals(min_value=0, max_value=1000, places=2))


def _q(v: Decimal | None) -> Quantity | None:
    return None if v is None else Quantity.of(v, "mg/h")


@pytest.mark.req("OI-DERS-1")
@given(_values, _values, _values, _values)
def test_bounds_are_accepted_exactly_when_ordered(
    soft_min: Decimal | None, soft_max: Decimal | None, hard_min: Decimal | None, hard_max: Decimal | None
) -> None:
    values = [v for v in (soft_min, soft_max, hard_min, hard_max) if v is not None]
    pairs = [(hard_min, soft_min), (soft_min, soft_max), (soft_max, hard_max), (hard_min, hard_max)]
    pairs += [(hard_min, soft_max), (soft_min, hard_max)]
    ordered = all(lo <= hi for lo, hi in pairs if lo is not None and hi is not None)
    max_zero = any(v == 0 for v in (soft_max, hard_max))
    expected_ok = bool(values) and ordered and not max_zero
    problems = bounds_problems("f", _q(soft_min), _q(soft_max), _q(hard_min), _q(hard_max))
    assert (not problems) == expected_ok
    if expected_ok:
        Bounds(_q(soft_min), _q(soft_max), _q(hard_min), _q(hard_max))
    else:
        with pytest.raises(LibraryError):
            Bounds(_q(soft_min), _q(soft_max), _q(hard_min), _q(hard_max))
