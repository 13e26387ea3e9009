"""The server's tables (SQLAlchemy 2 typed ORM). Alembic migrations in ``migrations/`` create them.

Times are timezone-aware UTC. Pump times stay in integer microseconds of the pump's clock (``t_us``).
JSON columns hold what the pump sent, already validated at the link edge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        from datetime import UTC

        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(default=False)


class Session(Base):
    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LoginFailure(Base):
    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class Assignment(Base):
    """Who answers a care area's alarms: the assigned nurse, then the charge nurse."""

    __tablename__ = "assignments"
    care_area: Mapped[str] = mapped_column(String(64), primary_key=True)
    nurse: Mapped[str | None] = mapped_column(String(64))
    charge_nurse: Mapped[str | None] = mapped_column(String(64))


class Pump(Base):
    __tablename__ = "pumps"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(120), default="")
    firmware: Mapped[str] = mapped_column(String(120), default="")
    care_area: Mapped[str] = mapped_column(String(64), index=True)
    location: Mapped[str] = mapped_column(String(120), default="")
    lifecycle: Mapped[str] = mapped_column(String(20), default="commissioned")  # or decommissioned
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    commissioned_at: Mapped[datetime]
    decommissioned_at: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    stored_through: Mapped[int] = mapped_column(BigInteger, default=0)  # every event up to here is stored
    library_hash: Mapped[str | None] = mapped_column(String(64))
    library_version: Mapped[str | None] = mapped_column(String(40))
    staged_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[dict[str, Any] | None]  # the last status message body


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("pump_id", "seq", name="uq_events_pump_seq"),
        Index("ix_events_pump_at", "pump_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pump_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    t_us: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[int | None]
    drug: Mapped[str | None] = mapped_column(String(120), index=True)
    patient: Mapped[str | None] = mapped_column(String(120), index=True)
    data: Mapped[dict[str, Any]]


class Alarm(Base):
    """A pump alarm as the secondary alarm system follows it (the pump alarms locally regardless)."""

    __tablename__ = "alarms"
    __table_args__ = (UniqueConstraint("pump_id", "raised_seq", name="uq_alarms_pump_seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    pump_id: Mapped[str] = mapped_column(String(64), index=True)
    raised_seq: Mapped[int] = mapped_column(BigInteger)
    instance: Mapped[int]
    channel: Mapped[int | None]
    code: Mapped[str] = mapped_column(String(60))
    priority: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(String(200), default="")
    care_area: Mapped[str] = mapped_column(String(64))
    raised_at: Mapped[datetime]
    received_at: Mapped[datetime]
    active: Mapped[bool] = mapped_column(default=True, index=True)
    ended_at: Mapped[datetime | None]
    level: Mapped[str] = mapped_column(String(20), default="nurse")  # nurse, charge_nurse
    forwarded_to: Mapped[str | None] = mapped_column(String(64))
    escalated_to: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the package's SHA-256, first 16 hex
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    library_hash: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    package: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime]


class ReleaseTarget(Base):
    __tablename__ = "release_targets"
    care_area: Mapped[str] = mapped_column(String(64), primary_key=True)  # one current release per care area
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    targeted_by: Mapped[str] = mapped_column(String(64))
    targeted_at: Mapped[datetime]


class Deployment(Base):
    __tablename__ = "deployments"
    pump_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # offered, downloading, staged, active, rejected
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    offered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(String(500), default="")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pump_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[int]
    program: Mapped[dict[str, Any]]
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20))  # sent, pending, confirmed, refused, expired
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LinkRejection(Base):
    """A message refused at the link edge (either side), with its reason."""

    __tablename__ = "link_rejections"
    id: Mapped[int] = mapped_column(primary_key=True)
    pump_id: Mapped[str] = mapped_column(String(64), index=True)
    side: Mapped[str] = mapped_column(String(10))  # server (we refused it) or pump (the pump refused ours)
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(500))


class AuditEntry(Base):
    """Append-only, hash-chained: ``hash`` = SHA-256(prev_hash + canonical JSON of the entry's fields)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Tick(Base):
    """One row: a counter bumped by every change the central station shows (its live updates poll it)."""

    __tablename__ = "ticks"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
