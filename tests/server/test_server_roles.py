"""Every endpoint's role rule, tested as a full matrix: every route x (anonymous + every role)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from hospitalkit import Station
from openinfusion.server.roles import PUBLIC, RULES, Role, allows

PRINCIPALS: tuple[str | None, ...] = (None, "nurse", "pharmacist", "biomed", "admin")
PARAMS = {"pump_id": "vp-0001", "alarm_id": "1", "release_id": "nope", "care_area": "ADULT-ICU"}
LAST = {"logout", "station_logout"}  # they end the session: called last


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x wraps included routers
        if included is not None:
            yield from _api_routes(included.routes)


def _routes(station: Station) -> list[tuple[str, str, str]]:
    found = []
    for route in _api_routes(station.client.app.routes):  # type: ignore[attr-defined]
        path = re.sub(r"\{(\w+)\}", lambda g: PARAMS[g.group(1)], route.path)
        found.extend((route.name, method, path) for method in sorted(route.methods))
    assert found
    return sorted(found, key=lambda r: (r[0] in LAST, r))


def test_every_route_has_exactly_one_rule_and_every_rule_a_route(station: Station) -> None:
    names = {name for name, _, _ in _routes(station)}
    assert names == set(RULES)


def test_role_matrix(station: Station) -> None:
    """Allowed -> neither 401 nor 403; refused -> 401 without a session, 403 with the wrong role."""
    routes = _routes(station)
    checked = 0
    for principal in PRINCIPALS:
        csrf = station.login(principal) if principal is not None else ""
        if principal is None:
            station.client.cookies.clear()
        role = None if principal is None else Role(station.system.passwords[principal][0])
        for name, method, path in routes:
            if name in LAST and principal is not None:
                csrf = station.login(principal)
            r = station.client.request(method, path, headers={"X-CSRF-Token": csrf}, json={}, follow_redirects=False)
            if allows(name, role):
                assert r.status_code not in {401, 403}, (principal, name, r.status_code, r.text[:200])
            else:
                assert r.status_code == (401 if role is None else 403), (principal, name, r.status_code)
            checked += 1
    assert checked == len(routes) * len(PRINCIPALS)
    print(f"role matrix: {len(routes)} endpoints x {len(PRINCIPALS)} principals = {checked} checks")


def test_every_api_route_but_login_and_health_needs_a_session(station: Station) -> None:
    station.client.cookies.clear()
    for name, method, path in _routes(station):
        if path.startswith("/api/") and name != "login":
            assert RULES[name] != PUBLIC
            assert station.client.request(method, path, json={}).status_code == 401, name
    assert station.client.get("/health").status_code == 200
    assert station.client.get("/openapi.json").status_code == 200


def test_a_state_change_without_the_csrf_token_is_refused(station: Station) -> None:
    csrf = station.login("nurse")
    assert station.client.post("/api/alarms/999/ack").status_code == 403
    assert station.client.post("/api/alarms/999/ack", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert station.client.post("/api/alarms/999/ack", headers={"X-CSRF-Token": csrf}).status_code == 409
