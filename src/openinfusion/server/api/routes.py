"""The JSON API. Every route's name is its row in the role table (:mod:`openinfusion.server.roles`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from sqlalchemy import select

from openinfusion.agent import messages as m
from openinfusion.druglib.package import public_key_pem
from openinfusion.errors import InputError
from openinfusion.server import alarms, audit, auth, events, fleet, library, orders, views
from openinfusion.server.api.deps import Database, Guard, Home, Who
from openinfusion.server.api.schemas import (
    AssignmentIn,
    AuditVerification,
    CommissionIn,
    Credentials,
    LoginIn,
    Me,
    OrderIn,
    TargetIn,
)
from openinfusion.server.db.models import Assignment, AuditEntry, LinkRejection, Pump, Release

router = APIRouter(dependencies=[Guard])
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Json = dict[str, Any]


def _bad(e: InputError) -> HTTPException:
    return HTTPException(422, str(e))


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def open_session(home: Home, response: Response, token: str) -> None:
    response.set_cookie(
        auth.COOKIE,
        token,
        max_age=int(auth.SESSION_TTL.total_seconds()),
        httponly=True,
        secure=home.settings.cookie_secure,
        samesite="strict",
        path="/",
    )


@router.get("/health", name="health", tags=["service"])
def health(db: Database) -> Json:
    """200 while the server runs (no login); says whether the database answers."""
    try:
        db.execute(select(1))
        database = "ok"
    except Exception:
        database = "unavailable"
    return {"status": "ok", "database": database}


@router.post("/api/login", name="login", tags=["session"], response_model=Me)
def login(body: LoginIn, request: Request, response: Response, db: Database, home: Home) -> Me:
    try:
        token, who = auth.login(db, body.name, body.password, _client(request))
    except auth.LoginRefusedError as e:
        db.commit()
        raise HTTPException(429 if e.limited else 401, str(e)) from None
    db.commit()
    open_session(home, response, token)
    return Me(name=who.name, role=who.role.value, csrf=who.csrf)


@router.post("/api/logout", name="logout", tags=["session"])
def logout(request: Request, response: Response, db: Database, who: Who) -> Json:
    auth.logout(db, request.cookies.get(auth.COOKIE, ""), who)
    db.commit()
    response.delete_cookie(auth.COOKIE, path="/")
    return {"logged_out": who.name}


@router.get("/api/me", name="me", tags=["session"], response_model=Me)
def me(who: Who) -> Me:
    return Me(name=who.name, role=who.role.value, csrf=who.csrf)


# --- fleet and devices ------------------------------------------------------------------------------


@router.get("/api/fleet", name="fleet", tags=["fleet"])
def fleet_list(db: Database, home: Home, care_area: str | None = None) -> list[Json]:
    now, after = datetime.now(UTC), timedelta(seconds=home.settings.offline_after_s)
    return [views.pump(p, now, after) for p in fleet.fleet(db, care_area)]


@router.get("/api/pumps/{pump_id}", name="pump_detail", tags=["fleet"])
def pump_detail(pump_id: str, db: Database, home: Home) -> Json:
    p = db.get(Pump, pump_id)
    if p is None:
        raise HTTPException(404, f"no pump {pump_id}")
    return views.pump(p, datetime.now(UTC), timedelta(seconds=home.settings.offline_after_s))


@router.get("/api/pumps/{pump_id}/events", name="pump_events", tags=["events"])
def pump_events(pump_id: str, db: Database, limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[Json]:
    return [views.event(e) for e in events.query(db, pump=pump_id, limit=limit)]


@router.get("/api/events", name="events_query", tags=["events"])
def events_query(  # noqa: PLR0917 - one parameter per query filter
    db: Database,
    pump: str | None = None,
    patient: str | None = None,
    drug: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[Json]:
    found = events.query(db, pump=pump, patient=patient, drug=drug, kind=kind, since=since, until=until, limit=limit)
    return [views.event(e) for e in found]


@router.post("/api/devices", name="devices_commission", tags=["devices"], status_code=201, response_model=Credentials)
def commission(body: CommissionIn, db: Database, home: Home, who: Who) -> Credentials:
    try:
        done = fleet.commission(
            db, body.pump_id, care_area=body.care_area, location=body.location, actor=who.name, ca=home.ca
        )
    except InputError as e:
        raise _bad(e) from None
    db.commit()
    assert done.credentials is not None
    return Credentials(
        pump_id=body.pump_id,
        key_pem=done.credentials.key_pem.decode(),
        cert_pem=done.credentials.cert_pem.decode(),
        ca_pem=home.ca.cert_pem.decode(),
        order_key_pem=public_key_pem(home.order_key.public_key()).decode(),
    )


@router.delete("/api/devices/{pump_id}", name="devices_decommission", tags=["devices"])
def decommission(pump_id: str, db: Database, home: Home, who: Who) -> Json:
    try:
        fleet.decommission(db, pump_id, who.name, home.ca)
    except InputError as e:
        raise HTTPException(404, str(e)) from None
    db.commit()
    home.revoke(pump_id)
    return {"decommissioned": pump_id}


@router.get("/api/link/rejections", name="link_rejections", tags=["devices"])
def rejections(db: Database, limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[Json]:
    rows = db.execute(select(LinkRejection).order_by(LinkRejection.id.desc()).limit(limit)).scalars()
    return [{"pump_id": r.pump_id, "side": r.side, "at": r.at.isoformat(), "reason": r.reason} for r in rows]


# --- alarms ------------------------------------------------------------------------------------------


@router.get("/api/alarms", name="alarms_list", tags=["alarms"])
def alarm_board(db: Database, include_ended: bool = False) -> list[Json]:
    return [views.alarm(a) for a in alarms.board(db, include_ended)]


@router.post("/api/alarms/{alarm_id}/ack", name="alarm_ack", tags=["alarms"])
def alarm_ack(alarm_id: RowId, db: Database, who: Who) -> Json:
    try:
        alarm = alarms.acknowledge(db, alarm_id, who.name)
    except InputError as e:
        raise HTTPException(409, str(e)) from None
    db.commit()
    return views.alarm(alarm)


@router.get("/api/assignments", name="assignments_list", tags=["alarms"])
def assignments(db: Database) -> list[Json]:
    rows = db.execute(select(Assignment).order_by(Assignment.care_area)).scalars()
    return [{"care_area": r.care_area, "nurse": r.nurse, "charge_nurse": r.charge_nurse} for r in rows]


@router.put("/api/assignments/{care_area}", name="assignment_set", tags=["alarms"])
def assignment_set(care_area: str, body: AssignmentIn, db: Database, who: Who) -> Json:
    row = alarms.assign(db, care_area, body.nurse, body.charge_nurse, who.name)
    db.commit()
    return {"care_area": row.care_area, "nurse": row.nurse, "charge_nurse": row.charge_nurse}


# --- drug library distribution ------------------------------------------------------------------------


@router.get("/api/releases", name="releases_list", tags=["library"])
def releases(db: Database) -> list[Json]:
    return [views.release(r) for r in db.execute(select(Release).order_by(Release.uploaded_at.desc())).scalars()]


@router.post("/api/releases", name="release_upload", tags=["library"], status_code=201)
def release_upload(
    db: Database,
    home: Home,
    who: Who,
    package: Annotated[bytes, Body(media_type="application/octet-stream")],
) -> Json:
    """Upload a signed library package (the body is the package file's bytes)."""
    try:
        release = library.upload(db, package, who.name, home.settings.library_keys)
    except InputError as e:
        raise _bad(e) from None
    db.commit()
    return views.release(release)


@router.post("/api/releases/{release_id}/targets", name="release_target", tags=["library"])
def release_target(release_id: str, body: TargetIn, db: Database, who: Who) -> Json:
    try:
        library.target(db, release_id, body.care_areas, who.name)
    except InputError as e:
        raise _bad(e) from None
    db.commit()
    return {"release": release_id, "care_areas": body.care_areas}


@router.get("/api/releases/{release_id}", name="release_status", tags=["library"])
def release_status(release_id: str, db: Database) -> Json:
    release = db.get(Release, release_id)
    if release is None:
        raise HTTPException(404, f"no release {release_id}")
    return views.release(release) | {"deployments": [views.deployment(d) for d in library.deployments(db, release_id)]}


# --- remote programming -----------------------------------------------------------------------------


@router.get("/api/orders", name="orders_list", tags=["orders"])
def order_list(db: Database, pump_id: str | None = None) -> list[Json]:
    return [views.order(o) for o in orders.listing(db, pump_id)]


@router.post("/api/orders", name="order_create", tags=["orders"], status_code=201)
def order_create(body: OrderIn, db: Database, home: Home, who: Who) -> Json:
    program = m.OrderedProgram(
        area=body.area,
        drug=body.drug,
        concentration=body.concentration,
        rate=m.WireQuantity(value=body.rate_ml_h, unit="mL/h"),
        vtbi=m.WireQuantity(value=body.vtbi_ml, unit="mL"),
    )
    lifetime = timedelta(seconds=home.settings.order_lifetime_s)
    try:
        order, command = orders.create(
            db, home.order_key, pump_id=body.pump_id, channel=body.channel - 1, program=program, actor=who.name,
            lifetime=lifetime,
        )  # fmt: skip
    except InputError as e:
        raise _bad(e) from None
    db.commit()
    home.send(body.pump_id, command)
    return views.order(order)


# --- audit ---------------------------------------------------------------------------------------------


@router.get("/api/audit", name="audit_list", tags=["audit"])
def audit_list(db: Database, limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[Json]:
    rows = db.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).scalars()
    return [
        {"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action, "target": r.target,
         "before": r.before, "after": r.after, "hash": r.hash}
        for r in rows
    ]  # fmt: skip


@router.get("/api/audit/verify", name="audit_verify", tags=["audit"], response_model=AuditVerification)
def audit_verify(db: Database) -> AuditVerification:
    v = audit.verify(db)
    return AuditVerification(ok=v.ok, entries=v.entries, first_break=v.first_break, reason=v.reason)
