"""PCD-10, PCD-01 and PCD-04 out, from the pump's event log and status; PCD-05 in."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from samples import PUMP, library, rgv, ward

from openinfusion.interop.fhir.resources import observations
from openinfusion.interop.hl7.message import Message, read_message
from openinfusion.interop.hl7.pcd01 import Pcd01Reporter
from openinfusion.interop.hl7.pcd04 import Pcd04Reporter
from openinfusion.interop.hl7.pcd10 import Pcd10Reporter
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.structure import check_structure
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.terminology import LINE_PRESSURE
from openinfusion.interop.ward import Confirmation, VirtualWard
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.programs import ContinuousProgram, RateLimits, Titration
from openinfusion.units import Duration, FlowRate, Quantity, Volume

FLUID = {"RXG-4": "^maintenance IV fluid^", "RXG-5": "10", "RXG-15": "100", "RXG-16": "mL/h^mL/h^UCUM",
         "RXG-17": "", "RXG-18": "", "RXG-23": "", "RXG-24": ""}  # fmt: skip


def started(changes: dict[str, str] | None = None) -> VirtualWard:
    w = ward(library())
    Receiver(w, Sender(clock=w.now)).receive(rgv(changes))
    record = w.pending(PUMP, 1)
    assert record is not None
    assert w.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", record.drug, record.rate, record.dose)).started
    return w


def valid(text: str) -> Message:
    message = read_message(text)
    assert check_structure(message) == [], text
    return message


def obx(message: Message, refid: str, component: int = 0) -> str:
    """OBX-5 of the row coded ``refid`` (its first non-empty component, or ``component``)."""
    rows = [o for o in message.all("OBX") if o.get(3, 2) == refid]
    found = [o.get(5, component) if component else (o.get(5) or o.get(5, 2)) for o in rows]
    assert len(found) == 1, (refid, found)
    return found[0]


@pytest.mark.req("OI-IOP-3")
def test_pcd10_documents_start_stop_and_titration_linked_to_the_order() -> None:
    w = started()
    w.advance(Duration.min(10))
    pump = w.pump(PUMP)
    pump.pause(0)
    w.advance(Duration.min(1))
    pump.resume(0)
    pump.titrate(0, Titration(Quantity.of(7, "ug/kg/min")))
    pump.confirm_titration(0)
    reports = Pcd10Reporter(w, Sender(clock=w.now)).poll()
    events = [(r.kind, read_message(r.text)) for r in reports]
    assert [k for k, _ in events] == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_STOP", "MDC_EVT_PUMP_DELIV_START",
                                      "MDC_EVT_PUMP_DELIV_STOP", "MDC_EVT_PUMP_DELIV_START"]  # fmt: skip
    for kind, message in events:
        valid(message.text)
        assert message.type == ("ORU", "R42", "ORU_R01")
        assert message.msh.get(21, 3) == "1.3.6.1.4.1.19376.1.6.4.10"
        obr = message.first("OBR")
        assert obr is not None and obr.get(2) == "ORD-1001" and obr.get(4, 2) == "dopamine"
        assert message.first("PID").get(3) == "MRN12345"  # type: ignore[union-attr]
        assert obx(message, "MDC_ATTR_EVT_COND", component=2) == kind
    start, stop = events[0][1], events[1][1]
    assert start.first("OBR").get(7) == "20260115083002-0500"  # type: ignore[union-attr]  # the event's own time
    assert obx(start, "MDC_RATE_DOSE") == "4.998"  # the dose 13.12 mL/h delivers (rate rounded to 0.01 mL/h)
    assert obx(stop, "MDC_PUMP_NOT_DELIVERING_REASON") == "pump-stopped-by-clinician"
    delivered = float(obx(stop, "MDC_VOL_FLUID_DELIV_TOTAL"))
    assert 13.12 / 6 * 0.98 < delivered < 13.12 / 6 * 1.02  # 10 min at 13.12 mL/h, within the pump's accuracy
    assert obx(events[4][1], "MDC_RATE_DOSE") == "7.002"  # 7 ug/kg/min as the rounded rate delivers it


@pytest.mark.req("OI-IOP-3")
def test_pcd10_volume_complete_and_an_unordered_program() -> None:
    w = started(FLUID)
    w.advance(Duration.min(7))  # 10 mL at 100 mL/h: 6 min, then KVO
    kinds = [r.kind for r in Pcd10Reporter(w, Sender(clock=w.now)).poll()]
    # delivery, complete (transitioning), then the KVO segment (IPEC: COMP then START with status kvo)
    assert kinds == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_COMP", "MDC_EVT_PUMP_DELIV_START"]
    other = ward(library())
    pump = other.pump(PUMP)
    limits = RateLimits.of(pump.channels[0].cal)
    pump.program(0, ContinuousProgram(rate=FlowRate.ml_h(50), vtbi=Volume.ml(100), limits=limits),
                 basic_reason="test")  # fmt: skip
    pump.start(0)
    (report,) = Pcd10Reporter(other, Sender(clock=other.now)).poll()
    assert valid(report.text).first("OBR").get(4) == "999999"  # type: ignore[union-attr]


def test_pcd01_is_periodic_and_on_change() -> None:
    w = started()
    reporter = Pcd01Reporter(w, Sender(clock=w.now))
    (first,) = reporter.due(w.now())
    message = valid(first[1])
    assert message.type == ("ORU", "R01", "ORU_R01")
    assert obx(message, "MDC_FLOW_FLUID_PUMP_CURRENT") == "13.12"
    assert obx(message, "MDC_DRUG_NAME_LABEL") == "DOPamine"
    [pressure] = [o for o in message.all("OBX") if o.get(3, 1) == LINE_PRESSURE.code]  # 0034's code, as in FHIR
    mmhg = w.pump(PUMP).channels[0].line_pressure_mmhg
    assert mmhg is not None and pressure.get(5) == f"{mmhg:.1f}" and pressure.get(4) == "1.1.1.4"
    assert (pressure.get(3, 3), pressure.get(6, 1), pressure.get(6, 3)) == ("L", "mm[Hg]", "UCUM")
    [fhir] = [o for o in observations(w.status(PUMP)) if o["code"]["coding"][0]["code"] == LINE_PRESSURE.code]
    assert fhir["valueQuantity"]["value"] == Decimal(pressure.get(5))
    assert reporter.due(w.now() + timedelta(seconds=30)) == []
    assert len(reporter.due(w.now() + timedelta(seconds=60))) == 1
    w.pump(PUMP).pause(0)
    (changed,) = reporter.due(w.now())
    assert obx(read_message(changed[1]), "MDC_PUMP_INFUSING_STATUS") == "pump-status-not-infusing"


def test_pcd04_alert_start_and_end_linked_by_instance() -> None:
    w = started()
    w.advance(Duration.min(1))
    line = w.hardware(PUMP).channel(0)
    line.set_occlusion("downstream", True)
    w.advance(Duration.min(5))
    line.set_occlusion("downstream", False)
    w.advance(Duration.min(1))
    w.pump(PUMP).reset_alarm(0, AlarmCode.OCCLUSION_DOWNSTREAM)
    reports = Pcd04Reporter(w, Sender(clock=w.now)).poll()
    occlusion = [r for r in reports if r.kind.startswith("occlusion_downstream")]
    phases = [r.kind.split(":")[1] for r in occlusion]
    assert phases[0] == "start" and phases[-1] == "end"
    onset, end = valid(occlusion[0].text), valid(occlusion[-1].text)
    instance = onset.first("OBR").get(3)  # type: ignore[union-attr]
    assert end.first("OBR").get(29, 2, subcomponent=1) == instance  # type: ignore[union-attr]
    assert obx(onset, "MDC_EVT_ALARM") == "196940"
    assert obx(onset, "MDC_ATTR_ALARM_PRIORITY") == "PH" and obx(onset, "MDC_ATTR_ALERT_TYPE") == "ST"
    assert onset.msh.get(16) == "AL" and onset.first("OBR").get(4) == "196616"  # type: ignore[union-attr]


def test_pcd05_alert_status_is_logged_and_acknowledged() -> None:
    w = ward(library())
    receiver = Receiver(w, Sender(clock=w.now))
    ora = ("MSH|^~\\&|AM^ABCDEF0123456789^EUI-64||OPENINFUSION||20260115084800-0500||ORA^R41^ORA_R41|AM0001|P|2.6|||"
           "AL|NE||UNICODE UTF-8|en^English^ISO639||IHE_PCD_ACM_002^IHE PCD^1.3.6.1.4.1.19376.1.6.1.5.1^ISO\r"
           "MSA|AA|OI00000002\rOBR|1||WARD-PUMP-01.1.30^OPENINFUSION|196616^MDC_EVT_ALARM^MDC|||20260115084800-0500"
           + "|" * 22 + "^WARD-PUMP-01.1&OPENINFUSION\r"
           "OBX|1|ST|0^MDC_ATTR_ALERT_DISSEMINATION_STATUS^MDC|1|delivered||||||F\r")  # fmt: skip
    answer = receiver.receive(ora)
    assert answer.kind == "alert-status" and answer.application_here
    assert read_message(answer.application or "").first("MSA").get(1) == "AA"  # type: ignore[union-attr]
    (status,) = receiver.alert_statuses
    assert (status.onset_message, status.instance, status.statuses) == ("OI00000002", "WARD-PUMP-01.1", ("delivered",))
    broken = read_message(receiver.receive(ora.replace("MSA|AA|OI00000002\r", "MSA|AA|\r")).commit or "")
    assert broken.first("MSA").get(1) == "CE" and broken.first("ERR").raw(2) == "MSA^1^2^1"  # type: ignore[union-attr]
    anonymous = ora.replace("WARD-PUMP-01.1.30^OPENINFUSION", "").replace("^WARD-PUMP-01.1&OPENINFUSION", "")
    ack = read_message(receiver.receive(anonymous).application or "")
    assert ack.first("MSA").get(1) == "AE" and ack.first("ERR").raw(2) == "OBR^1^29^1"  # type: ignore[union-attr]
