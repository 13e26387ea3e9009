"""Release: a versioned, content-hashed library package signed by two pharmacists (issue 8, items 2-3).

A package is one canonical JSON object (sorted keys, no whitespace, ASCII only)::

    {"format": "openinfusion.druglib.package/2",
     "metadata": {"library_schema", "owner", "name", "version", "released", "content_sha256",
                  "rollback_from"},
     "library": <the canonical library document, exact decimal strings>,
     "signatures": [<author signature>, <approver signature>]}

``content_sha256`` is the SHA-256 of the canonical JSON of ``library``. ``rollback_from`` is ``null``, or the
rollback authorisation: the version this package replaces although it is older (OI-LIB-PKG-2).

The two-person release (OI-LIB-REL-1). The *body* is ``format``, ``metadata`` and ``library``.

1. The author signs the body with their own key (:func:`sign_as_author`): the signature covers the body,
   the role, the signer's name and the key id.
2. The approver reviews the diff against the active release (:func:`release_diff`) and signs with their
   own key (:func:`approve`): the signature covers the body, the author's signature, the base release
   (version and content hash, or ``null`` for a first release) and the SHA-256 of the diff they saw.

:func:`verify_package` accepts a package only if it is in canonical form (so *any* changed byte is refused),
its format and library schema are known, the hash matches, it carries exactly an author and an approver
signature, made with two *distinct* keys both on the trusted list, by two signers whose names are neither
the same nor look-alikes (:mod:`openinfusion.druglib.names`), both signatures verify, the content validates
again as a library, and, when the caller holds the base release the approver reviewed, the diff hash
matches. Anything else raises :class:`~openinfusion.errors.IntegrityError` with the reason; the pump keeps
its library (:mod:`openinfusion.pump.ders`). :func:`package_facts` reads what a refused package claims to
be (version, hash, key ids) for the log, without trusting it (OI-LIB-PKG-5).

Versions are dotted numbers (``12``, ``2026.3.1``), compared numerically (:func:`version_key`), so the pump
can refuse a rollback. Private keys are stored encrypted (PKCS#8 with the best encryption ``cryptography``
offers; OI-LIB-REL-2). No wall clock is read here: the release date is given.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openinfusion.druglib.diff import Change, release_diff
from openinfusion.druglib.model import SCHEMA, Data, Library, version_key
from openinfusion.druglib.names import Namespace, collapse, name_problems, visible
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.errors import IntegrityError, LibraryError

PACKAGE_FORMAT: Final = "openinfusion.druglib.package/2"
ALGORITHM: Final = "Ed25519"
AUTHOR: Final = "author"
APPROVER: Final = "approver"
_ROLES: Final = (AUTHOR, APPROVER)
_METADATA_KEYS: Final = (
    "library_schema",
    "owner",
    "name",
    "version",
    "released",
    "content_sha256",
    "rollback_from",
)
_BODY: Final = ("format", "metadata", "library")
_SIGNATURE_KEYS: Final = frozenset({"role", "signer", "algorithm", "key_id", "value"})
_APPROVAL_KEYS: Final = _SIGNATURE_KEYS | {"base", "diff_sha256"}
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
UNREADABLE: Final = "unreadable"
T = TypeVar("T")


def same_signer(a: str, b: str) -> bool:
    """True if two signer names are the same person's or look alike (normal form or UTS #39 skeleton)."""
    space = Namespace("signer")
    return bool(space.add("author", a, "author") + space.add("approver", b, "approver"))


@dataclass(frozen=True, slots=True)
class LibraryIdentity:
    """What the pump shows and logs about its library (OI-DERS-5): owner, name, version, content hash."""

    owner: str
    name: str
    version: str
    hash: str  # SHA-256 of the canonical library content, hex

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def __str__(self) -> str:
        return f"{self.owner} / {self.name} version {self.version} (sha256 {self.short_hash})"

    def to_json(self) -> dict[str, str]:
        """The event log's library fields (``owner``, ``version``, ``hash``) and the name."""
        return {"owner": self.owner, "name": self.name, "version": self.version, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Signature:
    """One verified signature: role (author or approver), the signer's name and the key id used."""

    role: str
    signer: str
    key_id: str


@dataclass(frozen=True, slots=True)
class BaseRelease:
    """The active release the approver reviewed the diff against."""

    version: str
    content_sha256: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "content_sha256": self.content_sha256}


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    """A package that verified: the library, its identity, the release date, both signatures, and what
    the approver reviewed (the base release, None for a first release, and the diff's hash)."""

    library: Library
    identity: LibraryIdentity
    released: datetime.date
    author: Signature
    approver: Signature
    base: BaseRelease | None
    diff_sha256: str
    rollback_from: str | None

    @property
    def key_ids(self) -> tuple[str, str]:
        return self.author.key_id, self.approver.key_id


