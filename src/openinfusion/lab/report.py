"""Verification outputs: deterministic JSON, a self-contained HTML page, and PNG figures for the docs.

Plots are matplotlib (Agg) inlined as SVG with a fixed hash salt and no date, so the same results give
the same bytes (as the simulation report does). Every page says it is a virtual pump and sets the
results beside the published figures they are held to (``shared/reference/standards-and-safety.md``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from openinfusion.figures import save_png, style, svg
from openinfusion.lab import accuracy, monitor, occlusion
from openinfusion.lab.accuracy import AccuracyResult
from openinfusion.lab.occlusion import ECRI_BOLUS_ML, OcclusionResult
from openinfusion.sim.run import write_json
from openinfusion.units import format_decimal

_SVG_SALT: Final = "openinfusion-lab"  # fixed ids in the SVG: the same results give the same bytes
_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1150px; color: #222 }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left }
th { background: #f2f2f2 } .note { color: #a00 } .pass { color: #1a7f37 } .fail { color: #c00; font-weight: 600 }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em } dt { font-weight: 600 }
"""
PASS, FAIL = "pass", "FAIL"


def _f(x: float | None, places: int = 2) -> str:
    if x is None:
        return "-"
    return f"{(x if round(x, places) != 0 else 0.0):.{places}f}"  # no "-0.00"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "-"
    return f'<span class="{"pass" if ok else "fail"}">{PASS if ok else FAIL}</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; cells are trusted HTML (callers escape text)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, meta: dict[str, str], sections: Sequence[str]) -> str:
    esc = html.escape
    meta_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta.items())
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n"
        '<p class="note">Virtual verification: the pump core on simulated hardware. Not for clinical use.</p>\n'
        f"<dl>{meta_html}</dl>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


# --- flow accuracy ----------------------------------------------------------------------------------


def trumpet_figure(result: AccuracyResult) -> Figure:
    """Start-up curve (flow per 0.5 min over 2 h) beside the trumpet curve of the second hour."""
    limit = result.claim.limit_percent
    rate_ml_h = float(result.setup.rate.in_ml_h)
    with style():
        fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
        ax_s.axvspan(60, 120, color="#eef3fa", label="analysis period (2nd hour)")
        ax_s.step(result.startup_t_min, result.startup_flow_ml_h, where="pre", color="#1f77b4", lw=1,
                  label="flow per 0.5 min (balance)")  # fmt: skip
        ax_s.axhline(rate_ml_h, color="black", lw=1, label="set rate")
        for sign in (1, -1):
            ax_s.axhline(rate_ml_h * (1 + sign * limit / 100), color="#d62728", ls=":", lw=1)
        ax_s.set_xlim(0, 120)
        ax_s.set_xlabel("time (min)")
        ax_s.set_ylabel("flow (mL/h)")
        ax_s.set_title(f"start-up curve, {result.setup.label}")
        ax_s.legend(loc="lower right", fontsize=7)
        windows = [float(p.window.seconds) / 60 for p in result.trumpet.points]
        ax_t.plot(windows, [p.ep_max_percent for p in result.trumpet.points], "o-", color="#d62728", label="Ep(max)")
        ax_t.plot(windows, [p.ep_min_percent for p in result.trumpet.points], "o-", color="#1f77b4", label="Ep(min)")
        ax_t.axhline(result.trumpet.mean_error_percent, color="black", ls="--", lw=1,
                     label=f"A = {result.trumpet.mean_error_percent:+.2f} %")  # fmt: skip
        ax_t.axhspan(-limit, limit, color="#e8f5e9", label=f"published +-{limit:g} %")
        ax_t.axhline(0, color="#888", lw=0.6)
        ax_t.set_xlabel("observation window (min)")
        ax_t.set_ylabel("error (%)")
        ax_t.set_xticks(windows)
        ax_t.set_title("trumpet curve, 2nd hour")
        ax_t.legend(loc="upper right", fontsize=7)
        for ax in (ax_s, ax_t):
            ax.grid(alpha=0.3)
        fig.tight_layout()
    return fig


def _accuracy_rows(results: Sequence[AccuracyResult]) -> list[list[str]]:
    rows = []
    for r in results:
        t = r.trumpet
        rows.append(
            [
                html.escape(r.setup.label),
                f"{t.mean_error_percent:+.2f}",
                f"+-{r.claim.limit_percent:g}",
                _verdict(r.passes_mean),
                f"{t.points[0].ep_max_percent:+.2f} / {t.points[0].ep_min_percent:+.2f}",
                f"{t.points[-1].ep_max_percent:+.2f} / {t.points[-1].ep_min_percent:+.2f}",
                _verdict(t.narrows),
                f"{r.balance_ml:.3f} / {r.pump_counted_ml:.3f}",
                html.escape(", ".join(r.alarms) or "-"),
                html.escape(r.final_state),
            ]
        )
    return rows


