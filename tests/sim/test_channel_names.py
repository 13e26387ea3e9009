"""Channels are named the same way everywhere a person reads them (issue 14 §3, docs/scenarios.md).

People read letters, as on the pump's screen (A to D); tools read numbers from 1 (events.jsonl, summary.json,
series.parquet). The report's engineering views, next to those numbers, show both ("B (2)"); nothing a person
reads shows a bare channel number.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli import app
from openinfusion.sim.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
TWO_CHANNELS = EXAMPLES / "ders_picu.yaml"  # library checks, a refusal, and events on channels A and B
LETTER = re.compile(r"^(pump|[A-D])$")
BOTH = re.compile(r"^(pump|([A-D]) \(([1-4])\))$")
BARE_NUMBER = re.compile(r"\b(channel|ch)\s*#?\s*\d", re.IGNORECASE)


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts (its header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _channel_cells(html: str) -> list[tuple[list[str], str]]:
    """(table header, cell) for every cell of every "channel" column of a page."""
    parser = _Tables()
    parser.feed(html)
    found = []
    for rows in parser.tables:
        header, *body = rows
        if "channel" in header:
            i = header.index("channel")
            found += [(header, row[i]) for row in body]
    return found


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("channels")
    result = CliRunner(env={"COLUMNS": "220"}).invoke(app, ["demo", "--scenario", str(TWO_CHANNELS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.req("OI-LOG-1")
def test_the_report_names_channels_by_letter_and_shows_the_number_only_next_to_it(ran: tuple[Path, str]) -> None:
    out, _ = ran
    html = (out / "report.html").read_text(encoding="utf-8")
    cells = _channel_cells(html)
    assert {c for _, c in cells} >= {"A", "B", "A (1)", "B (2)"}  # the story's tables and the engineering views
    for header, cell in cells:
        assert LETTER.match(cell) or BOTH.match(cell), f"bare channel {cell!r} in the table {header}"
        both = BOTH.match(cell)
        if both and both[2]:
            assert "ABCD".index(both[2]) + 1 == int(both[3]), f"{cell!r}: the letter and the number disagree"
    # The raw event log's data column is events.jsonl's JSON for tools (its self-test items, named by the pump
    # core, count channels from 1 as the JSON does); everything else is read by people.
    people = re.sub(r"<details><summary>Raw event log.*?</details>", "", html, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", people)
    assert not BARE_NUMBER.search(text), BARE_NUMBER.search(text)


@pytest.mark.req("OI-LOG-1")
def test_tools_read_numbers_from_one_and_the_report_maps_them(ran: tuple[Path, str]) -> None:
    out, _ = ran
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()[1:]]
    assert {e["channel"] for e in lines} - {None} == {1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert [c["channel"] for c in summary["channels"]] == [1, 2]
    started_on_b = next(e for e in lines if e["kind"] == "infusion_started" and e["channel"] == 2)
    parser = _Tables()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    log = next(t for t in parser.tables if t[0][:4] == ["seq", "time", "t_us", "channel"])
    (row,) = [r for r in log[1:] if r[0] == str(started_on_b["seq"])]
    assert row[3] == "B (2)"


def test_the_terminal_names_channels_by_letter(ran: tuple[Path, str]) -> None:
    _, printed = ran
    assert not BARE_NUMBER.search(printed), BARE_NUMBER.search(printed)
    column = None
    seen = set()
    for line in printed.splitlines():
        if line.startswith("┃"):  # a table's header
            heads = [h.strip() for h in line.strip("┃").split("┃")]
            column = heads.index("ch") if "ch" in heads else None
        elif line.startswith("│") and column is not None:
            cell = line.strip("│").split("│")[column].strip()
            assert cell == "" or LETTER.match(cell), f"bare channel {cell!r} in the terminal: {line}"
            seen.add(cell)
    assert {"A", "B"} <= seen


def test_a_scenario_names_a_channel_by_its_letter_or_its_number(tmp_path: Path) -> None:
    text = TWO_CHANNELS.read_text(encoding="utf-8").replace("channel: B", "channel: 2")
    assert text != TWO_CHANNELS.read_text(encoding="utf-8")
    numbered = tmp_path / TWO_CHANNELS.name
    numbered.write_text(text.replace("../library", str(EXAMPLES.parent / "library")), encoding="utf-8")
    by_letter, _ = load_scenario(TWO_CHANNELS)
    by_number, _ = load_scenario(numbered)
    assert [getattr(e, "channel", None) for e in by_letter.timeline] == [
        getattr(e, "channel", None) for e in by_number.timeline
    ]
    assert 2 in [getattr(e, "channel", None) for e in by_letter.timeline]
