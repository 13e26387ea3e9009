"""FHIR R4: resources from the event log (validated against the official R4 JSON Schema), MedicationRequest in,
and the router on a bare FastAPI app behind the placeholder bearer check."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from samples import PUMP, ROOT, library, ward
from test_device_reports import started

from openinfusion.interop.fhir.resources import device_metrics, devices, medication_administrations, observations
from openinfusion.interop.fhir.router import bearer_placeholder, fhir_router
from openinfusion.interop.fhir.schema import schema_errors
from openinfusion.interop.ward import Confirmation, VirtualWard
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration

REQUEST: dict[str, Any] = json.loads((ROOT / "examples" / "fhir" / "medicationrequest-dopamine.json").read_text())
TOKEN = {"Authorization": "Bearer test-token"}


def client(w: VirtualWard) -> TestClient:
    app = FastAPI()
    app.include_router(fhir_router(w, w, bearer_placeholder({"test-token"})), prefix="/fhir")
    return TestClient(app)


@pytest.mark.req("OI-IOP-3")
def test_resources_from_the_event_log_are_valid_r4() -> None:
    w = started()
    w.advance(Duration.min(5))
    w.pump(PUMP).pause(0)
    status = w.status(PUMP)
    resources = devices(status) + device_metrics(status) + observations(status) + medication_administrations(w, PUMP)
    assert {r["resourceType"] for r in resources} == {
        "Device",
        "DeviceMetric",
        "Observation",
        "MedicationAdministration",
    }
    for resource in resources:
        assert schema_errors(resource) == [], resource
    (admin,) = medication_administrations(w, PUMP)
    assert admin["status"] == "on-hold" and admin["identifier"][0]["value"] == "ORD-1001"
    assert admin["request"]["reference"] == "MedicationRequest/ORD-1001"
    assert admin["device"][0]["reference"] == "Device/WARD-PUMP-01"
    assert admin["effectivePeriod"]["start"] == "2026-01-15T08:30:02-05:00"
    assert 1.0 < admin["dosage"]["dose"]["value"] < 1.2  # 5 min at 13.12 mL/h
    channel = [d for d in resources if d["resourceType"] == "Device" and "parent" in d]
    assert channel[0]["parent"]["reference"] == "Device/WARD-PUMP-01"


def test_the_schema_catches_what_the_models_let_through() -> None:
    bad = copy.deepcopy(REQUEST)
    bad["contained"][1]["status"] = "bogus"  # the weight Observation: R4 binds its status (required)
    assert [e.split(":")[0] for e in schema_errors(bad)] == ["MedicationRequest.contained[1].status"]


@pytest.mark.req("OI-IOP-1")
def test_medication_request_becomes_a_pending_order_and_starts_nothing() -> None:
    w = ward(library())
    response = client(w).post("/fhir/MedicationRequest", json=REQUEST, headers=TOKEN)
    assert response.status_code == 201, response.text
    record = w.pending(PUMP, 1)
    assert record is not None and record.order.order_id == "ORD-2001" and str(record.dose) == "5 ug/kg/min"
    assert w.pump(PUMP).channels[0].state is ChannelState.IDLE
    assert w.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose)).started


@pytest.mark.req("OI-IOP-2")
@pytest.mark.parametrize(
    ("change", "status", "where", "piv"),
    [
        (
            lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].update(code="U/h"),
            422,
            "MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity.code",
            "9008",
        ),
        (
            lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].update(value=35),
            422,
            "MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity",
            "9024",
        ),
        (
            lambda r: r["contained"][0]["code"].update(text="unobtainium", coding=[]),
            422,
            "MedicationRequest.medicationCodeableConcept",
            "9010",
        ),
        (lambda r: r.update(subject={"reference": "Patient/OTHER"}), 201, "", ""),
        (lambda r: r.update(status="on-hold"), 422, "MedicationRequest.status", "9004"),
        (lambda r: r["contained"][1].update(status="bogus"), 400, "MedicationRequest.contained[1].status", None),
        (lambda r: r.update(authoredOn=17), 400, "MedicationRequest.authoredOn", None),
        (lambda r: r.update(authoredOn="2026-01-15T06:00:00-05:00"), 422, "MedicationRequest.authoredOn", "9022"),
        (
            lambda r: r["performer"]["identifier"].update(value="NO-PUMP/1"),
            422,
            "MedicationRequest.performer.identifier",
            "9001",
        ),
        (lambda r: r.pop("dosageInstruction"), 422, "MedicationRequest.dosageInstruction", "9003"),
    ],
)
def test_bad_requests_get_an_outcome_naming_the_path(change: Any, status: int, where: str, piv: str | None) -> None:
    w = ward(library())
    body = copy.deepcopy(REQUEST)
    change(body)
    response = client(w).post("/fhir/MedicationRequest", json=body, headers=TOKEN)
    assert response.status_code == status, response.text
    if status != 201:
        issue = response.json()["issue"][0]
        assert issue["expression"] == [where]
        assert piv is None or issue["details"]["text"].startswith(piv)
        assert w.pending(PUMP, 1) is None


def test_another_patient_on_the_pump_is_refused() -> None:
    w = ward(library())
    w.associate(PUMP, "MRN55555")
    response = client(w).post("/fhir/MedicationRequest", json=REQUEST, headers=TOKEN)
    assert response.status_code == 422 and response.json()["issue"][0]["details"]["text"].startswith("9012")


def test_routes_require_a_bearer_token() -> None:
    c = client(ward(library()))
    assert c.get("/fhir/Device").status_code == 401
    assert c.get("/fhir/Device", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/fhir/MedicationRequest", json=REQUEST).status_code == 401
    assert c.get("/fhir/Device", headers=TOKEN).status_code == 200


def test_search_by_patient_device_and_date() -> None:
    w = started()
    w.advance(Duration.min(2))
    c = client(w)
    devices_found = c.get("/fhir/Device", params={"patient": "Patient/MRN12345"}, headers=TOKEN).json()
    assert devices_found["total"] == 2
    assert c.get("/fhir/Device", params={"patient": "Patient/OTHER"}, headers=TOKEN).json()["total"] == 0
    metrics = c.get("/fhir/DeviceMetric", params={"device": "Device/WARD-PUMP-01"}, headers=TOKEN).json()
    assert metrics["total"] == 2
    query = {"patient": "MRN12345", "date": "ge2026-01-15T08:00:00-05:00"}
    admins = c.get("/fhir/MedicationAdministration", params=query, headers=TOKEN).json()
    assert admins["total"] == 1 and schema_errors(admins) == []
    later = c.get("/fhir/MedicationAdministration", params={"date": "lt2026-01-15T08:00:00-05:00"}, headers=TOKEN)
    assert later.json()["total"] == 0
    observations_found = c.get("/fhir/Observation", params={"device": "WARD-PUMP-01"}, headers=TOKEN).json()
    assert observations_found["total"] == 3 and schema_errors(observations_found) == []
    pressure = [e["resource"]["valueQuantity"] for e in observations_found["entry"]
                if e["resource"]["code"]["coding"][0]["code"] == "line-pressure-downstream"]  # fmt: skip
    assert len(pressure) == 1 and pressure[0]["code"] == "mm[Hg]" and 0 <= pressure[0]["value"] < 300
    assert c.get("/fhir/Observation", params={"date": "yesterday"}, headers=TOKEN).status_code == 400


def test_the_fhir_samples_are_valid_r4() -> None:
    folder = ROOT / "examples" / "fhir"
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for resource in data if isinstance(data, list) else [data]:
            assert schema_errors(resource) == [], path.name