@dataclass(frozen=True, slots=True)
class PackageFacts:
    """What a package claims to be, read without trusting it, for logging a refusal (OI-LIB-PKG-5)."""

    version: str
    content_sha256: str
    key_ids: tuple[str, ...]

    def to_json(self) -> dict[str, str | list[str]]:
        return {"version": self.version, "hash": self.content_sha256, "key_ids": list(self.key_ids)}


def canonical_json(value: object) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, ASCII escapes; floats and NaN refused."""
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _refuse_floats(value: object) -> None:
    if isinstance(value, float):
        raise IntegrityError("a package holds exact decimal strings, never floats")
    if isinstance(value, dict):
        for v in value.values():
            _refuse_floats(v)
    elif isinstance(value, list):
        for v in value:
            _refuse_floats(v)


def content_hash(library: Library) -> str:
    """SHA-256 (hex) of the canonical JSON of the library's content."""
    return hashlib.sha256(canonical_json(library.to_data())).hexdigest()


def identity_of(library: Library) -> LibraryIdentity:
    return LibraryIdentity(library.info.owner, library.info.name, library.info.version, content_hash(library))


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short identifier of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def diff_hash(changes: Sequence[Change]) -> str:
    """SHA-256 (hex) of the canonical JSON of a diff: what the approver's signature binds them to."""
    return hashlib.sha256(canonical_json([c.to_json() for c in changes])).hexdigest()


def compile_package(library: Library, released: datetime.date, rollback_from: str | None = None) -> bytes:
    """The unsigned package of a (validated) library; ``rollback_from`` authorises replacing that newer version."""
    version_key(library.info.version)
    if rollback_from is not None and version_key(rollback_from) <= version_key(library.info.version):
        raise LibraryError("--rollback-from", f"a rollback replaces a newer version than {library.info.version}")
    metadata = {
        "library_schema": library.schema,
        "owner": library.info.owner,
        "name": library.info.name,
        "version": library.info.version,
        "released": released.isoformat(),
        "content_sha256": content_hash(library),
        "rollback_from": rollback_from,
    }
    return canonical_json({"format": PACKAGE_FORMAT, "metadata": metadata, "library": library.to_data()})


def sign_as_author(package: bytes, private_key: Ed25519PrivateKey, signer: str) -> bytes:
    """The author's signature over a compiled, unsigned package."""
    envelope = _parse(package)
    _check_content(envelope)
    if envelope.get("signatures"):
        raise LibraryError("package", "is signed already; the author signs a freshly compiled package")
    signer = collapse(signer)
    _check_signer_name("author", signer)
    statement = _author_statement(envelope, signer, key_id(private_key.public_key()))
    signature = _signature_block(statement, private_key)
    return canonical_json(_body(envelope) | {"signatures": [signature]})


def unsigned_library(package: bytes) -> Library:
    """The library a package holds, after its form and hash are checked (what the approver reviews)."""
    envelope = _parse(package)
    _check_content(envelope)
    return validate_data(envelope["library"], "package").require()


def approve(package: bytes, private_key: Ed25519PrivateKey, signer: str, active: Library | None) -> bytes:
    """The approver's signature over an author-signed package and its diff against ``active`` (None: first release)."""
    envelope = _parse(package)
    _check_content(envelope)
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or signatures[0].get("role") != AUTHOR:
        raise LibraryError("package", "the approver signs a package that carries the author's signature only")
    author = signatures[0]
    signer = collapse(signer)
    _check_signer_name("approver", signer)
    if same_signer(str(author.get("signer")), signer):
        raise LibraryError("approver", f"{visible(signer)} is the author: a second pharmacist must approve")
    if author.get("key_id") == key_id(private_key.public_key()):
        raise LibraryError("approver", "the approver must sign with their own key, not the author's")
    new = validate_data(envelope["library"], "package").require()
    base = None if active is None else BaseRelease(active.info.version, content_hash(active))
    statement = _approval_statement(envelope, author, signer, key_id(private_key.public_key()), base)
    statement["diff_sha256"] = diff_hash(release_diff(active, new))
    approval = _signature_block(statement, private_key)
    return canonical_json(_body(envelope) | {"signatures": [author, approval]})


