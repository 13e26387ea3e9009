"""The example library, and lossless YAML <-> CSV authoring (issue 5, items 2 and 8)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from druglib_helpers import SAMPLE, base_data, check, sample_library, sample_report
from openinfusion.druglib.csvio import DRUGS_CSV, ENTRIES_CSV, read_csv_dir, write_csv_dir
from openinfusion.druglib.model import Library, Severity
from openinfusion.druglib.names import Namespace, invisible, name_problems
from openinfusion.druglib.package import canonical_json
from openinfusion.druglib.validate import load_library
from openinfusion.druglib.yamlio import dump_yaml, parse_yaml, read_yaml


@pytest.fixture(scope="module")
def sample() -> Library:
    return sample_library()


@pytest.mark.req("OI-DERS-1")
def test_sample_library_validates_with_zero_errors() -> None:
    report = sample_report()
    assert report.errors == ()
    assert report.library is not None
    # its only warnings are the high-alert ones a real library carries (no hard maximum configured)
    assert {f.rule for f in report.warnings} == {"high_alert_no_hard_max"}


def test_sample_library_is_large_enough_and_says_it_is_an_example(sample: Library) -> None:
    assert len([d for d in sample.drugs if d.kind.value == "medication"]) >= 60
    assert len({e.area for _, e in sample.entries()}) >= 5
    assert sample.info.notice is not None and "NOT FOR CLINICAL USE" in sample.info.notice
    assert SAMPLE.read_text(encoding="utf-8").startswith("# EXAMPLE ONLY - NOT FOR CLINICAL USE.")


def test_every_sample_value_records_its_source(sample: Library) -> None:
    for area in sample.care_areas:
        assert area.source, area.id
    for drug, entry in sample.entries():
        assert drug.source, drug.id
        if entry.limits or entry.concentrations:
            assert entry.source and "§" in entry.source, f"{drug.id} in {entry.label}"


@pytest.mark.req("OI-DERS-1")
def test_sample_yaml_to_csv_to_yaml_round_trips_exactly(sample: Library, tmp_path: Path) -> None:
    write_csv_dir(sample, tmp_path / "csv")
    report = read_csv_dir(tmp_path / "csv")
    assert report.errors == ()
    assert report.library == sample
    yaml_path = tmp_path / "again.yaml"
    yaml_path.write_text(dump_yaml(report.library), encoding="utf-8")
    again = read_yaml(yaml_path).require()
    assert canonical_json(again.to_data()) == canonical_json(sample.to_data())


def test_csv_layout_is_one_row_per_drug_and_per_entry(sample: Library, tmp_path: Path) -> None:
    write_csv_dir(sample, tmp_path)
    with (tmp_path / DRUGS_CSV).open(encoding="utf-8") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [d.id for d in sample.drugs]
    with (tmp_path / ENTRIES_CSV).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(d.entries) for d in sample.drugs)
    norepinephrine = next(r for r in rows if r["drug"] == "norepinephrine" and r["area"] == "ADULT-ICU")
    assert (norepinephrine["dose.soft_max"], norepinephrine["dose.unit"]) == ("80", "ug/min")


@pytest.mark.req("OI-IN-1")
def test_csv_import_reports_bad_cells_with_file_and_row(tmp_path: Path) -> None:
    write_csv_dir(check(base_data()).require(), tmp_path)
    path = tmp_path / ENTRIES_CSV
    path.write_text(path.read_text(encoding="utf-8").replace(",false,", ",maybe,", 1), encoding="utf-8")
    report = read_csv_dir(tmp_path)
    assert report.library is None
    assert [(f.where, f.rule, f.value) for f in report.errors] == [
        ("entries.csv:2 column custom_concentration", "csv_value", "maybe")
    ]


def test_csv_import_refuses_unknown_columns(tmp_path: Path) -> None:
    write_csv_dir(check(base_data()).require(), tmp_path)
    path = tmp_path / DRUGS_CSV
    path.write_text(path.read_text(encoding="utf-8").replace("high_alert", "highalert", 1), encoding="utf-8")
    report = read_csv_dir(tmp_path)
    assert [(f.where, f.rule, f.message) for f in report.errors] == [
        ("drugs.csv", "csv_column", "missing columns: high_alert"),
        ("drugs.csv", "csv_column", "unknown columns: highalert"),
    ]


@pytest.mark.req("OI-UNIT-1")
def test_yaml_reader_keeps_no_as_a_string_and_refuses_duplicate_keys() -> None:
    assert parse_yaml("therapy: NO\nflag: yes\n") == {"therapy": "NO", "flag": "yes"}
    with pytest.raises(Exception, match="duplicate key"):
        parse_yaml("a: 1\na: 2\n", "lib.yaml")


# --- generated libraries round-trip through CSV and YAML -----------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and ";" not in s and not any(invisible(c) for c in s)
)
_name = (
    st.text(st.characters(codec="latin-1", categories=("L", "N", "P", "Zs")), min_size=1, max_size=30)
    .map(lambda s: " ".join(s.split()))
    .filter(lambda s: s != "" and ";" not in s and not name_problems("name", s))
)  # names: one script (Latin, accented or not), tidy spacing, NFKC as written


def _distinct(names: list[str]) -> bool:
    space = Namespace("name")
    return not any(space.add("name", n, str(i)) for i, n in enumerate(names))


@st.composite
def _bounds(draw: st.DrawFn, unit: str, low: str = "0.001", high: str = "5") -> dict[str, str]:
    """Ordered bounds; small doses against large bags, so that every generated limit is reachable."""
    values = sorted(draw(st.lists(st.decimals(min_value=low, max_value=high, places=3), min_size=4, max_size=4)))
    names = draw(st.sets(st.sampled_from(["soft_min", "soft_max", "hard_min", "hard_max"]), min_size=1))
    order = {"hard_min": values[0], "soft_min": values[1], "soft_max": values[2], "hard_max": values[3]}
    return {n: f"{order[n]} {unit}" for n in sorted(names)}


@st.composite
def _entry(draw: st.DrawFn, area: str) -> dict[str, Any]:
    mode, dose_unit, amount = draw(
        st.sampled_from(
            [
                ("continuous", "ug/kg/min", "mg"),
                ("continuous", "[iU]/h", "[iU]"),
                ("continuous", "mmol/h", "mmol"),
                ("intermittent", "mg", "g"),
                ("intermittent", "meq/kg", "meq"),
                ("pca", "ug", "mg"),
            ]
        )
    )
    entry: dict[str, Any] = {"area": area, "mode": mode, "dose_unit": dose_unit}
    volume = draw(st.sampled_from(["1 mL", "10 mL", "50 mL", None]))
    conc = {"amount": f"{draw(st.integers(10, 1000))} {amount}"} | ({"volume": volume} if volume else {})
    entry["concentrations"] = [conc]
    limits = {"pca_demand_dose" if mode == "pca" else "dose": draw(_bounds(dose_unit))}
    if draw(st.booleans()):
        limits["vtbi"] = draw(_bounds("mL", "100", "3000"))
    if mode == "intermittent" and draw(st.booleans()):
        limits["duration"] = draw(_bounds("min"))
    if mode == "pca" and draw(st.booleans()):
        limits["pca_lockout"] = draw(_bounds("min"))
    entry["limits"] = limits
    if draw(st.booleans()):
        entry["advisory"] = draw(_text)
    return entry


@st.composite
def _library(draw: st.DrawFn) -> dict[str, Any]:
    data = base_data()
    data["library"]["notice"] = draw(_text)
    data["override_reasons"] = draw(st.lists(_name, min_size=1, max_size=3).filter(_distinct))
    data["care_areas"] = data["care_areas"][:1]  # ICU only: a care area without entries is an error
    count = draw(st.integers(1, 4))
    data["drugs"] = [
        {
            "id": f"drug-{i}",
            "generic_name": f"drug {i}",
            "display_name": f"DRUG {i}",
            "therapeutic_class": draw(_name),
            "high_alert": draw(st.booleans()),
            "synonyms": draw(st.lists(_name.map(lambda s, i=i: f"{s} ({i})"), max_size=2).filter(_distinct)),
            "source": draw(_text),
            "care_areas": [draw(_entry("ICU"))],
        }
        for i in range(count)
    ]
    return data


@pytest.mark.req("OI-DERS-1")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_library())
def test_generated_libraries_round_trip_through_csv_and_yaml(data: dict[str, Any]) -> None:
    library = load_library(data)
    with tempfile.TemporaryDirectory() as tmp:
        write_csv_dir(library, Path(tmp))
        report = read_csv_dir(Path(tmp))
    assert [f for f in report.findings if f.severity is Severity.ERROR] == []
    assert report.library == library
    assert load_library(parse_yaml(dump_yaml(library))) == library
