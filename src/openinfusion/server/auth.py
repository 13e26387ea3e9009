"""Users, passwords (argon2id), sessions, CSRF tokens and login rate limiting.

* No default credentials: users exist only once ``openinfusion users add`` (or an admin) creates them.
* Passwords are hashed with argon2id (argon2-cffi defaults: RFC 9106 low-memory profile).
* A session is a random 256-bit token in an HttpOnly, Secure, SameSite=Strict cookie; the database keeps only
  its SHA-256, with the user, a per-session CSRF token and an expiry. Logout deletes it.
* CSRF: every state-changing request carries the session's CSRF token (header ``X-CSRF-Token`` or form field
  ``csrf_token``), compared in constant time.
* Rate limiting: at most :data:`MAX_FAILURES` failed logins per user name, and per client address, in
  :data:`FAILURE_WINDOW`; beyond that logins are refused (even with the right password) until the window passes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as Db

from openinfusion.errors import InputError
from openinfusion.server import audit
from openinfusion.server.db.models import LoginFailure, Session, User
from openinfusion.server.roles import Role

MAX_FAILURES: Final = 5
FAILURE_WINDOW: Final = timedelta(minutes=15)
SESSION_TTL: Final = timedelta(hours=12)
MIN_PASSWORD: Final = 12
COOKIE: Final = "oi_session"
_HASHER: Final = PasswordHasher()
_DUMMY: Final = _HASHER.hash("timing equaliser for unknown users")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: Role
    csrf: str


class LoginRefusedError(Exception):
    """Wrong name or password, or too many failures (``limited``)."""

    def __init__(self, limited: bool) -> None:
        self.limited = limited
        super().__init__("too many failed logins; try again later" if limited else "wrong user name or password")


def _name(name: str) -> str:
    name = name.strip()
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-" for c in name):
        raise InputError("name", "1 to 64 letters, digits, '.', '_' or '-'")
    return name


def add_user(db: Db, name: str, role: Role, password: str, actor: str) -> User:
    """Create a user (InputError if the name is taken or the password too short)."""
    name = _name(name)
    if len(password) < MIN_PASSWORD:
        raise InputError("password", f"at least {MIN_PASSWORD} characters")
    if db.execute(select(User).where(User.name == name)).scalar() is not None:
        raise InputError("name", f"user {name!r} already exists")
    user = User(name=name, role=role.value, password_hash=_HASHER.hash(password), created_at=datetime.now(UTC))
    db.add(user)
    db.flush()
    audit.record(db, actor, "user.add", f"user:{name}", None, {"name": name, "role": role.value})
    return user


def _failures(db: Db, name: str, client: str, now: datetime) -> int:
    since = now - FAILURE_WINDOW
    by_name = db.execute(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.name == name, LoginFailure.at > since)
    ).scalar_one()
    by_client = db.execute(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.client == client, LoginFailure.at > since)
    ).scalar_one()
    return max(by_name, by_client)


def login(db: Db, name: str, password: str, client: str) -> tuple[str, Principal]:
    """Check the password and open a session: (cookie token, principal). LoginRefused otherwise."""
    now = datetime.now(UTC)
    name = name.strip()[:64]
    if _failures(db, name, client, now) >= MAX_FAILURES:
        audit.record(db, name or "?", "login.limited", f"client:{client}")
        raise LoginRefusedError(limited=True)
    user = db.execute(select(User).where(User.name == name)).scalar()
    ok = False
    try:
        ok = _HASHER.verify(user.password_hash if user is not None else _DUMMY, password) and user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.disabled:
        db.add(LoginFailure(name=name, client=client[:64], at=now))
        audit.record(db, name or "?", "login.failed", f"client:{client}")
        raise LoginRefusedError(limited=False)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db.add(Session(token_hash=_hash(token), user_id=user.id, csrf=csrf, created_at=now, expires_at=now + SESSION_TTL))
    db.execute(delete(Session).where(Session.expires_at < now))
    audit.record(db, user.name, "login", f"user:{user.name}", None, {"client": client})
    return token, Principal(user.id, user.name, Role(user.role), csrf)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal(db: Db, token: str | None) -> Principal | None:
    """The user of a session cookie (None: no, unknown or expired session)."""
    if not token or len(token) > 100:
        return None
    row = db.execute(
        select(Session, User).join(User, User.id == Session.user_id).where(Session.token_hash == _hash(token))
    ).first()
    if row is None:
        return None
    session, user = row
    if session.expires_at < datetime.now(UTC) or user.disabled:
        return None
    return Principal(user.id, user.name, Role(user.role), session.csrf)


def logout(db: Db, token: str, who: Principal) -> None:
    db.execute(delete(Session).where(Session.token_hash == _hash(token)))
    audit.record(db, who.name, "logout", f"user:{who.name}")


def csrf_ok(who: Principal, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(who.csrf.encode(), presented.encode())