def _windows_table(result: AccuracyResult) -> str:
    rows = [
        [f"{float(p.window.seconds) / 60:g}", f"{p.ep_max_percent:+.3f}", f"{p.ep_min_percent:+.3f}",
         f"{p.spread_percent:.3f}"]
        for p in result.trumpet.points
    ]  # fmt: skip
    return _table(["window (min)", "Ep(max) %", "Ep(min) %", "Ep(max) - Ep(min) %"], rows)


def trumpet_page(results: Sequence[AccuracyResult], seed: int, command: str) -> str:
    """The flow accuracy report: the table against the published figures, then per configuration."""
    header = ["configuration", "mean error A %", "published", "A within published", "2 min Ep(max)/Ep(min) %",
              "31 min Ep(max)/Ep(min) %", "trumpet narrows", "balance / pump counter (mL, 2 h)", "alarms",
              "final state"]  # fmt: skip
    sections = [
        "<h2>Results beside the published figures</h2>",
        _table(header, _accuracy_rows(results)),
        "<p>Published: " + "; ".join(html.escape(c.source) for c in accuracy.CLAIMS.values()) + ". "
        "The claims are at 1 mL/h; the LVP's +-5 % is applied at 25 mL/h too. <em>Trumpet narrows</em>: "
        "Ep(max) - Ep(min) never grows from one window to the next.</p>",
    ]
    for r in results:
        sections += [
            f"<h2>{html.escape(r.setup.label)}</h2>",
            _windows_table(r),
            f"<figure>{svg(trumpet_figure(r))}</figure>",
        ]
    meta = {
        "command": command,
        "seed": str(seed),
        "method": "IEC 60601-2-24 trumpet curve: balance every 0.5 min for 2 h, second hour analysed, windows "
        "2, 5, 11, 19, 31 min (standards-and-safety.md §2.2; formulas in the usual form, tagged [U] there)",
        "balance": "true volume through the outlet x 0.998 g/mL, 0.1 mg resolution, no evaporation",
    }
    return _page("Flow accuracy (trumpet curves) on the virtual pump", meta, sections)


