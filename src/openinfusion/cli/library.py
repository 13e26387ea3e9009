"""``openinfusion library ...``: author, check and release drug libraries (issue 5, item 9).

Thin: each command reads its files, calls :mod:`openinfusion.druglib` and prints. A library FILE is a
YAML file or a directory of CSV files (``export-csv`` writes one). Exit codes: 0 done, 1 invalid input
(a library with errors, a package that does not verify, a bad file), 2 the command could not run;
errors are one line, never a traceback (OI-IN-1).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openinfusion.cli.common import EXIT_INVALID, guarded
from openinfusion.druglib.csvio import read_csv_dir, write_csv_dir
from openinfusion.druglib.diff import Change, Direction, diff_libraries, release_diff
from openinfusion.druglib.model import Library
from openinfusion.druglib.names import visible
from openinfusion.druglib.package import (
    approve,
    compile_package,
    diff_hash,
    generate_private_key,
    identity_of,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_as_author,
    unsigned_library,
    verify_package,
)
from openinfusion.druglib.validate import Report
from openinfusion.druglib.yamlio import read_yaml, write_yaml
from openinfusion.errors import InputError, LibraryError

app = typer.Typer(
    name="library",
    help="Drug library (DERS): validate, compile, sign, verify, diff, import and export CSV, make keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LibraryPath = Annotated[Path, typer.Argument(help="A library: a YAML file, or a directory of CSV files.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _read(path: Path) -> Report:
    return read_csv_dir(path) if path.is_dir() else read_yaml(path)


def _library(path: Path) -> Library:
    return _read(path).require()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read: {e}") from None


def _create_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (a private key is never readable by others); never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise LibraryError(str(path), "exists already; not overwritten") from None
    except OSError as e:
        raise InputError(str(path), f"cannot write: {e}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@app.command("validate")
@guarded(as_json_param="as_json")
def validate(file: LibraryPath, as_json: JsonFlag = False) -> None:
    """Check a library; print every finding (entry, field, value, rule). Exit 1 if there is any error."""
    report = _read(file)
    if as_json:
        payload = {
            "source": str(file),
            "valid": report.ok,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "findings": [f.to_json() for f in report.findings],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for finding in report.findings:
            typer.echo(f"{file}: {finding}")
        if report.library is not None:
            lib = report.library
            typer.echo(
                f"{file}: valid: {len(lib.drugs)} drugs, {sum(len(d.entries) for d in lib.drugs)} entries "
                f"in {len(lib.care_areas)} care areas; {len(report.warnings)} warnings"
            )
        else:
            typer.echo(f"{file}: invalid: {len(report.errors)} errors, {len(report.warnings)} warnings")
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


PASSPHRASE_ENV = "OPENINFUSION_KEY_PASSPHRASE"
PassphraseStdin = Annotated[
    bool,
    typer.Option(
        "--passphrase-stdin",
        help=f"Read the key's passphrase from the first line of stdin (else ${PASSPHRASE_ENV}, else a prompt).",
    ),
]
Trusted = Annotated[list[Path], typer.Option(help="Trusted Ed25519 public key (PEM); repeat for several.")]


def _passphrase(from_stdin: bool, confirm: bool = False) -> bytes:
    """The key passphrase: never a command-line argument (it would show in `ps` and shell history; OI-LIB-REL-2)."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif PASSPHRASE_ENV in os.environ:
        value = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        value = typer.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm)
    else:
        raise InputError("passphrase", f"give it at the prompt, on stdin (--passphrase-stdin) or in ${PASSPHRASE_ENV}")
    if not value:
        raise InputError("passphrase", "must not be empty")
    return value.encode("utf-8")


def _private_key(path: Path, from_stdin: bool) -> Ed25519PrivateKey:
    return load_private_key(_read_bytes(path), _passphrase(from_stdin), str(path))


def _trusted(paths: list[Path]) -> list[Ed25519PublicKey]:
    return [load_public_key(_read_bytes(p), str(p)) for p in paths]


def _active(active: Path | None, first_release: bool, trusted: list[Path]) -> Library | None:
    """The active release (a package, verified) the approver reviews against; None for a first release."""
    if (active is None) == (not first_release):
        raise InputError("--active", "name the active release package, or say --first-release (one of the two)")
    if active is None:
        return None
    return verify_package(_read_bytes(active), _trusted(trusted)).library


def _summary(changes: Sequence[Change]) -> str:
    loosened = sum(1 for c in changes if c.direction is Direction.LOOSENED)
    return f"{len(changes)} changes, {loosened} loosening a limit"


@app.command("compile")
@guarded()
def compile_(
    file: LibraryPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Package file to write (a new file).")],
    released: Annotated[str | None, typer.Option(help="Release date, YYYY-MM-DD (default: today).")] = None,
    rollback_from: Annotated[
        str | None,
        typer.Option(help="Authorise a rollback: the newer version this older library replaces (signed by both)."),
    ] = None,
) -> None:
    """Compile a valid library into a content-hashed package (unsigned: the author runs `sign` next)."""
    try:
        date = datetime.date.fromisoformat(released) if released else datetime.date.today()
    except ValueError:
        raise InputError("--released", f"not a date (YYYY-MM-DD): {released!r}") from None
    library = _library(file)
    _create_file(out, compile_package(library, date, rollback_from), 0o644)
    typer.echo(f"compiled {identity_of(library)} to {out} (unsigned)")