def verify_package(
    package: bytes, trusted_keys: Sequence[Ed25519PublicKey], base: Library | None = None
) -> VerifiedPackage:
    """Verify a released package against the trusted keys; IntegrityError saying why it is refused (OI-DERS-2).

    ``base``: a library the caller holds; if it is the release the approver reviewed, the diff they
    signed is recomputed and must match.
    """
    envelope = _parse(package)
    metadata = _check_content(envelope)
    signatures = envelope.get("signatures")
    if not signatures:
        raise IntegrityError("package refused: the package is not signed")
    if not isinstance(signatures, list) or len(signatures) != 2:
        raise IntegrityError(
            "package refused: a release carries exactly two signatures, the author's and the approver's"
        )
    author, approval = signatures
    if not isinstance(author, dict) or set(author) != _SIGNATURE_KEYS or author["role"] != AUTHOR:
        raise IntegrityError("package refused: the first signature is not a well-formed author signature")
    if not isinstance(approval, dict) or set(approval) != _APPROVAL_KEYS or approval["role"] != APPROVER:
        raise IntegrityError("package refused: the second signature is not a well-formed approver signature")
    texts = [author[k] for k in _SIGNATURE_KEYS] + [approval[k] for k in _SIGNATURE_KEYS]
    if not all(isinstance(t, str) for t in texts) or not _HEX64.fullmatch(str(approval["diff_sha256"])):
        raise IntegrityError("package refused: malformed signature block")
    trusted = {key_id(k): k for k in trusted_keys}
    for sig in (author, approval):
        if sig["algorithm"] != ALGORITHM:
            raise IntegrityError(f"package refused: unsupported signature algorithm {sig['algorithm']!r}")
        if sig["key_id"] not in trusted:
            raise IntegrityError(
                f"package refused: {sig['role']} signed with an untrusted key (key id {sig['key_id']!r})"
            )
    if author["key_id"] == approval["key_id"]:
        raise IntegrityError("package refused: author and approver signed with one key (two people, two keys)")
    for sig in (author, approval):
        if name_problems(sig["role"], sig["signer"]):
            raise IntegrityError(f"package refused: the {sig['role']}'s name {visible(sig['signer'])} is unusable")
    if same_signer(author["signer"], approval["signer"]):
        same = f"{visible(approval['signer'])} is {visible(author['signer'])}"
        raise IntegrityError(f"package refused: approved by its own author ({same})")
    base_release = _base(approval["base"])
    _check_signature(author, trusted, _author_statement(envelope, author["signer"], author["key_id"]))
    statement = _approval_statement(envelope, author, approval["signer"], approval["key_id"], base_release)
    statement["diff_sha256"] = approval["diff_sha256"]
    _check_signature(approval, trusted, statement)
    report = _validated(ByDigest(metadata["content_sha256"], envelope["library"]))
    if report.library is None:
        first = report.errors[0] if report.errors else None
        raise IntegrityError(f"package refused: its library is invalid ({first})")
    reviewed = base is not None and base_release is not None and content_hash(base) == base_release.content_sha256
    if reviewed and diff_hash(release_diff(base, report.library)) != approval["diff_sha256"]:
        raise IntegrityError("package refused: the approver signed another diff than this package makes")
    identity = LibraryIdentity(metadata["owner"], metadata["name"], metadata["version"], metadata["content_sha256"])
    return VerifiedPackage(
        report.library,
        identity,
        _released(metadata["released"]),
        Signature(AUTHOR, author["signer"], author["key_id"]),
        Signature(APPROVER, approval["signer"], approval["key_id"]),
        base_release,
        approval["diff_sha256"],
        metadata["rollback_from"],
    )


