"""Attacks on the drug library at the pump (issue 8, item 7): every hostile package is refused, the previous
library stays active, and the refusal is logged with the version, hash and key ids refused.

The pump is the real core on virtual hardware, set to care area ICU, with version 1 of a small library
installed; each attack then sends one package through :meth:`Pump.receive_library`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from druglib_helpers import AUTHOR_KEY, RELEASED, TRUSTED, base_data, check, entry, release, resign
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import compile_package, content_hash, key_id, sign_as_author
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.ders import StoredLibraries
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.pump import Phase, Pump, PumpConfig
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import Duration

from rig import KVO

Data = dict[str, Any]
KEY_IDS = [key_id(k) for k in TRUSTED]


def library(version: str, change: Callable[[Data], None] | None = None) -> Library:
    data = base_data()
    data["library"]["version"] = version
    if change is not None:
        change(data)
    return check(data).require()


def looser(data: Data) -> None:
    entry(data, "dopamine")["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    entry(data, "dopamine")["limits"]["dose"]["soft_max"] = "200 ug/kg/min"


V1 = library("1")
V2 = library("2")
PACKAGE_V1 = release(V1)
PACKAGE_V2 = release(V2, active=V1)


class Bench:
    """A one-channel pump in the ICU with ``stored`` in its non-volatile memory, powered on."""

    def __init__(self, stored: StoredLibraries | bytes = PACKAGE_V1) -> None:
        self.world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW), np.random.default_rng(5))
        config = PumpConfig(channels=(ChannelSettings(kvo=KVO),), care_area="ICU")
        self.pump = Pump(self.world.hardware, self.world.calibrations, config, TRUSTED, stored)
        self.driver = Driver(self.world, self.pump)
        self.driver.service()
        self.driver.run_until(self.world.now + Duration.s(1))

    def send(self, package: bytes) -> None:
        self.pump.receive_library(package)

    def rejections(self) -> list[dict[str, Any]]:
        return [e.to_json()["data"] for e in self.pump.log.events() if e.kind is EventKind.LIBRARY_REJECTED]


def _flip(position: int) -> Callable[[], bytes]:
    def attack() -> bytes:
        flipped = bytearray(PACKAGE_V2)
        flipped[position % len(flipped)] ^= 0x01
        return bytes(flipped)

    return attack


def _wrong_key() -> bytes:
    return release(V2, active=V1, author=("C. Stranger", Ed25519PrivateKey.generate()))


def _swapped_signatures() -> bytes:
    envelope = json.loads(PACKAGE_V2)
    first, second = envelope["signatures"]
    first["value"], second["value"] = second["value"], first["value"]
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


def _truncated() -> bytes:
    return PACKAGE_V2[: len(PACKAGE_V2) // 2]


def _replay_active() -> bytes:
    return PACKAGE_V1


def _same_version_new_content() -> bytes:
    return release(library("1", looser))


def _missing_care_area() -> bytes:
    def without_icu(data: Data) -> None:
        data["care_areas"] = [a for a in data["care_areas"] if a["id"] != "ICU"]
        for d in data["drugs"]:
            d["care_areas"] = [e for e in d["care_areas"] if e["area"] != "ICU"]
        data["drugs"] = [d for d in data["drugs"] if d["care_areas"]]

    return release(library("2", without_icu), active=V1)


def _single_signer() -> bytes:
    return sign_as_author(compile_package(V2, RELEASED), AUTHOR_KEY, "A. Author, PharmD")


def _one_key_twice() -> bytes:
    return resign(json.loads(PACKAGE_V2), (AUTHOR_KEY, AUTHOR_KEY))


def _look_alike_approver(name: str) -> Callable[[], bytes]:
    def attack() -> bytes:
        envelope = json.loads(PACKAGE_V2)
        envelope["signatures"][1]["signer"] = name
        return resign(envelope)

    return attack


# (name, attack, what the refusal says): each is refused with v1 active.
ATTACKS: list[tuple[str, Callable[[], bytes], str]] = [
    *((f"byte flip at {p}", _flip(p), "package refused") for p in (0, 40, 300, 2000, -120, -20)),
    ("wrong key", _wrong_key, "untrusted key"),
    ("swapped signatures", _swapped_signatures, "does not verify"),
    ("truncation", _truncated, "invalid JSON"),
    ("replay of the active package", _replay_active, "a replay"),
    ("same version, new content", _same_version_new_content, "same version, different content"),
    ("missing care area", _missing_care_area, "no care area 'ICU'"),
    ("single signer", _single_signer, "exactly two signatures"),
    ("one key signing twice", _one_key_twice, "one key"),
    ("look-alike approver (rn for m)", _look_alike_approver("A. Author, PharrnD"), "own author"),
    ("look-alike approver (Cyrillic A)", _look_alike_approver("\u0410. Author, PharmD"), "unusable"),
    ("approver is the author, spaced", _look_alike_approver("a. author, pharmd"), "own author"),
]


@pytest.mark.req("OI-DERS-2", "OI-LIB-PKG-1", "OI-LIB-PKG-3", "OI-LIB-PKG-5", "OI-LIB-REL-1")
@pytest.mark.parametrize(("name", "attack", "why"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_previous_library_kept_and_refusal_logged(
    name: str, attack: Callable[[], bytes], why: str
) -> None:
    b = Bench()
    before = b.pump.library_identity
    assert before is not None and before.version == "1"
    package = attack()
    b.send(package)
    assert b.pump.library_identity == before, name
    assert b.pump.library.staged is None
    (logged,) = b.rejections()
    assert why in str(logged["reason"])
    refused = logged["refused"]
    assert isinstance(refused, dict) and set(refused) == {"version", "hash", "key_ids"}
    if name in ("wrong key", "replay of the active package", "same version, new content", "missing care area"):
        claimed = json.loads(package)
        assert refused["version"] == claimed["metadata"]["version"]
        assert refused["hash"] == claimed["metadata"]["content_sha256"]
        assert refused["key_ids"] == [s["key_id"] for s in claimed["signatures"]]


@pytest.mark.req("OI-LIB-PKG-1", "OI-LIB-PKG-2", "OI-LIB-PKG-5")
def test_rollback_is_refused_without_a_signed_authorisation_and_accepted_with_one() -> None:
    b = Bench()
    b.send(PACKAGE_V2)
    b.driver.run_until(b.world.now + Duration.s(1))
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "2"
    b.send(release(V1))  # an older, validly signed release
    assert b.pump.library_identity.version == "2"
    (rollback,) = b.rejections()
    assert "older than version 2" in str(rollback["reason"])
    assert rollback["refused"] == {"version": "1", "hash": content_hash(V1), "key_ids": KEY_IDS}
    authorised = release(V1, active=V2, rollback_from="2")
    b.send(authorised)
    b.driver.run_until(b.world.now + Duration.s(1))
    assert b.pump.library_identity.version == "1"  # rolled back, as the two pharmacists authorised
    b.send(release(library("3"), active=V1))
    b.driver.run_until(b.world.now + Duration.s(1))
    assert b.pump.library_identity.version == "3"
    b.send(authorised)  # the old authorisation, replayed later, rolls nothing back
    assert b.pump.library_identity.version == "3"
    assert "rollback authorisation is from version 2" in str(b.rejections()[-1]["reason"])


@pytest.mark.req("OI-LIB-PKG-1")
def test_a_newer_version_activates_and_its_replay_changes_nothing() -> None:
    b = Bench()
    b.send(PACKAGE_V2)
    b.driver.run_until(b.world.now + Duration.s(1))
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "2"
    assert b.rejections() == []
    b.send(PACKAGE_V2)
    assert "a replay" in str(b.rejections()[-1]["reason"])
    stored = b.pump.library.stored()
    assert stored.active == PACKAGE_V2 and stored.last_good == PACKAGE_V1
    assert [(a.version, a.hash) for a in stored.accepted] == [("1", content_hash(V1)), ("2", content_hash(V2))]


def _stored_after_upgrade() -> StoredLibraries:
    b = Bench()
    b.send(PACKAGE_V2)
    b.driver.run_until(b.world.now + Duration.s(1))
    return b.pump.library.stored()


@pytest.mark.req("OI-LIB-PKG-4")
def test_corrupt_stored_library_falls_back_to_the_last_known_good_one_with_an_alarm() -> None:
    stored = _stored_after_upgrade()
    assert stored.active is not None
    corrupt = dataclasses.replace(stored, active=stored.active.replace(b"30 ug/kg/min", b"90 ug/kg/min"))
    b = Bench(corrupt)
    assert b.pump.phase is Phase.RUNNING
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "1"
    assert any(a.code is AlarmCode.LIBRARY_FALLBACK for a in b.pump.alarms.active())
    (refused,) = b.rejections()
    assert "content hash mismatch" in str(refused["reason"]) and refused["refused"]["version"] == "2"
    b.send(PACKAGE_V2)  # the server sends version 2 again: same version and content, so it is accepted
    b.driver.run_until(b.world.now + Duration.s(1))
    assert b.pump.library_identity.version == "2"
    b.send(release(V1))  # but the fallback opened no door to a rollback
    assert b.pump.library_identity.version == "2"


@pytest.mark.req("OI-LIB-PKG-4")
def test_a_corrupt_last_known_good_copy_alone_is_logged_and_the_pump_runs() -> None:
    stored = _stored_after_upgrade()
    assert stored.last_good is not None
    b = Bench(dataclasses.replace(stored, last_good=stored.last_good[:-3]))
    assert b.pump.phase is Phase.RUNNING
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "2"
    assert not any(a.code is AlarmCode.LIBRARY_FALLBACK for a in b.pump.alarms.active())
    assert "stored package refused" in str(b.rejections()[0]["reason"])


@pytest.mark.req("OI-LIB-PKG-4", "OI-LIB-PKG-1")
def test_without_a_good_stored_library_the_pump_stays_out_of_service() -> None:
    stored = _stored_after_upgrade()
    assert stored.active is not None and stored.last_good is not None
    both_bad = dataclasses.replace(stored, active=stored.active[:-3], last_good=stored.last_good[:-3])
    b = Bench(both_bad)
    assert b.pump.phase is Phase.OUT_OF_SERVICE
    assert b.pump.library_identity is None
    swapped = release(library("2", looser), active=V1)  # a validly signed v2 with other content, in storage
    b = Bench(dataclasses.replace(stored, active=swapped))
    assert b.pump.library_identity is not None and b.pump.library_identity.hash == content_hash(V1)
    assert "same version, different content" in str(b.rejections()[0]["reason"])
