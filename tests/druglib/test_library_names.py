"""Names a pharmacist and a pump cannot confuse (issue 8, item 1): normal forms, UTS #39 skeletons, scripts."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from druglib_helpers import base_data, check, drug, entry, error_rules
from openinfusion.druglib.diff import diff_libraries
from openinfusion.druglib.names import CONFUSABLES_VERSION, confusables, looks, mixed_script, normal, visible

Data = dict[str, Any]
CYRILLIC_O = "\u043e"


def _second_drug(generic: str, drug_id: str = "dopamine-2") -> Callable[[Data], None]:
    """A second drug like dopamine (a 1600 mg bag) whose generic name is ``generic``."""

    def change(d: Data) -> None:
        twin = copy.deepcopy(drug(d, "dopamine"))
        twin.update(id=drug_id, generic_name=generic, display_name=generic)
        twin["care_areas"][0]["concentrations"] = [{"amount": "1600 mg", "volume": "250 mL"}]
        d["drugs"].append(twin)

    return change


def _therapies(first: str, second: str) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        base = entry(d, "dopamine")
        other = copy.deepcopy(base)
        base["therapy"], other["therapy"] = first, second
        other["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
        other["limits"]["dose"]["soft_max"] = "200 ug/kg/min"
        drug(d, "dopamine")["care_areas"].append(other)

    return change


def _area_names(first: str, second: str) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        d["care_areas"][0]["name"], d["care_areas"][1]["name"] = first, second

    return change


def _reasons(*reasons: str) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        d["override_reasons"] = list(reasons)

    return change


def _set(path: tuple[str, ...], value: str) -> Callable[[Data], None]:
    def change(d: Data) -> None:
        node: Any = drug(d, path[0])
        for step in path[1:-1]:
            node = node[step]
        node[path[-1]] = value

    return change


# (rule, change, where the finding is reported)
CASES = [
    ("mixed_script", _second_drug(f"d{CYRILLIC_O}pamine"), "drugs[dopamine-2].generic_name"),
    ("duplicate", _second_drug("dopamine "), "drugs[dopamine-2].generic_name"),
    ("untidy_whitespace", _second_drug("dopamine "), "drugs[dopamine-2].generic_name"),
    ("invisible_character", _second_drug("dopa\u200bmine"), "drugs[dopamine-2].generic_name"),
    ("invisible_character", _second_drug("dopamine\u202e"), "drugs[dopamine-2].generic_name"),
    ("duplicate", _second_drug("DOPAMINE"), "drugs[dopamine-2].generic_name"),
    ("confusable_name", _second_drug("hydromorphone"), "drugs[dopamine-2].generic_name"),
    (
        "not_normalised",
        _second_drug("\uff44\uff4f\uff50\uff41\uff4d\uff49\uff4e\uff45"),
        "drugs[dopamine-2].generic_name",
    ),
    ("duplicate", _therapies("renal", "Renal"), "drugs[dopamine].care_areas[ICU/Renal].therapy"),
    ("duplicate", _area_names("Adult ICU", "Adult ICU"), "care_areas[NICU].name"),
    ("duplicate", _area_names("Adult ICU", "adult icu"), "care_areas[NICU].name"),
    ("confusable_name", _area_names("OB", "\u041e\u0412"), "care_areas[NICU].name"),
    ("duplicate", _reasons("Emergency", "Emergency "), "override_reasons[1]"),
    ("untidy_whitespace", _reasons("Emergency", "Emergency "), "override_reasons[1]"),
    ("confusable_name", _reasons("Per protocol", "Per protoco1"), "override_reasons[1]"),
    ("invisible_character", _set(("dopamine", "advisory"), "check\u2066 pump\u2069"), "drugs[dopamine].advisory"),
    ("mixed_script", _set(("dopamine", "therapeutic_class"), "in\u043etrope"), "drugs[dopamine].therapeutic_class"),
]


@pytest.mark.req("OI-LIB-NAME-1", "OI-LIB-NAME-2")
@pytest.mark.parametrize(("rule", "change", "where"), CASES)
def test_confusable_or_untidy_names_are_errors(rule: str, change: Callable[[Data], None], where: str) -> None:
    data = base_data()
    if rule == "confusable_name" and where.startswith("drugs"):  # a look-alike of an existing drug
        data["drugs"].append(copy.deepcopy(drug(data, "dopamine")))
        data["drugs"][-1].update(id="hydromorph", generic_name="hydrornorphone", display_name="HYDROrnorphone")
    change(data)
    report = check(data)
    assert report.library is None
    assert rule in error_rules(report)
    assert any(f.rule == rule and f.where == where for f in report.findings), [str(f) for f in report.findings]


def test_base_and_tall_man_names_stay_valid() -> None:
    data = base_data()
    drug(data, "vancomycin")["display_name"] = "VANCOmycin"
    _therapies("renal", "cardiac")(data)
    report = check(data)
    assert report.errors == ()
    assert report.library is not None
    assert next(d for d in report.library.drugs if d.id == "vancomycin").display_name == "VANCOmycin"


def test_skeletons_follow_unicode_confusables() -> None:
    assert confusables()[CYRILLIC_O] == "o"
    assert looks(f"d{CYRILLIC_O}pamine") & looks("dopamine")
    assert looks("rn") & looks("m")
    assert looks("Ibuprofen") & looks("lbuprofen")  # I and l look alike before case folding
    assert not looks("DOPamine") & looks("DOBUTamine")
    assert normal("  Adult\u00a0 ICU ") == "adult icu"
    assert mixed_script(f"d{CYRILLIC_O}pamine")
    assert not mixed_script("\u0434\u043e\u0444\u0430\u043c\u0438\u043d")  # all Cyrillic
    assert not mixed_script("セフトリアキソン 1 g")  # Katakana with digits
    assert CONFUSABLES_VERSION == "13.0.0"


@pytest.mark.req("OI-LIB-NAME-3")
def test_diff_shows_code_points_of_names_that_look_alike() -> None:
    old = base_data()
    new = copy.deepcopy(old)
    new["care_areas"][1]["name"] = "\u041e\u0412"  # Cyrillic O and Ve: one script, looks like "OB"
    old["care_areas"][1]["name"] = "OB"
    changes = [str(c) for c in diff_libraries(check(old).require(), check(new).require())]
    assert changes == ["changed care_areas[NICU].name: OB -> <U+041E><U+0412>"]
    assert visible("dopamine ") == '"dopamine "'
    assert visible("dopamine") != visible(f"d{CYRILLIC_O}pamine")