@app.command("sign")
@guarded()
def sign(
    package: Annotated[Path, typer.Argument(help="A compiled, unsigned package.")],
    key: Annotated[Path, typer.Option(help="The author's encrypted Ed25519 private key (PEM).")],
    signer: Annotated[str, typer.Option(help="The author's name, as the pharmacy knows them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Author-signed package to write (a new file).")],
    passphrase_stdin: PassphraseStdin = False,
) -> None:
    """The author's signature. Writes a new file; the package is never changed in place."""
    private = _private_key(key, passphrase_stdin)
    _create_file(out, sign_as_author(_read_bytes(package), private, signer), 0o644)
    typer.echo(f"signed {out} as author {visible(signer)} with key {key_id(private.public_key())}")


@app.command("approve")
@guarded()
def approve_(  # noqa: PLR0917 - typer maps each parameter to an option
    package: Annotated[Path, typer.Argument(help="An author-signed package.")],
    key: Annotated[Path, typer.Option(help="The approver's own encrypted Ed25519 private key (PEM).")],
    signer: Annotated[str, typer.Option(help="The approver's name (a second pharmacist, not the author).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Released package to write (a new file).")],
    active: Annotated[Path | None, typer.Option(help="The active release package, to review the diff against.")] = None,
    first_release: Annotated[bool, typer.Option(help="There is no active release: review every value.")] = False,
    trusted: Trusted = [],  # noqa: B006 - typer reads the default, never mutates it
    yes: Annotated[bool, typer.Option("--yes", help="Approve the diff shown without asking.")] = False,
    passphrase_stdin: PassphraseStdin = False,
) -> None:
    """The approver's signature, over the diff against the active release (shown first)."""
    data = _read_bytes(package)
    base = _active(active, first_release, trusted)
    new = unsigned_library(data)
    changes = release_diff(base, new)
    for change in changes:
        typer.echo(str(change))
    typer.echo(f"{_summary(changes)}; diff sha256 {diff_hash(changes)}")
    if not yes and not typer.confirm("Approve this release?", default=False):
        raise InputError("approve", "not approved; nothing written")
    private = _private_key(key, passphrase_stdin)
    _create_file(out, approve(data, private, signer, base), 0o644)
    typer.echo(f"approved {out} as {visible(signer)} with key {key_id(private.public_key())}")


@app.command("verify")
@guarded(as_json_param="as_json")
def verify(
    package: Annotated[Path, typer.Argument(help="A released package.")],
    trusted: Trusted,
    active: Annotated[Path | None, typer.Option(help="The active release: also check the approved diff.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify a package (format, schema version, hash, both signatures) and print the library's identity."""
    keys = _trusted(trusted)
    base = None if active is None else verify_package(_read_bytes(active), keys).library
    verified = verify_package(_read_bytes(package), keys, base)
    identity = verified.identity
    if as_json:
        payload = identity.to_json() | {
            "author": verified.author.signer,
            "approver": verified.approver.signer,
            "released": verified.released.isoformat(),
            "key_ids": list(verified.key_ids),
            "base": None if verified.base is None else verified.base.to_json(),
            "diff_sha256": verified.diff_sha256,
            "rollback_from": verified.rollback_from,
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(f"verified: {identity}")
        typer.echo(f"sha256 {identity.hash}")
        typer.echo(
            f"released {verified.released.isoformat()} by {visible(verified.author.signer)} "
            f"(key {verified.author.key_id}), approved by {visible(verified.approver.signer)} "
            f"(key {verified.approver.key_id})"
        )
        base_text = "a first release" if verified.base is None else f"version {verified.base.version}"
        typer.echo(f"approved diff against {base_text}: sha256 {verified.diff_sha256}")


@app.command("diff")
@guarded(as_json_param="as_json")
def diff(
    old: Annotated[Path, typer.Argument(help="The previous library (YAML file or CSV directory).")],
    new: Annotated[Path, typer.Argument(help="The new library (YAML file or CSV directory).")],
    as_json: JsonFlag = False,
) -> None:
    """List what changed between two library versions (added, removed, changed; loosened or tightened)."""
    changes = diff_libraries(_library(old), _library(new))
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in changes], indent=2))
        return
    for change in changes:
        typer.echo(str(change))
    typer.echo(_summary(changes))


@app.command("import-csv")
@guarded()
def import_csv(
    directory: Annotated[Path, typer.Argument(help="Directory of CSV files (library, care_areas, drugs, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="YAML file to write.")],
) -> None:
    """Read a library from CSV files, validate it and write it as YAML."""
    if not directory.is_dir():
        raise InputError(str(directory), "not a directory")
    report = read_csv_dir(directory)
    for finding in report.findings:
        typer.echo(f"{directory}: {finding}")
    write_yaml(report.require(), out)
    typer.echo(f"wrote {out}")


@app.command("export-csv")
@guarded()
def export_csv(
    file: LibraryPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the CSV files into.")],
) -> None:
    """Write a valid library as CSV files for a spreadsheet."""
    for path in write_csv_dir(_library(file), out):
        typer.echo(f"wrote {path}")


@app.command("keygen")
@guarded()
def keygen(
    name: Annotated[str, typer.Option(help="Key name: writes NAME.key (private, encrypted) and NAME.pub (public).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the keys into (created).")] = Path("."),
    passphrase_stdin: PassphraseStdin = False,
) -> None:
    """Make an Ed25519 signing key pair; the private key is stored encrypted with a passphrase (OI-LIB-REL-2)."""
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise LibraryError(str(path), "exists already; not overwritten")
    passphrase = _passphrase(passphrase_stdin, confirm=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(str(out), f"cannot create the folder: {e}") from None
    key = generate_private_key()
    _create_file(private_path, private_key_pem(key, passphrase), 0o600)
    _create_file(public_path, public_key_pem(key.public_key()), 0o644)
    typer.echo(f"wrote {private_path} (private, encrypted: keep it secret) and {public_path}")
    typer.echo(f"key id {key_id(key.public_key())}")