@dataclass(frozen=True, slots=True)
class ByDigest(Generic[T]):
    """A value keyed by the SHA-256 that identifies it, for a memo (``value`` is neither compared nor hashed)."""

    digest: str
    value: T = field(compare=False)


@functools.lru_cache(maxsize=8)
def _validated(library: ByDigest[object]) -> Report:
    """``validate_data`` of a package's library, memoised by its content hash (decision record 0039).

    Only called after :func:`_check_content` has recomputed the hash from the library's canonical JSON, so
    one hash is one library document and its report is a pure function of it: a pump that receives or reloads
    a library validated before in this process skips the rule checks, never the signature and hash checks.
    """
    return validate_data(library.value, "package")


def load_package(package: bytes, trusted_keys: Sequence[Ed25519PublicKey]) -> tuple[Library, LibraryIdentity]:
    """The verified library and its identity, or IntegrityError with the reason."""
    verified = verify_package(package, trusted_keys)
    return verified.library, verified.identity


def package_facts(package: bytes) -> PackageFacts:
    """Version, content hash and key ids a package claims, for the log of a refusal; never raises."""
    try:
        envelope = json.loads(package.decode("ascii", errors="replace"))
    except (ValueError, RecursionError):
        envelope = None
    metadata = envelope.get("metadata") if isinstance(envelope, dict) else None
    signatures = envelope.get("signatures") if isinstance(envelope, dict) else None

    def text(value: object) -> str:
        return value[:80] if isinstance(value, str) else UNREADABLE

    version = text(metadata.get("version")) if isinstance(metadata, dict) else UNREADABLE
    digest = text(metadata.get("content_sha256")) if isinstance(metadata, dict) else UNREADABLE
    keys = (
        tuple(text(s.get("key_id")) for s in signatures if isinstance(s, dict)) if isinstance(signatures, list) else ()
    )
    return PackageFacts(version, digest, keys)


def _body(envelope: Data) -> Data:
    return {k: envelope[k] for k in _BODY}


def _author_statement(envelope: Data, signer: str, key: str) -> Data:
    return _body(envelope) | {"role": AUTHOR, "signer": signer, "key_id": key}


def _approval_statement(envelope: Data, author: Data, signer: str, key: str, base: BaseRelease | None) -> Data:
    return _body(envelope) | {
        "author_signature": author,
        "role": APPROVER,
        "signer": signer,
        "key_id": key,
        "base": None if base is None else base.to_json(),
    }


def _signature_block(statement: Data, private_key: Ed25519PrivateKey) -> Data:
    value = base64.b64encode(private_key.sign(canonical_json(statement))).decode("ascii")
    block = {k: statement[k] for k in ("role", "signer", "key_id")} | {"algorithm": ALGORITHM, "value": value}
    if statement["role"] == APPROVER:
        block |= {"base": statement["base"], "diff_sha256": statement["diff_sha256"]}
    return block


def _check_signature(sig: Data, trusted: dict[str, Ed25519PublicKey], statement: Data) -> None:
    try:
        value = base64.b64decode(str(sig["value"]), validate=True)
        trusted[sig["key_id"]].verify(value, canonical_json(statement))
    except (InvalidSignature, binascii.Error, ValueError):
        raise IntegrityError(
            f"package refused: the {sig['role']} signature does not verify (altered, swapped or signed by another key)"
        ) from None


def _check_signer_name(role: str, signer: str) -> None:
    if not signer.strip():
        raise LibraryError(role, "the signer's name must not be empty")
    problems = name_problems(role, signer)
    if problems:
        raise LibraryError(role, f"the signer's name is not usable: [{problems[0].rule}] {problems[0].message}")


def _base(value: object) -> BaseRelease | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"version", "content_sha256"}
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise IntegrityError("package refused: malformed base release in the approval")
    return BaseRelease(value["version"], value["content_sha256"])


