"""The FastAPI application of one server process (stateless apart from the database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI, Request, Response

from openinfusion import __version__
from openinfusion.server.api.routes import router
from openinfusion.server.hospital import Hospital
from openinfusion.server.interop_fhir import fhir_api

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(hospital: Hospital, *, manage: bool = True) -> FastAPI:
    """The API app; with ``manage`` the app starts and stops the hospital's link and timers with itself."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage:
            hospital.start()
        yield
        if manage:
            hospital.stop()

    app = FastAPI(
        title="openinfusion server",
        version=__version__,
        description="Pump fleet, alarm forwarding (secondary alarm system), library distribution, remote orders.",
        lifespan=lifespan,
    )
    app.state.hospital = hospital
    app.include_router(router)
    app.include_router(fhir_api(hospital))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app
