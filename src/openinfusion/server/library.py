"""Drug library distribution: signed releases, care-area targets, pull-in-chunks staging, compliance.

A pharmacist uploads a signed package (the :mod:`openinfusion.druglib.package` format); the server verifies it
against the pharmacy keys it trusts and keeps it as a release. Targeting a care area makes it that area's
current release. Each pump of the area is offered it (again after ``reoffer_after`` while it has not staged
it: offers survive lost messages and reconnections); the pump pulls it in chunks from the offset it holds,
checks the SHA-256, and the pump core verifies the signature before staging. Per-pump state follows the
pump's acknowledgements and its status (active and staged library hashes).

Compliance per care area: pumps on the target release (active), staged, in progress, *drift* (a pump on a
library the server released, but not the area's current one) and *foreign* (a library the server never
released).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from openinfusion.agent import messages as m
from openinfusion.druglib.package import verify_package
from openinfusion.errors import InputError, IntegrityError
from openinfusion.server import audit
from openinfusion.server.db.models import Deployment, Pump, Release, ReleaseTarget

MAX_PACKAGE_BYTES = 16 * 1024 * 1024


def upload(db: Db, package: bytes, actor: str, keys: Sequence[Ed25519PublicKey]) -> Release:
    """Keep a verified release (InputError naming why a package is refused)."""
    if not package or len(package) > MAX_PACKAGE_BYTES:
        raise InputError("package", f"1 byte to {MAX_PACKAGE_BYTES} bytes")
    if not keys:
        raise InputError("package", "the server trusts no pharmacy signing key (start it with --library-key)")
    try:
        verified = verify_package(package, keys)
    except IntegrityError as e:
        raise InputError("package", str(e)) from None
    sha = hashlib.sha256(package).hexdigest()
    existing = db.execute(select(Release).where(Release.sha256 == sha)).scalar()
    if existing is not None:
        return existing
    identity = verified.identity
    release = Release(
        id=sha[:16],
        sha256=sha,
        library_hash=identity.hash,
        owner=identity.owner,
        name=identity.name,
        version=identity.version,
        size=len(package),
        package=package,
        uploaded_by=actor,
        uploaded_at=datetime.now(UTC),
    )
    db.add(release)
    db.flush()
    audit.record(db, actor, "release.upload", f"release:{release.id}", None, identity.to_json() | {"sha256": sha})
    return release


def target(db: Db, release_id: str, care_areas: Sequence[str], actor: str) -> list[ReleaseTarget]:
    """Make ``release_id`` the current release of each care area."""
    release = db.get(Release, release_id)
    if release is None:
        raise InputError("release", f"no release {release_id}")
    if not care_areas or any(not a.strip() for a in care_areas):
        raise InputError("care_areas", "at least one care area")
    rows = []
    for area in care_areas:
        row = db.get(ReleaseTarget, area)
        before = None if row is None else {"release": row.release_id}
        if row is None:
            row = ReleaseTarget(care_area=area, release_id=release_id, targeted_by=actor, targeted_at=datetime.now(UTC))
            db.add(row)
        row.release_id, row.targeted_by, row.targeted_at = release_id, actor, datetime.now(UTC)
        audit.record(db, actor, "release.target", f"care_area:{area}", before, {"release": release_id})
        rows.append(row)
    db.flush()
    return rows


def _deployment(db: Db, pump: Pump, release: Release, now: datetime) -> Deployment:
    row = db.get(Deployment, (pump.id, release.id))
    if row is None:
        row = Deployment(pump_id=pump.id, release_id=release.id, state="offered", updated_at=now)
        db.add(row)
    return row


def on_status(
    db: Db, pump: Pump, goal: ReleaseTarget | None, now: datetime, reoffer_after: timedelta
) -> m.LibraryOffer | None:
    """Update the pump's deployment from its status (``goal``: its care area's target); the offer to send, if due."""
    if goal is None:
        return None
    release = db.get(Release, goal.release_id)
    assert release is not None
    row = _deployment(db, pump, release, now)
    state = (
        "active"
        if pump.library_hash == release.library_hash
        else "staged"
        if pump.staged_hash == release.library_hash
        else None
    )
    if state is not None:
        if row.state != state:
            row.state, row.updated_at = state, now
        return None
    if row.state == "rejected":
        return None
    if row.offered_at is None or now - row.offered_at > reoffer_after:
        row.offered_at, row.updated_at = now, now
        if row.state not in {"offered", "downloading"}:
            row.state = "offered"
        return m.LibraryOffer(release=release.id, size=release.size, sha256=release.sha256)
    return None


def chunk(db: Db, pump: Pump, request: m.ChunkRequest, now: datetime) -> m.LibraryChunk:
    release = db.get(Release, request.release)
    if release is None:
        raise InputError("chunk_request.release", f"no release {request.release}")
    if request.offset >= release.size:
        raise InputError("chunk_request.offset", f"{request.offset} is beyond the package ({release.size} bytes)")
    row = _deployment(db, pump, release, now)
    if row.state in {"offered", "downloading"}:
        row.state, row.offset, row.updated_at = "downloading", request.offset, now
    part = release.package[request.offset : request.offset + m.CHUNK_BYTES]
    return m.LibraryChunk(release=release.id, offset=request.offset, data=base64.b64encode(part).decode())


def acknowledged(db: Db, pump: Pump, ack: m.CommandAck, now: datetime) -> bool:
    """Apply a pump's answer about a release; False if ``ack`` is not about a release."""
    release = db.get(Release, ack.command)
    if release is None:
        return False
    row = _deployment(db, pump, release, now)
    row.state = {"staged": "staged", "activated": "active"}.get(ack.outcome, "rejected")
    row.detail, row.updated_at = ack.reason[:500], now
    if row.state == "active":
        row.offset = release.size
    return True


