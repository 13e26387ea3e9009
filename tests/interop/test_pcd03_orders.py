"""PCD-03 in: an RGV^O15 becomes a pending program at the pump, or the right negative acknowledgement."""

from __future__ import annotations

import pytest
from samples import PUMP, library, rgv, ward

from openinfusion.druglib.model import Library
from openinfusion.interop.gateway import OrderState
from openinfusion.interop.hl7.message import read_message
from openinfusion.interop.hl7.receiver import Answer, Receiver
from openinfusion.interop.hl7.structure import check_structure
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.ward import Confirmation, VirtualWard
from openinfusion.pump.statechart import ChannelState
from openinfusion.units import Duration, FlowRate


@pytest.fixture(scope="module")
def lib() -> Library:
    return library()


@pytest.fixture
def icu(lib: Library) -> VirtualWard:
    return ward(lib)


def receive(w: VirtualWard, text: str | bytes) -> Answer:
    return Receiver(w, Sender(clock=w.now)).receive(text)


def msa(ack: str | None) -> str:
    assert ack is not None
    return read_message(ack).first("MSA").get(1)  # type: ignore[union-attr]


def errs(ack: str | None) -> list[tuple[str, str, str, str]]:
    """(ERR-2 location, ERR-4 severity, ERR-5 PIV code, ERR-8 text) of an acknowledgement."""
    assert ack is not None
    return [(e.raw(2), e.get(4), e.get(5), e.get(8)) for e in read_message(ack).all("ERR")]


def piv(ack: str | None) -> tuple[str, str]:
    """The (PIV code, location) of the error in an acknowledgement."""
    found = [(code, where) for where, severity, code, _ in errs(ack) if severity == "E"]
    assert len(found) == 1, errs(ack)
    return found[0]


@pytest.mark.req("OI-IOP-1")
def test_an_order_becomes_pending_and_nothing_starts(icu: VirtualWard) -> None:
    answer = receive(icu, rgv())
    assert msa(answer.commit) == "CA"
    assert msa(answer.application) == "AA"
    record = icu.pending(PUMP, 1)
    assert record is not None and record.state is OrderState.PENDING
    assert (record.drug, record.concentration, str(record.dose)) == ("dopamine", "400 mg/250 mL", "5 ug/kg/min")
    assert record.rate == FlowRate.ml_h("13.12")  # 5 ug/kg/min x 70 kg / 1.6 mg/mL, to 0.01 mL/h
    icu.advance(Duration.min(10))
    assert icu.pump(PUMP).channels[0].state is ChannelState.IDLE
    kinds = {e.kind.value for e in icu.events(PUMP)}
    assert not kinds & {"program_confirmed", "infusion_started", "state_changed"}


def test_what_we_send_is_valid_hl7_v26(icu: VirtualWard) -> None:
    answer = receive(icu, rgv())
    for ack in (answer.commit, answer.application):
        assert ack is not None and check_structure(read_message(ack)) == []
    rrg = read_message(answer.application or "")
    assert rrg.type == ("RRG", "O16", "RRG_O16")
    assert rrg.msh.get(21, 3) == "1.3.6.1.4.1.19376.1.6.1.3.2"
    assert rrg.first("ORC").get(2) == "ORD-1001"  # type: ignore[union-attr]


@pytest.mark.req("OI-IOP-1")
def test_confirmation_mismatch_is_shown_logged_and_starts_nothing(icu: VirtualWard) -> None:
    receive(icu, rgv())
    record = icu.pending(PUMP, 1)
    assert record is not None and record.dose is not None
    outcome = icu.confirm(PUMP, 1, Confirmation("RN7", "MRN99999", "dopamine", record.rate, record.dose))
    assert not outcome.started and "patient MRN99999" in outcome.problems[0]
    wrong_rate = Confirmation("RN7", "MRN12345", "dopamine", FlowRate.ml_h(131), record.dose)
    assert not icu.confirm(PUMP, 1, wrong_rate).started
    refused = [e for e in icu.events(PUMP) if e.kind.value == "event_refused" and e.data["event"] == "confirm_order"]
    assert len(refused) == 2 and "ORD-1001" in str(refused[0].data["reason"])
    assert icu.pump(PUMP).channels[0].state is ChannelState.IDLE
    assert icu.pending(PUMP, 1) is record


@pytest.mark.req("OI-IOP-1")
def test_confirmed_order_runs_and_carries_its_identifiers(icu: VirtualWard) -> None:
    receive(icu, rgv())
    record = icu.pending(PUMP, 1)
    assert record is not None
    outcome = icu.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose))
    assert outcome.started, outcome.problems
    icu.advance(Duration.min(6))
    status = icu.status(PUMP).channels[0]
    assert status.state == "infusing" and status.order_id == "ORD-1001"
    assert status.delivered.nl > 1_000_000  # more than 1 mL in 6 min at 13.12 mL/h
    assert record.state is OrderState.RUNNING and record.confirmed_by == "RN7"
    confirmed = [e for e in icu.events(PUMP) if e.seq == record.confirmed_seq]
    assert confirmed[0].kind.value == "program_confirmed"


