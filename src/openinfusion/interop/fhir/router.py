"""FHIR R4 over HTTP as a FastAPI ``APIRouter`` the server mounts (interop.md §5; the server owns the app).

``fhir_router(source, gateway, auth)`` serves, as ``searchset`` Bundles: ``GET /Device``,
``/DeviceMetric``, ``/Observation``, ``/MedicationAdministration`` with the search parameters a client
expects (``patient``, ``device``, ``date`` with ``eq``/``ge``/``le``/``gt``/``lt`` prefixes, ``_id``), and
``POST /MedicationRequest``: an order, validated against the R4 schema and delivered through the
:class:`OrderGateway` as a pending program at the pump (201 with the request echoed, or an
OperationOutcome: 400 for invalid FHIR, 422 for an order refused, naming the JSON path and the PIV code).

``auth`` is a FastAPI dependency every route requires; the server mounts the router with its own session and
role check (:mod:`openinfusion.server.interop_fhir`; the route names are rows of its role table).
:func:`bearer_placeholder` is only for interop's own tests, which run the router without a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from openinfusion.errors import InputError
from openinfusion.interop.fhir.orders import read_medication_request
from openinfusion.interop.fhir.resources import (
    device_metrics,
    devices,
    fhir_id,
    medication_administrations,
    observations,
)
from openinfusion.interop.gateway import EventSource, OrderGateway
from openinfusion.interop.orders import PIV_TEXT, OrderError

FHIR_JSON = "application/fhir+json"


def bearer_placeholder(tokens: Iterable[str]) -> Callable[..., str]:
    """A dependency requiring ``Authorization: Bearer <token>`` with a known token (tests without a server)."""
    known = frozenset(tokens)

    def require(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token not in known:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        return token

    return require


def outcome(status: int, where: str, why: str, code: str = "invalid", detail: str | None = None) -> JSONResponse:
    """An OperationOutcome response naming the element (``expression``) and the reason."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": why, "expression": [where]}
    if detail is not None:
        issue["details"] = {"text": detail}
    body = {"resourceType": "OperationOutcome", "issue": [issue]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _bundle(resources: list[dict[str, Any]]) -> JSONResponse:
    body = {
        "resourceType": "Bundle", "type": "searchset", "total": len(resources),
        "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in resources],
    }  # fmt: skip
    return JSONResponse(json.loads(json.dumps(body, default=str)), media_type=FHIR_JSON)


_PREFIXES = ("ge", "le", "gt", "lt", "eq")


def _date_test(values: list[str]) -> Callable[[str, str | None], bool]:
    """A test of a [start, end] period against FHIR ``date`` parameters (all must hold)."""
    tests: list[tuple[str, datetime]] = []
    for value in values:
        prefix = value[:2] if value[:2] in _PREFIXES else "eq"
        text = value[2:] if value[:2] in _PREFIXES else value
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(400, f"date: {value!r} is not a FHIR date/dateTime") from None
        if when.tzinfo is None:
            raise HTTPException(400, f"date: {value!r} needs a UTC offset")
        tests.append((prefix, when))

    def holds(start: str, end: str | None) -> bool:
        s = datetime.fromisoformat(start)
        e = datetime.fromisoformat(end) if end else s
        checks = {"ge": lambda w: e >= w, "gt": lambda w: e > w, "le": lambda w: s <= w, "lt": lambda w: s < w,
                  "eq": lambda w: s <= w <= e}  # fmt: skip
        return all(checks[p](w) for p, w in tests)

    return holds


def fhir_router(source: EventSource, gateway: OrderGateway, auth: Callable[..., Any], prefix: str = "") -> APIRouter:
    """The router (see the module docstring), its paths under ``prefix``; every route depends on ``auth``."""
    router = APIRouter(prefix=prefix, dependencies=[Depends(auth)], tags=["FHIR R4"])

    def statuses(device: str | None, patient: str | None) -> list[Any]:
        found = []
        for pump_id in source.pump_ids():
            status = source.status(pump_id)
            if device is not None and fhir_id(pump_id) != device.removeprefix("Device/").split(".")[0]:
                continue
            if patient is not None and (status.patient_id is None or fhir_id(status.patient_id) != _id(patient)):
                continue
            found.append(status)
        return found

    @router.get("/Device", name="fhir_device")
    def search_devices(
        patient: str | None = None, _id: Annotated[str | None, Query(alias="_id")] = None
    ) -> JSONResponse:
        out = [d for s in statuses(None, patient) for d in devices(s)]
        return _bundle([d for d in out if _id is None or d["id"] == _id])

    @router.get("/DeviceMetric", name="fhir_device_metric")
    def search_metrics(device: str | None = None) -> JSONResponse:
        return _bundle([m for s in statuses(device, None) for m in device_metrics(s)])

    @router.get("/Observation", name="fhir_observation")
    def search_observations(
        patient: str | None = None, device: str | None = None, date: Annotated[list[str] | None, Query()] = None
    ) -> JSONResponse:
        holds = _date_test(date or [])
        out = [o for s in statuses(device, patient) for o in observations(s)]
        return _bundle([o for o in out if holds(o["effectiveDateTime"], None)])

    @router.get("/MedicationAdministration", name="fhir_medication_administration")
    def search_administrations(
        patient: str | None = None, device: str | None = None, date: Annotated[list[str] | None, Query()] = None
    ) -> JSONResponse:
        holds = _date_test(date or [])
        out = []
        for pump_id in source.pump_ids():
            if device is not None and fhir_id(pump_id) != device.removeprefix("Device/"):
                continue
            for admin in medication_administrations(source, pump_id):
                period = admin["effectivePeriod"]
                if patient is not None and admin["subject"]["reference"] != f"Patient/{_id(patient)}":
                    continue
                if holds(period["start"], period.get("end")):
                    out.append(admin)
        return _bundle(out)

    @router.post("/MedicationRequest", name="fhir_medication_request")
    async def create_medication_request(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            return outcome(400, "MedicationRequest", f"not JSON: {e}", "structure")
        if not isinstance(body, dict):
            return outcome(400, "MedicationRequest", "the body must be a JSON object", "structure")
        try:
            order = read_medication_request(body)
        except OrderError as e:
            return outcome(422, e.where, e.why, "business-rule", f"{e.code.value} {PIV_TEXT.get(e.code, '')}")
        except InputError as e:
            return outcome(400, e.where, e.why)
        delivery = gateway.deliver(order)
        if not delivery.accepted:
            assert delivery.code is not None
            return outcome(422, delivery.where, delivery.why, "business-rule",
                           f"{delivery.code.value} {PIV_TEXT.get(delivery.code, '')}")  # fmt: skip
        accepted = {**body, "id": fhir_id(order.order_id)}
        return JSONResponse(accepted, status_code=201, media_type=FHIR_JSON,
                            headers={"Location": f"MedicationRequest/{accepted['id']}"})  # fmt: skip

    return router


def _id(reference: str) -> str:
    return fhir_id(reference.rsplit("/", 1)[-1])
