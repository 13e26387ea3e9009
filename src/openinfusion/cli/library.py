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
from pathlib import Path
from typing import Annotated

import typer

from openinfusion.cli.common import EXIT_INVALID, guarded
from openinfusion.druglib.csvio import read_csv_dir, write_csv_dir
from openinfusion.druglib.diff import diff_libraries
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import (
    ReleaseInfo,
    compile_package,
    generate_private_key,
    identity_of,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_package,
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


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise InputError(str(path), f"cannot write: {e}") from None


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


@app.command("compile")
@guarded()
def compile_(
    file: LibraryPath,
    author: Annotated[str, typer.Option(help="The pharmacist who built this release.")],
    approver: Annotated[str, typer.Option(help="The second pharmacist who reviewed it (not the author).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Package file to write.")],
    released: Annotated[str | None, typer.Option(help="Release date, YYYY-MM-DD (default: today).")] = None,
) -> None:
    """Compile a valid library into a content-hashed package (unsigned: run `sign` next)."""
    try:
        date = datetime.date.fromisoformat(released) if released else datetime.date.today()
    except ValueError:
        raise InputError("--released", f"not a date (YYYY-MM-DD): {released!r}") from None
    library = _library(file)
    _write_bytes(out, compile_package(library, ReleaseInfo(author, approver, date)))
    typer.echo(f"compiled {identity_of(library)} to {out} (unsigned)")


@app.command("sign")
@guarded()
def sign(
    package: Annotated[Path, typer.Argument(help="A compiled package.")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM) of the releasing pharmacist.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Signed package (default: in place).")] = None,
) -> None:
    """Sign a compiled package with an Ed25519 key."""
    private = load_private_key(_read_bytes(key), str(key))
    target = out if out is not None else package
    _write_bytes(target, sign_package(_read_bytes(package), private))
    typer.echo(f"signed {target} with key {key_id(private.public_key())}")


@app.command("verify")
@guarded(as_json_param="as_json")
def verify(
    package: Annotated[Path, typer.Argument(help="A signed package.")],
    trusted: Annotated[list[Path], typer.Option(help="Trusted Ed25519 public key (PEM); repeat for several.")],
    as_json: JsonFlag = False,
) -> None:
    """Verify a package (format, schema version, hash, signature) and print the library's identity."""
    keys = [load_public_key(_read_bytes(p), str(p)) for p in trusted]
    verified = verify_package(_read_bytes(package), keys)
    identity, release = verified.identity, verified.release
    if as_json:
        payload = identity.to_json() | {
            "author": release.author,
            "approver": release.approver,
            "released": release.released.isoformat(),
            "key_id": verified.key_id,
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(f"verified: {identity}")
        typer.echo(f"sha256 {identity.hash}")
        typer.echo(
            f"released {release.released.isoformat()} by {release.author}, approved by {release.approver}, "
            f"signed with key {verified.key_id}"
        )


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
    loosened = sum(1 for c in changes if c.direction is not None and c.direction.value == "loosened")
    typer.echo(f"{len(changes)} changes, {loosened} loosening a limit")


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
    name: Annotated[str, typer.Option(help="Key name: writes NAME.key (private) and NAME.pub (public).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the keys into.")] = Path("."),
) -> None:
    """Make an Ed25519 signing key pair for library releases (keep the .key file private)."""
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    if public_path.exists():
        raise LibraryError(str(public_path), "exists already; not overwritten")
    key = generate_private_key()
    _create_file(private_path, private_key_pem(key), 0o600)
    _create_file(public_path, public_key_pem(key.public_key()), 0o644)
    typer.echo(f"wrote {private_path} (private: keep it secret) and {public_path} (key id {key_id(key.public_key())})")