def _released(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise IntegrityError(f"package refused: bad release date {text!r}") from None


def _parse(package: bytes) -> Data:
    try:
        envelope = json.loads(package.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise IntegrityError("package refused: not a library package (invalid JSON)") from None
    if not isinstance(envelope, dict):
        raise IntegrityError("package refused: not a library package")
    if envelope.get("format") != PACKAGE_FORMAT:
        raise IntegrityError(
            f"package refused: unknown package format {envelope.get('format')!r} (this pump reads {PACKAGE_FORMAT!r})"
        )
    if set(envelope) - {"signatures"} != set(_BODY):
        raise IntegrityError("package refused: unexpected or missing sections")
    try:
        canonical = canonical_json(envelope)
    except (IntegrityError, ValueError, TypeError):
        canonical = b""
    if canonical != package:
        raise IntegrityError("package refused: not in canonical form (the bytes were altered)")
    return envelope


def _check_content(envelope: Data) -> Any:
    metadata = envelope["metadata"]
    if not isinstance(metadata, dict) or set(metadata) != set(_METADATA_KEYS):
        raise IntegrityError("package refused: malformed metadata")
    rollback = metadata["rollback_from"]
    if not all(isinstance(metadata[k], str) for k in _METADATA_KEYS if k != "rollback_from") or not (
        rollback is None or isinstance(rollback, str)
    ):
        raise IntegrityError("package refused: malformed metadata")
    if metadata["library_schema"] != SCHEMA:
        raise IntegrityError(
            f"package refused: unknown library schema version {metadata['library_schema']!r} "
            f"(this pump reads {SCHEMA!r})"
        )
    if not _HEX64.fullmatch(metadata["content_sha256"]):
        raise IntegrityError("package refused: malformed content hash")
    digest = hashlib.sha256(canonical_json(envelope["library"])).hexdigest()
    if digest != metadata["content_sha256"]:
        raise IntegrityError("package refused: content hash mismatch (the library was altered)")
    library = envelope["library"]
    info = library.get("library") if isinstance(library, dict) else None
    if not isinstance(info, dict) or any(info.get(k) != metadata[k] for k in ("owner", "name", "version")):
        raise IntegrityError("package refused: metadata does not match the library's owner, name and version")
    try:
        version_key(metadata["version"])
        if rollback is not None and version_key(rollback) <= version_key(metadata["version"]):
            raise IntegrityError("package refused: a rollback authorisation must name a newer version")
    except LibraryError as e:
        raise IntegrityError(f"package refused: {e.why}") from None
    return metadata


# --- keys ------------------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key (for a pharmacist's workstation, never the pump)."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes) -> bytes:
    """The key as encrypted PKCS#8 PEM (OI-LIB-REL-2); an empty passphrase is refused."""
    if not passphrase:
        raise LibraryError("passphrase", "a private key is stored encrypted: the passphrase must not be empty")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes, passphrase: bytes, where: str = "key") -> Ed25519PrivateKey:
    """An Ed25519 private key from encrypted PEM; an unencrypted key, a wrong passphrase or anything else
    is a LibraryError naming ``where``."""
    if b"ENCRYPTED PRIVATE KEY" not in pem:
        raise LibraryError(where, "not an encrypted private key (run `openinfusion library keygen` for a new one)")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        raise LibraryError(where, "cannot decrypt the private key (wrong passphrase, or not a PEM key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LibraryError(where, "not an Ed25519 private key")
    return key


def load_public_key(pem: bytes, where: str = "key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; anything else is a LibraryError naming ``where``."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise LibraryError(where, f"not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LibraryError(where, "not an Ed25519 public key")
    return key


def release_package(  # noqa: PLR0917 - the release's parts, in the order a release happens
    library: Library,
    released: datetime.date,
    author: tuple[str, Ed25519PrivateKey],
    approver: tuple[str, Ed25519PrivateKey],
    active: Library | None = None,
    rollback_from: str | None = None,
) -> bytes:
    """Compile, sign as author and approve in one step (for simulations and tests: each step's rules apply)."""
    authored = sign_as_author(compile_package(library, released, rollback_from), author[1], author[0])
    return approve(authored, approver[1], approver[0], active)


def simulation_release(library: Library, seed: str) -> tuple[tuple[Ed25519PublicKey, Ed25519PublicKey], bytes]:
    """A first release signed by a simulated author and approver whose keys derive from ``seed``, and their
    public keys: a simulated pump trusts its simulation's keys, a real pump only its hospital's."""
    keys = [Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{seed}:{role}".encode()).digest()) for role in _ROLES]
    package = release_package(
        library, datetime.date(2026, 1, 1), ("simulated author", keys[0]), ("simulated approver", keys[1])
    )
    return (keys[0].public_key(), keys[1].public_key()), package
