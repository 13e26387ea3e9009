"""The front panel as a web app (FastAPI): the page at ``/``, its state as JSON and as a live SSE stream.

``POST /api/press`` presses a widget (``{"widget": "start", "channel": 0}``) and answers with the new
state; ``GET /api/stream`` sends the state four times a second (Server-Sent Events). One asyncio lock
serialises the simulation: the pacing loop and presses never run the core at the same time. A pump that
joined a server (``PanelSession.join``) is paced and its agent polled every tick, page open or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from openinfusion.web.panel.session import PanelSession

STATIC: Final = Path(__file__).parent / "static"
TICK_S: Final = 0.25  # how often the page is updated


class PressBody(BaseModel):
    """A widget press from the page."""

    widget: str = Field(min_length=1, max_length=40)
    channel: int | None = Field(None, ge=0, le=3)
    arg: str | None = Field(None, max_length=200)


def create_app(session: PanelSession, extra: Callable[[FastAPI, asyncio.Lock], None] | None = None) -> FastAPI:
    """The panel app around ``session``; ``extra`` adds routes (training) sharing the same lock."""
    lock = asyncio.Lock()

    async def pace() -> None:
        while True:
            async with lock:
                session.tick()
            await asyncio.sleep(TICK_S)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(pace()) if session.agent is not None else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="openinfusion front panel", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "panel.html")

    @app.get("/api/widgets")
    async def widgets() -> list[dict[str, Any]]:
        return session.widgets()

    @app.get("/api/state")
    async def state() -> dict[str, Any]:
        async with lock:
            return session.state()

    @app.post("/api/press")
    async def press(body: PressBody) -> dict[str, Any]:
        async with lock:
            session.press(body.widget, body.channel, body.arg)
            return session.state()

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            while not await request.is_disconnected():
                async with lock:
                    data = session.state()
                yield f"data: {json.dumps(data)}\n\n"
                await asyncio.sleep(TICK_S)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    if extra is not None:
        extra(app, lock)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
