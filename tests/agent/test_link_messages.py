"""The link's message schemas: every kind round-trips; bad messages are refused with one clear reason;
the decoders never fail any other way, whatever the bytes (hypothesis)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.agent import messages as m

NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
Q = m.WireQuantity(value="12.5", unit="mL/h")

UP_BODIES = [
    m.Events(
        events=(m.EventRecord(seq=1, t_us=0, at=NOW, kind="self_test", channel=None, data={"item": "motor"}),)
    ),
    m.CommandAck(command="abc", outcome="pending", reason="awaiting confirmation"),
    m.ChunkRequest(release="r1", offset=32768),
    m.Notice(refused=None, reason="malformed"),
    m.Status(
        model="x", firmware="1", t_us=5, phase="running", on_mains=True, battery_permille=900,
        battery_remaining=m.WireQuantity(value="3600", unit="s"), library=None, staged_library=None, last_seq=3,
        channels=(m.ChannelReport(index=0, state="idle", rate=Q, infused=m.WireQuantity(value="0", unit="mL")),),
        alarms=(),
    ),
]  # fmt: skip
DOWN_BODIES = [
    m.EventsAck(through=7),
    m.LibraryOffer(release="r1", size=100, sha256="a" * 64),
    m.LibraryChunk(release="r1", offset=0, data="AAAA"),
    m.Config(config="c1", status_interval_s=5),
    m.RemoteProgram(
        order="o1", nonce="b" * 32, expires=NOW, channel=0, signature="c2ln",
        program=m.OrderedProgram(area="ICU", drug="heparin", rate=Q, vtbi=m.WireQuantity(value="250", unit="mL")),
    ),
]  # fmt: skip


@pytest.mark.parametrize("body", UP_BODIES, ids=lambda b: b.type)
def test_uplink_round_trip(body: m.UpBody) -> None:
    message = m.up("pump-1", NOW, body)
    assert m.decode_up(m.encode(message)) == message


@pytest.mark.parametrize("body", DOWN_BODIES, ids=lambda b: b.type)
def test_downlink_round_trip(body: m.DownBody) -> None:
    message = m.down("pump-1", NOW, body)
    assert m.decode_down(m.encode(message)) == message


def _valid() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(m.encode(m.up("pump-1", NOW, m.ChunkRequest(release="r", offset=0))))
    return loaded


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "malformed"),
        (b"\xff\xfe", "malformed"),
        (b"[1, 2]", "not a JSON object"),
        (b"x" * (m.MAX_MESSAGE_BYTES + 1), "oversized"),
        (json.dumps(_valid() | {"v": 2}).encode(), "unknown version 2"),
        (json.dumps(_valid() | {"v": True}).encode(), "unknown version"),
        (json.dumps({k: v for k, v in _valid().items() if k != "v"}).encode(), "unknown version null"),
        (json.dumps(_valid() | {"extra": 1}).encode(), "extra"),
        (json.dumps(_valid() | {"id": "not-hex"}).encode(), "message.id"),
        (json.dumps(_valid() | {"pump": "../../etc"}).encode(), "message.pump"),
        (json.dumps(_valid() | {"body": {"type": "chunk_request", "release": "r", "offset": 1.5}}).encode(), "float"),
        (json.dumps(_valid() | {"body": {"type": "chunk_request", "release": "r", "offset": "1"}}).encode(), "offset"),
        (json.dumps(_valid() | {"body": {"type": "remote_program"}}).encode(), "body"),
        (b'{"v": 1, "v": 1}', "duplicate keys"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(m.LinkError) as refused:
        m.decode_up(data)
    assert reason in str(refused.value)


def test_a_pump_never_accepts_an_uplink_kind_nor_the_server_a_downlink_kind() -> None:
    with pytest.raises(m.LinkError, match="body"):
        m.decode_down(m.encode(m.up("p", NOW, UP_BODIES[0])))
    with pytest.raises(m.LinkError, match="body"):
        m.decode_up(m.encode(m.down("p", NOW, DOWN_BODIES[-1])))


def test_an_oversized_message_cannot_even_be_built() -> None:
    big = m.Notice(refused=None, reason="x" * 500)
    events = tuple(
        m.EventRecord(seq=i + 1, t_us=0, at=NOW, kind="k", channel=None, data={"pad": "y" * 3000}) for i in range(60)
    )
    assert m.encode(m.up("p", NOW, big))
    with pytest.raises(m.LinkError, match="more than"):
        m.encode(m.up("p", NOW, m.Events(events=events)))


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_decoders_refuse_arbitrary_bytes_cleanly(data: bytes) -> None:
    for decode in (m.decode_up, m.decode_down):
        with contextlib.suppress(m.LinkError):
            decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.sampled_from(UP_BODIES + DOWN_BODIES), st.text(min_size=1, max_size=12), json_values)
def test_decoders_refuse_mutated_messages_cleanly(body: object, key: str, value: object) -> None:
    """A valid message with one field replaced (at the top or in the body) is decoded or refused, never crashes."""
    assert isinstance(body, m.Events | m.CommandAck | m.ChunkRequest | m.Notice | m.Status | m.EventsAck
                      | m.LibraryOffer | m.LibraryChunk | m.Config | m.RemoteProgram)  # fmt: skip
    raw = json.loads(m.encode(m.Envelope(v=1, id="0" * 32, pump="p", at=NOW, body=body)))
    target = raw["body"] if len(key) % 2 else raw
    target[key if key in target or len(key) > 6 else next(iter(target))] = value
    data = json.dumps(raw).encode()
    for decode in (m.decode_up, m.decode_down):
        with contextlib.suppress(m.LinkError):
            decode(data)
