"""Training routes on top of the panel: the briefing, the instructor's view and the debrief.

``/instructor`` injects events live (occlusion, air, door, mains, faults, a PCA demand) through the
same scenario engine that runs scripted events, and sets the pace; ``/debrief`` shows the timeline in
hh:mm:ss, what the trainee did against what was expected, and the score.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from openinfusion.errors import OpenInfusionError
from openinfusion.sim.scenario import TimelineEvent
from openinfusion.web.panel.app import create_app
from openinfusion.web.panel.session import PanelSession
from openinfusion.web.training.exercise import Exercise
from openinfusion.web.training.scoring import narrative, score

STATIC: Final = Path(__file__).parent / "static"
EVENT: Final = TypeAdapter(TimelineEvent)


class Pace(BaseModel):
    speed: float = Field(gt=0, le=600)
    frozen: bool = False


def training_app(exercise: Exercise, session: PanelSession) -> FastAPI:
    """The panel app for ``session`` with the exercise's briefing, instructor view and debrief."""

    def routes(app: FastAPI, lock: asyncio.Lock) -> None:
        @app.get("/api/exercise")
        async def briefing() -> dict[str, Any]:
            return {"title": exercise.title, "briefing": exercise.briefing, "objectives": exercise.objectives}

        @app.get("/instructor")
        async def instructor() -> FileResponse:
            return FileResponse(STATIC / "instructor.html")

        @app.get("/debrief")
        async def debrief_page() -> FileResponse:
            return FileResponse(STATIC / "debrief.html")

        @app.post("/api/inject")
        async def inject(event: dict[str, Any]) -> dict[str, Any]:
            """Apply ``event`` (a timeline event without ``at``) now; a bad one is a 400 naming what is wrong."""
            try:
                parsed = EVENT.validate_python({**event, "at": "0 s"})
            except ValidationError as e:
                where = ".".join(str(p) for p in e.errors()[0]["loc"])
                raise HTTPException(400, f"{where}: {e.errors()[0]['msg']}") from None
            async with lock:
                try:
                    session.rt.inject(parsed)
                except OpenInfusionError as e:
                    raise HTTPException(400, str(e)) from None
                return session.state()

        @app.post("/api/pace")
        async def pace(body: Pace) -> dict[str, Any]:
            async with lock:
                session.rt.set_speed(body.speed)
                session.rt.freeze(body.frozen)
                return session.state()

        @app.get("/api/debrief")
        async def debrief() -> dict[str, Any]:
            async with lock:
                session.rt.sync()
                return {
                    "title": exercise.title,
                    "objectives": exercise.objectives,
                    "score": score(exercise, session),
                    "timeline": narrative(session),
                }

    return create_app(session, routes)