def _write(out: Path, name: str, data: dict[str, Any], page: str, pngs: list[tuple[Figure, Path]]) -> list[Path]:
    """Write ``<name>.json`` and ``report.html`` into ``out``, and each figure as a PNG at its path."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / "report.html"]
    write_json(written[0], data)
    written[1].write_text(page, encoding="utf-8")
    return written + [save_png(fig, path) for fig, path in pngs]


def write_trumpet(out: Path, results: Sequence[AccuracyResult], seed: int, command: str,
                  figures: Path | None = None) -> list[Path]:  # fmt: skip
    """Write ``trumpet.json`` and ``report.html`` into ``out`` (and ``trumpet-<key>.png`` into ``figures``)."""
    data = {"schema": accuracy.SCHEMA, "seed": seed, "method": accuracy.method_json(),
            "results": [r.to_json() for r in results]}  # fmt: skip
    pngs = [] if figures is None else [(trumpet_figure(r), figures / f"trumpet-{r.setup.key}.png") for r in results]
    return _write(out, "trumpet", data, trumpet_page(results, seed, command), pngs)


# --- occlusion ----------------------------------------------------------------------------------------


def occlusion_figure(result: OcclusionResult) -> Figure:
    """Pressure from before the occlusion to the end of the collection, beside the volume through the
    outlet around the release (the bolus)."""
    tr = result.trace
    t0 = result.occluded_at_s
    with style():
        fig, (ax_p, ax_v) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
        ax_p.plot(tr.t_s - t0, tr.pressure_mmhg, color="#8c564b", lw=1, label="line pressure (true)")
        sensitivity = result.occlusion.setup.sensitivity.value
        ax_p.axhline(result.threshold_mmhg, color="#d62728", ls=":", lw=1,
                     label=f"threshold {result.threshold_mmhg} mmHg ({sensitivity})")  # fmt: skip
        marks = [] if result.void else [(0.0, "occluded")]
        if result.time_to_alarm_s is not None:
            marks.append((result.time_to_alarm_s, "alarm"))
        if result.released_at_s is not None:
            marks.append((result.released_at_s - t0, "released"))
        for x, label in marks:
            ax_p.axvline(x, color="#555", ls="--", lw=0.8)
            ax_p.annotate(label, (x, 0.98), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                          fontsize=7, color="#555")  # fmt: skip
        ax_p.set_xlabel("time since the stopcock closed (s)")
        ax_p.set_ylabel("pressure (mmHg)")
        ax_p.set_title(result.occlusion.label)
        ax_p.legend(loc="center right", fontsize=7)
        if result.released_at_s is not None and result.bolus_ml is not None:
            rel = result.released_at_s
            keep = tr.t_s >= rel - 10.0
            base = float(tr.outlet_ml[keep][0]) if keep.any() else 0.0
            ax_v.plot(tr.t_s[keep] - rel, (tr.outlet_ml[keep] - base) * 1000.0, color="#1f77b4", lw=1.2)
            ax_v.axvline(0.0, color="#555", ls="--", lw=0.8)
            ax_v.set_title(f"bolus on release: {result.bolus_ml * 1000:.1f} uL (ECRI <= {ECRI_BOLUS_ML * 1000:.0f} uL)")
        else:
            why = f"void: {result.state_at_occlusion} before the occlusion" if result.void else "no alarm: no release"
            ax_v.text(0.5, 0.5, why, ha="center", va="center", transform=ax_v.transAxes)
        ax_v.set_xlabel("time since release (s)")
        ax_v.set_ylabel("volume through outlet (uL)")
        for ax in (ax_p, ax_v):
            ax.grid(alpha=0.3)
        fig.tight_layout()
    return fig


def _occlusion_rows(results: Sequence[OcclusionResult]) -> list[list[str]]:
    rows = []
    for r in results:
        s = r.occlusion.setup
        if r.void:
            alarm = f'<span class="fail">void: {html.escape(r.state_at_occlusion)} before the occlusion</span>'
        elif r.time_to_alarm_s is None:
            alarm = '<span class="fail">no alarm</span>'
        else:
            alarm = _f(r.time_to_alarm_s, 1)
        rows.append(
            [
                html.escape(s.label),
                s.sensitivity.value,
                str(r.threshold_mmhg),
                alarm,
                _f(r.threshold_only_s, 0),
                html.escape(r.alarm_detail or "-"),
                _f(r.peak_pressure_mmhg, 0),
                _f(r.backed_off_ml, 4),
                _f(r.withdrawn_ml, 4),
                _f(r.bolus_ml, 4),
                _verdict(r.passes_ecri),
                html.escape(", ".join(r.settle_alarms + r.other_alarms) or "-"),
                html.escape(r.final_state),
            ]
        )
    return rows


def _physics(results: Sequence[OcclusionResult]) -> str:
    """One sentence per pump and sensitivity comparing the alarm times at the lowest and highest rate."""
    lines = []
    groups: dict[tuple[str, str], list[OcclusionResult]] = {}
    for r in results:
        groups.setdefault((r.occlusion.setup.pump_label, r.occlusion.setup.sensitivity.value), []).append(r)
    for (pump, sensitivity), group in groups.items():
        timed = sorted((r for r in group if r.time_to_alarm_s is not None), key=lambda r: r.occlusion.setup.rate)
        if len(timed) < 2:
            continue
        slow, fast = timed[0], timed[-1]
        assert slow.time_to_alarm_s is not None and fast.time_to_alarm_s is not None  # filtered above
        lines.append(
            f"<li>{html.escape(pump)}, {sensitivity} sensitivity: "
            f"{format_decimal(slow.occlusion.setup.rate.in_ml_h, 3)} mL/h alarmed after {slow.time_to_alarm_s:.1f} s, "
            f"{format_decimal(fast.occlusion.setup.rate.in_ml_h, 3)} mL/h after {fast.time_to_alarm_s:.1f} s "
            f"({slow.time_to_alarm_s / fast.time_to_alarm_s:.1f} times later).</li>"
        )
    return "<ul>" + "".join(lines) + "</ul>" if lines else "<p>Not enough alarms to compare rates.</p>"


def occlusion_page(results: Sequence[OcclusionResult], seed: int, command: str) -> str:
    """The occlusion report: the table against ECRI and the thresholds, the physics, then the traces."""
    header = [
        "configuration",
        "sensitivity",
        "threshold (mmHg)",
        "time to alarm (s)",
        "threshold-only C dP/Q (s)",
        "pump's alarm detail",
        "peak (mmHg)",
        "backed off, logged (mL)",
        "withdrawn, measured (mL)",
        "bolus (mL)",
        "ECRI <= 0.5 mL",
        "alarms (whole run)",
        "final state",
    ]
    sections = [
        "<h2>Results beside ECRI and the thresholds</h2>",
        _table(header, _occlusion_rows(results)),
        "<p><em>threshold-only</em> is the time a blocked line of the simulated compliance C takes to rise from its "
        "free-flow pressure to the threshold at the set rate Q: what a threshold-only detector would take. "
        "ECRI: the bolus released after an occlusion is relieved should be &le; 0.5 mL "
        "(standards-and-safety.md §2.3).</p>",
        "<h2>Rate and time to alarm</h2>",
        "<p>A blocked line's pressure rises at Q/C, so the alarm comes later at a lower rate:</p>",
        _physics(results),
    ]
    for r in results:
        sections.append(f"<figure>{svg(occlusion_figure(r))}</figure>")
    meta = {
        "command": command,
        "seed": str(seed),
        "method": "IEC 60601-2-24:2012 occlusion test (standards-and-safety.md §2.3): steady flow, stopcock closed "
        "below the sensor, time to the occlusion alarm from the pump's log, back-off completes, released "
        f"{occlusion.HOLD} after the alarm with the pump stopped, bolus collected for max(60 s, 5 R C)",
    }
    return _page("Downstream occlusion on the virtual pump", meta, sections)


def write_occlusion(out: Path, results: Sequence[OcclusionResult], seed: int, command: str,
                    figures: Path | None = None) -> list[Path]:  # fmt: skip
    """Write ``occlusion.json`` and ``report.html`` into ``out`` (and ``occlusion-<key>.png`` into ``figures``)."""
    data = {"schema": occlusion.SCHEMA, "seed": seed, "method": occlusion.method_json(),
            "results": [r.to_json() for r in results]}  # fmt: skip
    pngs = [] if figures is None else [
        (occlusion_figure(r), figures / f"occlusion-{r.occlusion.key}.png") for r in results
    ]  # fmt: skip
    return _write(out, "occlusion", data, occlusion_page(results, seed, command), pngs)


# --- safety monitor -------------------------------------------------------------------------------------


def monitor_figure(results: Sequence[monitor.CaseResult]) -> Figure:
    """Time to trip and excess volume of every fault case, against their limits."""
    labels = [r.case.key for r in results]
    y = list(range(len(results)))
    with style():
        fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(11, 0.28 * len(results) + 1.5), sharey=True)
        ax_t.barh(y, [r.time_to_trip_s if r.time_to_trip_s is not None else 0.0 for r in results], color="#1f77b4")
        ax_t.axvline(monitor.MAX_TRIP.us / 1e6, color="#c00", ls="--", lw=1, label="limit 60 s")
        ax_t.set_xlabel("time from fault to trip (s)")
        ax_t.set_yticks(y, labels, fontsize=7)
        ax_t.legend(loc="lower right", fontsize=8)
        ax_v.barh(y, [max(r.excess_ml, 0.0) for r in results], color="#ff7f0e", label="excess")
        ax_v.scatter([r.budget_ml for r in results], y, marker="|", s=120, color="#c00", label="budget")
        ax_v.set_xscale("symlog", linthresh=0.1)
        ax_v.set_xlabel("excess volume (mL)")
        ax_v.legend(loc="lower right", fontsize=8)
        ax_t.invert_yaxis()
        fig.tight_layout()
    return fig


def monitor_page(
    results: Sequence[monitor.CaseResult], normal: Sequence[monitor.NormalResult], seed: int, command: str
) -> str:
    esc = html.escape
    rows = [
        [esc(r.case.label), esc(r.alarm or "none"), esc(r.check or "-"), _f(r.time_to_trip_s, 1),
         _f(r.excess_ml, 4), _f(r.budget_ml, 3), _verdict(r.passes)]
        for r in results
    ]  # fmt: skip
    runs = [
        [esc(n.setup.label), _f(n.hours, 2), _f(n.displaced_ml, 2), esc("; ".join(n.trips) or "none"),
         _verdict(n.passes)]
        for n in normal
    ]  # fmt: skip
    sections = [
        "<h2>Fault cases</h2>",
        _table(("case", "alarm", "caught by", "time to trip (s)", "excess (mL)", "budget (mL)", "verdict"), rows),
        svg(monitor_figure(results)),
        "<h2>Normal delivery (no false trip allowed)</h2>",
        _table(("configuration", "hours", "displaced (mL)", "monitor trips", "verdict"), runs),
    ]
    meta = {
        "command": command, "seed": str(seed),
        "required": "every case caught; time to trip <= 60 s; excess <= max(0.1 mL, 1 min of the programmed rate)",
        "faults": "injected into the delivery side only (sim.firmware_faults); the monitor's inputs are untouched",
    }  # fmt: skip
    return _page("Safety monitor under injected faults (virtual pump)", meta, sections)


def write_monitor(out: Path, results: Sequence[monitor.CaseResult], normal: Sequence[monitor.NormalResult],
                  seed: int, command: str, *, figures: Path | None = None) -> list[Path]:  # fmt: skip
    """Write ``monitor.json`` and ``report.html`` into ``out`` (and ``monitor.png`` into ``figures``)."""
    data = {"schema": monitor.SCHEMA, "seed": seed, "method": monitor.method_json(),
            "cases": [r.to_json() for r in results], "normal": [n.to_json() for n in normal]}  # fmt: skip
    pngs = [] if figures is None else [(monitor_figure(results), figures / "monitor.png")]
    return _write(out, "monitor", data, monitor_page(results, normal, seed, command), pngs)
