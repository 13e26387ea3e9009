"""CQI a medication-safety committee can trust (issue 8, item 5): the definitions, on hand-made logs.

Each log is built event by event as the pump writes it, so each test states exactly what happened.
"""

from __future__ import annotations

from typing import Any

from test_cqi import sample_library
from test_whatif import dose_limits, logged, variant

from openinfusion.pharmacy import cqi, whatif
from openinfusion.pharmacy.report import CqiReport, cqi_html, whatif_html
from openinfusion.pump.eventlog import EventKind, EventLog
from openinfusion.units import Instant

V1 = {"owner": "H", "version": "1", "hash": "a" * 64}
V2 = {"owner": "H", "version": "2", "hash": "b" * 64}


class Log:
    """A one-pump log written step by step: checks (with the limits they crossed), overrides, cancels, confirms."""

    def __init__(self, origin: str | None = None) -> None:
        self.log = EventLog(pump_id="p1", time_origin=origin)
        self.t = 0

    def at(self, hours: float) -> Log:
        self.t = int(hours * 3_600_000_000)
        return self

    def check(
        self, rate: str, verdict: str = "ok", *, limit: str = "100", drug: str = "dopamine", library: Any = None
    ) -> Log:
        findings = []
        if verdict != "ok":
            crossed = {"entered": {"value": rate, "unit": "mL/h"}, "limit": {"value": limit, "unit": "mL/h"}}
            findings = [{"field": "rate", "kind": verdict, "bound": "upper", **crossed}]
        outcome = {"ok": "proceed", "soft": "needs_override", "hard": "blocked"}[verdict]
        self.log.append(
            Instant(self.t), EventKind.DERS_CHECK, 0, action="program", library=library or V1,
            selection={"area": "ICU", "drug": drug, "therapy": None, "concentration": None},
            values={"rate": {"value": rate, "unit": "mL/h"}}, findings=findings, verdict=verdict, outcome=outcome,
            after_alert=False,
        )  # fmt: skip
        self.t += 1
        return self

    def override(self, rate: str, limit: str = "100") -> Log:
        """The clinician confirms the open soft alert with a reason: the same request proceeds."""
        self.check(rate, "soft", limit=limit)
        last = self.log.events()[-1]
        data = dict(last.data) | {"outcome": "proceed", "after_alert": True}
        self.log.append(Instant(self.t), EventKind.DERS_CHECK, 0, **data)
        self.log.append(Instant(self.t), EventKind.DERS_OVERRIDE, 0, reason="Emergency", findings=[])
        self.t += 1
        return self

    def event(self, kind: EventKind) -> Log:
        data: dict[str, Any] = {"program": None} if kind is EventKind.PROGRAM_CONFIRMED else {}
        if kind is EventKind.BASIC_INFUSION:
            data = {"action": "program", "library": None, "reason": "no entry"}
        self.log.append(Instant(self.t), kind, 0, **data)
        self.t += 1
        return self

    def data(self) -> cqi.CqiData:
        return cqi.analyse([cqi.PumpLog("p1.jsonl", self.log)])


CONFIRM, CANCEL = EventKind.PROGRAM_CONFIRMED, EventKind.DERS_CANCEL


def test_override_rate_is_over_soft_alerts_only() -> None:
    data = Log().override("110").event(CONFIRM).check("900", "hard").event(CANCEL).data()
    c = cqi.summarise(data).counts
    assert (c.alerts, c.soft, c.hard, c.overridden) == (2, 1, 1, 1)
    assert c.override_rate == 1  # 1 of 1 soft alert; a hard alert cannot be overridden (was 1/2 of all alerts)


def test_re_entering_the_intended_order_near_the_limit_is_not_an_averted_error() -> None:
    near = Log().check("110", "soft").check("100").event(CONFIRM).data()  # 110 -> 100: the order, just in limits
    (alert,) = near.alerts
    assert alert.resolution is cqi.Resolution.NEAR_LIMIT and not alert.averted
    assert cqi.summarise(near).counts.near_limit == 1 and cqi.summarise(near).counts.averted == 0
    changed = Log().check("110", "soft").check("50").event(CONFIRM).data()  # 110 -> 50: the program was changed
    assert [a.resolution for a in changed.alerts] == [cqi.Resolution.REPROGRAMMED]
    assert cqi.summarise(changed).counts.averted == 1


