"""Auto-programming and auto-documentation in the demo-ward system (server + ward + MLLP links, in-process):
a PCD-03 from the independent EHR (node-hl7) -> the server -> a signed remote-program command over the pump
link -> pending at the pump -> confirmed by the ward's scripted nurse -> the program runs carrying the order
id in its event log -> PCD-10 to the EHR's listener and a FHIR MedicationAdministration from the server's
event store, read with a logged-in session. Plus the refusals at the pump: a mismatch, an expired and a
replayed command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import NodeEhr, free_port
from samples import ROOT, rgv
from sqlalchemy import select
from test_fuzz import _acks_are_located, changes, drops
from typer.testing import CliRunner

from hospitalkit import make_system, run, settle
from openinfusion.agent import messages as m
from openinfusion.agent.ward import Bedside
from openinfusion.cli import app
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import InputError
from openinfusion.interop.fhir.schema import schema_errors
from openinfusion.interop.hl7.message import format_ts, read_message
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.pump.eventlog import EventKind, LoggedEvent
from openinfusion.pump.statechart import ChannelState
from openinfusion.server.db.models import Order
from openinfusion.server.interop_gateway import ServerGateway
from openinfusion.server.interop_links import InteropLinks, LinkSettings, link_settings, start_links
from openinfusion.web.system import LocalSystem, build_app, local_system

PLACER = "ORD-E2E-1"
SERVER_FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def for_bed(bed: Bedside, placer: str = PLACER) -> dict[str, str]:
    """The fields that aim the sample order at ``bed`` (its pump and patient), requested now."""
    now = format_ts(dt.datetime.now(dt.UTC))
    return {
        "MSH-7": now, "ORC-9": now, "ORC-2": f"{placer}^BCMA", "PID-3": f"{bed.wristband}^^^Hospital^MR",
        "OBX1-18": f"{bed.pump.config.pump_id}/1^^08002FFFE0000001^EUI-64",
    }  # fmt: skip


def order_text(bed: Bedside, placer: str = PLACER) -> str:
    """The dopamine PCD-03 of examples/hl7 for ``bed``."""
    return rgv(for_bed(bed, placer))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[LocalSystem]:
    """The demo ward's system: server, 3 pumps, in-process link; the pumps have reported their library."""
    system = make_system(tmp_path / "data", pumps=3)
    run(system, 5)
    yield system
    system.hospital.stop()


def icu_bed(system: LocalSystem) -> Bedside:
    bed = system.ward.beds[0]
    assert bed.area == "ADULT-ICU"  # dopamine has an entry there
    return bed


def kinds(events: tuple[LoggedEvent, ...]) -> list[EventKind]:
    return [e.kind for e in events]


def order_row(system: LocalSystem, order_id: str) -> Order:
    with system.hospital.sessions() as db:
        row = db.get(Order, order_id)
        assert row is not None
        return row


