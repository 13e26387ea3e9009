"""A small valid library document for the drug-library tests, and helpers to inspect reports.

Each call returns a fresh deep structure, so a test can break one thing in it without touching others.
The values are illustrative (taken from the example library's sources), not clinical.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any

from openinfusion.druglib.model import Library, Severity
from openinfusion.druglib.package import ReleaseInfo
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.druglib.yamlio import read_yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "library" / "example-library.yaml"
RELEASE = ReleaseInfo("A. Author, PharmD", "B. Reviewer, PharmD", datetime.date(2026, 1, 15))


@functools.cache
def sample_report() -> Report:
    """The example library, parsed once per test session (the pure-Python YAML parser takes ~0.5 s)."""
    return read_yaml(SAMPLE)


def sample_library() -> Library:
    return sample_report().require()


def base_data() -> dict[str, Any]:
    """Two care areas (an adult ICU and a NICU capped at 25 mL/h) and four drugs, all valid."""
    return {
        "schema": "openinfusion.druglib/1",
        "library": {"owner": "Test Hospital", "name": "test library", "version": "1"},
        "override_reasons": ["Dose verified with prescriber's order", "Titration per protocol"],
        "care_areas": [
            {
                "id": "ICU",
                "name": "Adult ICU",
                "max_rate": "999 mL/h",
                "max_vtbi": "3000 mL",
                "occlusion": "medium",
                "air_in_line": "0.25 mL",
                "callback": "2 min",
                "basic_infusion": True,
                "weight": {"soft_min": "30 kg", "soft_max": "200 kg", "hard_min": "20 kg", "hard_max": "500 kg"},
            },
            {
                "id": "NICU",
                "name": "NICU",
                "max_rate": "25 mL/h",
                "max_vtbi": "1200 mL",
                "occlusion": "high",
                "air_in_line": "0.05 mL",
                "callback": "2 min",
                "basic_infusion": False,
                "weight": {"hard_min": "0.3 kg", "hard_max": "7 kg"},
            },
        ],
        "drugs": [
            {
                "id": "dopamine",
                "generic_name": "dopamine",
                "display_name": "DOPamine",
                "therapeutic_class": "inotrope",
                "high_alert": True,
                "care_areas": [
                    {
                        "area": "ICU",
                        "mode": "continuous",
                        "dose_unit": "ug/kg/min",
                        "concentrations": [{"amount": "400 mg", "volume": "250 mL"}],
                        "limits": {
                            "dose": {
                                "soft_min": "0.9 ug/kg/min",
                                "soft_max": "20 ug/kg/min",
                                "hard_max": "30 ug/kg/min",
                            }
                        },
                    }
                ],
            },
            {
                "id": "vancomycin",
                "generic_name": "vancomycin",
                "display_name": "vancomycin",
                "therapeutic_class": "antibiotic",
                "high_alert": False,
                "care_areas": [
                    {
                        "area": "ICU",
                        "mode": "intermittent",
                        "dose_unit": "mg",
                        "concentrations": [{"amount": "1 g", "volume": "200 mL"}],
                        "custom_concentration": True,
                        "limits": {
                            "dose": {"soft_min": "500 mg", "soft_max": "2000 mg"},
                            "concentration": {"soft_min": "2.9 mg/mL", "soft_max": "5.1 mg/mL", "hard_min": "1 mg/mL"},
                            "duration": {"soft_max": "360 min", "hard_min": "25 min"},
                        },
                    }
                ],
            },
            {
                "id": "insulin-regular",
                "generic_name": "insulin regular",
                "display_name": "insulin regular",
                "therapeutic_class": "antidiabetic",
                "high_alert": True,
                "advisory": "Second RN to verify.",
                "care_areas": [
                    {
                        "area": "ICU",
                        "mode": "continuous",
                        "dose_unit": "[iU]/h",
                        "concentrations": [{"amount": "100 [iU]", "volume": "100 mL"}],
                        "limits": {
                            "dose": {"soft_min": "1 [iU]/h", "soft_max": "20 [iU]/h", "hard_max": "30 [iU]/h"},
                            "bolus_dose": {"soft_min": "1 [iU]", "soft_max": "11 [iU]", "hard_max": "15 [iU]"},
                        },
                    }
                ],
            },
            {
                "id": "maintenance-fluid",
                "generic_name": "maintenance IV fluid",
                "display_name": "maintenance IV fluid",
                "kind": "fluid",
                "therapeutic_class": "IV fluid",
                "high_alert": False,
                "care_areas": [
                    {
                        "area": "ICU",
                        "mode": "continuous",
                        "dose_unit": "mL/h",
                        "limits": {"rate": {"soft_min": "1 mL/h", "soft_max": "999 mL/h"}},
                    },
                    {
                        "area": "NICU",
                        "mode": "continuous",
                        "dose_unit": "mL/h",
                        "limits": {"rate": {"soft_min": "1 mL/h", "soft_max": "15 mL/h", "hard_max": "25 mL/h"}},
                    },
                ],
            },
        ],
    }


def drug(data: dict[str, Any], drug_id: str) -> dict[str, Any]:
    return next(d for d in data["drugs"] if d["id"] == drug_id)


def entry(data: dict[str, Any], drug_id: str, index: int = 0) -> dict[str, Any]:
    entries: list[dict[str, Any]] = drug(data, drug_id)["care_areas"]
    return entries[index]


def error_rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings if f.severity is Severity.ERROR}


def check(data: dict[str, Any]) -> Report:
    return validate_data(data, "test")