def test_soft_limit_pends_with_a_warning_and_needs_an_override(icu: VirtualWard) -> None:
    answer = receive(icu, rgv({"RXG-15": "25"}))  # dopamine soft max 20, hard max 30 ug/kg/min
    assert msa(answer.application) == "AA"
    assert any(sev == "W" and "soft" in text for _, sev, _, text in errs(answer.application))
    record = icu.pending(PUMP, 1)
    assert record is not None
    ok = Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose)
    assert not icu.confirm(PUMP, 1, ok).started
    reason = icu.library.override_reasons[0]
    confirmed = Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose, override_reason=reason)
    assert icu.confirm(PUMP, 1, confirmed).started
    assert any(e.kind.value == "ders_override" for e in icu.events(PUMP))


NEGATIVE = [
    ({"OBX1-18": "NO-SUCH-PUMP/1"}, "AE", "9001", "OBX^1^18^1"),
    ({"OBX1-18": f"{PUMP}/3"}, "AE", "9001", "OBX^1^18^1"),
    ({"RXG-4": "9999^unobtainium^LOCAL"}, "AE", "9010", "RXG^1^4^1"),
    ({"RXG-15": "35"}, "AE", "9024", "RXG^1^15^1"),
    ({"RXG-16": "mg/h^mg/h^UCUM"}, "AE", "9009", "RXG^1^16^1"),
    ({"RXG-16": "U/h^U/h^UCUM"}, "AE", "9008", "RXG^1^16^1"),
    ({"RXG-16": "265266^MDC_DIM_MILLI_L_PER_HR^MDC"}, "AE", "9009", "RXG^1^16^1"),
    ({"RXG-17": "200"}, "AE", "9018", "RXG^1^17^1"),
    ({"OBX2-5": ""}, "AE", "9003", "OBX^1^5^1"),
    ({"OBX2-3": "68060^MDC_ATTR_PT_HEIGHT^MDC"}, "AE", "9019", "OBX^1^5^1"),
    ({"OBX2-5": "700"}, "AE", "9004", "OBX^1^5^1"),
    ({"ORC-9": "20260115070000-0500"}, "AE", "9022", "ORC^1^9^1"),
    ({"ORC-1": "CH"}, "AE", "9038", "ORC^1^1^1"),
    ({"RXG-15": "five"}, "AE", "9004", "RXG^1^15^1"),
]


@pytest.mark.req("OI-IOP-2")
@pytest.mark.parametrize(("changes", "code", "piv_code", "where"), NEGATIVE)
def test_refusals_name_segment_field_and_piv_code(
    icu: VirtualWard, changes: dict[str, str], code: str, piv_code: str, where: str
) -> None:
    answer = receive(icu, rgv(changes))
    assert msa(answer.commit) == "CA"
    assert msa(answer.application) == code
    assert piv(answer.application)[0] == piv_code
    assert piv(answer.application)[1].startswith(where.rsplit("^", 2)[0])
    assert icu.pending(PUMP, 1) is None
    assert icu.pump(PUMP).channels[0].state is ChannelState.IDLE


def test_another_patient_on_the_pump_is_refused(icu: VirtualWard) -> None:
    icu.associate(PUMP, "MRN55555")
    answer = receive(icu, rgv())
    assert piv(answer.application)[0] == "9012"


def test_busy_channel_is_rejected_not_errored(icu: VirtualWard) -> None:
    receive(icu, rgv())
    record = icu.pending(PUMP, 1)
    assert record is not None
    icu.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose))
    answer = receive(icu, rgv({"ORC-2": "ORD-1002^BCMA", "MSH-10": "MSG00002"}))
    assert msa(answer.application) == "AR" and piv(answer.application)[0] == "9002"


def test_care_area_mismatch_and_no_care_area(lib: Library) -> None:
    w = ward(lib, (PUMP, "NICU", 1), ("BARE", None, 1))
    assert piv(receive(w, rgv()).application)[0] == "9018"  # 400 mg/250 mL is not a NICU concentration
    bare = rgv({"OBX1-18": "BARE/1^^08002FFFE0000002^EUI-64"})
    assert piv(receive(w, bare).application)[0] == "9029"


ACCEPT_REFUSED = [
    ({"MSH-12": "2.3"}, "CR", "MSH^1^12^1"),
    ({"MSH-9": "ADT^A01^ADT_A01"}, "CR", "MSH^1^9^1"),
    ({"MSH-11": "X"}, "CR", "MSH^1^11^1"),
    ({"MSH-10": ""}, "CR", "MSH^1^10^1"),
    ({"MSH-21": "X^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"}, "CE", "MSH^1^21^1^3"),
    ({"MSH-7": "yesterday"}, "CE", "MSH^1^7^1"),
]


@pytest.mark.req("OI-IOP-2")
@pytest.mark.parametrize(("changes", "code", "where"), ACCEPT_REFUSED)
def test_header_errors_are_commit_rejects_without_an_order(
    icu: VirtualWard, changes: dict[str, str], code: str, where: str
) -> None:
    answer = receive(icu, rgv(changes))
    assert msa(answer.commit) == code
    assert answer.application is None
    assert [w for w, sev, _, _ in errs(answer.commit) if sev == "E"] == [where]
    assert icu.pending(PUMP, 1) is None


