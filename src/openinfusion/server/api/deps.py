"""Dependencies every route declares: the database session and the authorised principal.

:func:`guard` looks the route's name up in the ONE role table (:data:`openinfusion.server.roles.RULES`):
no session -> 401, a role the rule does not name -> 403, and for a state-changing method a missing or wrong
CSRF token -> 403. Routes get the principal as a typed parameter (``who: Who``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session as Db

from openinfusion.server import auth
from openinfusion.server.hospital import Hospital
from openinfusion.server.roles import PUBLIC, RULES, allows

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hospital(request: Request) -> Hospital:
    h: Hospital = request.app.state.hospital
    return h


def database(request: Request) -> Iterator[Db]:
    with hospital(request).sessions() as db:
        yield db


async def guard(request: Request, db: Annotated[Db, Depends(database)]) -> auth.Principal | None:
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    rule = RULES.get(str(name))
    who = auth.principal(db, request.cookies.get(auth.COOKIE))
    if rule == PUBLIC:
        return who
    if who is None:
        raise HTTPException(401, "log in first")
    if not allows(str(name), who.role):
        raise HTTPException(403, f"the {who.role.value} role may not use this")
    if request.method not in SAFE_METHODS:
        token = request.headers.get("x-csrf-token")
        if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            token = value if isinstance(value, str) else None
        if not auth.csrf_ok(who, token):
            raise HTTPException(403, "missing or wrong CSRF token")
    return who


def signed_in(who: Annotated[auth.Principal | None, Depends(guard)]) -> auth.Principal:
    """The principal of a route that needs one (guard has already refused anonymous callers)."""
    if who is None:
        raise HTTPException(401, "log in first")
    return who


Database = Annotated[Db, Depends(database)]
Who = Annotated[auth.Principal, Depends(signed_in)]
Home = Annotated[Hospital, Depends(hospital)]
Guard = Depends(guard)
