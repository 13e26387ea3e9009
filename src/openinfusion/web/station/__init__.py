"""The central station: server-rendered pages of the fleet, alarms, library releases and pump histories,
updated live by server-sent events. :func:`install` adds them to a server app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from openinfusion.web.station.pages import login_form, router, templates

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the station's pages; a refused page answers with a page (401: the login form, 403: why)."""
    app.include_router(router)
    app.mount("/station/static", StaticFiles(directory=STATIC), name="station_static")

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        if not request.url.path.startswith("/station/") or request.url.path.startswith("/station/static/"):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:
            return login_form(request, "Log in to see this page.", 401)
        return templates.TemplateResponse(
            request, "refused.html", {"who": None, "detail": exc.detail, "status": exc.status_code},
            status_code=exc.status_code,
        )  # fmt: skip
