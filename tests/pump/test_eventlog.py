"""The event log: append-only, gapless, time-ordered, exact, and byte-identical through JSON Lines."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.pump.eventlog import (
    SCHEMA,
    EventKind,
    EventLog,
    JsonValue,
    LibraryIdentity,
    decode_quantity,
    encode_duration,
    encode_quantity,
    encode_rate,
    encode_volume,
)
from openinfusion.units import Duration, FlowRate, Instant, Quantity, Volume, unit

LIBRARY = LibraryIdentity(owner="General Hospital pharmacy", version="2025.3", hash="sha256:5f0c")


def sample_log() -> EventLog:
    log = EventLog(pump_id="0012A3FFFE4B5C6D", time_origin="2025-03-01T08:00:00+00:00", library=LIBRARY)
    program: dict[str, JsonValue] = {
        "drug": "heparin",
        "rate": encode_rate(FlowRate.ml_h(18)),
        "vtbi": encode_volume(Volume.ml(250)),
    }
    log.append(Instant(1_000), EventKind.PROGRAM_CONFIRMED, 0, program=program, library=LIBRARY.to_json())
    log.append(Instant(2_000), EventKind.INFUSION_STARTED, 0, program=program)
    log.append(Instant(2_000), EventKind.POWER_CHANGED, None, on_mains=False, charge_permille=912)
    log.append(Instant(9_000), EventKind.ALARM_RAISED, 0, code="air_in_line", priority="high", instance=1)
    return log


def lines_of(log: EventLog) -> list[str]:
    return log.to_jsonl().split("\n")[:-1]


# --- append-only -----------------------------------------------------------------------------


@pytest.mark.req("OI-LOG-1")
def test_sequence_numbers_start_at_one_without_gaps() -> None:
    log = sample_log()
    assert [e.seq for e in log.events()] == [1, 2, 3, 4]
    assert log.last_seq == len(log) == 4
    assert [e.seq for e in log.events(since_seq=2)] == [3, 4]


@pytest.mark.req("OI-LOG-1")
def test_appending_an_earlier_time_raises_and_appends_nothing() -> None:
    log = sample_log()
    with pytest.raises(InputError, match="earlier than the last event"):
        log.append(Instant(8_999), EventKind.ALARM_CLEARED, 0)
    assert log.last_seq == 4
    assert log.append(Instant(9_000), EventKind.ALARM_CLEARED, 0).seq == 5  # equal times are allowed


@pytest.mark.req("OI-LOG-1")
def test_logged_events_cannot_be_modified_or_deleted() -> None:
    data: dict[str, Any] = {"reason": "lockout", "doses": [1, 2]}
    log = EventLog()
    event = log.append(Instant(5), EventKind.PCA_DEMAND, 1, **data)
    data["reason"] = "changed"
    data["doses"].append(3)
    assert event.data["reason"] == "lockout" and event.data["doses"] == (1, 2)  # a deep copy was logged

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.seq = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.data["reason"] = "x"  # type: ignore[index]
    snapshot = log.events()
    assert isinstance(snapshot, tuple)
    log.append(Instant(6), EventKind.PCA_DEMAND, 1)
    assert len(snapshot) == 1  # a snapshot, not a live view
    public = {name for name in dir(EventLog) if not name.startswith("_")}
    assert public == {"append", "events", "header", "last_seq", "last_time", "to_jsonl", "from_jsonl"}


@pytest.mark.req("OI-LOG-1")
def test_data_is_json_only_and_floats_are_refused() -> None:
    log = EventLog()
    with pytest.raises(InputError, match=r"event\.data\.rate: floats are not logged"):
        log.append(Instant(0), EventKind.RATE_CHANGED, 0, rate=30.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"event\.data\.program\.steps\[1\]: not a JSON value"):
        log.append(Instant(0), EventKind.PROGRAM_ENTERED, 0, program={"steps": [1, Fraction(1, 2)]})  # type: ignore[list-item]
    with pytest.raises(InputError, match="keys must be strings"):
        log.append(Instant(0), EventKind.PROGRAM_ENTERED, 0, program={1: "a"})  # type: ignore[dict-item]
    with pytest.raises(InputError, match=r"event\.channel"):
        log.append(Instant(0), EventKind.PROGRAM_ENTERED, -1)
    assert len(log) == 0


def test_data_may_use_the_names_of_the_envelope_fields() -> None:
    event = EventLog().append(Instant(3), EventKind.BOLUS_STARTED, 2, kind="clinician", t="x", channel="primary")
    assert (event.kind, event.channel, dict(event.data)) == (
        EventKind.BOLUS_STARTED,
        2,
        {"kind": "clinician", "t": "x", "channel": "primary"},
    )


# --- JSON Lines --------------------------------------------------------------------------------


@pytest.mark.req("OI-LOG-1")
def test_jsonl_has_a_header_then_one_canonical_object_per_line() -> None:
    lines = lines_of(sample_log())
    header = json.loads(lines[0])
    assert header == {
        "schema": SCHEMA,
        "pump_id": "0012A3FFFE4B5C6D",
        "time_origin": "2025-03-01T08:00:00+00:00",
        "library": {"owner": "General Hospital pharmacy", "version": "2025.3", "hash": "sha256:5f0c"},
    }
    for line in lines:
        assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    first = json.loads(lines[1])
    assert first["seq"] == 1 and first["t_us"] == 1_000 and first["kind"] == "program_confirmed"
    assert first["data"]["program"]["rate"] == {"value": "18", "unit": "mL/h"}
    assert json.loads(EventLog().to_jsonl()) == {"schema": SCHEMA}


@pytest.mark.req("OI-LOG-1")
def test_round_trip_is_byte_identical() -> None:
    text = sample_log().to_jsonl()
    again = EventLog.from_jsonl(text)
    assert again.to_jsonl() == text
    assert again.events() == sample_log().events()
    assert again.header == sample_log().header


def _tampered(edit: str) -> str:
    lines = lines_of(sample_log())
    if edit == "gap":
        del lines[2]
    elif edit == "time":
        row = json.loads(lines[4])
        row["t_us"] = 1_500
        lines[4] = json.dumps(row)
    elif edit == "kind":
        lines[3] = lines[3].replace('"power_changed"', '"power_surge"')
    elif edit == "schema":
        lines[0] = lines[0].replace("eventlog/2", "eventlog/1")
    elif edit == "float":
        lines[3] = lines[3].replace('"charge_permille":912', '"charge_permille":91.2')
    elif edit == "duplicate":
        lines[2] = lines[2].replace('{"channel":1,', '{"channel":1,"channel":2,')
    elif edit == "extra":
        lines[1] = lines[1].replace('{"channel":1,', '{"by":"admin","channel":1,')
    elif edit == "blank":
        lines.insert(3, "")
    elif edit == "seq":
        lines[2] = lines[2].replace('"seq":2', '"seq":"2"')
    return "\n".join(lines) + "\n"


@pytest.mark.req("OI-LOG-1")
@pytest.mark.parametrize(
    ("edit", "line", "why"),
    [
        ("gap", 3, "seq 3 follows 1"),
        ("time", 5, "earlier than the last event"),
        ("kind", 4, "unknown event kind 'power_surge'"),
        ("schema", 1, "schema must be 'openinfusion.eventlog/2'"),
        ("float", 4, "float 91.2 is not allowed"),
        ("duplicate", 3, "duplicate keys"),
        ("extra", 2, "by: Extra inputs are not permitted"),
        ("blank", 4, "blank line"),
        ("seq", 3, "seq: Input should be a valid integer"),
    ],
)
def test_tampered_logs_are_refused_naming_the_line(edit: str, line: int, why: str) -> None:
    with pytest.raises(InputError) as caught:
        EventLog.from_jsonl(_tampered(edit), where="pump-7.jsonl")
    assert caught.value.where == f"pump-7.jsonl: line {line}"
    assert why in caught.value.why


def test_header_fields_are_checked() -> None:
    with pytest.raises(InputError, match="UTC offset"):
        EventLog(time_origin="2025-03-01T08:00:00")
    with pytest.raises(InputError, match=r"library\.hash"):
        LibraryIdentity("pharmacy", "1", " ")
    with pytest.raises(InputError, match="line 1"):
        EventLog.from_jsonl("")
    header = '{"library":{"hash":"","owner":"p","version":"1"},"schema":"openinfusion.eventlog/2"}\n'
    with pytest.raises(InputError, match=r"library\.hash"):
        EventLog.from_jsonl(header)
    with pytest.raises(InputError, match="line 1"):
        EventLog.from_jsonl('{"pump_id":" ","schema":"openinfusion.eventlog/2"}\n')


# --- exact encodings ---------------------------------------------------------------------------


def test_quantities_are_encoded_as_exact_decimal_strings() -> None:
    assert encode_rate(FlowRate.ml_h(30)) == {"value": "30", "unit": "mL/h"}
    assert encode_rate(FlowRate(10_000)) == {"value": "0.01", "unit": "mL/h"}
    assert encode_volume(Volume(1_500)) == {"value": "0.0015", "unit": "mL"}
    assert encode_duration(Duration(-2_500_000)) == {"value": "-2.5", "unit": "s"}
    assert encode_quantity(Quantity.of("0.05", "ug/kg/min")) == {"value": "0.05", "unit": "ug/kg/min"}
    assert encode_quantity(Quantity(Fraction(100, 3), unit("mg/mL"))) == {"value": "100/3", "unit": "mg/mL"}


@given(
    numerator=st.integers(-(10**15), 10**15),
    twos=st.integers(0, 12),
    fives=st.integers(0, 12),
    other=st.sampled_from([1, 1, 3, 7, 9]),
)
def test_encoding_round_trips_exactly(numerator: int, twos: int, fives: int, other: int) -> None:
    q = Quantity(Fraction(numerator, 2**twos * 5**fives * other), unit("mg"))
    encoded = encode_quantity(q)
    assert decode_quantity(encoded) == q
    finite_decimal = 10**12 % q.value.denominator == 0  # denominators here are at most 2**12 * 5**12 * 9
    assert ("/" in str(encoded["value"])) != finite_decimal


def test_decode_refuses_inexact_or_malformed_values() -> None:
    for bad in ("1e3", "0.5.1", "1/0", " 1", "NaN"):
        with pytest.raises(InputError, match="not an exact decimal"):
            decode_quantity({"value": bad, "unit": "mL"})
    with pytest.raises(InputError):
        decode_quantity({"value": "1", "unit": "mL/hr"})
    with pytest.raises(InputError):
        decode_quantity({"value": 1, "unit": "mL"})


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
event_rows = st.lists(
    st.tuples(
        st.integers(0, 10**9),
        st.sampled_from(list(EventKind)),
        st.none() | st.integers(0, 3),
        st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4),
    ),
    min_size=1,
    max_size=12,
)


def build(rows: list[tuple[int, EventKind, int | None, dict[str, Any]]]) -> EventLog:
    log = EventLog(pump_id="pump-1")
    t = 0
    for gap, kind, channel, data in rows:
        t += gap
        log.append(Instant(t), kind, channel, **data)
    return log


@pytest.mark.req("OI-LOG-1", "UMN-GPCA-REQ-80")
@settings(max_examples=60, deadline=None)
@given(rows=event_rows)
def test_any_log_round_trips_byte_identically(rows: list[tuple[int, EventKind, int | None, dict[str, Any]]]) -> None:
    log = build(rows)
    text = log.to_jsonl()
    again = EventLog.from_jsonl(text)
    assert again.to_jsonl() == text
    assert again.events() == log.events()
    assert [e.seq for e in again.events()] == list(range(1, len(rows) + 1))
    times = [e.t for e in again.events()]
    assert times == sorted(times)


@pytest.mark.req("OI-LOG-1")
@settings(max_examples=40, deadline=None)
@given(rows=event_rows.filter(lambda r: len(r) >= 3), data=st.data())
def test_removing_any_event_but_the_last_is_detected(
    rows: list[tuple[int, EventKind, int | None, dict[str, Any]]], data: st.DataObject
) -> None:
    lines = lines_of(build(rows))
    removed = data.draw(st.integers(1, len(lines) - 2), label="removed line index")
    del lines[removed]
    with pytest.raises(InputError) as caught:
        EventLog.from_jsonl("\n".join(lines) + "\n")
    assert caught.value.where == f"eventlog: line {removed + 1}"
    assert f"follows {removed - 1}" in caught.value.why
