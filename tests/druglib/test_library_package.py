"""Release packages: compile, author signature, approval over the diff, verify; hostile packages refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from druglib_helpers import (
    APPROVER,
    APPROVER_KEY,
    AUTHOR,
    AUTHOR_KEY,
    RELEASED,
    TRUSTED,
    base_data,
    check,
    entry,
    release,
    resign,
)
from openinfusion.druglib import package as package_module
from openinfusion.druglib.diff import release_diff
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import (
    approve,
    canonical_json,
    compile_package,
    content_hash,
    diff_hash,
    key_id,
    load_package,
    load_private_key,
    load_public_key,
    package_facts,
    private_key_pem,
    public_key_pem,
    sign_as_author,
    verify_package,
)
from openinfusion.errors import IntegrityError, LibraryError

LIBRARY: Library = check(base_data()).require()
SIGNED = release(LIBRARY)


def _envelope() -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(SIGNED)
    return envelope


@pytest.mark.req("OI-DERS-2", "OI-DERS-5", "OI-LIB-REL-1")
def test_released_package_verifies_with_both_signatures_and_its_identity() -> None:
    library, identity = load_package(SIGNED, TRUSTED)
    assert library == LIBRARY
    assert (identity.owner, identity.name, identity.version) == ("Test Hospital", "test library", "1")
    assert identity.hash == hashlib.sha256(canonical_json(LIBRARY.to_data())).hexdigest() == content_hash(LIBRARY)
    verified = verify_package(SIGNED, [Ed25519PrivateKey.generate().public_key(), *TRUSTED])
    assert (verified.author.signer, verified.approver.signer) == (AUTHOR[0], APPROVER[0])
    assert verified.key_ids == (key_id(AUTHOR_KEY.public_key()), key_id(APPROVER_KEY.public_key()))
    assert verified.base is None and verified.diff_sha256 == diff_hash(release_diff(None, LIBRARY))
    assert verified.released == RELEASED


def test_package_bytes_are_canonical_and_reproducible() -> None:
    assert release(LIBRARY) == SIGNED  # Ed25519 signatures are deterministic
    assert canonical_json(json.loads(SIGNED)) == SIGNED
    assert SIGNED.isascii() and b"\n" not in SIGNED and b'": ' not in SIGNED


@pytest.mark.req("OI-DERS-2")
@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(SIGNED) - 1), st.integers(1, 255))
def test_any_changed_byte_is_refused(position: int, flip: int) -> None:
    tampered = bytearray(SIGNED)
    tampered[position] ^= flip
    with pytest.raises(IntegrityError, match="package refused"):
        verify_package(bytes(tampered), TRUSTED)


@pytest.mark.req("OI-DERS-2")
def test_changed_limit_is_refused_for_its_hash_and_rehashed_for_its_signatures() -> None:
    envelope = _envelope()
    envelope["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    with pytest.raises(IntegrityError, match="content hash mismatch"):
        verify_package(canonical_json(envelope), TRUSTED)
    envelope["metadata"]["content_sha256"] = hashlib.sha256(canonical_json(envelope["library"])).hexdigest()
    with pytest.raises(IntegrityError, match="author signature does not verify"):
        verify_package(canonical_json(envelope), TRUSTED)


@pytest.mark.req("OI-DERS-2", "OI-LIB-REL-1")
def test_untrusted_missing_and_non_canonical_packages_are_refused() -> None:
    with pytest.raises(IntegrityError, match="untrusted key"):
        verify_package(SIGNED, [Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(IntegrityError, match="approver signed with an untrusted key"):
        verify_package(SIGNED, [AUTHOR_KEY.public_key()])
    with pytest.raises(IntegrityError, match="not signed"):
        verify_package(compile_package(LIBRARY, RELEASED), TRUSTED)
    with pytest.raises(IntegrityError, match="exactly two signatures"):
        verify_package(sign_as_author(compile_package(LIBRARY, RELEASED), *reversed(AUTHOR)), TRUSTED)
    with pytest.raises(IntegrityError, match="canonical"):
        verify_package(json.dumps(json.loads(SIGNED), sort_keys=True).encode(), TRUSTED)
    with pytest.raises(IntegrityError, match="invalid JSON"):
        verify_package(b"\xff" + SIGNED, TRUSTED)


@pytest.mark.req("OI-LIB-REL-1")
def test_one_person_cannot_release_alone() -> None:
    authored = sign_as_author(compile_package(LIBRARY, RELEASED), AUTHOR_KEY, AUTHOR[0])
    with pytest.raises(LibraryError, match="own key"):
        approve(authored, AUTHOR_KEY, "Someone Else", None)
    with pytest.raises(LibraryError, match="is the author"):
        approve(authored, APPROVER_KEY, " a. author,  pharmd", None)
    with pytest.raises(LibraryError, match="not usable"):  # the author's name with a Cyrillic А
        approve(authored, APPROVER_KEY, "\u0410. Author, PharmD", None)
    one_key = _envelope()
    with pytest.raises(IntegrityError, match="one key"):
        verify_package(resign(one_key, (AUTHOR_KEY, AUTHOR_KEY)), TRUSTED)
    look_alike = _envelope()
    look_alike["signatures"][1]["signer"] = "A. Author, PharrnD"  # rn for m: a look-alike of the author
    with pytest.raises(IntegrityError, match="own author"):
        verify_package(resign(look_alike), TRUSTED)


@pytest.mark.req("OI-LIB-REL-1")
def test_swapped_signatures_and_a_signature_moved_to_another_release_are_refused() -> None:
    swapped = _envelope()
    swapped["signatures"][0]["value"], swapped["signatures"][1]["value"] = (
        swapped["signatures"][1]["value"],
        swapped["signatures"][0]["value"],
    )
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_package(canonical_json(swapped), TRUSTED)
    data = base_data()
    entry(data, "dopamine")["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    other = json.loads(release(check(data).require()))
    other["signatures"][1] = _envelope()["signatures"][1]  # an approval of another release
    with pytest.raises(IntegrityError, match="approver signature does not verify"):
        verify_package(canonical_json(other), TRUSTED)


@pytest.mark.req("OI-LIB-REL-1")
def test_the_approval_covers_the_diff_against_the_active_release() -> None:
    data = base_data()
    data["library"]["version"] = "2"
    entry(data, "dopamine")["limits"]["dose"]["soft_max"] = "25 ug/kg/min"
    v2 = check(data).require()
    package = release(v2, active=LIBRARY)
    verified = verify_package(package, TRUSTED, base=LIBRARY)
    assert verified.base is not None and verified.base.content_sha256 == content_hash(LIBRARY)
    assert verified.diff_sha256 == diff_hash(release_diff(LIBRARY, v2))
    lied = json.loads(package)
    lied["signatures"][1]["diff_sha256"] = diff_hash(())  # "nothing changed"
    with pytest.raises(IntegrityError, match="another diff"):
        verify_package(resign(lied), TRUSTED, base=LIBRARY)


@pytest.mark.req("OI-DERS-2")
def test_unknown_format_and_schema_versions_are_refused_even_when_signed() -> None:
    newer_schema = _envelope()
    newer_schema["metadata"]["library_schema"] = "openinfusion.druglib/2"
    with pytest.raises(IntegrityError, match="unknown library schema version"):
        verify_package(resign(newer_schema), TRUSTED)
    older_format = _envelope() | {"format": "openinfusion.druglib.package/1"}
    with pytest.raises(IntegrityError, match="unknown package format"):
        verify_package(canonical_json(older_format), TRUSTED)


@pytest.mark.req("OI-DERS-2", "OI-DERS-5")
def test_metadata_must_name_the_library_it_carries() -> None:
    other_owner = _envelope()
    other_owner["metadata"]["owner"] = "Another Hospital"
    with pytest.raises(IntegrityError, match="does not match"):
        verify_package(resign(other_owner), TRUSTED)


@pytest.mark.req("OI-DERS-1", "OI-DERS-2")
def test_signed_content_is_validated_again_at_the_pump() -> None:
    invalid = _envelope()
    invalid["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["soft_max"] = "35 ug/kg/min"
    invalid["metadata"]["content_sha256"] = hashlib.sha256(canonical_json(invalid["library"])).hexdigest()
    with pytest.raises(IntegrityError, match="soft_outside_hard"):
        verify_package(resign(invalid), TRUSTED)


@pytest.mark.req("OI-DERS-2", "OI-LIB-REL-1")
def test_a_library_validated_before_skips_the_rule_checks_but_never_the_signatures_or_the_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = base_data()
    data["library"]["version"] = "7.3.1"  # a library no other test has verified in this process
    signed = release(check(data).require())
    calls: list[object] = []
    real = package_module.validate_data
    monkeypatch.setattr(package_module, "validate_data", lambda *a: calls.append(a) or real(*a))
    first = verify_package(signed, TRUSTED)
    again = verify_package(signed, TRUSTED)
    assert again.library is first.library and len(calls) == 1  # validated once (decision record 0039)
    with pytest.raises(IntegrityError, match="untrusted key"):
        verify_package(signed, [Ed25519PrivateKey.generate().public_key()])
    altered: dict[str, Any] = json.loads(signed)  # other content under the hash already validated
    altered["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["hard_max"] = "300 ug/kg/min"
    with pytest.raises(IntegrityError, match="content hash mismatch"):
        verify_package(canonical_json(altered), TRUSTED)
    invalid: dict[str, Any] = json.loads(signed)  # an invalid library is refused every time, not only the first
    invalid["library"]["drugs"][0]["care_areas"][0]["limits"]["dose"]["soft_max"] = "35 ug/kg/min"
    invalid["metadata"]["content_sha256"] = hashlib.sha256(canonical_json(invalid["library"])).hexdigest()
    for _ in range(2):
        with pytest.raises(IntegrityError, match="soft_outside_hard"):
            verify_package(resign(invalid), TRUSTED)


@pytest.mark.req("OI-LIB-PKG-5")
def test_package_facts_read_what_a_package_claims_without_trusting_it() -> None:
    facts = package_facts(SIGNED)
    assert (facts.version, facts.content_sha256) == ("1", content_hash(LIBRARY))
    assert facts.key_ids == (key_id(AUTHOR_KEY.public_key()), key_id(APPROVER_KEY.public_key()))
    assert package_facts(b"\xff garbage").to_json() == {"version": "unreadable", "hash": "unreadable", "key_ids": []}


@pytest.mark.req("OI-LIB-REL-2")
def test_private_keys_are_stored_encrypted_and_need_their_passphrase() -> None:
    pem = private_key_pem(AUTHOR_KEY, b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in pem and AUTHOR_KEY.private_bytes_raw().hex().encode() not in pem
    assert key_id(load_private_key(pem, b"correct horse").public_key()) == key_id(AUTHOR_KEY.public_key())
    with pytest.raises(LibraryError, match="wrong passphrase"):
        load_private_key(pem, b"wrong")
    with pytest.raises(LibraryError, match="must not be empty"):
        private_key_pem(AUTHOR_KEY, b"")
    assert key_id(load_public_key(public_key_pem(AUTHOR_KEY.public_key()))) == key_id(AUTHOR_KEY.public_key())
    with pytest.raises(LibraryError, match="not a PEM"):
        load_public_key(b"not a key", "trusted.pub")
    with pytest.raises(LibraryError, match="not an encrypted private key"):
        load_private_key(public_key_pem(AUTHOR_KEY.public_key()), b"x", "release.key")


def test_versions_must_be_dotted_numbers_and_rollbacks_name_a_newer_one() -> None:
    with pytest.raises(LibraryError, match="rollback replaces a newer version"):
        compile_package(LIBRARY, RELEASED, rollback_from="1")
    data = base_data()
    data["library"]["version"] = "v2-final"
    assert "bad_version" in {f.rule for f in check(data).errors}