@pytest.mark.req("OI-IOP-1", "OI-IOP-3")
@pytest.mark.asyncio
async def test_pcd03_to_pending_to_confirmed_to_pcd10_and_fhir(demo: LocalSystem, tmp_path: Path) -> None:
    bed = icu_bed(demo)
    ehr_port = free_port()
    links = InteropLinks(demo.hospital, LinkSettings(ehr=("127.0.0.1", ehr_port), report_every_s=0.2))
    links.start()
    order_file = tmp_path / "order.hl7"
    order_file.write_text(order_text(bed))
    demo.ward.confirm_orders = False  # the nurse comes later: first look at the pump
    try:
        async with NodeEhr({"listen": ehr_port, "gateway": links.port, "send": [str(order_file)]}) as ehr:
            commit = await ehr.wait_for(lambda e: e["event"] == "ack")
            assert commit[0]["code"] == "CA"
            rrg = await ehr.wait_for(lambda e: e.get("type") == "RRG^O16^RRG_O16")
            assert read_message(rrg[0]["text"].replace("\n", "\r")).first("MSA").get(1) == "AA"  # type: ignore[union-attr]

            run(demo, 3)  # the signed command reaches the pump: pending, nothing moves
            [(order_id, command)] = bed.agent.pending.items()
            assert command.program.placer == f"{PLACER}^BCMA" and command.program.patient == bed.wristband
            assert bed.pump.channels[0].state is ChannelState.IDLE
            assert order_row(demo, order_id).state == "pending"

            demo.ward.confirm_orders = True
            run(demo, 60)  # the scripted nurse checks wristband, bag and screen, and confirms
            assert bed.pump.channels[0].state is ChannelState.INFUSING
            confirmed = [e for e in bed.pump.log.events() if e.kind is EventKind.PROGRAM_CONFIRMED]
            assert confirmed[-1].data["order"] == order_id  # the order's id in the pump's own event log
            bed.pump.pause(0)
            run(demo, 2)

            ours = f"|{bed.pump.config.pump_id}^OPENINFUSION|"  # OBR-3 (the other beds' nurses infuse too)
            received = await ehr.wait_for(lambda e: e.get("type") == "ORU^R42^ORU_R01" and ours in e["text"], count=2)
            await ehr.wait_for(lambda e: e.get("type") == "ORU^R01^ORU_R01" and PLACER in e["text"])  # PCD-01
    finally:
        links.stop()
    assert order_row(demo, order_id).state == "confirmed"
    for event in received:
        message = read_message(event["text"].replace("\n", "\r"))
        assert message.first("OBR").get(2) == PLACER  # type: ignore[union-attr]
        assert message.first("PID").get(3) == bed.wristband  # type: ignore[union-attr]
    assert {s.kind for s in links.sent if s.kind.startswith("MDC_EVT")} >= {
        "MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_STOP"
    }  # fmt: skip
    assert all(s.ack == "AA" for s in links.sent)

    with TestClient(build_app(demo.hospital, manage=False), base_url="https://testserver") as client:
        query = {"patient": f"Patient/{bed.wristband}", "device": f"Device/{bed.pump.config.pump_id}"}
        assert client.get("/fhir/MedicationAdministration", params=query).status_code == 401  # no session
        _, password = demo.passwords["nurse"]
        assert client.post("/api/login", json={"name": "nurse", "password": password}).status_code == 200
        found = client.get("/fhir/MedicationAdministration", params=query).json()
        observations = client.get("/fhir/Observation", params={"device": bed.pump.config.pump_id}).json()
    assert found["total"] == 1 and schema_errors(found) == []
    administration = found["entry"][0]["resource"]
    assert administration["identifier"][0]["value"] == PLACER and administration["status"] == "on-hold"
    assert administration["performer"][0]["actor"]["reference"] == "Practitioner/nurse"
    assert schema_errors(observations) == []
    assert "mm[Hg]" in {e["resource"]["valueQuantity"]["code"] for e in observations["entry"]}


@pytest.mark.req("OI-IOP-1")
@pytest.mark.parametrize(
    ("attribute", "scanned", "said"),
    [("wristband", "MRN-9999", "patient MRN-9999"), ("hung", "heparin", "drug heparin")],
    ids=["another patient's wristband", "another drug's bag"],
)
def test_a_mismatch_at_the_pump_starts_nothing_and_is_logged(
    demo: LocalSystem, attribute: str, scanned: str, said: str
) -> None:
    bed = icu_bed(demo)
    answer = Receiver(ServerGateway(demo.hospital), Sender()).receive(order_text(bed))
    setattr(bed, attribute, scanned)  # what the nurse scans at the bedside is not what was ordered
    assert answer.application is not None and "MSA|AA" in answer.application
    run(demo, 5)
    [order_id] = bed.agent.pending  # still pending: the nurse does not confirm what does not match
    assert bed.pump.channels[0].state is ChannelState.IDLE
    assert EventKind.INFUSION_STARTED not in kinds(bed.pump.log.events())
    refused = [e for e in bed.pump.log.events() if e.kind is EventKind.EVENT_REFUSED]
    assert [e.data["event"] for e in refused].count("confirm_order") == 1  # logged once, not retried
    assert said in str(refused[-1].data["reason"]) and PLACER in str(refused[-1].data["reason"])
    row = order_row(demo, order_id)
    assert row.state == "pending" and "not confirmed" in row.reason and said in row.reason


