"""Write a finished simulation's outputs: summary.json, events.jsonl, series.parquet, report.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from openinfusion.pump.alarms import CATALOGUE, AlarmCode
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.sim import report
from openinfusion.sim.run import START, Simulation, threshold_mmhg, write_json
from openinfusion.sim.screen import channel_label, clock
from openinfusion.sim.timebase import TimeBase
from openinfusion.units import Duration

_ENDS = {EventKind.ALARM_CLEARED, EventKind.ALARM_RESET}
_MARKED = {
    EventKind.INFUSION_STARTED: "start",
    EventKind.RATE_CHANGED: "rate",
    EventKind.BOLUS_STARTED: "bolus",
    EventKind.SECONDARY_STARTED: "secondary",
    EventKind.SECONDARY_COMPLETED: "primary resumes",
    EventKind.TITRATION_CONFIRMED: "titration",
    EventKind.VTBI_COMPLETE: "VTBI complete",
    EventKind.PCA_DEMAND: "demand",
    EventKind.FAULT_INJECTED: "fault",
}


def _t(e: LoggedEvent) -> float:
    return (e.t.us - START.us) / 1e6


def _series(sim: Simulation, i: int, name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return sim.series.series(i, name)


def write_outputs(sim: Simulation, out: Path, scenario_sha256: str) -> dict[str, Any]:
    """Write every output of ``sim`` into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = sim.summary(scenario_sha256)
    write_json(out / "summary.json", summary)
    (out / "events.jsonl").write_text(sim.pump.log.to_jsonl(), encoding="utf-8")
    events = sim.pump.log.events()
    time = TimeBase.of(sim.scenario)
    traces, tables = [], []
    end_s = summary["duration_s"]
    for i, ch in enumerate(sim.pump.channels):
        pump_s = _series(sim, i, "t_s")  # sample times, pump seconds since power-on
        t_s = pump_s - START.us / 1e6
        steps = sim.steps[i]
        step_t = np.asarray(steps.t_s)
        rate = np.asarray(steps.rate_ml_h)
        programmed = np.concatenate(([0.0], np.cumsum(rate[:-1] * np.diff(step_t) / 3600.0))) if rate.size else rate
        tables.append(
            pa.table(
                {
                    "channel": np.full(t_s.shape, i + 1, dtype=np.int8),
                    "t_us": np.rint(pump_s * 1e6).astype(np.int64),  # pump time, as events.jsonl
                    "downstream_mmhg": _series(sim, i, "downstream_mmhg"),
                    "flow_ml_h": _series(sim, i, "patient_flow_ml_h"),
                    "patient_ml": _series(sim, i, "cumulative_patient_ml"),
                }
            )
        )
        spans, started = [], {}
        for e in events:
            if e.channel not in (i, None):
                continue
            code = e.data.get("code")
            if e.kind is EventKind.ALARM_RAISED and isinstance(code, str):
                started[code] = (e, _t(e))
            elif e.kind in _ENDS and isinstance(code, str) and code in started:
                first, t0 = started.pop(code)
                spans.append(_span(code, t0, _t(e), first))
        spans += [_span(code, t0, None, first) for code, (first, t0) in started.items()]
        markers = tuple(report.Marker(_t(e), _MARKED[e.kind]) for e in events if e.channel == i and e.kind in _MARKED)
        traces.append(
            report.ChannelTrace(
                label=f"Channel {channel_label(i)}: {ch.program.__class__.__name__ if ch.program else 'no program'}",
                t_s=t_s,
                pressure_mmhg=_series(sim, i, "downstream_mmhg"),
                flow_ml_h=_series(sim, i, "patient_flow_ml_h"),
                patient_ml=_series(sim, i, "cumulative_patient_ml"),
                step_t_s=step_t,
                rate_ml_h=rate,
                counted_ml=np.asarray(steps.counted_ml),
                programmed_ml=programmed,
                threshold_mmhg=threshold_mmhg(sim.pump, i),
                alarms=tuple(spans),
                markers=markers[:40],
            )
        )
    pq.write_table(pa.concat_tables(tables), out / "series.parquet", compression="zstd")
    start = "" if time.start is None else f", from the start at {time(START)}"
    figures = [report.channel_figure(tr, end_s, since=start) for tr in traces]
    rows = [
        [channel_label(c["channel"] - 1, numbered=True), f"{c['delivered_ml']:.3f}", f"{c['into_patient_ml']:.3f}",
         c["final_state"], str(len(c["alarms"]))]
        for c in summary["channels"]
    ]  # fmt: skip
    alarm_rows = [
        [time(e.t), str(e.t.us), str(e.seq), channel_label(e.channel, numbered=True),
         str(e.data.get("code")), str(e.data.get("priority")), str(e.data.get("detail", ""))]
        for e in events if e.kind is EventKind.ALARM_RAISED
    ]  # fmt: skip
    log_rows = [
        [str(e.seq), time(e.t), str(e.t.us), channel_label(e.channel, numbered=True), e.kind.value,
         json.dumps(e.to_json().get("data", {}), sort_keys=True)[:160]]
        for e in events[:400]
    ]  # fmt: skip
    meta = {
        "scenario": sim.scenario.name,
        "description": sim.scenario.description,
        "seed": str(sim.scenario.seed),
        "scenario SHA-256": scenario_sha256,
        "start": "not given: times are hh:mm:ss from the start" if time.start is None else time.start.isoformat(),
        "duration": clock(Duration.s(end_s)),
        "times": time.heading + "; t_us: pump time in microseconds since power-on (events.jsonl, summary.json)",
        "channels": "A to D as on the pump's screen; summary.json, events.jsonl and series.parquet number them from 1 "
        "(A is 1), so the engineering views show both: A (1)",
        "mechanism": sim.scenario.pump.mechanism,
    }
    page = report.render(
        f"openinfusion simulation: {sim.scenario.name}", meta=meta, summary_rows=rows, alarm_rows=alarm_rows,
        figures=figures, log_rows=log_rows,
    )  # fmt: skip
    (out / "report.html").write_text(page, encoding="utf-8")
    return summary


def _span(code: str, t0: float, t1: float | None, first: LoggedEvent) -> report.AlarmSpan:
    spec = CATALOGUE[AlarmCode(code)]
    return report.AlarmSpan(code, spec.priority.value, t0, t1, str(first.data.get("detail", "")))
