"""Every parser fuzzed (hypothesis): malformed segments, wrong encoding characters, huge fields, missing MSH,
wrong versions, unknown codes and units, drugs not in the library, another patient. Each input gets an
acknowledgement (or HTTP error) naming a segment and field, never an exception, never a started program.

Example counts (``max_examples``, derandomized so CI runs the same inputs) are in docs/interop.md.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import PUMP, SEGMENTS, library, rgv, ward
from test_fhir import REQUEST

from openinfusion.errors import InputError
from openinfusion.interop.fhir.orders import read_medication_request
from openinfusion.interop.fhir.router import bearer_placeholder, fhir_router
from openinfusion.interop.hl7.message import read_message
from openinfusion.interop.hl7.problems import MessageError
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.ward import VirtualWard
from openinfusion.pump.eventlog import EventKind

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
TRICKY = [
    "", "|", "^", "~", "\\", "&", "^~\\&", "\\F\\", "\\X0D\\", "\\Z99\\", "\x0b", "\x1c", "\r", "\n", "U/h", "units",
    "mcg/kg/min", "ml/hr", "mg/h", "[iU]/h", "lb", "kg", "g", "-5", "0", "1e9", "NaN", "Infinity", "999999999999999",
    "0.0000001", "2.3", "2.5", "2.7", "3.0", "ADT^A01^ADT_A01", "RGV^O15", "CH", "XO", "NW", "P", "X",
    "WARD-PUMP-01/9", "WARD-PUMP-01/0", "NO-PUMP/1", "WARD-PUMP-01", "/", "9999^unobtainium^LOCAL",
    "^heparin^", "^dopamine 400 mg in 250 mL^", "4001^DOBUTamine^LOCAL", "MRN99999", "20260115", "2026011508",
    "20261315083000-0500", "20260115082900+9999", "é", "\u202e", "A" * 5000, "1.3.6.1.4.1.19376.1.6.1.1.1",
]  # fmt: skip
FIELDS = [f"{key}-{n}" for key, fields in SEGMENTS.items() for n in range(1, len(fields) + 2) if key != "MSH" or n > 2]
values = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40), st.text(alphabet="0123456789.^~&|\\-+ ", max_size=20))
changes = st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=4)
drops = st.lists(st.sampled_from(["MSH", "PID", "PV1", "ORC", "RXG", "RXR", "OBX1", "OBX2"]), max_size=2, unique=True)


@pytest.fixture(scope="module")
def icu() -> VirtualWard:
    return ward(library())


def _no_program_started(w: VirtualWard) -> None:
    kinds = {e.kind for e in w.events(PUMP)}
    assert EventKind.PROGRAM_CONFIRMED not in kinds and EventKind.INFUSION_STARTED not in kinds


def _acks_are_located(answer: Any) -> None:
    sent = [a for a in (answer.commit, answer.application) if a is not None]
    assert sent or answer.kind == "order"  # enhanced mode may ask for none (MSH-15/16)
    for text in sent:
        ack = read_message(text)
        msa = ack.first("MSA")
        assert msa is not None and msa.get(1) in {"CA", "CE", "CR", "AA", "AE", "AR"}
        for err in ack.all("ERR"):
            assert err.get(2, 1), text  # every error names a segment
            assert err.get(4) in {"E", "W", "I"}
        if msa.get(1) in {"CE", "CR", "AE", "AR"}:
            assert any(e.get(4) == "E" for e in ack.all("ERR")), text


@pytest.mark.req("OI-IOP-2")
@FUZZ
@given(changes=changes, drop=drops, sep=st.sampled_from(["\r", "\n", "\r\n"]))
def test_mutated_orders_get_located_acks_and_start_nothing(
    icu: VirtualWard, changes: dict[str, str], drop: list[str], sep: str
) -> None:
    answer = Receiver(icu, Sender(clock=icu.now)).receive(rgv(changes, tuple(drop), sep))
    _acks_are_located(answer)
    _no_program_started(icu)


@pytest.mark.req("OI-IOP-2")
@FUZZ
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_are_refused_not_crashed(icu: VirtualWard, data: bytes) -> None:
    answer = Receiver(icu, Sender(clock=icu.now)).receive(data)
    _acks_are_located(answer)
    _no_program_started(icu)


@FUZZ
@given(text=st.text(max_size=2000), prefix=st.sampled_from(["", "MSH|^~\\&|", "MSH|^~\\#|", "MSH|"]))
def test_the_reader_raises_only_located_message_errors(text: str, prefix: str) -> None:
    try:
        message = read_message(prefix + text)
    except MessageError as e:
        assert e.problems and e.problems[0].where.segment
    else:
        assert message.msh.id == "MSH"


def _mutate(body: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


JSON_PATHS = [
    ["status"], ["intent"], ["authoredOn"], ["subject"], ["requester"], ["performer", "identifier", "value"],
    ["identifier"], ["medicationReference", "reference"],
    ["contained", 0, "ingredient", 0, "strength", "numerator", "value"],
    ["contained", 0, "ingredient", 0, "strength", "denominator", "code"], ["contained", 1, "valueQuantity", "code"],
    ["contained", 1, "valueQuantity", "value"], ["contained", 0, "code", "text"],
    ["dosageInstruction", 0, "doseAndRate", 0, "rateQuantity", "value"],
    ["dosageInstruction", 0, "doseAndRate", 0, "rateQuantity", "code"],
    ["dosageInstruction", 0, "doseAndRate", 0, "doseQuantity"], ["dosageInstruction"], ["resourceType"],
]  # fmt: skip
json_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.text(max_size=30),
    st.sampled_from(["U/h", "mg/h", "ug/kg/min", "lb", "Patient/OTHER", "NO-PUMP/1", "WARD-PUMP-01/7", "#nope",
                     "2026-01-15T08:29:00", "2020-01-01T00:00:00Z", "bogus", "A" * 5000]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)  # fmt: skip


@pytest.mark.req("OI-IOP-2")
@FUZZ
@given(path=st.sampled_from(JSON_PATHS), value=json_values)
def test_mutated_medication_requests_raise_only_located_errors(path: list[Any], value: Any) -> None:
    body = _mutate(REQUEST, path, value)
    try:
        read_medication_request(body)
    except InputError as e:  # OrderError is an InputError: both name a path
        assert e.where and e.why


@pytest.fixture(scope="module")
def fhir(icu: VirtualWard) -> TestClient:
    app = FastAPI()
    app.include_router(fhir_router(icu, icu, bearer_placeholder({"t"})))
    return TestClient(app)


@pytest.mark.req("OI-IOP-2")
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(JSON_PATHS), value=json_values, raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_the_fhir_endpoint_answers_400_or_422_with_an_expression(
    fhir: TestClient, icu: VirtualWard, path: list[Any], value: Any, raw: bytes | None
) -> None:
    body = raw if raw is not None else json.dumps(_mutate(REQUEST, path, value), default=str).encode()
    response = fhir.post("/MedicationRequest", content=body, headers={"Authorization": "Bearer t"})
    assert response.status_code in {201, 400, 422}
    if response.status_code != 201:
        issue = response.json()["issue"][0]
        assert issue["expression"] and issue["diagnostics"]
    _no_program_started(icu)
