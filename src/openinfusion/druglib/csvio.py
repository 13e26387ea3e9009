"""The library as CSV files, for pharmacists' spreadsheets (issue 5, item 2).

A library is a directory of five UTF-8 CSV files, one table per kind of row:

* ``library.csv``: ``field,value`` rows: ``schema``, ``owner``, ``name``, ``version``, ``notice``, and one
  ``override_reason`` row per reason, in order;
* ``care_areas.csv``: one row per care area;
* ``drugs.csv``: one row per drug; ``synonyms`` and ``ndc`` hold lists joined by ``;``;
* ``entries.csv``: one row per drug x care area (x therapy), with five columns for every limit field:
  ``<field>.unit``, ``<field>.soft_min``, ``<field>.soft_max``, ``<field>.hard_min``, ``<field>.hard_max``
  (a single quantity elsewhere is two columns too: ``max_rate`` and ``max_rate.unit``);
* ``concentrations.csv``: one row per standard concentration of an entry.

Numbers and units sit in separate columns so a spreadsheet can sort and filter the numbers; one unit
per field is a validation rule anyway (``mixed_units``). Row order is kept: it is the library's display
order. Import builds the same plain document as the YAML reader and validates it the same way, so
YAML -> CSV -> YAML gives the same canonical library. Booleans are ``true``/``false`` (any case, as a
spreadsheet writes them); an empty cell is an absent value; an empty row (Excel leaves some at the end) is
skipped.

CSV injection (OWASP; OI-LIB-IN-1): a cell that a spreadsheet would run as a formula (it begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) is refused on import and written with a leading ``'`` on
export (the quote is read back off on import, so such a text survives the round trip but never runs).
A file is at most ``MAX_FILE_BYTES``. Every finding names the file, row and column (``entries.csv:7
column dose.soft_max``), also for the rules checked after import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from openinfusion.druglib.model import BOUND_NAMES, ENTRY_FIELDS, Data, Finding, Library, Severity, error
from openinfusion.druglib.names import visible
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.druglib.yamlio import read_text
from openinfusion.errors import LibraryError

LIBRARY_CSV: Final = "library.csv"
CARE_AREAS_CSV: Final = "care_areas.csv"
DRUGS_CSV: Final = "drugs.csv"
ENTRIES_CSV: Final = "entries.csv"
CONCENTRATIONS_CSV: Final = "concentrations.csv"

_SEPARATOR: Final = ";"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_QUOTE: Final = "'"
_AREA_QUANTITIES: Final = ("max_rate", "max_vtbi", "air_in_line", "callback")
_AREA_BOUNDS: Final = ("weight", "bsa")


def _bounds_columns(name: str) -> list[str]:
    return [f"{name}.unit", *(f"{name}.{b}" for b in BOUND_NAMES)]


COLUMNS: Final[dict[str, list[str]]] = {
    LIBRARY_CSV: ["field", "value"],
    CARE_AREAS_CSV: [
        "id",
        "name",
        *(c for q in _AREA_QUANTITIES for c in (q, f"{q}.unit")),
        "occlusion",
        "basic_infusion",
        *(c for b in _AREA_BOUNDS for c in _bounds_columns(b)),
        "source",
    ],
    DRUGS_CSV: [
        "id",
        "generic_name",
        "display_name",
        "kind",
        "therapeutic_class",
        "high_alert",
        "synonyms",
        "rxnorm",
        "ndc",
        "advisory",
        "source",
    ],
    ENTRIES_CSV: [
        "drug",
        "area",
        "therapy",
        "mode",
        "dose_unit",
        "custom_concentration",
        *(c for f in ENTRY_FIELDS for c in _bounds_columns(f.value)),
        "advisory",
        "source",
    ],
    CONCENTRATIONS_CSV: ["drug", "area", "therapy", "amount", "amount.unit", "volume", "volume.unit"],
}
_LIBRARY_FIELDS: Final = ("schema", "owner", "name", "version", "notice")


# --- export ----------------------------------------------------------------------------------------


def write_csv_dir(library: Library, directory: Path) -> list[Path]:
    """Write the library as the five CSV files into ``directory`` (created if needed); return their paths."""
    data = library.to_data()
    rows = {
        LIBRARY_CSV: list(_library_rows(data)),
        CARE_AREAS_CSV: [_area_row(a) for a in data["care_areas"]],
        DRUGS_CSV: [_drug_row(d) for d in data["drugs"]],
        ENTRIES_CSV: [_entry_row(d["id"], e) for d in data["drugs"] for e in d["care_areas"]],
        CONCENTRATIONS_CSV: [
            _concentration_row(d["id"], e, c)
            for d in data["drugs"]
            for e in d["care_areas"]
            for c in e.get("concentrations", [])
        ],
    }
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in rows.items():
            path = directory / name
            with path.open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, COLUMNS[name], lineterminator="\n")
                writer.writeheader()
                writer.writerows({k: _neutralised(v) for k, v in row.items()} for row in table)
            written.append(path)
    except OSError as e:
        raise LibraryError(str(directory), f"cannot write: {e}") from None
    return written


def _library_rows(data: Data) -> Iterator[dict[str, str]]:
    info = data["library"]
    yield {"field": "schema", "value": data["schema"]}
    for name in _LIBRARY_FIELDS[1:]:
        if name in info:
            yield {"field": name, "value": info[name]}
    for reason in data["override_reasons"]:
        yield {"field": "override_reason", "value": reason}


def _split(text: str) -> tuple[str, str]:
    value, unit = text.split(" ", 1)
    return value, unit


def _put_bounds(row: dict[str, str], name: str, bounds: dict[str, str] | None) -> None:
    if not bounds:
        return
    for bound, text in bounds.items():
        row[f"{name}.{bound}"], row[f"{name}.unit"] = _split(text)


def _area_row(a: Data) -> dict[str, str]:
    row = {k: _cell(a.get(k)) for k in ("id", "name", "occlusion", "basic_infusion", "source")}
    for q in _AREA_QUANTITIES:
        if q in a:
            row[q], row[f"{q}.unit"] = _split(a[q])
    for b in _AREA_BOUNDS:
        _put_bounds(row, b, a.get(b))
    return row


def _drug_row(d: Data) -> dict[str, str]:
    row = {k: _cell(d.get(k)) for k in COLUMNS[DRUGS_CSV] if k not in ("synonyms", "ndc")}
    row["synonyms"] = _SEPARATOR.join(d.get("synonyms", []))
    row["ndc"] = _SEPARATOR.join(d.get("ndc", []))
    return row


def _entry_row(drug_id: str, e: Data) -> dict[str, str]:
    row = {"drug": drug_id}
    row |= {k: _cell(e.get(k)) for k in ("area", "therapy", "mode", "dose_unit", "custom_concentration", "advisory")}
    row["source"] = _cell(e.get("source"))
    for field, bounds in e.get("limits", {}).items():
        _put_bounds(row, field, bounds)
    return row


def _concentration_row(drug_id: str, e: Data, c: Data) -> dict[str, str]:
    row = {"drug": drug_id, "area": e["area"], "therapy": _cell(e.get("therapy"))}
    row["amount"], row["amount.unit"] = _split(c["amount"])
    if "volume" in c:
        row["volume"], row["volume.unit"] = _split(c["volume"])
    return row


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _neutralised(text: str) -> str:
    """A text a spreadsheet would run as a formula, made inert with a leading quote (OWASP CSV injection)."""
    return _QUOTE + text if text.startswith(_FORMULA_START) else text


# --- import ----------------------------------------------------------------------------------------


class _Reader:
    """Reads the tables into the library document, recording CSV-level problems as findings."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.findings: list[Finding] = []
        self.unreadable: set[str] = set()  # tables that could not be read: no follow-on findings about them
        self.rows: dict[str, str] = {}  # document path of a row's object -> "file:line", to locate findings

    def table(self, name: str) -> list[tuple[str, dict[str, str]]]:
        """Rows of one file as (location, row); a missing file or column, a formula cell, is a finding."""
        path = self.directory / name
        try:
            text = read_text(path)
            reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
            header = list(reader.fieldnames or [])
            rows = [(f"{name}:{reader.line_num}", dict(r)) for r in reader]
        except (LibraryError, csv.Error) as e:
            self.findings.append(error(name, "csv", f"cannot read {path}: {e}"))
            self.unreadable.add(name)
            return []
        missing = [c for c in COLUMNS[name] if c not in header]
        unknown = [c for c in header if c not in COLUMNS[name]]
        if missing:
            self.findings.append(error(name, "csv_column", f"missing columns: {', '.join(missing)}"))
        if unknown:
            self.findings.append(error(name, "csv_column", f"unknown columns: {', '.join(unknown)}"))
        if missing or unknown:
            self.unreadable.add(name)
            return []
        kept = []
        for where, row in rows:
            cells = {k: (v or "") for k, v in row.items() if k is not None}
            if None in row:
                self.findings.append(error(where, "csv", f"more cells than the {len(header)} columns"))
            elif any(cells.values()):  # an empty row (Excel leaves them at the end) carries nothing
                kept.append((where, {k: self.cell(where, k, v) for k, v in cells.items()}))
        return kept

    def cell(self, where: str, column: str, text: str) -> str:
        if text.startswith(_QUOTE) and text[1:].startswith(_FORMULA_START):
            return text[1:]  # written neutralised by export
        if text.startswith(_FORMULA_START):
            self.findings.append(
                error(
                    f"{where} column {column}",
                    "csv_formula",
                    "a cell beginning with =, +, -, @, a tab or a return would run as a spreadsheet formula",
                    visible(text[:40]),
                )
            )
        return text

    def boolean(self, where: str, column: str, text: str) -> bool | str:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        self.findings.append(error(f"{where} column {column}", "csv_value", "expected true or false", visible(text)))
        return text

    def document(self) -> Data:
        data: Data = {"library": {}, "override_reasons": []}
        for where, row in self.table(LIBRARY_CSV):
            name, value = row["field"], row["value"]
            if name == "override_reason":
                self.rows[f"override_reasons[{len(data['override_reasons'])}]"] = where
                data["override_reasons"].append(value)
            elif name == "schema":
                data["schema"] = value
            elif name in _LIBRARY_FIELDS:
                self.rows[f"library.{name}"] = where
                data["library"][name] = value
            else:
                self.findings.append(
                    error(f"{where} column field", "csv_value", "unknown library field", visible(name))
                )
        data["care_areas"] = [self.area(w, r) for w, r in self.table(CARE_AREAS_CSV)]
        drugs: dict[str, Data] = {}
        for where, row in self.table(DRUGS_CSV):
            drug = self.drug(where, row)
            if row["id"] in drugs:
                self.findings.append(
                    error(f"{where} column id", "duplicate", "drug id is used twice", visible(row["id"]))
                )
            if row["id"] not in drugs:
                self.rows[f"drugs[{row['id']}]"] = where
            drugs.setdefault(row["id"], drug)
        entries: dict[tuple[str, str, str], Data] = {}
        skipped: set[tuple[str, str, str]] = set()  # rows already reported (or of an unreadable table)
        for where, row in self.table(ENTRIES_CSV):
            key = (row["drug"], row["area"], row["therapy"])
            if row["drug"] not in drugs:
                skipped.add(key)
                if DRUGS_CSV not in self.unreadable:
                    unknown = visible(row["drug"])
                    self.findings.append(
                        error(f"{where} column drug", "unknown_drug", "no such drug in drugs.csv", unknown)
                    )
                continue
            if key in entries:
                self.findings.append(
                    error(where, "duplicate", "two rows for one drug, care area and therapy", _key_text(key))
                )
                continue
            entries[key] = self.entry(where, row)
            drugs[row["drug"]]["care_areas"].append(entries[key])
            self.rows[_entry_path(key)] = where
        for where, row in self.table(CONCENTRATIONS_CSV):
            key = (row["drug"], row["area"], row["therapy"])
            entry = entries.get(key)
            if entry is None:
                if key not in skipped and ENTRIES_CSV not in self.unreadable:
                    self.findings.append(
                        error(
                            where, "unknown_entry", "no such drug, care area and therapy in entries.csv", _key_text(key)
                        )
                    )
                continue
            concentration = {"amount": _join(row["amount"], row["amount.unit"])}
            if row["volume"] or row["volume.unit"]:
                concentration["volume"] = _join(row["volume"], row["volume.unit"])
            self.rows[f"{_entry_path(key)}.concentrations[{len(entry.get('concentrations', []))}]"] = where
            entry.setdefault("concentrations", []).append(concentration)
        data["drugs"] = list(drugs.values())
        return data

    def area(self, where: str, row: dict[str, str]) -> Data:
        self.rows.setdefault(f"care_areas[{row['id']}]", where)
        area: Data = _texts(row, ("id", "name", "occlusion", "source"))
        for q in _AREA_QUANTITIES:
            if row[q] or row[f"{q}.unit"]:
                area[q] = _join(row[q], row[f"{q}.unit"])
        area["basic_infusion"] = self.boolean(where, "basic_infusion", row["basic_infusion"])
        for b in _AREA_BOUNDS:
            bounds = _bounds(row, b)
            if bounds:
                area[b] = bounds
        return area

    def drug(self, where: str, row: dict[str, str]) -> Data:
        drug: Data = _texts(row, ("id", "generic_name", "display_name", "kind", "therapeutic_class"))
        drug |= _texts(row, ("rxnorm", "advisory", "source"))
        drug["high_alert"] = self.boolean(where, "high_alert", row["high_alert"])
        for name in ("synonyms", "ndc"):
            if row[name]:
                drug[name] = row[name].split(_SEPARATOR)
        drug["care_areas"] = []
        return drug

    def entry(self, where: str, row: dict[str, str]) -> Data:
        entry: Data = _texts(row, ("area", "therapy", "mode", "dose_unit"))
        entry["custom_concentration"] = self.boolean(where, "custom_concentration", row["custom_concentration"])
        limits = {f.value: b for f in ENTRY_FIELDS if (b := _bounds(row, f.value))}
        if limits:
            entry["limits"] = limits
        return entry | _texts(row, ("advisory", "source"))