def test_an_expired_or_replayed_command_is_refused_by_the_pump(demo: LocalSystem) -> None:
    bed = icu_bed(demo)
    gateway = ServerGateway(demo.hospital)
    receiver = Receiver(gateway, Sender())
    demo.hospital.settings = dataclasses.replace(demo.hospital.settings, order_lifetime_s=1)
    demo.ward.confirm_orders = False
    assert "MSA|AA" in str(receiver.receive(order_text(bed, "ORD-EXPIRES")).application)
    time.sleep(1.2)  # the command expires on its way to the pump
    run(demo, 2)
    assert not bed.agent.pending and "expired" in bed.agent.refusals[-1].reason
    with demo.hospital.sessions() as db:
        [expired] = db.execute(select(Order).where(Order.pump_id == bed.pump.config.pump_id)).scalars()
    assert expired.state in {"refused", "expired"}

    demo.hospital.settings = dataclasses.replace(demo.hospital.settings, order_lifetime_s=300)
    assert "MSA|AA" in str(receiver.receive(order_text(bed, "ORD-REPLAY")).application)
    run(demo, 2)
    [(order_id, command)] = bed.agent.pending.items()
    demo.hospital.send(bed.pump.config.pump_id, command)  # the same signed command again (a replay)
    run(demo, 2)
    assert "replayed" in bed.agent.refusals[-1].reason and list(bed.agent.pending) == [order_id]
    demo.ward.confirm_orders = True
    settle(demo)
    run(demo, 3)
    assert kinds(bed.pump.log.events()).count(EventKind.INFUSION_STARTED) == 1  # the original, once


