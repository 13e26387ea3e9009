"""Auto-programming and auto-documentation end to end, against the independent EHR (node-hl7):
order in over MLLP -> pending at the pump -> confirmed by the nurse -> PCD-10 to the EHR and a FHIR
MedicationAdministration out, all carrying the order's identifiers."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from peers import NodeEhr, free_port
from samples import EXAMPLES, PUMP, library, ward

from openinfusion.interop.endpoint import Endpoint
from openinfusion.interop.fhir.router import bearer_placeholder, fhir_router
from openinfusion.interop.fhir.schema import schema_errors
from openinfusion.interop.hl7.message import read_message
from openinfusion.interop.hl7.pcd10 import Pcd10Reporter
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.mllp import MllpClient, MllpServer
from openinfusion.interop.ward import Confirmation
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration

pytestmark = pytest.mark.asyncio


@pytest.mark.req("OI-IOP-1", "OI-IOP-3")
async def test_order_to_pending_to_confirmed_to_documentation() -> None:
    w = ward(library())
    ehr_port = free_port()
    endpoint = Endpoint(Receiver(w, Sender(clock=w.now)), MllpClient("127.0.0.1", ehr_port))
    async with MllpServer(endpoint.handle, endpoint.refuse) as gateway:
        config = {"listen": ehr_port, "gateway": gateway.port, "send": [str(EXAMPLES / "pcd03-rgv-o15-dopamine.hl7")]}
        async with NodeEhr(config) as ehr:
            await ehr.wait_for(lambda e: e["event"] == "ack")
            await ehr.wait_for(lambda e: e["event"] == "received")  # RRG^O16 AA
            await endpoint.drain()

            record = w.pending(PUMP, 1)
            assert record is not None
            w.advance(Duration.min(5))
            assert w.pump(PUMP).channels[0].state is ChannelState.IDLE  # nothing runs before the nurse confirms
            assert w.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose)).started
            w.advance(Duration.min(30))
            w.pump(PUMP).pause(0)

            reporter = Pcd10Reporter(w, Sender(clock=w.now, prefix="DOC"))
            client = MllpClient("127.0.0.1", ehr_port)
            reports = reporter.poll()
            for report in reports:
                ack = read_message(await client.send(report.text.encode()))
                assert ack.first("MSA").get(1) == "AA"  # type: ignore[union-attr]
            received = await ehr.wait_for(lambda e: e.get("type") == "ORU^R42^ORU_R01", count=len(reports))
    assert [r.kind for r in reports] == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_STOP"]
    for event in received:
        message = read_message(event["text"].replace("\n", "\r"))
        assert message.first("OBR").get(2) == "ORD-1001"  # type: ignore[union-attr]
        assert message.first("PID").get(3) == "MRN12345"  # type: ignore[union-attr]

    app = FastAPI()
    app.include_router(fhir_router(w, w, bearer_placeholder({"t"})), prefix="/fhir")
    bundle = TestClient(app).get("/fhir/MedicationAdministration", params={"patient": "MRN12345"},
                                 headers={"Authorization": "Bearer t"}).json()  # fmt: skip
    assert schema_errors(bundle) == []
    (entry,) = bundle["entry"]
    admin = entry["resource"]
    assert admin["identifier"][0]["value"] == "ORD-1001" and admin["status"] == "on-hold"
    assert admin["performer"][0]["actor"]["reference"] == "Practitioner/RN7"
    assert 6.4 < admin["dosage"]["dose"]["value"] < 6.7  # 30 min at 13.12 mL/h
