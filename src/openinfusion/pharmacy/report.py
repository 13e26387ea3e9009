"""The pharmacy reports: CQI and what-if, each one static HTML page with inline SVG plots, plus CSV tables.

Written for the pharmacist who maintains the library: headline figures first (against the ISMP >= 95 %
compliance target), then what to look at, then the tables behind each figure. Plots are matplotlib (Agg)
inlined as SVG with a fixed hash salt and no dates, so the same logs give the same bytes, readable offline
(docs/decisions/0004-reports.md). Every table is also written as CSV for the hospital's own tools.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from openinfusion.errors import InputError
from openinfusion.figures import svg
from openinfusion.pharmacy import cqi
from openinfusion.pharmacy.cqi import CqiData, Mode, Resolution
from openinfusion.pharmacy.whatif import Case, Change, WhatIf
from openinfusion.pump.ders import Verdict
from openinfusion.units import format_decimal

Table = tuple[Sequence[str], Sequence[Sequence[object]]]  # a CSV file: header and rows

TOP_ENTRIES: Final = 15  # entries in the "top drugs by alerts" figure
HTML_ROWS: Final = 300  # rows of a case list shown in the page (the CSV has all of them)
REVIEW_OVERRIDE_SHARE: Final = Fraction(4, 5)  # entries whose alerts are mostly overridden: limit worth a review
REVIEW_MIN_ALERTS: Final = 3

OUTCOME_COLOURS: Final = {
    "overridden": "#ff9f1c",
    "averted (reprogrammed, cancelled, dropped)": "#2ca02c",
    "re-entered near the limit": "#98df8a",
    "switched to basic infusion": "#9467bd",
    "other (alerted again, no action logged)": "#bdbdbd",
}
CHANGE_COLOURS: Final = {
    Change.NEWLY_BLOCKED: "#d62728",
    Change.NEWLY_ALERTING: "#ff9f1c",
    Change.NOT_IN_LIBRARY: "#6a3d9a",
    Change.REFUSED: "#b15928",
    Change.NO_LONGER_BLOCKED: "#fdbf6f",
    Change.NO_LONGER_ALERTING: "#2ca02c",
}


# --- formatting -----------------------------------------------------------------------------------------


def num(value: Fraction | None) -> str:
    """``value`` with one decimal, rounded half to even (``"7.8"``), or ``"-"`` when undefined."""
    if value is None:
        return "-"
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.1")))


def pct(value: Fraction | None) -> str:
    """A share as a percentage with one decimal (``"94.4 %"``), or ``"-"`` when undefined."""
    return "-" if value is None else f"{num(value * 100)} %"


def when(at: cqi.Place) -> str:
    """An event's time as a pharmacist reads it: wall-clock minutes, or the pump's own clock."""
    if at.wall is not None:
        return f"{at.wall:%Y-%m-%d %H:%M}"
    return f"pump t={format_decimal(at.t.seconds, 0)} s"


def channel(at: cqi.Place) -> str:
    """Channels as the pump shows them: numbered from 1."""
    return "-" if at.channel is None else str(at.channel + 1)


def line(at: cqi.Place) -> str:
    """``pump-01.jsonl:959``: the log file's name and line."""
    return f"{Path(at.source).name}:{at.seq + 1}"


def _esc(text: object) -> str:
    return html.escape(str(text))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], *, note: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_esc(c)}</td>' if _numeric(c) else f"<td>{_esc(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    caption = f'<p class="small">{_esc(note)}</p>' if note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{caption}"


def _numeric(cell: object) -> bool:
    text = str(cell).removesuffix(" %")
    return isinstance(cell, int) or text.replace(".", "", 1).isdigit()


def _tiles(tiles: Sequence[tuple[str, str, str, str]]) -> str:
    """Headline figures: (label, value, note, style) with style "", "good", "warn" or "bad"."""
    cells = "".join(
        f'<div class="tile {style}"><div class="value">{_esc(value)}</div><div class="label">{_esc(label)}</div>'
        f'<div class="small">{_esc(note)}</div></div>'
        for label, value, note, style in tiles
    )
    return f'<div class="tiles">{cells}</div>'


