"""Users and sessions: no default credentials, argon2id, cookie flags, rate limiting, logout, the CLI."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from hospitalkit import Station
from openinfusion.cli import app
from openinfusion.server import auth
from openinfusion.server.db.models import User
from openinfusion.server.hospital import Hospital
from openinfusion.server.settings import Settings


def test_a_new_server_has_no_users_and_no_default_login(tmp_path: Path) -> None:
    hospital = Hospital(Settings(data_dir=tmp_path))
    with hospital.sessions() as db:
        assert db.execute(select(func.count()).select_from(User)).scalar_one() == 0
        for name, password in (("admin", "admin"), ("admin", "password"), ("root", "")):
            try:
                auth.login(db, name, password, "test")
                raise AssertionError("logged in with a default credential")
            except auth.LoginRefusedError:
                pass
    hospital.engine.dispose()


def test_passwords_are_argon2id_and_sessions_are_strict_cookies(station: Station) -> None:
    with station.system.hospital.sessions() as db:
        hashes = list(db.execute(select(User.password_hash)).scalars())
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    _, password = station.system.passwords["nurse"]
    r = station.client.post("/api/login", json={"name": "nurse", "password": password})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert password not in r.text


def test_logins_are_rate_limited_even_with_the_right_password(station: Station) -> None:
    _, password = station.system.passwords["biomed"]
    for _ in range(auth.MAX_FAILURES):
        assert station.client.post("/api/login", json={"name": "biomed", "password": "wrong-guess"}).status_code == 401
    assert station.client.post("/api/login", json={"name": "biomed", "password": password}).status_code == 429


def test_logout_ends_the_session(station: Station) -> None:
    csrf = station.login("admin")
    assert station.client.get("/api/me").json()["name"] == "admin"
    cookie = station.client.cookies.get(auth.COOKIE)
    assert station.client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    station.client.cookies.set(auth.COOKIE, cookie or "", domain="testserver.local")
    assert station.client.get("/api/me", cookies={auth.COOKIE: cookie or ""}).status_code == 401


def test_users_add_reads_the_password_from_stdin_never_an_argument(tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tmp_path / "d")
    ok = runner.invoke(
        app, ["users", "add", "alice", "--role", "pharmacist", "--data", data], input="correct horse battery\n"
    )
    assert ok.exit_code == 0, ok.output
    short = runner.invoke(app, ["users", "add", "bob", "--role", "nurse", "--data", data], input="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    again = runner.invoke(app, ["users", "add", "alice", "--role", "nurse", "--data", data], input="another long one\n")
    assert again.exit_code == 1 and "already exists" in again.output
    as_arg = runner.invoke(app, ["users", "add", "carol", "--role", "nurse", "--password", "x" * 20, "--data", data])
    assert as_arg.exit_code != 0
    bad_role = runner.invoke(app, ["users", "add", "dave", "--role", "root", "--data", data], input="x" * 20 + "\n")
    assert bad_role.exit_code != 0
