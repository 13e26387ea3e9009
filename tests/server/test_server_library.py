"""Library distribution: signed uploads only; a release targeted at a care area is pulled in chunks (through
packet loss), verified and staged at each pump, activated when no infusion runs; drift, foreign and rejected
libraries are flagged per care area."""

from __future__ import annotations

import dataclasses
import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from hospitalkit import Station, example_library, run
from openinfusion.agent.ward import ward_keys
from openinfusion.druglib.package import release_package
from openinfusion.server import library
from openinfusion.server.db.models import Deployment
from openinfusion.web.system import LocalSystem

RELEASED = dt.date(2026, 2, 1)
Keys = tuple[Ed25519PrivateKey, Ed25519PrivateKey]


def _package(version: str, keys: Keys) -> bytes:
    lib = example_library()
    lib = dataclasses.replace(lib, info=dataclasses.replace(lib.info, version=version))
    return release_package(lib, RELEASED, ("pharmacy author", keys[0]), ("pharmacy approver", keys[1]))


def _upload(station: Station, package: bytes) -> tuple[int, dict[str, object]]:
    csrf = station.login("pharmacist")
    r = station.client.post(
        "/api/releases", content=package, headers={"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}
    )
    return r.status_code, r.json()


def test_only_packages_signed_by_a_trusted_pharmacy_key_are_accepted(station: Station) -> None:
    for bad in (
        b"not a package",
        _package("9", (Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())),
        _package("9", ward_keys(1))[:-20],
    ):
        status, body = _upload(station, bad)
        assert status == 422, body
        assert "package" in str(body["detail"])


def _compliance(system: LocalSystem) -> list[library.AreaCompliance]:
    with system.hospital.sessions() as db:
        return library.compliance(db)


def _states(station: Station, release: str) -> dict[str, str]:
    with station.system.hospital.sessions() as db:
        rows = db.execute(select(Deployment).where(Deployment.release_id == release)).scalars()
        return {d.pump_id: d.state for d in rows}


def test_a_release_reaches_a_care_area_through_packet_loss(station: Station) -> None:
    system = station.system
    area = system.ward.beds[0].area
    members = [b for b in system.ward.beds if b.area == area]
    status, release = _upload(station, _package("2026.2", ward_keys(1)))
    assert status == 201
    csrf = station.login("pharmacist")
    r = station.client.post(
        f"/api/releases/{release['id']}/targets", json={"care_areas": [area]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    system.bus.loss = 0.25  # a quarter of the messages lost: chunk requests and chunks are asked for again
    for _ in range(60):
        run(system, 10)
        if all(b.pump.library_identity and b.pump.library_identity.version == "2026.2" for b in members):
            break
    system.bus.loss = 0.0
    run(system, 5)
    assert all(b.pump.library_identity.version == "2026.2" for b in members)  # type: ignore[union-attr]
    assert set(_states(station, str(release["id"])).values()) == {"active"}
    (row,) = [a for a in _compliance(system) if a.care_area == area]
    assert (row.active, row.pumps, row.drift, row.foreign) == (len(members), len(members), (), ())
    others = [a for a in _compliance(system) if a.care_area != area]
    assert all(a.release is not None and a.release.version != "2026.2" for a in others)


def test_drift_foreign_and_rejected_libraries_are_flagged(station: Station) -> None:
    system = station.system
    hospital = system.hospital
    first, second, third = system.ward.beds
    # a pharmacy key the server trusts but the pumps do not: the pumps refuse the release
    other = (Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())
    trusted = (*hospital.settings.library_keys, *(k.public_key() for k in other))
    hospital.settings = dataclasses.replace(hospital.settings, library_keys=trusted)
    status, refused = _upload(station, _package("2026.3", other))
    assert status == 201
    csrf = station.login("pharmacist")
    station.client.post(
        f"/api/releases/{refused['id']}/targets", json={"care_areas": [first.area]}, headers={"X-CSRF-Token": csrf}
    )
    # a library loaded at the pump that the server never released
    second.pump.receive_library(_package("2026.4", ward_keys(1)))
    for _ in range(12):
        run(system, 10)
    by_area = {a.care_area: a for a in _compliance(system)}
    assert first.pump.config.pump_id in by_area[first.area].rejected
    assert first.pump.library_identity.version != "2026.3"  # type: ignore[union-attr]
    assert first.pump.config.pump_id in by_area[first.area].drift  # still on the old release
    if second.pump.library_identity.version == "2026.4":  # type: ignore[union-attr]
        assert by_area[second.area].foreign == (second.pump.config.pump_id,)
    else:  # staged while infusing: not active yet, so not foreign yet
        assert by_area[second.area].foreign == ()
    assert by_area[third.area].foreign == () and by_area[third.area].drift == ()
