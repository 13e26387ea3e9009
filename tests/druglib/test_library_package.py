"""Release packages: compile, sign, verify; tampered, unsigned, foreign or self-approved ones refused."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from druglib_helpers import RELEASE, base_data, check
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import (
    ReleaseInfo,
    canonical_json,
    compile_package,
    content_hash,
    key_id,
    load_package,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_package,
    verify_package,
)
from openinfusion.errors import IntegrityError, LibraryError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # a fixed test key: packages are reproducible
LIBRARY: Library = check(base_data()).require()
SIGNED = sign_package(compile_package(LIBRARY, RELEASE), KEY)


def _resign(envelope: dict[str, Any], key: Ed25519PrivateKey = KEY) -> bytes:
    """Sign an envelope as given, bypassing sign_package's own checks (to build hostile packages)."""
    unsigned = {k: envelope[k] for k in ("format", "metadata", "library")}
    value = base64.b64encode(key.sign(canonical_json(unsigned))).decode("ascii")
    signature = {"algorithm": "Ed25519", "key_id": key_id(key.public_key()), "value": value}
    return canonical_json(unsigned | {"signature": signature})


def _envelope() -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(SIGNED)
    return envelope


@pytest.mark.req("OI-DERS-2", "OI-DERS-5")
def test_signed_package_verifies_and_gives_the_library_and_its_identity() -> None:
    library, identity = load_package(SIGNED, [KEY.public_key()])
    assert library == LIBRARY
    assert (identity.owner, identity.name, identity.version) == ("Test Hospital", "test library", "1")
    assert identity.hash == hashlib.sha256(canonical_json(LIBRARY.to_data())).hexdigest() == content_hash(LIBRARY)
    verified = verify_package(SIGNED, [Ed25519PrivateKey.generate().public_key(), KEY.public_key()])
    assert verified.release == RELEASE
    assert verified.key_id == key_id(KEY.public_key())


def test_package_bytes_are_canonical_and_reproducible() -> None:
    assert sign_package(compile_package(LIBRARY, RELEASE), KEY) == SIGNED  # Ed25519 signatures are deterministic
    assert canonical_json(json.loads(SIGNED)) == SIGNED
    assert SIGNED.isascii() and b"\n" not in SIGNED and b'": ' not in SIGNED


@pytest.mark.req("OI-DERS-2")
@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(SIGNED) - 1), st.integers(1, 255))
def test_any_changed_byte_is_refused(position: int, flip: int) -> None:
    tampered = bytearray(SIGNED)
    tampered[position] ^= flip
    with pytest.raises(IntegrityError, match="package refused"):
        verify_package(bytes(tampered), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_changed_limit_is_refused_for_its_hash() -> None:
    envelope = _envelope()
    limits = envelope["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]
    limits["hard_max"] = "300 ug/kg/min"  # same length of change a tamperer wants: a tenfold limit
    with pytest.raises(IntegrityError, match="content hash mismatch"):
        verify_package(canonical_json(envelope), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_rehashed_but_unsigned_change_is_refused_for_its_signature() -> None:
    envelope = _envelope()
    envelope["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    envelope["metadata"]["content_sha256"] = hashlib.sha256(canonical_json(envelope["library"])).hexdigest()
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_package(canonical_json(envelope), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_wrong_key_missing_signature_and_non_canonical_bytes_are_refused() -> None:
    with pytest.raises(IntegrityError, match="untrusted key"):
        verify_package(SIGNED, [Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(IntegrityError, match="untrusted key"):
        verify_package(SIGNED, [])
    with pytest.raises(IntegrityError, match="not signed"):
        verify_package(compile_package(LIBRARY, RELEASE), [KEY.public_key()])
    with pytest.raises(IntegrityError, match="canonical"):
        verify_package(json.dumps(json.loads(SIGNED), sort_keys=True).encode(), [KEY.public_key()])
    with pytest.raises(IntegrityError, match="invalid JSON"):
        verify_package(b"\xff" + SIGNED, [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_signature_by_another_key_claiming_the_trusted_key_id_is_refused() -> None:
    forged = _envelope()
    impostor = Ed25519PrivateKey.generate()
    unsigned = {k: forged[k] for k in ("format", "metadata", "library")}
    forged["signature"]["value"] = base64.b64encode(impostor.sign(canonical_json(unsigned))).decode()
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_package(canonical_json(forged), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_unknown_format_and_schema_versions_are_refused_even_when_signed() -> None:
    newer_format = _envelope() | {"format": "openinfusion.druglib.package/2"}
    with pytest.raises(IntegrityError, match="unknown package format"):
        verify_package(_resign(newer_format), [KEY.public_key()])
    newer_schema = _envelope()
    newer_schema["metadata"]["library_schema"] = "openinfusion.druglib/2"
    with pytest.raises(IntegrityError, match="unknown library schema version"):
        verify_package(_resign(newer_schema), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2")
def test_author_cannot_approve_their_own_release() -> None:
    with pytest.raises(LibraryError, match="second pharmacist"):
        ReleaseInfo("A. Author", " a.  author ", datetime.date(2026, 1, 1))
    self_approved = _envelope()
    self_approved["metadata"]["approver"] = self_approved["metadata"]["author"]
    with pytest.raises(IntegrityError, match="own author"):
        verify_package(_resign(self_approved), [KEY.public_key()])


@pytest.mark.req("OI-DERS-2", "OI-DERS-5")
def test_metadata_must_name_the_library_it_carries() -> None:
    other_owner = _envelope()
    other_owner["metadata"]["owner"] = "Another Hospital"
    with pytest.raises(IntegrityError, match="does not match"):
        verify_package(_resign(other_owner), [KEY.public_key()])


@pytest.mark.req("OI-DERS-1", "OI-DERS-2")
def test_signed_content_is_validated_again_at_the_pump() -> None:
    invalid = _envelope()
    invalid["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["soft_max"] = "35 ug/kg/min"
    invalid["metadata"]["content_sha256"] = hashlib.sha256(canonical_json(invalid["library"])).hexdigest()
    with pytest.raises(IntegrityError, match="soft_outside_hard"):
        verify_package(_resign(invalid), [KEY.public_key()])


def test_keys_round_trip_through_pem_and_bad_pem_is_refused() -> None:
    assert key_id(load_private_key(private_key_pem(KEY)).public_key()) == key_id(KEY.public_key())
    assert key_id(load_public_key(public_key_pem(KEY.public_key()))) == key_id(KEY.public_key())
    with pytest.raises(LibraryError, match="not a PEM"):
        load_public_key(b"not a key", "trusted.pub")
    with pytest.raises(LibraryError, match="not a PEM"):
        load_private_key(public_key_pem(KEY.public_key()), "release.key")
