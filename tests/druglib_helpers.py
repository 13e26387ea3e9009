"""A small valid library document for the drug-library tests, and helpers to inspect reports.

Each call returns a fresh deep structure, so a test can break one thing in it without touching others.
The values are illustrative (taken from the example library's sources), not clinical.
"""

from __future__ import annotations

import base64
import datetime
import functools
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openinfusion.druglib.model import Library, Severity
from openinfusion.druglib.package import canonical_json, key_id, release_package
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.druglib.yamlio import read_yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "library" / "example-library.yaml"
RELEASED = datetime.date(2026, 1, 15)
# fixed test keys, so packages are reproducible: the author's and the approver's
AUTHOR_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
APPROVER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
AUTHOR = ("A. Author, PharmD", AUTHOR_KEY)
APPROVER = ("B. Reviewer, PharmD", APPROVER_KEY)
TRUSTED = (AUTHOR_KEY.public_key(), APPROVER_KEY.public_key())


def release(
    library: Library,
    active: Library | None = None,
    rollback_from: str | None = None,
    author: tuple[str, Ed25519PrivateKey] = AUTHOR,
    approver: tuple[str, Ed25519PrivateKey] = APPROVER,
) -> bytes:
    """``library`` released by the test author and approver (reviewed against ``active``)."""
    return release_package(library, RELEASED, author, approver, active, rollback_from)


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


def _statement(envelope: dict[str, Any], index: int) -> dict[str, Any]:
    """What signature ``index`` of a package envelope covers (as ``druglib.package`` builds it)."""
    body = {k: envelope[k] for k in ("format", "metadata", "library")}
    sig = envelope["signatures"][index]
    statement = body | {"role": sig["role"], "signer": sig["signer"], "key_id": sig["key_id"]}
    if sig["role"] == "approver":
        statement |= {"author_signature": envelope["signatures"][0], "base": sig["base"]}
        statement["diff_sha256"] = sig["diff_sha256"]
    return statement


def resign(envelope: dict[str, Any], keys: tuple[Ed25519PrivateKey, ...] = (AUTHOR_KEY, APPROVER_KEY)) -> bytes:
    """Re-sign a package envelope as given (author first, then approver), bypassing every release check:
    how an attacker holding keys (or a test) builds a hostile package."""
    for i, key in enumerate(keys):
        sig = envelope["signatures"][i]
        sig["key_id"] = key_id(key.public_key())
        sig["value"] = base64.b64encode(key.sign(canonical_json(_statement(envelope, i)))).decode()
    return canonical_json(envelope)


def drug(data: dict[str, Any], drug_id: str) -> dict[str, Any]:
    return next(d for d in data["drugs"] if d["id"] == drug_id)


def entry(data: dict[str, Any], drug_id: str, index: int = 0) -> dict[str, Any]:
    entries: list[dict[str, Any]] = drug(data, drug_id)["care_areas"]
    return entries[index]


def error_rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings if f.severity is Severity.ERROR}


def check(data: dict[str, Any]) -> Report:
    return validate_data(data, "test")
