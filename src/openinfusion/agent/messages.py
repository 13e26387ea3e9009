"""The pump link's messages: versioned, schema-validated at both ends, idempotent by message id.

Theory of operation
-------------------
Every message is one JSON object, an :class:`Envelope` (``v``, ``id``, ``pump``, ``at``, ``body``)
whose ``body`` is one of the kinds below, told apart by its ``type``. :func:`decode` is the only way
in: it refuses, with one :class:`LinkError` naming what is wrong, a message that is

* larger than :data:`MAX_MESSAGE_BYTES` (checked before parsing),
* not UTF-8 JSON, or JSON with floats (quantities are exact strings: ``{"value": "12.5", "unit": "mL/h"}``)
  or duplicate keys,
* of a version other than :data:`LINK_VERSION`,
* not valid against the schema (unknown fields included), or of a kind the receiving side never accepts
  (a pump never accepts ``status``; the server never accepts ``remote_program``).

Idempotency: ``id`` is unique per message (128 random bits, hex). Receivers act on an id at most once
(the agent keeps the ids it acted on; the server stores events under the unique key (pump, seq)). Events
are acknowledged cumulatively (``events_ack.through``): the agent keeps every event the server has not
acknowledged and sends them again, in order, after a reconnection or a silence.

Uplink (pump -> server): ``status``, ``events``, ``command_ack``, ``chunk_request``, ``notice``.
Downlink (server -> pump): ``events_ack``, ``library_offer``, ``library_chunk``, ``remote_program``, ``config``.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from openinfusion.errors import InputError

T = TypeVar("T")

LINK_VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 128 * 1024
CHUNK_BYTES: Final = 32 * 1024  # library package bytes per chunk (base64 in the message)
MAX_EVENTS_PER_MESSAGE: Final = 200

PumpId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MessageId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
OrderId = Annotated[str, Field(min_length=1, max_length=64)]  # a remote order's id (the server's, 16 hex today)
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, Field(max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=120)]
ChannelIndex = Annotated[int, Field(ge=0, le=3)]
NonNegative = Annotated[int, Field(ge=0)]


class LinkError(InputError):
    """A message refused at the link edge; ``why`` is the reason that is logged."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WireQuantity(_Model):
    """An exact quantity: a decimal (or n/d) string and a UCUM code."""

    value: Annotated[str, Field(pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,9})?$|^-?[0-9]{1,12}/[1-9][0-9]{0,11}$")]
    unit: Annotated[str, Field(min_length=1, max_length=32)]


class WireLibrary(_Model):
    owner: Name
    name: Name
    version: Annotated[str, Field(min_length=1, max_length=40)]
    hash: Sha256


# --- uplink ------------------------------------------------------------------------------------------


class ChannelReport(_Model):
    index: ChannelIndex
    state: Annotated[str, Field(max_length=40)]
    drug: Name | None = None
    concentration: Name | None = None
    dose: WireQuantity | None = None
    rate: WireQuantity  # mL/h
    infused: WireQuantity  # mL
    vtbi_remaining: WireQuantity | None = None  # mL
    time_remaining: WireQuantity | None = None  # s
    pressure: WireQuantity | None = None  # mm[Hg], downstream line pressure (filtered)


class AlarmReport(_Model):
    instance: NonNegative
    code: Annotated[str, Field(max_length=60)]
    channel: ChannelIndex | None
    priority: Annotated[str, Field(max_length=20)]
    state: Annotated[str, Field(max_length=20)]


class Status(_Model):
    """The pump now: sent on connection, every ``status_interval`` and when something changes."""

    type: Literal["status"] = "status"
    model: Name
    firmware: Name
    t_us: NonNegative  # pump clock
    phase: Annotated[str, Field(max_length=20)]
    on_mains: bool
    battery_permille: Annotated[int, Field(ge=0, le=1000)]
    battery_remaining: WireQuantity  # s
    library: WireLibrary | None
    staged_library: WireLibrary | None
    last_seq: NonNegative  # the pump's newest event
    channels: Annotated[tuple[ChannelReport, ...], Field(min_length=1, max_length=4)]
    alarms: Annotated[tuple[AlarmReport, ...], Field(max_length=64)]
    pending_orders: Annotated[tuple[OrderId, ...], Field(max_length=16)] = ()


class EventRecord(_Model):
    """One event-log entry, as the pump logged it, stamped with wall-clock time by the agent."""

    seq: Annotated[int, Field(ge=1)]
    t_us: NonNegative
    at: datetime  # the agent's wall clock for pump time t_us
    kind: Annotated[str, Field(min_length=1, max_length=40)]
    channel: ChannelIndex | None
    patient: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # the channel's patient then
    data: dict[str, Any]


class Events(_Model):
    type: Literal["events"] = "events"
    events: Annotated[tuple[EventRecord, ...], Field(min_length=1, max_length=MAX_EVENTS_PER_MESSAGE)]


Outcome = Literal["pending", "confirmed", "refused", "expired", "staged", "activated", "rejected", "applied"]


class CommandAck(_Model):
    """What the pump did with a command (an order, a library release, a configuration)."""

    type: Literal["command_ack"] = "command_ack"
    command: Annotated[str, Field(min_length=1, max_length=64)]  # order id, release id or config id
    outcome: Outcome
    reason: ShortText = ""


class ChunkRequest(_Model):
    type: Literal["chunk_request"] = "chunk_request"
    release: Annotated[str, Field(min_length=1, max_length=64)]
    offset: NonNegative