def test_missing_msh_and_wrong_encoding_characters(icu: VirtualWard) -> None:
    no_msh = receive(icu, rgv(drop=("MSH",)))
    assert msa(no_msh.commit) == "CR" and errs(no_msh.commit)[0][0] == "MSH^1"
    wrong = receive(icu, rgv().replace("^~\\&", "^~\\#", 1))
    assert msa(wrong.commit) == "CR" and errs(wrong.commit)[0][0] == "MSH^1^2^1"


def test_tolerated_deviations_are_reported_as_information(icu: VirtualWard) -> None:
    text = rgv({"MSH-21": "", "RXG-16": "ug/kg/min^ug/kg/min^UCUM", "RXG-7": "ml^ml^UCUM", "MSH-12": "2.5"}, sep="\n")
    answer = receive(icu, text)
    assert msa(answer.commit) == "CA" and msa(answer.application) == "AA"
    notes = " | ".join(t for _, sev, _, t in errs(answer.commit) + errs(answer.application) if sev == "I")
    for expected in ("LF instead of CR", "no profile OID", "version 2.5", "'ml' read as UCUM 'mL'"):
        assert expected in notes


def test_enhanced_mode_fields_decide_which_acks_are_sent(icu: VirtualWard) -> None:
    never = receive(icu, rgv({"MSH-15": "NE", "MSH-16": "ER"}))
    assert never.commit is None and never.application is None  # accepted: no error to report
    assert icu.pending(PUMP, 1) is not None
    original = receive(icu, rgv({"MSH-15": "", "MSH-16": "", "ORC-2": "ORD-2^BCMA", "MSH-10": "M2"}))
    assert original.commit is None and original.application_here and msa(original.application) == "AR"


def test_a_gateway_failure_is_answered_not_raised(icu: VirtualWard) -> None:
    class Broken:
        def deliver(self, order: object) -> object:
            raise RuntimeError("database down")

    answer = Receiver(Broken(), Sender(clock=icu.now)).receive(rgv())  # type: ignore[arg-type]
    ack = read_message(answer.commit or "")
    assert ack.first("MSA").get(1) == "CR" and ack.first("MSA").get(2) == "MSG00001"  # type: ignore[union-attr]
    assert "internal error: RuntimeError" in (ack.first("ERR").get(8))  # type: ignore[union-attr]


@pytest.mark.req("OI-IOP-1")
def test_a_pending_order_expires(icu: VirtualWard) -> None:
    receive(icu, rgv())
    record = icu.pending(PUMP, 1)
    assert record is not None
    icu.advance(Duration.min(31))
    outcome = icu.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose))
    assert not outcome.started and "sent again" in outcome.problems[0]
    assert record.state is OrderState.EXPIRED and icu.pending(PUMP, 1) is None
    assert icu.pump(PUMP).channels[0].state is ChannelState.IDLE


def _running(w: VirtualWard) -> None:
    receive(w, rgv())
    record = w.pending(PUMP, 1)
    assert record is not None
    assert w.confirm(PUMP, 1, Confirmation("RN7", "MRN12345", "dopamine", record.rate, record.dose)).started


XO = {"ORC-1": "XO", "MSH-10": "MSG00002", "RXG-5": "", "RXG-7": "", "ORC-9": "20260115083000-0500"}


@pytest.mark.req("OI-IOP-1")
def test_a_rate_change_order_waits_for_confirmation_at_the_pump(icu: VirtualWard) -> None:
    _running(icu)
    answer = receive(icu, rgv(XO | {"RXG-15": "7"}))
    assert msa(answer.application) == "AA", errs(answer.application)
    channel = icu.pump(PUMP).channels[0]
    assert channel.pending is not None and channel.rate() == FlowRate.ml_h("13.12")  # the old rate runs on
    icu.pump(PUMP).confirm_titration(0)
    assert channel.rate() == FlowRate.ml_h("18.38")  # 7 ug/kg/min


@pytest.mark.req("OI-IOP-2")
@pytest.mark.parametrize(
    ("changes", "piv_code", "where"),
    [
        ({"ORC-2": "ORD-9999^BCMA"}, "9004", "ORC^1^2^1"),
        ({"RXG-15": "35"}, "9024", "RXG^1^15^1"),
        ({"RXG-16": "265266^MDC_DIM_MILLI_L_PER_HR^MDC"}, "9009", "RXG^1^16^1"),
        ({"PID-3": "MRN99999"}, "9012", "PID^1^3^1"),
    ],
)
def test_bad_rate_changes_are_refused_and_change_nothing(
    icu: VirtualWard, changes: dict[str, str], piv_code: str, where: str
) -> None:
    _running(icu)
    answer = receive(icu, rgv(XO | {"RXG-15": "7"} | changes))
    assert msa(answer.application) == "AE" and piv(answer.application) == (piv_code, where)
    channel = icu.pump(PUMP).channels[0]
    assert channel.pending is None and channel.rate() == FlowRate.ml_h("13.12")