def _entry_path(key: tuple[str, str, str]) -> str:
    drug, area, therapy = key
    return f"drugs[{drug}].care_areas[{area}/{therapy}]" if therapy else f"drugs[{drug}].care_areas[{area}]"


def _key_text(key: tuple[str, str, str]) -> str:
    drug, area, therapy = (visible(k) for k in key)
    return f"drug {drug}, care area {area}" + (f", therapy {therapy}" if therapy else "")


def _texts(row: dict[str, str], names: tuple[str, ...]) -> Data:
    return {n: row[n] for n in names if row[n] != ""}


def _join(value: str, unit: str) -> str:
    return f"{value.strip()} {unit.strip()}".strip()


def _bounds(row: dict[str, str], name: str) -> dict[str, Any]:
    unit = row[f"{name}.unit"]
    return {b: _join(row[f"{name}.{b}"], unit) for b in BOUND_NAMES if row[f"{name}.{b}"] != ""}


def read_csv_data(directory: Path) -> tuple[Data, list[Finding], dict[str, str]]:
    """The library document from a CSV directory, the CSV-level findings (files, columns, cells), and where
    each object of the document was read (its path -> ``file:line``)."""
    reader = _Reader(directory)
    return reader.document(), reader.findings, reader.rows


def read_csv_dir(directory: Path) -> Report:
    """Validate the library in a CSV directory: CSV-level and library findings (each at its file, row and
    column), and the library if valid."""
    data, csv_findings, rows = read_csv_data(directory)
    if any(f.severity is Severity.ERROR for f in csv_findings):
        return Report(str(directory), tuple(csv_findings), None)
    report = validate_data(data, str(directory))
    located = tuple(_located(f, rows) for f in report.findings)
    return Report(report.source, tuple(csv_findings) + located, report.library)


def _located(finding: Finding, rows: dict[str, str]) -> Finding:
    """``finding`` with the file, row and column it came from in front of its document path."""
    path = finding.where
    owners = [p for p in rows if path == p or path.startswith((f"{p}.", f"{p}["))]
    if not owners:
        return finding
    owner = max(owners, key=len)
    column = path[len(owner) :].lstrip(".").removeprefix("limits.")
    column = column.split("[", 1)[0] if column.startswith("concentrations") else column
    cell = f"{rows[owner]} column {column}" if column else rows[owner]
    return replace(finding, where=f"{cell} ({path})")
