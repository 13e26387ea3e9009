"""``openinfusion hl7 check``, ``hl7 answer`` and ``hl7 send``: the gateway's HL7, for integrators.

Thin: it reads files, calls :mod:`openinfusion.interop.hl7.check` and prints. ``check`` prints one line
per message (``FILE#n: ok TYPE ID`` or ``FILE#n: error: SEG-n: why [PIV code]``) and exits 1 if any
message has an error; ``answer`` prints the acknowledgements the gateway would send (segments one per
line, messages separated by a blank line); ``send`` sends messages over MLLP (e.g. an order to the demo
ward's listener) and prints the first acknowledgement of each, ``--now`` stamping them with the current time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from openinfusion.cli.common import EXIT_INVALID, console, guarded
from openinfusion.druglib.model import Library
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import InputError
from openinfusion.interop.hl7.check import answering_ward, check_message, is_order, split_messages
from openinfusion.interop.hl7.message import format_ts
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.mllp import MllpClient, client_tls

app = typer.Typer(name="hl7", help="IHE PCD HL7 v2.6 messages: check them, see what the gateway answers.",
                  add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)  # fmt: skip

LibraryOption = Annotated[
    Path | None, typer.Option("--library", help="Drug library (YAML): also map orders through it and its DERS limits.")
]
AreaOption = Annotated[str, typer.Option("--care-area", help="Care area of the pumps the orders name.")]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(str(path), e.strerror or "cannot be read") from None


def _library(path: Path | None) -> Library | None:
    return None if path is None else read_yaml(path).require()


@app.command("check")
@guarded()
def check(
    files: Annotated[list[Path], typer.Argument(help="Message files (plain, one message per MSH, or MLLP-framed).")],
    library: LibraryOption = None,
    care_area: AreaOption = "ADULT-ICU",
) -> None:
    """Validate messages: one line each; exit 1 if any has an error (naming segment and field)."""
    lib = _library(library)
    failed = False
    for path in files:
        for number, data in enumerate(split_messages(_read(path)), start=1):
            ward = None if lib is None or not is_order(data) else answering_ward(data, lib, care_area)
            result = check_message(data, ward)
            label = f"{path}#{number}"
            if result.errors:
                failed = True
                first = result.errors[0]
                more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
                console.print(f"{escape(label)}: error: {escape(str(first))}{more}", highlight=False, soft_wrap=True)
            else:
                noted = len(result.problems)
                note = f" ({noted} tolerated deviation{'s' if noted != 1 else ''})" if noted else ""
                line = f"{label}: ok {result.type} {result.control_id}{note}"
                console.print(escape(line), highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command("answer")
@guarded()
def answer(
    file: Annotated[Path, typer.Argument(help="One incoming message (RGV^O15, ORA^R41, ...).")],
    library: Annotated[Path, typer.Option("--library", help="Drug library (YAML) the pumps run.")],
    care_area: AreaOption = "ADULT-ICU",
) -> None:
    """Print the acknowledgements the gateway would send for FILE (accept ACK, then RRG^O16 or ACK)."""
    lib = _library(library)
    assert lib is not None
    for data in split_messages(_read(file)):
        ward = answering_ward(data, lib, care_area)
        reply = Receiver(ward, Sender(clock=ward.now)).receive(data)
        for text in (reply.commit, reply.application):
            if text is not None:
                typer.echo(text.replace("\r", "\n"))


_STAMPED = {"MSH": 6, "ORC": 9}  # MSH-7 (message time) and ORC-9 (request time), as split on "|"


def restamp(data: bytes, when: dt.datetime) -> bytes:
    """``data`` with MSH-7 and ORC-9 set to ``when`` (a sample order is not stale when sent)."""
    lines = re.split(rb"(\r\n|\r|\n)", data)
    for i, line in enumerate(lines):
        index = _STAMPED.get(line[:3].decode("ascii", "replace"))
        fields = line.split(b"|")
        if index is not None and len(fields) > index:
            fields[index] = format_ts(when).encode()
            lines[i] = b"|".join(fields)
    return b"".join(lines)


@app.command("send")
@guarded()
def send(
    files: Annotated[list[Path], typer.Argument(help="Message files to send, in order.")],
    to: Annotated[str, typer.Option("--to", help="The MLLP listener, HOST:PORT (the demo ward's: 127.0.0.1:2575).")],
    now: Annotated[bool, typer.Option("--now", help="Stamp MSH-7 and ORC-9 with the current time.")] = False,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA of the listener's certificate: MLLP over TLS.")] = None,
) -> None:
    """Send messages over MLLP; print the first acknowledgement of each (segments one per line)."""
    host, _, port = to.rpartition(":")
    if not host or not port.isdigit():
        raise InputError("--to", f"expected HOST:PORT, got {to!r}")
    client = MllpClient(host, int(port), None if ca is None else client_tls(str(ca)))
    for path in files:
        for data in split_messages(_read(path)):
            message = restamp(data, dt.datetime.now(dt.UTC)) if now else data
            try:
                reply = asyncio.run(client.send(message.replace(b"\n", b"\r")))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                raise InputError("--to", f"no acknowledgement from {to}: {e or type(e).__name__}") from None
            typer.echo(reply.decode("utf-8", "replace").replace("\r", "\n"))