def test_averted_errors_have_a_severity_band_by_times_the_limit() -> None:
    data = (
        Log().check("1000", "hard").event(CANCEL)  # tenfold: cancelled
        .check("120", "soft").check("50").event(CONFIRM)  # 1.2x, reprogrammed
        .check("300", "hard").check("60").event(CONFIRM)  # 3x
        .data()
    )  # fmt: skip
    assert [a.band for a in data.alerts] == ["10x or more", "< 1.5x the limit", "2-10x"]
    assert cqi.averted_by_band(data) == {"< 1.5x the limit": 1, "1.5-2x": 0, "2-10x": 1, "10x or more": 1}


def test_partial_first_and_last_days_and_weeks_are_marked() -> None:
    log = Log("2026-11-02T08:00:00+00:00")  # a Monday, 08:00
    for hours in (1, 20, 30, 200):
        log.at(hours).check("50").event(CONFIRM)
    report = CqiReport.of(log.data())
    assert list(report.days) == ["2026-11-02", "2026-11-03", "2026-11-10"]
    assert report.period("2026-11-02") == "2026-11-02 (partial)"
    assert report.period("2026-11-03") == "2026-11-03"
    assert report.period("2026-11-10") == "2026-11-10 (partial)"
    assert list(report.weeks) == ["2026-W45", "2026-W46"]
    assert report.period("2026-W45") == "2026-W45 (partial)"  # begins on Monday 08:00, not 00:00
    assert "2026-11-02 (partial)" in cqi_html(report, "logs")


def test_trends_by_library_version_and_compliance_by_pump() -> None:
    log = Log().check("50", library=V1).event(CONFIRM).check("150", "soft", library=V2).event(CANCEL)
    log.check("50", library=V2).event(CONFIRM)
    log.event(EventKind.BASIC_INFUSION).event(CONFIRM)
    data = log.data()
    versions = cqi.by_library(data)
    assert list(versions) == [f"1 ({'a' * 12})", f"2 ({'b' * 12})"]
    assert (versions[f"1 ({'a' * 12})"].alerts, versions[f"2 ({'b' * 12})"].alerts) == (0, 1)
    assert cqi.by_pump(data)["p1"].compliance == cqi.ratio(2, 3)


def test_alerts_per_100_infusions_of_each_drug_and_tall_man_names() -> None:
    log = Log()
    for _ in range(4):
        log.check("50").event(CONFIRM)
    log.check("150", "soft").event(CANCEL)
    log.check("50", drug="heparin").event(CONFIRM)
    data = log.data()
    by_drug = {r.drug: r for r in cqi.by_entry(data, per_drug=True)}
    assert by_drug["dopamine"].alerts_per_100 == 25 and by_drug["heparin"].alerts_per_100 == 0
    page = cqi_html(CqiReport.of(data, {"dopamine": "DOPamine"}), "logs")
    assert "DOPamine" in page and "Alerts per 100 infusions, by drug" in page


def test_whatif_counts_infusions_projects_alerts_and_lists_changes_no_check_exercised() -> None:
    _, data = logged()  # PICU norepinephrine: 0.08 ok, 0.2 soft (overridden), 3 hard (blocked)
    candidate = variant(dose_limits(soft_max="0.07 ug/kg/min"))

    def elsewhere(d: dict[str, Any]) -> None:
        dose_limits(soft_max="0.07 ug/kg/min")(d)
        dopamine = next(x for x in d["drugs"] if x["id"] == "dopamine")
        dopamine["care_areas"][0]["limits"]["dose"]["hard_max"] = "50 ug/kg/min"

    result = whatif.replay(variant(elsewhere), data, current=sample_library())
    assert result.infusions == len(data.infusions) == 2  # 0.08 and the overridden 0.2
    assert result.logged_alerts_per_100 == 100 and result.projected_alerts_per_100 == 150
    assert result.not_exercised is not None
    (gap,) = result.not_exercised  # the PICU norepinephrine change was exercised; the dopamine one was not
    assert gap.where.startswith("drugs[dopamine].care_areas[") and gap.where.endswith("limits.dose.hard_max")
    assert whatif.replay(candidate, data).not_exercised is None
    page = whatif_html(result, "logs")
    assert "Library changes not exercised by the logs" in page and "dopamine" in page