_CSS: Final = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1120px; color: #222; padding: 0 1em }
h1 { margin-bottom: 0.2em } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top }
th { background: #f2f2f2 } td:first-child { white-space: nowrap }
td.n { text-align: right; font-variant-numeric: tabular-nums }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em } dt { font-weight: 600 }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 10px; margin: 1em 0 }
.tile { border: 1px solid #ccc; border-radius: 6px; padding: 10px; background: #fafafa }
.tile .value { font-size: 1.8em; font-weight: 700 } .tile .label { font-weight: 600 }
.tile.good { border-color: #2ca02c; background: #eef8ee } .tile.warn { border-color: #ff9f1c; background: #fff6e8 }
.tile.bad { border-color: #d62728; background: #fdeeee }
.small { font-size: 0.85em; color: #555 } .note { color: #a00 }
ul.look li { margin: 0.3em 0 } figure { margin: 0.5em 0 } figure svg { width: 100%; height: auto; max-width: 1000px }
"""


def _page(title: str, meta: Mapping[str, str], body: str) -> str:
    meta_html = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in meta.items())
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>{_esc(title)}</h1>\n<dl>{meta_html}</dl>\n{body}\n</body></html>\n"
    )


# --- plots ---------------------------------------------------------------------------------------------


@contextmanager
def _figure(width: float, height: float) -> Iterator[tuple[Any, Any]]:
    with plt.rc_context({"svg.hashsalt": "openinfusion", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(width, height))
        yield fig, ax


def _svg(fig: Any) -> str:
    return f"<figure>{svg(fig)}</figure>"


def _stacked_barh(
    labels: Sequence[str], segments: Mapping[str, Sequence[float]], colours: Mapping[str, str], xlabel: str
) -> str:
    """Horizontal stacked bars, first label on top."""
    height = 1.2 + 0.32 * max(len(labels), 1)
    with _figure(9.5, height) as (fig, ax):
        left = [0.0] * len(labels)
        y = list(range(len(labels)))[::-1]
        for name, values in segments.items():
            ax.barh(y, values, left=left, color=colours[name], label=name, height=0.7)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / height - 0.08), ncol=2, fontsize=8, frameon=False)
        return _svg(fig)


def _outcome_segments(alerts: Sequence[cqi.Alert], per: float = 1.0) -> dict[str, float]:
    groups = {name: 0.0 for name in OUTCOME_COLOURS}
    for a in alerts:
        if a.resolution is Resolution.OVERRIDDEN:
            groups["overridden"] += per
        elif a.averted:
            groups["averted (reprogrammed, cancelled, dropped)"] += per
        elif a.resolution is Resolution.NEAR_LIMIT:
            groups["re-entered near the limit"] += per
        elif a.resolution is Resolution.SWITCHED_TO_BASIC:
            groups["switched to basic infusion"] += per
        else:
            groups["other (alerted again, no action logged)"] += per
    return groups


def compliance_figure(areas: Mapping[str, cqi.Counts]) -> str:
    """Library compliance per care area against the ISMP 95 % target."""
    names = [a for a in areas if areas[a].infusions]
    shares = [float(areas[a].compliance or 0) * 100 for a in names]
    with _figure(9.5, 1.2 + 0.35 * max(len(names), 1)) as (fig, ax):
        y = list(range(len(names)))[::-1]
        colours = ["#2ca02c" if s >= 95 else ("#ff9f1c" if s >= 80 else "#d62728") for s in shares]
        ax.barh(y, shares, color=colours, height=0.7)
        for yi, name in zip(y, names, strict=True):
            ax.text(101, yi, f"{pct(areas[name].compliance)} of {areas[name].infusions}", va="center", fontsize=8)
        ax.axvline(95, color="black", ls="--", lw=1, label="ISMP target 95 %")
        ax.set_yticks(y, names)
        ax.set_xlim(0, 122)
        ax.set_xticks([0, 20, 40, 60, 80, 95, 100])
        ax.set_xlabel("infusions programmed with the drug library (%)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, frameon=False)
        ax.grid(axis="x", alpha=0.3)
        return _svg(fig)


def alerts_by_area_figure(data: CqiData, areas: Mapping[str, cqi.Counts]) -> str:
    """Alerts per 100 infusions per care area, split by what followed them."""
    names = [a for a in areas if areas[a].infusions]
    segments: dict[str, list[float]] = {name: [] for name in OUTCOME_COLOURS}
    for area in names:
        per = 100.0 / areas[area].infusions
        for name, value in _outcome_segments([a for a in data.alerts if a.check.area == area], per).items():
            segments[name].append(value)
    return _stacked_barh(names, segments, OUTCOME_COLOURS, "alerts per 100 infusions")


def top_entries_figure(data: CqiData, rows: Sequence[cqi.EntryRow], label: Callable[[cqi.EntryRow], str]) -> str:
    """The entries with the most alerts, split by what followed them (labelled with the drugs' display names)."""
    top = [r for r in rows if r.alerts][:TOP_ENTRIES]
    segments: dict[str, list[float]] = {name: [] for name in OUTCOME_COLOURS}
    for r in top:
        key = (r.area, r.drug, r.therapy)
        for name, value in _outcome_segments([a for a in data.alerts if a.check.entry == key]).items():
            segments[name].append(value)
    return _stacked_barh([label(r) for r in top], segments, OUTCOME_COLOURS, "alerts")


def tally_figure(left: Sequence[tuple[str, int]], right: Sequence[tuple[str, int]], titles: tuple[str, str]) -> str:
    """Two horizontal bar charts side by side (overrides by reason and by limit type)."""
    rows = max(len(left), len(right), 1)
    with plt.rc_context({"svg.hashsalt": "openinfusion", "font.size": 9}):
        fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.35 * rows))
        for ax, items, title in zip(axes, (left, right), titles, strict=True):
            y = list(range(len(items)))[::-1]
            ax.barh(y, [n for _, n in items], color="#ff9f1c", height=0.7)
            ax.set_yticks(y, [label for label, _ in items])
            ax.set_title(title)
            ax.set_xlabel("overrides")
            ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return _svg(fig)


def daily_figure(days: Mapping[str, cqi.Counts]) -> str:
    """Infusions per day (library and basic) with alerts per 100 infusions."""
    names = list(days)
    with _figure(9.5, 3.2) as (fig, ax):
        x = list(range(len(names)))
        library = [days[d].library for d in names]
        other = [days[d].basic + days[d].unknown for d in names]
        ax.bar(x, library, color="#1f77b4", label="library")
        ax.bar(x, other, bottom=library, color="#9467bd", label="basic / unclassified")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel("infusions")
        ax.legend(loc="upper left", fontsize=8)
        rate = ax.twinx()
        rate.plot(x, [float(days[d].alerts_per_100 or 0) for d in names], color="#d62728", marker="o", lw=1.5)
        rate.set_ylabel("alerts per 100 infusions", color="#d62728")
        rate.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
        return _svg(fig)


def changes_figure(groups: Mapping[str, Mapping[Change, int]], limit: int | None = None) -> str:
    """What-if changes per group (care area or drug), groups with the most changes first."""
    moved = {k: v for k, v in groups.items() if any(n for c, n in v.items() if c is not Change.UNCHANGED)}
    ordered = sorted(moved, key=lambda k: (-sum(n for c, n in moved[k].items() if c is not Change.UNCHANGED), k))
    names = ordered[:limit] if limit else ordered
    if not names:
        return '<p class="small">No replayed check changes.</p>'
    segments = {c.value: [float(moved[k][c]) for k in names] for c in CHANGE_COLOURS}
    colours = {c.value: colour for c, colour in CHANGE_COLOURS.items()}
    return _stacked_barh(names, segments, colours, "replayed checks")


# --- CQI report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CqiReport:
    """Everything the CQI page and its CSV files show, computed once."""

    data: CqiData
    summary: cqi.Summary
    areas: Mapping[str, cqi.Counts]
    days: Mapping[str, cqi.Counts]
    entries: tuple[cqi.EntryRow, ...]
    drugs: tuple[cqi.EntryRow, ...]
    weeks: Mapping[str, cqi.Counts]
    libraries: Mapping[str, cqi.Counts]
    pumps: Mapping[str, cqi.Counts]
    partial: frozenset[str]  # partial days and weeks
    names: Mapping[str, str]  # drug id -> display name (tall-man lettering, as the library shows it)

    @classmethod
    def of(cls, data: CqiData, names: Mapping[str, str] | None = None) -> CqiReport:
        weeks = cqi.by_week(data)
        partial = cqi.partial_days(data) | cqi.partial_weeks(data, weeks)
        return cls(
            data, cqi.summarise(data), cqi.by_area(data), cqi.by_day(data), cqi.by_entry(data),
            cqi.by_entry(data, per_drug=True), weeks, cqi.by_library(data), cqi.by_pump(data), partial,
            dict(names or {}),
        )  # fmt: skip

    def drug(self, drug_id: str) -> str:
        """The drug as the library shows it (tall-man lettering), else its id."""
        return self.names.get(drug_id, drug_id)

    def label(self, row: cqi.EntryRow) -> str:
        therapy = f" ({row.therapy})" if row.therapy else ""
        return f"{self.drug(row.drug)}{therapy}, {row.area}"

    def period(self, name: str) -> str:
        """A day or week label, marked when the logs cover it only in part."""
        return f"{name} (partial)" if name in self.partial else name


def look_at(report: CqiReport) -> list[str]:
    """What a pharmacist should look at first: plain sentences, most important first."""
    items = []
    low = [
        (a, c)
        for a, c in report.areas.items()
        if c.compliance is not None and c.compliance < cqi.ISMP_COMPLIANCE_TARGET
    ]
    if low:
        listed = ", ".join(f"{a} {pct(c.compliance)} ({c.basic} basic)" for a, c in low)
        items.append(f"Library compliance below the ISMP 95 % target in: {listed}. See basic-infusion reasons below.")
    bypass = [a for a in report.data.alerts if a.resolution is Resolution.SWITCHED_TO_BASIC]
    if bypass:
        listed = "; ".join(f"{report.drug(a.check.drug)} in {a.check.area} ({a.check.at.day})" for a in bypass[:5])
        items.append(f"{len(bypass)} alert(s) were followed by a basic infusion, bypassing the library: {listed}.")
    tight = [r for r in report.entries if r.soft >= REVIEW_MIN_ALERTS and r.overrides >= REVIEW_OVERRIDE_SHARE * r.soft]
    if tight:
        listed = "; ".join(f"{report.label(r)} ({r.overrides} of {r.soft} soft alerts overridden)" for r in tight[:5])
        items.append(f"Alerts mostly overridden (a limit that may not fit practice): {listed}.")
    hard = [a for a in report.data.alerts if a.check.verdict == "hard"]
    if hard:
        items.append(f"{len(hard)} program(s) were blocked by a hard limit: see the list of blocked programs.")
    versions = {u.library for u in cqi.library_use(report.data)}
    if len(versions) > 1:
        items.append(f"{len(versions)} library versions were in use: see which pumps used which.")
    return items or ["Nothing stands out: compliance is at target and no alert pattern needs review."]


def _counts_row(name: str, c: cqi.Counts, share: Callable[[Fraction | None], str] = pct) -> list[object]:
    return [
        name, c.infusions, c.library, c.basic + c.unknown, share(c.compliance), c.alerts, num(c.alerts_per_100),
        c.soft, c.hard, c.overridden, share(c.override_rate), c.averted, c.near_limit, c.switched_to_basic,
    ]  # fmt: skip


def _percent(value: Fraction | None) -> str:
    """A share as a plain number of percent for CSV (``"94.5"``)."""
    return num(None if value is None else value * 100)


_COUNTS_HEADER: Final = [
    "infusions", "library", "basic / unclassified", "compliance", "alerts", "alerts per 100", "soft", "hard",
    "overridden", "override rate (of soft)", "averted", "near-limit re-entries", "switched to basic",
]  # fmt: skip
_DRUG_HEADER: Final = [
    "drug", "library infusions", "alerts", "alerts per 100 infusions", "soft", "hard", "overrides",
    "override rate (of soft)", "averted",
]  # fmt: skip


def _drug_row(report: CqiReport, r: cqi.EntryRow, share: Callable[[Fraction | None], str] = pct) -> list[object]:
    rate = cqi.ratio(r.overrides, r.soft)
    return [report.label(r).removesuffix(f", {cqi.ALL_AREAS}"), r.infusions, r.alerts, num(r.alerts_per_100), r.soft,
            r.hard, r.overrides, share(rate), r.averted]  # fmt: skip


def _alert_row(a: cqi.Alert) -> list[object]:
    c = a.check
    crossed = "; ".join(str(f) for f in c.findings)
    return [when(c.at), c.at.pump, channel(c.at), c.area, c.drug, c.therapy or "", c.action, c.verdict, crossed,
            num(a.times_limit), a.band, a.resolution.value, "yes" if a.averted else "no", a.reason or "",
            line(c.at)]  # fmt: skip


_ALERT_HEADER: Final = [
    "time", "pump", "channel", "care area", "drug", "therapy", "action", "verdict", "limits crossed",
    "times the limit", "severity band", "resolution", "averted error", "override reason", "log line",
]  # fmt: skip


def _blocked_row(a: cqi.Alert) -> list[object]:
    c = a.check
    drug = f"{c.drug} ({c.therapy})" if c.therapy else c.drug
    crossed = "; ".join(str(f) for f in c.findings)
    return [when(c.at), c.at.pump, c.area, drug, c.action, crossed, a.resolution.value, line(c.at)]


def cqi_html(report: CqiReport, source: str) -> str:
    """The CQI page for ``report`` (``source`` names the logs in the page)."""
    s, c, data = report.summary, report.summary.counts, report.data
    compliance_style = "" if c.compliance is None else ("good" if c.compliance >= cqi.ISMP_COMPLIANCE_TARGET else "bad")
    tiles = _tiles([
        ("Infusions", str(c.infusions), f"{s.pumps} pumps", ""),
        ("Library compliance", pct(c.compliance), "ISMP target >= 95 %", compliance_style),
        ("Alerts per 100 infusions", num(c.alerts_per_100), f"{c.alerts} alerts ({c.hard} hard)", ""),
        ("Override rate", pct(c.override_rate), f"{c.overridden} of {c.soft} soft alerts", ""),
        ("Averted errors", str(c.averted), f"{pct(c.averted_share)} of alerts; definition below", ""),
        ("Basic infusions", str(c.basic), f"{c.unknown} unclassified", ""),
    ])  # fmt: skip
    period = f"{s.first:%Y-%m-%d %H:%M} to {s.last:%Y-%m-%d %H:%M}" if s.first and s.last else "pump time only"
    libraries = "; ".join(f"{lib.owner} version {lib.version} (sha256 {lib.hash[:12]})" for lib in s.libraries)
    meta = {"Logs": source, "Pumps": str(s.pumps), "Period": period, "Libraries in use": libraries or "none"}
    look = "".join(f"<li>{_esc(item)}</li>" for item in look_at(report))
    areas = [_counts_row(a, k) for a, k in report.areas.items()]
    resolution_rows = [[r.value, n, pct(cqi.ratio(n, c.alerts))] for r, n in s.resolutions.items()]
    entry_rows = [
        [report.label(r), r.checks, r.infusions, r.alerts, num(r.alerts_per_100), r.soft, r.hard, r.overrides,
         r.averted, "; ".join(f"{k} ({n})" for k, n in r.limits.items())]
        for r in report.entries if r.alerts
    ]  # fmt: skip
    drug_rows = [_drug_row(report, r) for r in report.drugs]
    bands = [[band, n] for band, n in cqi.averted_by_band(data).items()]
    weeks = [_counts_row(report.period(w), k) for w, k in report.weeks.items()]
    versions = [_counts_row(v, k) for v, k in report.libraries.items()]
    pumps = [_counts_row(p, k) for p, k in report.pumps.items()]
    hard = [_blocked_row(a) for a in data.alerts if a.check.verdict == "hard"]
    basic_by_area = [[a, k.basic, k.infusions, pct(cqi.ratio(k.basic, k.infusions))] for a, k in report.areas.items()]
    uses = [
        [u.pump, u.library.version if u.library else "none", u.library.hash[:12] if u.library else "", u.checks,
         when(u.first), when(u.last)]
        for u in cqi.library_use(data)
    ]  # fmt: skip
    by_limit, by_reason = cqi.overrides_by_limit(data), cqi.overrides_by_reason(data)
    body = f"""
{tiles}
<h2>What to look at</h2><ul class="look">{look}</ul>
<h2>Library compliance by care area</h2>
<p class="small">Infusions programmed from a library entry, out of all confirmed programs and secondary infusions.</p>
{compliance_figure(report.areas)}
{_table(["care area", *_COUNTS_HEADER], areas)}
<h2>Library compliance by pump</h2>
{_table(["pump", *_COUNTS_HEADER], pumps)}
<h2>Alerts by care area, and what followed them</h2>
<p class="small">An alert is a DERS check beyond a soft or hard limit. The override rate is over soft alerts only
(a hard limit cannot be overridden). <b>Averted error</b> (our definition, docs/pharmacy-analytics.md): after the
alert the clinician cancelled, dropped the change, or re-entered the program within limits with the value that
crossed the limit changed by at least 10 %; a re-entry closer than that is the intended order re-entered near the
limit and is not counted. Severity band: how many times the limit the alerted value was.</p>
{alerts_by_area_figure(data, report.areas)}
{_table(["what followed the alert", "alerts", "share"], resolution_rows)}
{_table(["averted errors by severity band", "averted errors"], bands)}
<h2>Alerts per 100 infusions, by drug</h2>
<p class="small">Normalised by use: alerts per 100 library infusions of that drug (all care areas). Per-drug
library compliance cannot be measured from pump logs: a basic infusion records no drug.</p>
{_table(_DRUG_HEADER, drug_rows)}
<h2>Top library entries by alerts</h2>
<p class="small">Per library entry (drug, therapy, care area): the limits to review first.</p>
{top_entries_figure(data, report.entries, report.label)}
{
        _table(
            [
                "entry",
                "checks",
                "library infusions",
                "alerts",
                "alerts per 100",
                "soft",
                "hard",
                "overrides",
                "averted",
                "limit types",
            ],
            entry_rows,
        )
    }
<h2>Overrides by reason and by limit type</h2>
<p class="small">An override that crossed two limits counts under both limit types.</p>
{tally_figure(by_reason, by_limit, ("by reason", "by limit type"))}
{_table(["action overridden", "overrides"], [list(r) for r in cqi.overrides_by_action(data)])}
<h2>Programs blocked by a hard limit</h2>
{
        _table(
            ["time", "pump", "care area", "drug", "action", "limit crossed", "what followed", "log line"],
            hard[:HTML_ROWS],
        )
        if hard
        else '<p class="small">None.</p>'
    }
<h2>Basic infusions (outside the library) by care area</h2>
{_table(["care area", "basic", "infusions", "share"], basic_by_area)}
{_table(["reason given", "basic infusions"], [list(r) for r in cqi.basic_reasons(data)])}
<h2>Trends by week and by library version</h2>
<p class="small">Weeks and days marked "partial" are not covered by the logs from start to end: their counts are not
comparable with whole ones.</p>
{_table(["week", *_COUNTS_HEADER], weeks)}
{_table(["library version (before / after)", *_COUNTS_HEADER], versions)}
<h2>By day</h2>
{daily_figure(report.days)}
{_table(["day", *_COUNTS_HEADER], [_counts_row(report.period(d), k) for d, k in report.days.items()])}
<h2>Library versions in use (OI-DERS-5)</h2>
{_table(["pump", "version", "hash", "checks", "first", "last"], uses)}
<p class="small">Definitions: docs/pharmacy-analytics.md. The CSV files next to this page hold every table and one row
per alert, override and basic infusion.</p>
"""
    return _page("Smart-pump CQI report", meta, body)


def cqi_tables(report: CqiReport) -> dict[str, Table]:
    """The CSV files of the CQI report: name -> (header, rows)."""
    s, c, data = report.summary, report.summary.counts, report.data
    summary: list[list[object]] = [
        ["pumps", s.pumps, "event logs read"],
        ["infusions", c.infusions, "programs confirmed plus secondary infusions started"],
        ["library_infusions", c.library, "infusions whose gating event was a DERS check that proceeded"],
        ["basic_infusions", c.basic, "infusions whose gating event was a basic_infusion record"],
        ["unclassified_infusions", c.unknown, "infusions with neither (counted as not compliant)"],
        ["compliance_percent", _percent(c.compliance), "library / infusions"],
        ["alerts", c.alerts, "DERS checks beyond a soft or hard limit, repeats of an open alert excluded"],
        ["alerts_per_100_infusions", num(c.alerts_per_100), "100 x alerts / infusions"],
        ["hard_alerts", c.hard, "alerts beyond a hard limit (blocked)"],
        ["overrides", c.overrides, "ders_override events"],
        ["override_rate_percent", _percent(c.override_rate), "alerts resolved by an override / soft alerts"],
        ["averted_errors", c.averted, "alerts followed by a cancel, a dropped change, or a re-entry within limits "
         "that changed the crossed value by >= 10 % (docs/pharmacy-analytics.md)"],
        ["near_limit_reentries", c.near_limit, "alerts followed by a re-entry within limits < 10 % from the value"],
        ["switched_to_basic", c.switched_to_basic, "alerts followed by a basic infusion on the same channel"],
    ]  # fmt: skip
    entries = [
        [r.area, report.drug(r.drug), r.therapy or "", r.checks, r.infusions, r.alerts, num(r.alerts_per_100), r.soft,
         r.hard, r.overrides, r.averted, "; ".join(f"{k} ({n})" for k, n in r.limits.items())]
        for r in report.entries
    ]  # fmt: skip
    overrides = [
        [when(o.at), o.at.pump, channel(o.at), o.check.area, o.check.drug, o.check.therapy or "", o.check.action,
         o.reason, "; ".join(str(f) for f in o.findings), line(o.at)]
        for o in data.overrides
    ]  # fmt: skip
    basic = [
        [when(i.at), i.at.pump, channel(i.at), i.area, i.mode.value, i.basic_reason or "", line(i.at)]
        for i in data.infusions if i.mode is not Mode.LIBRARY
    ]  # fmt: skip
    uses = [
        [u.pump, u.library.owner if u.library else "", u.library.version if u.library else "",
         u.library.hash if u.library else "", u.checks, when(u.first), when(u.last)]
        for u in cqi.library_use(data)
    ]  # fmt: skip
    return {
        "summary.csv": (["metric", "value", "definition"], summary),
        "by_area.csv": (["care area", *_COUNTS_HEADER], [_counts_row(a, k, _percent) for a, k in report.areas.items()]),
        "by_day.csv": (
            ["day", *_COUNTS_HEADER],
            [_counts_row(report.period(d), k, _percent) for d, k in report.days.items()],
        ),
        "by_week.csv": (
            ["week", *_COUNTS_HEADER],
            [_counts_row(report.period(w), k, _percent) for w, k in report.weeks.items()],
        ),
        "by_library.csv": (
            ["library", *_COUNTS_HEADER],
            [_counts_row(v, k, _percent) for v, k in report.libraries.items()],
        ),
        "by_pump.csv": (["pump", *_COUNTS_HEADER], [_counts_row(p, k, _percent) for p, k in report.pumps.items()]),
        "by_drug.csv": (_DRUG_HEADER, [_drug_row(report, r, _percent) for r in report.drugs]),
        "by_entry.csv": (
            [
                "care_area",
                "drug",
                "therapy",
                "checks",
                "library_infusions",
                "alerts",
                "alerts_per_100_infusions",
                "soft",
                "hard",
                "overrides",
                "averted",
                "limit_types",
            ],
            entries,
        ),
        "alerts.csv": (_ALERT_HEADER, [_alert_row(a) for a in data.alerts]),
        "overrides.csv": (
            [
                "time",
                "pump",
                "channel",
                "care area",
                "drug",
                "therapy",
                "action",
                "reason",
                "limits crossed",
                "log line",
            ],
            overrides,
        ),
        "basic.csv": (["time", "pump", "channel", "care area", "mode", "reason", "log line"], basic),
        "library_use.csv": (["pump", "owner", "version", "hash", "checks", "first", "last"], uses),
    }


# --- what-if report --------------------------------------------------------------------------------------


def _verdict(v: Verdict | None) -> str:
    return "-" if v is None else v.name.lower()


def _case_row(case: Case) -> list[object]:
    c = case.check
    return [when(c.at), c.at.pump, c.area, c.drug, c.therapy or "", c.action, case.change.value, c.verdict,
            _verdict(case.new), case.detail, line(c.at)]  # fmt: skip


_CASE_HEADER: Final = [
    "time", "pump", "care area", "drug", "therapy", "action", "change", "logged", "candidate", "detail", "log line",
]  # fmt: skip
_GONE: Final = frozenset({Change.NOT_IN_LIBRARY, Change.REFUSED})


def _verdict_row(case: Case) -> list[object]:
    c = case.check
    drug = f"{c.drug} ({c.therapy})" if c.therapy else c.drug
    return [when(c.at), c.area, drug, c.action, case.change.value, f"{c.verdict} -> {_verdict(case.new)}",
            case.detail, line(c.at)]  # fmt: skip


def _gone_rows(cases: Sequence[Case]) -> list[list[object]]:
    """Checks the candidate cannot run, grouped by entry and reason (the CSV lists each one)."""
    groups: dict[tuple[str, str, str, str], list[Case]] = {}
    for case in cases:
        c = case.check
        groups.setdefault((c.area, c.drug, c.therapy or "", case.why), []).append(case)
    return [
        [area, f"{drug} ({therapy})" if therapy else drug, group[0].change.value, why, len(group),
         when(group[0].check.at), when(group[-1].check.at)]
        for (area, drug, therapy, why), group in groups.items()
    ]  # fmt: skip


def _change_rows(groups: Mapping[str, Mapping[Change, int]]) -> list[list[object]]:
    return [[name, *(counts[c] for c in Change), sum(counts.values())] for name, counts in groups.items()]


def whatif_html(result: WhatIf, source: str) -> str:
    """The what-if page: what the candidate library would change in the logged programs."""
    counts = result.counts()
    cand = result.candidate
    same = result.same_library
    if same:
        consistency = (
            f"{len(same)} replayed checks were logged against this very library; "
            + ("all reproduce their logged verdict and limits." if not result.inconsistent
               else f"{len(result.inconsistent)} do NOT reproduce: report this (it should not happen).")
        )  # fmt: skip
    else:
        consistency = "No replayed check was logged against this exact library version."
    meta = {
        "Candidate": f"{cand.owner} / {cand.name} version {cand.version} (sha256 {cand.hash[:12]})",
        "Logs": source,
        "Checks replayed": f"{len(result.cases)} (repeats confirming an open alert are counted once)",
        "Infusions in the logs": str(result.infusions),
        "Logged against": "; ".join(f"{k}: {n}" for k, n in result.logged_libraries().items()) or "-",
        "Consistency": consistency,
    }

    def tile(label: str, change: Change, note: str, style: str = "") -> tuple[str, str, str, str]:
        return label, str(counts[change]), note, style if counts[change] else ""

    removed, refused = counts[Change.NOT_IN_LIBRARY], counts[Change.REFUSED]
    tiles = _tiles([
        tile("Newly blocked", Change.NEWLY_BLOCKED, "now beyond a hard limit", "bad"),
        tile("Newly alerting", Change.NEWLY_ALERTING, "now need an override", "warn"),
        ("Not in candidate", str(removed + refused), f"{removed} entry removed, {refused} refused", ""),
        tile("No longer blocked", Change.NO_LONGER_BLOCKED, "hard limit now soft"),
        tile("No longer alerting", Change.NO_LONGER_ALERTING, "now within limits", "good"),
        tile("Unchanged", Change.UNCHANGED, f"of {len(result.cases)} replayed"),
        ("Alerts per 100 infusions", num(result.projected_alerts_per_100),
         f"projected; {num(result.logged_alerts_per_100)} as logged", ""),
        ("Changes not exercised", "?" if result.not_exercised is None else str(len(result.not_exercised)),
         "by any logged check" if result.not_exercised is not None else "give --current to list them",
         "warn" if result.not_exercised else ""),
    ])  # fmt: skip
    if result.not_exercised is None:
        gaps = ("<p><b>Not listed:</b> run with <code>--current</code> (the library in use) to list the changes no "
                "logged check exercised. Without it, \"0 newly blocked\" says nothing about entries nobody "
                "programmed.</p>")  # fmt: skip
    elif result.not_exercised:
        gaps = _table(["change not exercised by the logs"], [[str(c)] for c in result.not_exercised])
    else:
        gaps = "<p>None: every change was reached by at least one logged check.</p>"
    changed = [c for c in result.changed() if c.change not in _GONE]
    gone = [c for c in result.changed() if c.change in _GONE]
    shown = f"first {HTML_ROWS} of {len(changed)} (all in cases.csv)" if len(changed) > HTML_ROWS else ""
    header = ["", *(c.value for c in Change), "total"]
    drugs = result.by_drug()
    moved = {d: n for d, n in drugs.items() if n[Change.UNCHANGED] != sum(n.values())}
    body = f"""
<p class="note">A what-if replays the logged checks; it does not say whether the logged doses were right, and it
says nothing about a change no logged check reached (listed below).</p>
{tiles}
<h2>Library changes not exercised by the logs</h2>
<p class="small">Changes of the candidate (against the library in use) to drugs, entries and care areas that no
replayed check used: the replay cannot tell what they will do. Review them by hand.</p>
{gaps}
<h2>By care area</h2>
{changes_figure(result.by_area())}
{_table(["care area", *header[1:]], _change_rows(result.by_area()))}
<h2>By drug</h2>
{changes_figure(drugs, TOP_ENTRIES)}
{_table(["drug", *header[1:]], _change_rows(moved), note=f"{len(drugs) - len(moved)} other drugs: no change.")}
<h2>Programs whose verdict changes</h2>
{
        _table(
            ["time", "care area", "drug", "action", "change", "verdict", "detail", "log line"],
            [_verdict_row(c) for c in changed[:HTML_ROWS]],
            note=shown,
        )
        if changed
        else "<p>None.</p>"
    }
<h2>Programs the candidate cannot check</h2>
<p class="small">The entry was removed, or it no longer accepts the logged request (concentration, unit, weight).
Nurses would have to choose another entry or program a basic infusion.</p>
{
        _table(["care area", "drug", "change", "why", "checks", "first", "last"], _gone_rows(gone))
        if gone
        else "<p>None.</p>"
    }
<p class="small">Definitions: docs/pharmacy-analytics.md.</p>
"""
    return _page(f"What-if: {cand.name} version {cand.version}", meta, body)


def whatif_tables(result: WhatIf) -> dict[str, Table]:
    """The CSV files of the what-if report."""
    summary: list[list[object]] = [[c.value, n] for c, n in result.counts().items()]
    summary += [
        ["infusions in the logs", result.infusions],
        ["alerts per 100 infusions, logged", num(result.logged_alerts_per_100)],
        ["alerts per 100 infusions, projected", num(result.projected_alerts_per_100)],
        ["changes not exercised", "" if result.not_exercised is None else len(result.not_exercised)],
    ]
    columns = ["group", *(c.value for c in Change), "total"]
    return {
        "summary.csv": (["change", "checks"], summary),
        "by_area.csv": (columns, _change_rows(result.by_area())),
        "by_drug.csv": (columns, _change_rows(result.by_drug())),
        "cases.csv": (_CASE_HEADER, [_case_row(c) for c in result.cases]),
        "not_exercised.csv": (["change"], [[str(c)] for c in result.not_exercised or ()]),
    }


# --- writing -------------------------------------------------------------------------------------------------


def _column(label: str) -> str:
    """A CSV column name: ``"alerts per 100"`` -> ``alerts_per_100``, ``"compliance"`` -> ``compliance_percent``."""
    name = re.sub(r"[^a-z0-9]+", "_", label.casefold()).strip("_")
    return f"{name}_percent" if name == "compliance" else name


def write_report(out: Path, page: str, tables: Mapping[str, Table]) -> tuple[Path, ...]:
    """Write ``report.html`` and the CSV ``tables`` into ``out`` (created if needed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.html"]
        written[0].write_text(page, encoding="utf-8")
        for name, (header, rows) in tables.items():
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(_column(h) for h in header)
            writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
            (out / name).write_text(buf.getvalue(), encoding="utf-8")
            written.append(out / name)
    except OSError as e:
        raise InputError(str(out), f"cannot write: {e}") from None
    return tuple(written)
