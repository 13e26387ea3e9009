"""The diff a second pharmacist reviews: added, removed and changed, by identity, with direction."""

from __future__ import annotations

import copy

from druglib_helpers import base_data, check, drug, entry
from openinfusion.druglib.diff import ChangeKind, Direction, diff_libraries


def test_identical_and_reordered_libraries_have_no_changes() -> None:
    data = base_data()
    reordered = copy.deepcopy(data)
    reordered["drugs"].reverse()
    reordered["care_areas"].reverse()
    assert diff_libraries(check(data).require(), check(data).require()) == ()
    # lists are matched by identity: a new display order is not a change of any limit
    assert diff_libraries(check(data).require(), check(reordered).require()) == ()


def test_diff_lists_each_change_with_its_path_and_direction() -> None:
    old = base_data()
    new = copy.deepcopy(old)
    entry(new, "dopamine")["limits"]["dose"]["soft_max"] = "25 ug/kg/min"  # raised: loosened
    del entry(new, "insulin-regular")["limits"]["bolus_dose"]["hard_max"]  # removed: loosened
    entry(new, "vancomycin")["limits"]["dose"]["soft_min"] = "750 mg"  # raised minimum: tightened
    entry(new, "vancomycin")["concentrations"].append({"amount": "2 g", "volume": "400 mL"})
    drug(new, "maintenance-fluid")["care_areas"].pop(0)  # the ICU entry (NICU keeps its only one)
    new["drugs"].append(
        {
            "id": "naloxone",
            "generic_name": "naloxone",
            "display_name": "naloxone",
            "therapeutic_class": "opioid antagonist",
            "high_alert": False,
            "care_areas": [
                {
                    "area": "ICU",
                    "mode": "continuous",
                    "dose_unit": "mg/h",
                    "concentrations": [{"amount": "4 mg", "volume": "100 mL"}],
                    "limits": {"dose": {"soft_min": "0.25 mg/h", "soft_max": "2 mg/h"}},
                }
            ],
        }
    )
    changes = diff_libraries(check(old).require(), check(new).require())
    assert [str(c) for c in changes] == [
        "changed drugs[dopamine].care_areas[ICU].limits.dose.soft_max: 20 ug/kg/min -> 25 ug/kg/min (loosened)",
        "added drugs[vancomycin].care_areas[ICU].concentrations[2 g/400 mL].amount: 2 g",
        "added drugs[vancomycin].care_areas[ICU].concentrations[2 g/400 mL].volume: 400 mL",
        "changed drugs[vancomycin].care_areas[ICU].limits.dose.soft_min: 500 mg -> 750 mg (tightened)",
        "removed drugs[insulin-regular].care_areas[ICU].limits.bolus_dose.hard_max: 15 [iU] (loosened)",
        "removed drugs[maintenance-fluid].care_areas[ICU]",
        "added drugs[naloxone].id: naloxone",
        "added drugs[naloxone].generic_name: naloxone",
        "added drugs[naloxone].display_name: naloxone",
        "added drugs[naloxone].kind: medication",
        "added drugs[naloxone].therapeutic_class: opioid antagonist",
        "added drugs[naloxone].high_alert: false",
        "added drugs[naloxone].care_areas[ICU].area: ICU",
        "added drugs[naloxone].care_areas[ICU].mode: continuous",
        "added drugs[naloxone].care_areas[ICU].dose_unit: mg/h",
        "added drugs[naloxone].care_areas[ICU].concentrations[4 mg/100 mL].amount: 4 mg",
        "added drugs[naloxone].care_areas[ICU].concentrations[4 mg/100 mL].volume: 100 mL",
        "added drugs[naloxone].care_areas[ICU].custom_concentration: false",
        "added drugs[naloxone].care_areas[ICU].limits.dose.soft_min: 0.25 mg/h (tightened)",
        "added drugs[naloxone].care_areas[ICU].limits.dose.soft_max: 2 mg/h (tightened)",
    ]


def test_same_limit_in_another_unit_is_a_change_without_direction_and_flags_have_one() -> None:
    old = base_data()
    new = copy.deepcopy(old)
    entry(new, "vancomycin")["limits"]["duration"]["soft_max"] = "6 h"
    entry(new, "vancomycin")["limits"]["duration"]["hard_min"] = "0.4 h"  # 24 min: lowered minimum
    drug(new, "dopamine")["high_alert"] = False
    new["care_areas"][1]["basic_infusion"] = True
    changes = {c.where: c for c in diff_libraries(check(old).require(), check(new).require())}
    assert changes["drugs[vancomycin].care_areas[ICU].limits.duration.soft_max"].direction is None
    assert changes["drugs[vancomycin].care_areas[ICU].limits.duration.hard_min"].direction is Direction.LOOSENED
    assert changes["drugs[dopamine].high_alert"].direction is Direction.LOOSENED
    assert changes["care_areas[NICU].basic_infusion"].direction is Direction.LOOSENED
    assert all(c.kind is ChangeKind.CHANGED for c in changes.values())
