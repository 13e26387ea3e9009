"""Release: a versioned, content-hashed, Ed25519-signed library package (issue 5, item 4; OI-DERS-2, OI-DERS-5).

A package is one canonical JSON object (sorted keys, no whitespace, ASCII only)::

    {"format": "openinfusion.druglib.package/1",
     "metadata": {"library_schema", "owner", "name", "version", "author", "approver", "released",
                  "content_sha256"},
     "library": <the canonical library document, exact decimal strings>,
     "signature": {"algorithm": "Ed25519", "key_id": <16 hex>, "value": <base64>}}

``content_sha256`` is the SHA-256 of the canonical JSON of ``library``; the signature covers the
canonical JSON of the object without ``signature`` (format, metadata and library together). The pump
accepts a package only if it is in canonical form (so *any* changed byte is refused, even one that
keeps the JSON's meaning), its format and library schema are known, the hash matches, the signature
verifies against a trusted key, author and approver are two different people, and the content
validates again as a library. Anything else raises :class:`~openinfusion.errors.IntegrityError` with the
reason; the caller keeps its last good library (see :mod:`openinfusion.pump.ders`).

Keys are raw Ed25519 keys in PEM files (PKCS#8 private, SubjectPublicKeyInfo public). No wall clock is
read here: the release date is given.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openinfusion.druglib.model import SCHEMA, Data, Library
from openinfusion.druglib.validate import validate_data
from openinfusion.errors import IntegrityError, LibraryError

PACKAGE_FORMAT: Final = "openinfusion.druglib.package/1"
ALGORITHM: Final = "Ed25519"
_METADATA_KEYS: Final = (
    "library_schema",
    "owner",
    "name",
    "version",
    "author",
    "approver",
    "released",
    "content_sha256",
)


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """Who wrote the release, who approved it (a second pharmacist) and the release date."""

    author: str
    approver: str
    released: datetime.date

    def __post_init__(self) -> None:
        for name in ("author", "approver"):
            if not getattr(self, name).strip():
                raise LibraryError(f"release.{name}", "must not be empty")
        if _same_person(self.author, self.approver):
            raise LibraryError("release.approver", "the approver must be a second pharmacist, not the author")


def _same_person(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


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
class VerifiedPackage:
    """A package that verified: the library, its identity, and the release metadata."""

    library: Library
    identity: LibraryIdentity
    release: ReleaseInfo
    key_id: str


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


def compile_package(library: Library, release: ReleaseInfo) -> bytes:
    """The unsigned package of a (validated) library with its release metadata."""
    metadata = {
        "library_schema": library.schema,
        "owner": library.info.owner,
        "name": library.info.name,
        "version": library.info.version,
        "author": release.author,
        "approver": release.approver,
        "released": release.released.isoformat(),
        "content_sha256": content_hash(library),
    }
    return canonical_json({"format": PACKAGE_FORMAT, "metadata": metadata, "library": library.to_data()})


def sign_package(package: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """Add (or replace) the Ed25519 signature of a compiled package; its hash is checked first."""
    envelope = _parse(package, signed=False)
    _check_content(envelope)
    unsigned = {k: envelope[k] for k in ("format", "metadata", "library")}
    signature = private_key.sign(canonical_json(unsigned))
    envelope = unsigned | {
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id(private_key.public_key()),
            "value": base64.b64encode(signature).decode("ascii"),
        }
    }
    return canonical_json(envelope)


def verify_package(package: bytes, trusted_keys: Sequence[Ed25519PublicKey]) -> VerifiedPackage:
    """Verify a signed package against the trusted keys; raise IntegrityError saying why it is refused."""
    envelope = _parse(package, signed=True)
    metadata = _check_content(envelope)
    signature = envelope["signature"]
    if not isinstance(signature, dict) or set(signature) != {"algorithm", "key_id", "value"}:
        raise IntegrityError("package refused: malformed signature block")
    if signature["algorithm"] != ALGORITHM:
        raise IntegrityError(f"package refused: unsupported signature algorithm {signature['algorithm']!r}")
    keys = [k for k in trusted_keys if key_id(k) == signature["key_id"]]
    if not keys:
        raise IntegrityError(f"package refused: signed by an untrusted key (key id {signature['key_id']!r})")
    try:
        value = base64.b64decode(str(signature["value"]), validate=True)
        unsigned = {k: envelope[k] for k in ("format", "metadata", "library")}
        keys[0].verify(value, canonical_json(unsigned))
    except (InvalidSignature, binascii.Error, ValueError):
        raise IntegrityError(
            "package refused: the signature does not verify (altered, or signed by another key)"
        ) from None
    report = validate_data(envelope["library"], "package")
    if report.library is None:
        first = report.errors[0] if report.errors else None
        raise IntegrityError(f"package refused: its library is invalid ({first})")
    release = _release(metadata)
    identity = LibraryIdentity(metadata["owner"], metadata["name"], metadata["version"], metadata["content_sha256"])
    return VerifiedPackage(report.library, identity, release, signature["key_id"])


def load_package(package: bytes, trusted_keys: Sequence[Ed25519PublicKey]) -> tuple[Library, LibraryIdentity]:
    """For the pump: the verified library and its identity, or IntegrityError with the reason."""
    verified = verify_package(package, trusted_keys)
    return verified.library, verified.identity


def _parse(package: bytes, *, signed: bool) -> Data:
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
    if signed and "signature" not in envelope:
        raise IntegrityError("package refused: the package is not signed")
    if set(envelope) - {"signature"} != {"format", "metadata", "library"}:
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
    if not all(isinstance(metadata[k], str) for k in _METADATA_KEYS):
        raise IntegrityError("package refused: malformed metadata")
    if metadata["library_schema"] != SCHEMA:
        raise IntegrityError(
            f"package refused: unknown library schema version {metadata['library_schema']!r} "
            f"(this pump reads {SCHEMA!r})"
        )
    digest = hashlib.sha256(canonical_json(envelope["library"])).hexdigest()
    if digest != metadata["content_sha256"]:
        raise IntegrityError("package refused: content hash mismatch (the library was altered)")
    library = envelope["library"]
    info = library.get("library") if isinstance(library, dict) else None
    if not isinstance(info, dict) or any(info.get(k) != metadata[k] for k in ("owner", "name", "version")):
        raise IntegrityError("package refused: metadata does not match the library's owner, name and version")
    if _same_person(metadata["author"], metadata["approver"]):
        raise IntegrityError("package refused: approved by its own author (a second pharmacist must approve)")
    return metadata


def _release(metadata: Data) -> ReleaseInfo:
    try:
        return ReleaseInfo(metadata["author"], metadata["approver"], datetime.date.fromisoformat(metadata["released"]))
    except (LibraryError, ValueError) as e:
        raise IntegrityError(f"package refused: bad release metadata ({e})") from None


# --- keys ------------------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key (for the release pharmacist's workstation, never the pump)."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes, where: str = "key") -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM; anything else is a LibraryError naming ``where``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise LibraryError(where, f"not a PEM private key: {e}") from None
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