class Notice(_Model):
    """A downlink message the agent refused, with the reason (the server records it)."""

    type: Literal["notice"] = "notice"
    refused: MessageId | None
    reason: ShortText


# --- downlink ----------------------------------------------------------------------------------------


class EventsAck(_Model):
    """The server has stored every event of this pump up to and including ``through``."""

    type: Literal["events_ack"] = "events_ack"
    through: NonNegative


class LibraryOffer(_Model):
    type: Literal["library_offer"] = "library_offer"
    release: Annotated[str, Field(min_length=1, max_length=64)]
    size: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)]
    sha256: Sha256


class LibraryChunk(_Model):
    type: Literal["library_chunk"] = "library_chunk"
    release: Annotated[str, Field(min_length=1, max_length=64)]
    offset: NonNegative
    data: Annotated[str, Field(max_length=CHUNK_BYTES * 4 // 3 + 4)]  # base64


class OrderedProgram(_Model):
    """An infusion from a library entry: rate (mL/h) and VTBI (mL); with ``dose`` a dose-based one.

    A dose-based order carries the dose rate, the container (``strength`` in ``volume``) and the patient's
    weight (kg) or body surface area (``bsa``, m2) when dosed per kg or per m2; the pump converts it itself
    (and checks it against its library with them) and refuses it if its rate is not ``rate``. ``patient`` and ``placer``
    (the EHR's order number) come from an auto-programmed order: the clinician checks the patient at the pump.
    """

    area: Name
    drug: Name
    therapy: Name | None = None
    concentration: Name | None = None
    rate: WireQuantity
    vtbi: WireQuantity | None = None
    dose: WireQuantity | None = None
    strength: WireQuantity | None = None
    volume: WireQuantity | None = None
    weight: WireQuantity | None = None
    bsa: WireQuantity | None = None
    patient: Name | None = None
    placer: Name | None = None


class RemoteProgram(_Model):
    """An order sent to a pump, signed by the server (Ed25519 over :func:`signed_bytes`)."""

    type: Literal["remote_program"] = "remote_program"
    order: OrderId
    nonce: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    expires: datetime
    channel: ChannelIndex
    program: OrderedProgram
    signature: Annotated[str, Field(min_length=1, max_length=200)]  # base64 Ed25519


class Config(_Model):
    type: Literal["config"] = "config"
    config: Annotated[str, Field(min_length=1, max_length=64)]
    status_interval_s: Annotated[int, Field(ge=1, le=3600)]


UpBody = Annotated[Status | Events | CommandAck | ChunkRequest | Notice, Field(discriminator="type")]
DownBody = Annotated[EventsAck | LibraryOffer | LibraryChunk | RemoteProgram | Config, Field(discriminator="type")]


class Envelope(_Model):
    v: int
    id: MessageId
    pump: PumpId
    at: datetime  # sender's wall clock
    body: UpBody | DownBody


class UpMessage(Envelope):
    body: UpBody


class DownMessage(Envelope):
    body: DownBody


_UP = TypeAdapter(UpMessage)
_DOWN = TypeAdapter(DownMessage)


def new_id() -> str:
    return secrets.token_hex(16)


def encode(message: Envelope) -> bytes:
    """Compact JSON (validated on the way out too: an invalid message cannot be built)."""
    data = message.model_dump_json(exclude_none=False).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise LinkError("message", f"{len(data)} bytes is more than {MAX_MESSAGE_BYTES}")
    return data


def up(pump: str, at: datetime, body: Status | Events | CommandAck | ChunkRequest | Notice) -> UpMessage:
    return UpMessage(v=LINK_VERSION, id=new_id(), pump=pump, at=at, body=body)


def down(
    pump: str, at: datetime, body: EventsAck | LibraryOffer | LibraryChunk | RemoteProgram | Config
) -> DownMessage:
    return DownMessage(v=LINK_VERSION, id=new_id(), pump=pump, at=at, body=body)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys")
    return dict(pairs)


def _refuse_float(text: str) -> Any:
    raise ValueError(f"float {text[:20]} (quantities are exact strings)")


def _raw(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise LinkError("message", f"oversized: {len(data)} bytes, at most {MAX_MESSAGE_BYTES}")
    try:
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_float=_refuse_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise LinkError("message", f"malformed: {str(e)[:120]}") from None
    if not isinstance(raw, dict):
        raise LinkError("message", "malformed: not a JSON object")
    version = raw.get("v")
    if version != LINK_VERSION or isinstance(version, bool):
        raise LinkError("message.v", f"unknown version {json.dumps(version)[:20]}; this side speaks {LINK_VERSION}")
    return raw


def _validated(adapter: TypeAdapter[T], data: bytes) -> T:
    _raw(data)  # size, JSON, floats, duplicate keys and version first: their reasons are the clearest
    try:
        return adapter.validate_json(data, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LinkError(f"message.{where}" if where else "message", f"invalid: {first['msg']}") from None


def decode_up(data: bytes) -> UpMessage:
    """A pump's message as the server reads it; :class:`LinkError` if it is refused."""
    return _validated(_UP, data)


def decode_down(data: bytes) -> DownMessage:
    """A server's message as the agent reads it; :class:`LinkError` if it is refused."""
    return _validated(_DOWN, data)


def signed_bytes(pump: str, order: RemoteProgram) -> bytes:
    """What the server signs for an order: the pump it is for and every field but the signature."""
    fields = order.model_dump(mode="json", exclude={"signature"})
    return json.dumps({"pump": pump, "order": fields}, sort_keys=True, separators=(",", ":")).encode()
