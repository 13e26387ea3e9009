"""The simulation report: one self-contained HTML page a clinician can read.

Per channel: the rate the pump was running against the flow that reached the patient; cumulative
volume (pump counter, true volume into the patient, and what the program called for); downstream
pressure with the occlusion threshold; alarm bands coloured by priority; and the clinician actions
and physical events as markers. Plots are matplotlib (Agg) inlined as SVG: deterministic, no
JavaScript, readable offline (docs/decisions/0004-reports.md).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from openinfusion.figures import svg
from openinfusion.sim.story import DELIVERED_VS_PATIENT, Story

F64 = npt.NDArray[np.float64]

STORY_MARK = "<!-- story -->"  # where the nurse's sections go (with_story)
PRIORITY_COLOURS = {"high": "#d62728", "medium": "#ff9f1c", "low": "#2ca6c4", "info": "#9e9e9e"}


@dataclass(frozen=True, slots=True)
class AlarmSpan:
    """One alarm's time on a channel: from raised to ended (None: still active at the end)."""

    code: str
    priority: str
    start_s: float
    end_s: float | None
    text: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A scenario event drawn as a vertical line: time and label."""

    t_s: float
    label: str


@dataclass(frozen=True, slots=True)
class ChannelTrace:
    """Everything plotted for one channel. Times in seconds from scenario start."""

    label: str
    t_s: F64  # pressure-sample times
    pressure_mmhg: F64  # true downstream pressure
    flow_ml_h: F64  # true flow into the patient
    patient_ml: F64  # cumulative volume into the patient
    step_t_s: F64  # pump service times
    rate_ml_h: F64  # rate the pump was running (programmed), step function
    counted_ml: F64  # the pump's own delivered counter (program + KVO)
    programmed_ml: F64  # integral of the programmed rate
    threshold_mmhg: float
    alarms: tuple[AlarmSpan, ...]
    markers: tuple[Marker, ...]


def _hours(span_s: float) -> tuple[float, str]:
    return (3600.0, "h") if span_s > 3 * 3600 else (60.0, "min")


def channel_figure(tr: ChannelTrace, end_s: float, *, pulsation: bool = False, since: str = "") -> str:
    """Four stacked panels sharing a time axis (from the scenario's start; ``since`` names it), as inline SVG.

    The instantaneous flow (the pulsation band of a peristaltic mechanism) is drawn only when asked:
    a nurse reads the 1-minute mean against the programmed rate.
    """
    scale, unit = _hours(end_s)
    fig, axes = plt.subplots(4, 1, figsize=(10, 9.5), sharex=True, gridspec_kw={"height_ratios": [3, 3, 3, 1]})
    ax_rate, ax_vol, ax_p, ax_al = axes
    t = tr.t_s / scale
    st = tr.step_t_s / scale
    window = max(1, int(60 / max(float(np.median(np.diff(tr.t_s))) if tr.t_s.size > 1 else 1.0, 1e-3)))
    smooth = np.convolve(tr.flow_ml_h, np.ones(window) / window, mode="same") if tr.flow_ml_h.size else tr.flow_ml_h
    if pulsation:
        ax_rate.plot(t, tr.flow_ml_h, color="#c7d7ea", lw=0.5, label="flow into patient (instantaneous)")
    ax_rate.plot(t, smooth, color="#1f77b4", lw=1.2, label="flow into patient (1-min mean)")
    ax_rate.step(st, tr.rate_ml_h, where="post", color="black", lw=1.2, label="programmed rate")
    top = float(np.max(tr.rate_ml_h)) if tr.rate_ml_h.size else 1.0
    ax_rate.set_ylim(-0.25 * top, 1.6 * max(top, 0.1))  # pulsatile instantaneous flow is clipped; the mean is not
    ax_rate.set_ylabel("rate (mL/h)")
    ax_rate.legend(loc="upper right", fontsize=8)
    ax_vol.plot(st, tr.programmed_ml, color="black", lw=1, ls="--", label="programmed")
    ax_vol.plot(st, tr.counted_ml, color="#2ca02c", lw=1.2, label="pump counter")
    ax_vol.plot(t, tr.patient_ml, color="#1f77b4", lw=1.2, label="into patient (virtual balance)")
    ax_vol.set_ylabel("volume (mL)")
    ax_vol.legend(loc="upper left", fontsize=8)
    ax_p.plot(t, tr.pressure_mmhg, color="#8c564b", lw=0.8, label="downstream pressure")
    ax_p.axhline(tr.threshold_mmhg, color="#d62728", ls=":", lw=1, label=f"occlusion threshold {tr.threshold_mmhg:.0f}")
    ax_p.set_ylabel("pressure (mmHg)")
    ax_p.legend(loc="upper right", fontsize=8)
    for i, a in enumerate(tr.alarms):
        end = (a.end_s if a.end_s is not None else end_s) / scale
        ax_al.barh(i % 3, end - a.start_s / scale, left=a.start_s / scale, color=PRIORITY_COLOURS.get(a.priority))
        ax_al.text(a.start_s / scale, i % 3, f" {a.code}", va="center", fontsize=7)
    ax_al.set_yticks([])
    ax_al.set_ylabel("alarms")
    ax_al.set_xlabel(f"time ({unit}{since})")
    for ax in axes:
        for m in tr.markers:
            ax.axvline(m.t_s / scale, color="#7f7f7f", lw=0.6, ls="--")
        ax.grid(alpha=0.3)
        ax.set_xlim(0, end_s / scale)
    for m in tr.markers:
        ax_rate.annotate(m.label, (m.t_s / scale, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                         fontsize=7, va="top", ha="right", color="#555")  # fmt: skip
    fig.suptitle(tr.label)
    return svg(fig)


def render(
    title: str, *, meta: dict[str, str], summary_rows: list[list[str]], alarm_rows: list[list[str]],
    figures: list[str], log_rows: list[list[str]],
) -> str:  # fmt: skip
    """The whole report page."""
    esc = html.escape

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    meta_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; color: #222 }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left }}
th {{ background: #f2f2f2 }} dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 1em }}
dt {{ font-weight: 600 }} .note {{ color: #a00 }}
</style></head><body>
<h1>{esc(title)}</h1>
<p class="note">Simulation on virtual hardware. Not for clinical use.</p>
<dl>{meta_html}</dl>
{STORY_MARK}
<h2>Outcome per channel</h2>
{table(["channel", "delivered by pump (mL)", "into patient (mL)", "final state", "alarms"], summary_rows)}
<details><summary>Alarm onsets (engineering view: codes, pump time t_us as in events.jsonl)</summary>
{table(["time", "t_us", "seq", "channel", "code", "priority", "detail"], alarm_rows)}</details>
<h2>Timelines</h2>
{"".join(f"<figure>{f}</figure>" for f in figures)}
<details><summary>Raw event log (engineering view: the first 400 events as JSON; all in events.jsonl)</summary>
{table(["seq", "time", "t_us", "channel", "event", "data"], log_rows)}</details>
</body></html>
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th scope='col'>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def story_html(story: Story) -> str:
    """The sections a nurse reads first: what happened in clock time, alarms, library checks, screens."""
    esc = html.escape
    parts = [f"<h2>What happened ({esc(story.heading)})</h2>",
             _table(["time", "channel", "drug", "what happened"], story.timeline)]  # fmt: skip
    alarms = [(a.raised, a.channel, a.text, a.priority, a.escalated or "-", a.latched or "-", a.ended, a.how, a.detail)
              for a in story.alarms]  # fmt: skip
    columns = ["raised", "channel", "alarm", "priority", "escalated", "latched", "ended", "how", "detail"]
    parts += ["<h2>Alarms</h2>", _table(columns, alarms)]
    none = "<p>No program was checked against a drug library (basic infusions only).</p>"
    ders = (
        _table(["time", "channel", "action", "drug", "values checked", "outcome"], story.ders) if story.ders else none
    )
    parts += ["<h2>Drug library checks, overrides and hard blocks</h2>", ders]
    if story.refused:
        parts += ["<h2 class='note'>Actions the pump refused</h2>", _table(["time", "channel", "why"], story.refused)]
    columns = ["channel", "delivered (pump)", "into patient", "air past the detector", "final state"]
    parts += ["<h2>Totals per channel</h2>", _table(columns, story.totals), f"<p>{esc(DELIVERED_VS_PATIENT)}</p>"]
    if story.pca:
        parts += ["<h2>PCA</h2>", _table(["channel", "totals"], story.pca)]
    parts += ["<h2>Battery</h2>", f"<p>{esc(story.battery)}</p>", "<h2>The pump's screen at key moments</h2>"]
    rows = [(s.time, s.moment, s.channel, s.shown["status"], screen_drug(s.shown), screen_rate(s.shown),
             s.shown["vtbi_left"] or "-", s.shown["infused_primary"], s.shown["infused_secondary"],
             s.shown["time_left"] or "-") for s in story.screens]  # fmt: skip
    parts.append(_table(["time", "moment", "channel", "status", "drug", "dose and rate", "VTBI left",
                         "infused primary", "infused secondary", "time left"], rows))  # fmt: skip
    return "\n".join(parts)


def screen_drug(shown: dict[str, Any]) -> str:
    """The drug line of a channel's screen."""
    if shown["drug_name"]:
        return f"{shown['drug_name']} {shown['concentration'] or ''}".strip()
    return "basic infusion (no library)" if shown["basic"] else "-"


def screen_rate(shown: dict[str, Any]) -> str:
    """Dose next to mL/h (the programmed values while stopped)."""
    rate = (
        shown["rate"]
        if shown["state"] in ("infusing", "kvo")
        else f"{shown['rate']} (programmed {shown['programmed_rate']})"
    )
    return f"{shown['dose']} = {rate}" if shown["dose"] else rate


def with_story(page: str, story: Story) -> str:
    """The report page with the nurse's sections in place."""
    return page.replace(STORY_MARK, story_html(story), 1)