@pytest.mark.req("OI-IOP-1")
def test_a_fhir_medication_request_takes_the_same_path(demo: LocalSystem) -> None:
    """POST /fhir/MedicationRequest (nurse session, CSRF) -> signed command -> pending -> confirmed -> documented."""
    bed = icu_bed(demo)
    pump = bed.pump.config.pump_id
    request = json.loads((ROOT / "examples" / "fhir" / "medicationrequest-dopamine.json").read_text())
    request |= {"subject": {"reference": f"Patient/{bed.wristband}"}, "authoredOn": dt.datetime.now(dt.UTC).isoformat(),
                "performer": {"identifier": {"system": "urn:openinfusion:pump", "value": f"{pump}/1"}}}  # fmt: skip
    request["contained"][1]["subject"] = request["subject"]
    demo.ward.confirm_orders = False
    with TestClient(build_app(demo.hospital, manage=False), base_url="https://testserver") as client:
        _, password = demo.passwords["nurse"]
        csrf = client.post("/api/login", json={"name": "nurse", "password": password}).json()["csrf"]
        assert client.post("/fhir/MedicationRequest", json=request).status_code == 403  # no CSRF token
        created = client.post("/fhir/MedicationRequest", json=request, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201, created.text
        busy = client.post("/fhir/MedicationRequest", json=request, headers={"X-CSRF-Token": csrf})
        assert busy.status_code == 422 and busy.json()["issue"][0]["details"]["text"].startswith("9002")
        run(demo, 2)
        [command] = bed.agent.pending.values()
        assert command.program.placer == "ORD-2001^urn:example:bcma" and bed.pump.channels[0].state is ChannelState.IDLE
        demo.ward.confirm_orders = True
        run(demo, 30)
        found = client.get("/fhir/MedicationAdministration", params={"patient": bed.wristband}).json()
    assert found["total"] == 1 and schema_errors(found) == []
    assert found["entry"][0]["resource"]["status"] == "in-progress"


@pytest.mark.req("OI-IOP-2")
def test_mutated_orders_through_the_server_get_located_acks_and_a_command_only_when_accepted(
    demo: LocalSystem,
) -> None:
    """The fuzzer of test_fuzz.py on the server's gateway, the order aimed at a real pump: every answer located,
    a signed command (an Order row) exactly when the application ACK is AA, nothing started."""
    bed = icu_bed(demo)
    receiver = Receiver(ServerGateway(demo.hospital), Sender())
    aim = for_bed(bed)
    demo.ward.confirm_orders = False

    def commands() -> int:
        with demo.hospital.sessions() as db:
            return len(db.execute(select(Order.id)).all())

    @SERVER_FUZZ
    @given(changes=changes, drop=drops, sep=st.sampled_from(["\r", "\n", "\r\n"]))
    def mutated(changes: dict[str, str], drop: list[str], sep: str) -> None:
        before = commands()
        answer = receiver.receive(rgv(aim | changes, tuple(drop), sep))
        _acks_are_located(answer)
        msa = None if answer.application is None else read_message(answer.application).first("MSA")
        outcome = "none" if msa is None else msa.get(1)
        outcomes.append(outcome)
        assert commands() == before + (1 if outcome == "AA" else 0)

    outcomes: list[str] = []
    mutated()
    print("server fuzz outcomes:", {k: outcomes.count(k) for k in sorted(set(outcomes))})
    assert outcomes.count("AA") >= 1 and len(outcomes) - outcomes.count("AA") >= 100  # both sides were exercised
    run(demo, 2)  # whatever was accepted waits at the pump (one at most: the channel is taken by the first)
    assert len(bed.agent.pending) <= 1 and EventKind.INFUSION_STARTED not in kinds(bed.pump.log.events())


def test_link_options_are_checked_and_a_taken_default_port_falls_back(demo: LocalSystem) -> None:
    for ehr in ("ehr.example", "ehr.example:0", ":2575", "ehr.example:http"):
        with pytest.raises(InputError, match="--ehr"):
            link_settings(None, ehr, None, None)
    with pytest.raises(InputError, match="--hl7-port"):
        link_settings(70000, None, None, None)
    assert link_settings(None, "10.0.0.7:6661", None, None).ehr == ("10.0.0.7", 6661)
    taken = InteropLinks(demo.hospital, LinkSettings())
    taken.start()
    try:
        with pytest.raises(InputError, match="--hl7-port"):
            start_links(demo.hospital, LinkSettings(port=taken.port), fall_back=False)
        other = start_links(demo.hospital, LinkSettings(port=taken.port), fall_back=True)
        assert other.port not in {0, taken.port}
        other.stop()
    finally:
        taken.stop()


@pytest.mark.req("OI-IOP-1")
def test_the_demo_order_sent_with_the_cli_runs_on_the_orders_only_bed(demo: LocalSystem) -> None:
    """What docs/interop.md tells a user to do with the demo: `hl7 send` the demo sample to the listener."""
    bed = icu_bed(demo)
    bed.orders_only = True
    run(demo, 200)  # her colleagues program their pumps; she starts nothing herself
    assert EventKind.PROGRAM_ENTERED not in kinds(bed.pump.log.events())
    links = InteropLinks(demo.hospital, LinkSettings())
    links.start()
    try:
        sample = ROOT / "examples" / "hl7" / "pcd03-rgv-o15-demo-ward.hl7"
        stale = CliRunner().invoke(app, ["hl7", "send", str(sample), "--to", f"127.0.0.1:{links.port}"])
        assert "MSA|AA" not in stale.output and "9022" in stale.output  # the sample's own time is long past
        sent = CliRunner().invoke(app, ["hl7", "send", str(sample), "--to", f"127.0.0.1:{links.port}", "--now"])
        assert sent.exit_code == 0 and "RRG^O16" in sent.output and "MSA|AA" in sent.output, sent.output
    finally:
        links.stop()
    run(demo, 200)  # confirmed on her next round, then left running (an orders-only bed clears nothing early)
    assert bed.pump.channels[0].state is ChannelState.INFUSING
    confirmed = [e for e in bed.pump.log.events() if e.kind is EventKind.PROGRAM_CONFIRMED]
    assert len(confirmed) == 1 and confirmed[0].data["order"] in {o.id for o in order_rows(demo)}
    refused = CliRunner().invoke(app, ["hl7", "send", str(sample), "--to", "127.0.0.1:1"])
    assert refused.exit_code != 0 and "--to" in refused.output


def order_rows(system: LocalSystem) -> list[Order]:
    with system.hospital.sessions() as db:
        return list(db.execute(select(Order)).scalars())


# fluorouracil as a continuous infusion dosed per m2 of body surface (the example library has it per dose only)
FLUOROURACIL_ICU = {
    "area": "ADULT-ICU", "mode": "continuous", "dose_unit": "mg/m2/h",
    "concentrations": [{"amount": "2500 mg", "volume": "250 mL"}],
    "limits": {"dose": {"soft_min": "10 mg/m2/h", "soft_max": "100 mg/m2/h", "hard_max": "200 mg/m2/h"}},
    "source": "test: a per-m2 continuous entry",
}  # fmt: skip


@pytest.fixture
def bsa_demo(tmp_path: Path) -> Iterator[LocalSystem]:
    """The demo ward's system whose library also doses fluorouracil per m2 per hour in ADULT-ICU."""
    text = yaml.safe_load((ROOT / "examples" / "library" / "example-library.yaml").read_text())
    next(d for d in text["drugs"] if d["id"] == "fluorouracil")["care_areas"].append(FLUOROURACIL_ICU)
    icu = next(a for a in text["care_areas"] if a["id"] == "ADULT-ICU")
    icu["bsa"] = next(a for a in text["care_areas"] if a["id"] == "ONCOLOGY")["bsa"]  # per-m2 dosing needs them
    path = tmp_path / "library.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    system = local_system(tmp_path / "data", read_yaml(path).require(), pumps=3, seed=1, escalate_after_s=60.0,
                          resend_after_s=0.3)  # fmt: skip
    system.hospital.start()
    run(system, 5)
    yield system
    system.hospital.stop()


