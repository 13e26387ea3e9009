"""Central station pages. Each page renders its ``main`` both whole and as a fragment (``?fragment=1``) that
the page's script fetches again whenever the stream says something changed. Forms work without script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.errors import InputError
from openinfusion.server import alarms, auth, events, fleet, library, views
from openinfusion.server.api.deps import Database, Guard, Home, Who
from openinfusion.server.api.routes import RowId, open_session
from openinfusion.server.db.models import Pump, Release

router = APIRouter(prefix="/station", dependencies=[Guard], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STREAM_POLL_S = 0.25


def _page(request: Request, name: str, who: auth.Principal | None, context: dict[str, Any]) -> Response:
    fragment = request.query_params.get("fragment") == "1"
    template = f"{name}_main.html" if fragment else f"{name}.html"
    live = f"{request.url.path}?fragment=1"
    return templates.TemplateResponse(request, template, {"who": who, "page": name, "live": live, **context})


def login_form(request: Request, error: str = "", status: int = 200) -> Response:
    return templates.TemplateResponse(request, "login.html", {"who": None, "error": error}, status_code=status)


@router.get("/login", name="station_login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return login_form(request)


@router.post("/login", name="login_page", response_class=HTMLResponse)
def login_submit(
    request: Request,
    db: Database,
    home: Home,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    client = request.client.host if request.client is not None else "?"
    try:
        token, _who = auth.login(db, name, password, client)
    except auth.LoginRefusedError as e:
        db.commit()
        return login_form(request, str(e), 429 if e.limited else 401)
    db.commit()
    response = RedirectResponse("/station/fleet", status_code=303)
    open_session(home, response, token)
    return response


@router.post("/logout", name="station_logout")
def logout(request: Request, db: Database, who: Who) -> Response:
    auth.logout(db, request.cookies.get(auth.COOKIE, ""), who)
    db.commit()
    response = RedirectResponse("/station/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


@router.get("/", name="station_home")
def home_page() -> Response:
    return RedirectResponse("/station/fleet", status_code=303)


@router.get("/fleet", name="station_fleet", response_class=HTMLResponse)
def fleet_page(request: Request, db: Database, home: Home, who: Who) -> Response:
    now, after = datetime.now(UTC), timedelta(seconds=home.settings.offline_after_s)
    pumps = [views.pump(p, now, after) for p in fleet.fleet(db)]
    areas: dict[str, list[dict[str, Any]]] = {}
    for p in pumps:
        areas.setdefault(p["care_area"], []).append(p)
    return _page(request, "fleet", who, {"areas": areas, "count": len(pumps)})


@router.get("/alarms", name="station_alarms", response_class=HTMLResponse)
def alarms_page(request: Request, db: Database, home: Home, who: Who) -> Response:
    board = [views.alarm(a) for a in alarms.board(db, include_ended=True, limit=100)]
    return _page(
        request,
        "alarms",
        who,
        {
            "active": [a for a in board if a["active"]],
            "ended": [a for a in board if not a["active"]][:20],
            "escalate_after": int(home.settings.escalate_after_s),
        },
    )


@router.post("/alarms/{alarm_id}/ack", name="station_alarm_ack")
def alarm_ack(alarm_id: RowId, db: Database, who: Who) -> Response:
    try:
        alarms.acknowledge(db, alarm_id, who.name)
    except InputError as e:
        raise HTTPException(409, str(e)) from None
    db.commit()
    return RedirectResponse("/station/alarms", status_code=303)


def _library(request: Request, db: Db, who: auth.Principal, error: str = "", status: int = 200) -> Response:
    releases = [views.release(r) for r in db.execute(select(Release).order_by(Release.uploaded_at.desc())).scalars()]
    context = {"areas": library.compliance(db), "releases": releases, "error": error, "done": ""}
    if not error:
        context["done"] = request.query_params.get("done", "")[:200]
    response = _page(request, "library", who, context)
    response.status_code = status
    return response


@router.get("/library", name="station_library", response_class=HTMLResponse)
def library_page(request: Request, db: Database, who: Who) -> Response:
    return _library(request, db, who)


@router.post("/library/releases", name="station_release_upload", response_class=HTMLResponse)
async def library_upload(request: Request, db: Database, home: Home, who: Who, package: UploadFile) -> Response:
    """A pharmacist uploads a signed package file (multipart form); refused packages are named on the page."""
    data = await package.read(library.MAX_PACKAGE_BYTES + 1)
    try:
        release = library.upload(db, data, who.name, home.settings.library_keys)
    except InputError as e:
        db.rollback()
        return _library(request, db, who, f"{package.filename or 'the file'}: {e}", 422)
    db.commit()
    done = quote(f"Uploaded {release.name} {release.version} ({release.id}); choose its care areas below.")
    return RedirectResponse(f"/station/library?done={done}", status_code=303)


@router.post("/library/releases/{release_id}/targets", name="station_release_target", response_class=HTMLResponse)
def library_target(
    release_id: str,
    request: Request,
    db: Database,
    who: Who,
    care_areas: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies the default
) -> Response:
    try:
        library.target(db, release_id, care_areas, who.name)
    except InputError as e:
        db.rollback()
        return _library(request, db, who, str(e), 422)
    db.commit()
    done = quote(f"Released {release_id} to {', '.join(care_areas)}.")
    return RedirectResponse(f"/station/library?done={done}", status_code=303)


@router.get("/pumps/{pump_id}", name="station_pump", response_class=HTMLResponse)
def pump_page(pump_id: str, request: Request, db: Database, home: Home, who: Who) -> Response:
    p = db.get(Pump, pump_id)
    if p is None:
        raise HTTPException(404, f"no pump {pump_id}")
    view = views.pump(p, datetime.now(UTC), timedelta(seconds=home.settings.offline_after_s))
    history = [views.event(e) for e in events.query(db, pump=pump_id, limit=200)]
    return _page(request, "pump", who, {"pump": view, "history": history})


@router.get("/stream", name="station_stream")
async def stream(request: Request, home: Home) -> StreamingResponse:
    """Server-sent events: ``tick`` with a counter each time the fleet, alarms or releases change."""

    async def ticks() -> AsyncIterator[str]:
        last, started, quiet = -1, asyncio.get_running_loop().time(), 0.0
        yield "retry: 2000\n\n"
        while asyncio.get_running_loop().time() - started < home.settings.stream_max_s:
            if await request.is_disconnected():
                return
            value = await asyncio.to_thread(home.tick)
            if value != last:
                last, quiet = value, 0.0
                yield f"event: tick\ndata: {value}\n\n"
            else:
                quiet += STREAM_POLL_S
                if quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL_S)

    return StreamingResponse(ticks(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