@dataclass(frozen=True, slots=True)
class PumpActivation:
    """One pump of a care area against the area's current release."""

    pump_id: str
    library_version: str | None  # the library the pump runs now
    state: str  # active, staged, downloading, offered, rejected, or "not offered" (no release or no status yet)
    percent: int  # of the package the pump holds (100 once staged or active)
    detail: str  # the pump's reason when it rejected the release
    flag: str  # "drift", "foreign" or ""


@dataclass(frozen=True, slots=True)
class AreaCompliance:
    care_area: str
    release: Release | None
    pumps: int
    active: int
    staged: int
    in_progress: int
    drift: tuple[str, ...]  # pumps on a released library that is not the area's current one
    foreign: tuple[str, ...]  # pumps on a library the server never released
    rejected: tuple[str, ...]
    members: tuple[PumpActivation, ...]


def _activation(p: Pump, release: Release | None, row: Deployment | None, released: set[str]) -> PumpActivation:
    want = None if release is None else release.library_hash
    state = (
        "active"
        if want is not None and p.library_hash == want
        else "staged"
        if want is not None and p.staged_hash == want
        else "not offered"
        if row is None
        else row.state
    )
    size = 1 if release is None else max(release.size, 1)
    held = size if state in {"active", "staged"} else 0 if row is None else row.offset
    flag = (
        "foreign"
        if p.library_hash is not None and p.library_hash not in released
        else "drift"
        if want is not None and p.library_hash in released and p.library_hash != want
        else ""
    )
    detail = row.detail if row is not None and state == "rejected" else ""
    return PumpActivation(p.id, p.library_version, state, min(100, held * 100 // size), detail, flag)


def compliance(db: Db) -> list[AreaCompliance]:
    released = set(db.execute(select(Release.library_hash)).scalars())
    pumps = list(db.execute(select(Pump).where(Pump.lifecycle == "commissioned").order_by(Pump.id)).scalars())
    areas = sorted({p.care_area for p in pumps} | set(db.execute(select(ReleaseTarget.care_area)).scalars()))
    out = []
    for area in areas:
        goal = db.get(ReleaseTarget, area)
        release = None if goal is None else db.get(Release, goal.release_id)
        rows = {} if release is None else {d.pump_id: d for d in deployments(db, release.id)}
        members = tuple(_activation(p, release, rows.get(p.id), released) for p in pumps if p.care_area == area)
        out.append(
            AreaCompliance(
                care_area=area,
                release=release,
                pumps=len(members),
                active=sum(1 for a in members if a.state == "active"),
                staged=sum(1 for a in members if a.state == "staged"),
                in_progress=sum(1 for a in members if a.state == "downloading"),
                drift=tuple(a.pump_id for a in members if a.flag == "drift"),
                foreign=tuple(a.pump_id for a in members if a.flag == "foreign"),
                rejected=tuple(a.pump_id for a in members if a.state == "rejected"),
                members=members,
            )
        )
    return out


def deployments(db: Db, release_id: str) -> list[Deployment]:
    return list(
        db.execute(select(Deployment).where(Deployment.release_id == release_id).order_by(Deployment.pump_id)).scalars()
    )