def bsa_order(bed: Bedside, placer: str, bsa: str | None) -> str:
    """A PCD-03 for 40 mg/m2/h of fluorouracil 2500 mg in 250 mL, with the patient's BSA OBX unless ``bsa`` is None."""
    fields = for_bed(bed, placer) | {
        "RXG-4": "fluorouracil^fluorouracil^LOCAL", "RXG-15": "40", "RXG-16": "mg/m2/h^mg/m2/h^UCUM",
        "RXG-17": "2500", "RXG-18": "mg^mg^UCUM", "RXG-23": "250", "RXG-24": "mL^mL^UCUM",
        "OBX2-3": "188744^MDC_AREA_BODY_SURF_ACTUAL^MDC", "OBX2-5": bsa or "", "OBX2-6": "263616^MDC_DIM_SQ_X_M^MDC",
    }  # fmt: skip
    return rgv(fields, drop=() if bsa is not None else ("OBX2",))


@pytest.mark.req("OI-IOP-1")
def test_an_order_per_m2_reaches_the_pump_with_the_bsa_and_runs_at_dose_x_bsa_over_concentration(
    bsa_demo: LocalSystem,
) -> None:
    bed = icu_bed(bsa_demo)
    receiver = Receiver(ServerGateway(bsa_demo.hospital), Sender())
    bsa_demo.ward.confirm_orders = False
    answer = receiver.receive(bsa_order(bed, "ORD-BSA-1", "1.8"))
    assert answer.application is not None and "MSA|AA" in answer.application, answer.application
    run(bsa_demo, 3)
    [(order_id, command)] = bed.agent.pending.items()
    assert command.program.bsa is not None and (command.program.bsa.value, command.program.bsa.unit) == ("1.8", "m2")
    assert command.program.weight is None and bed.pump.channels[0].state is ChannelState.IDLE
    assert order_row(bsa_demo, order_id).state == "pending"
    bsa_demo.ward.confirm_orders = True
    run(bsa_demo, 60)
    assert order_row(bsa_demo, order_id).state == "confirmed"
    assert bed.pump.channels[0].state is ChannelState.INFUSING
    # by hand: 40 mg/m2/h x 1.8 m2 = 72 mg/h; 2500 mg / 250 mL = 10 mg/mL; 72 / 10 = 7.2 mL/h
    assert str(bed.pump.channels[0].rate()) == "7.2 mL/h"
    checked = [e for e in bed.pump.log.events() if e.kind is EventKind.DERS_CHECK]
    assert checked[-1].data["values"]["bsa"] == {"value": "1.8", "unit": "m2"}  # the pump's DERS ran with it
    assert checked[-1].data["outcome"] == "proceed"


