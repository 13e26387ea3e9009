"""Fuzz the HTTP API from its own OpenAPI document (schemathesis + hypothesis): whatever the input, anonymous
or logged in as any role, the server never answers with a server error (5xx). ``OI_FUZZ_EXAMPLES`` sets the
examples per operation (default 3; each is sent anonymously and as each of the four roles)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from hospitalkit import make_system
from openinfusion.web.system import LocalSystem, build_app

CALLS: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalSystem, dict[str, dict[str, str]]]]:
    system = make_system(Path(tmp_path_factory.mktemp("fuzz")), pumps=2)
    sessions: dict[str, dict[str, str]] = {"anonymous": {}}
    with TestClient(build_app(system.hospital, manage=False), base_url="https://testserver") as client:
        for name in ("nurse", "pharmacist", "biomed", "admin"):
            r = client.post("/api/login", json={"name": name, "password": system.passwords[name][1]})
            sessions[name] = {"cookie": r.headers["set-cookie"].split(";")[0], "x-csrf-token": r.json()["csrf"]}
    yield system, sessions
    system.hospital.stop()
    print(f"API fuzzing: {sum(CALLS.values())} requests over {len(CALLS)} operations")


def _app() -> object:
    import tempfile

    system = make_system(Path(tempfile.mkdtemp()), pumps=1)
    system.hospital.stop()
    return build_app(system.hospital, manage=False)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(path="/api/logout")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("OI_FUZZ_EXAMPLES", "3")), deadline=None, suppress_health_check=list(HealthCheck)
)
def test_no_input_makes_the_server_fail(
    case: schemathesis.Case, fuzzed: tuple[LocalSystem, dict[str, dict[str, str]]]
) -> None:
    system, sessions = fuzzed
    app = build_app(system.hospital, manage=False)
    for who, headers in sessions.items():
        response = case.call(app=app, headers=headers, base_url="https://testserver")
        key = case.operation.label
        CALLS[key] = CALLS.get(key, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])
        assert who == "anonymous" or case.path == "/api/login" or response.status_code != 401, (who, key)