@pytest.mark.req("OI-IOP-1", "OI-IOP-2")
def test_an_order_per_m2_without_bsa_is_refused_9027_naming_the_field(bsa_demo: LocalSystem) -> None:
    bed = icu_bed(bsa_demo)
    answer = Receiver(ServerGateway(bsa_demo.hospital), Sender()).receive(bsa_order(bed, "ORD-BSA-2", None))
    assert answer.application is not None
    reply = read_message(answer.application)
    assert reply.first("MSA").get(1) == "AE"  # type: ignore[union-attr]
    err = reply.first("ERR")
    assert err is not None and err.get(5, 1) == "9027" and err.get(2, 1) == "OBX" and err.get(2, 3) == "5"
    assert order_rows(bsa_demo) == []


@pytest.mark.req("OI-IOP-1")
def test_a_fhir_medication_request_per_m2_carries_the_bsa_observation_to_the_pump(bsa_demo: LocalSystem) -> None:
    """The same order as a MedicationRequest: without a BSA Observation 422 (9027, the JSON path named); with
    LOINC 8277-6 1.8 m2 201, pending with the BSA, confirmed, 7.2 mL/h."""
    bed = icu_bed(bsa_demo)
    request = json.loads((ROOT / "examples" / "fhir" / "medicationrequest-dopamine.json").read_text())
    pump = bed.pump.config.pump_id
    request |= {"subject": {"reference": f"Patient/{bed.wristband}"}, "authoredOn": dt.datetime.now(dt.UTC).isoformat(),
                "performer": {"identifier": {"system": "urn:openinfusion:pump", "value": f"{pump}/1"}}}  # fmt: skip
    medication, observation = request["contained"]
    medication["code"] = {"coding": [{"system": "urn:openinfusion:drug", "code": "fluorouracil"}]}
    medication["ingredient"][0]["strength"]["numerator"] |= {"value": 2500}
    observation["subject"] = request["subject"]
    ucum = {"system": "http://unitsofmeasure.org"}
    request["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"] = {"value": 40, "code": "mg/m2/h"} | ucum
    bsa_demo.ward.confirm_orders = False
    with TestClient(build_app(bsa_demo.hospital, manage=False), base_url="https://testserver") as client:
        _, password = bsa_demo.passwords["nurse"]
        csrf = {"X-CSRF-Token": client.post("/api/login", json={"name": "nurse", "password": password}).json()["csrf"]}
        missing = client.post("/fhir/MedicationRequest", json=request, headers=csrf)  # a weight, no BSA
        assert missing.status_code == 422 and missing.json()["issue"][0]["details"]["text"].startswith("9027")
        assert missing.json()["issue"][0]["expression"] == ["Observation.valueQuantity"]
        observation |= {"id": "bsa", "valueQuantity": {"value": 1.8, "code": "m2"} | ucum,
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8277-6"}]}}  # fmt: skip
        request["supportingInformation"] = [{"reference": "#bsa"}]
        created = client.post("/fhir/MedicationRequest", json=request, headers=csrf)
        assert created.status_code == 201, created.text
    run(bsa_demo, 2)
    [command] = bed.agent.pending.values()
    assert command.program.bsa == m.WireQuantity(value="1.8", unit="m2")
    bsa_demo.ward.confirm_orders = True
    run(bsa_demo, 60)
    assert str(bed.pump.channels[0].rate()) == "7.2 mL/h"  # 40 mg/m2/h x 1.8 m2 / (2500 mg / 250 mL)
