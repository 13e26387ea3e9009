"""The pump agent against the real server over the in-process link: events exactly once through outages and
loss; remote orders only pending until confirmed at the pump; refused commands logged with their reason."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from hospitalkit import run, settle, wait_for
from openinfusion.agent import messages as m
from openinfusion.agent.ward import Bedside
from openinfusion.errors import InputError
from openinfusion.pump.statechart import ChannelState
from openinfusion.server import orders
from openinfusion.server.db.models import Event, LinkRejection
from openinfusion.web.system import LocalSystem


def _stored(system: LocalSystem, pump: str) -> list[Event]:
    with system.hospital.sessions() as db:
        return list(db.execute(select(Event).where(Event.pump_id == pump).order_by(Event.seq)).scalars())


def _all_acked(system: LocalSystem) -> bool:
    settle(system, 1)
    return all(b.agent.acked == b.pump.log.last_seq for b in system.ward.beds)


@pytest.mark.req("OI-NET-2")
def test_every_event_reaches_the_server_exactly_once_through_outage_and_loss(system: LocalSystem) -> None:
    run(system, 300)
    system.bus.set_online(False)  # the whole network is down for 15 minutes
    run(system, 900)
    system.bus.set_online(True)
    system.bus.loss = 0.3  # then a lossy network (30 % lost) for 10 minutes
    run(system, 600)
    system.bus.loss = 0.0
    wait_for(lambda: _all_acked(system), what="every event acknowledged")
    for bed in system.ward.beds:
        stored = _stored(system, bed.pump.config.pump_id)
        logged = bed.pump.log.events()
        assert [e.seq for e in stored] == [e.seq for e in logged]  # each once, none missing
        assert [(e.kind, e.data) for e in stored] == [(e.kind.value, e.to_json()["data"]) for e in logged]
        assert len(logged) > 20


def _order(system: LocalSystem, bed: Bedside, rate: str = "100", lifetime_s: int = 300) -> m.RemoteProgram:
    program = m.OrderedProgram(
        area=bed.area, drug="maintenance-fluid", rate=m.WireQuantity(value=rate, unit="mL/h"),
        vtbi=m.WireQuantity(value="500", unit="mL"),
    )  # fmt: skip
    with system.hospital.sessions.begin() as db:
        _, command = orders.create(
            db, system.hospital.order_key, pump_id=bed.pump.config.pump_id, channel=0, program=program,
            actor="nurse", lifetime=dt.timedelta(seconds=lifetime_s),
        )  # fmt: skip
    return command


def _send(system: LocalSystem, bed: Bedside, command: m.RemoteProgram) -> None:
    system.hospital.send(bed.pump.config.pump_id, command)
    settle(system)


def _order_state(system: LocalSystem, order: str) -> str:
    with system.hospital.sessions() as db:
        row = db.get(orders.Order, order)
        assert row is not None
        return row.state


@pytest.fixture
def bed(system: LocalSystem) -> Bedside:
    system.ward.confirm_orders = False
    run(system, 10)  # powered on and idle; the nurse's first round comes later
    first = system.ward.beds[0]
    assert first.pump.channels[0].state is ChannelState.IDLE
    return first


@pytest.mark.req("OI-NET-1")
def test_a_remote_order_waits_at_the_pump_until_a_clinician_confirms_it(system: LocalSystem, bed: Bedside) -> None:
    command = _order(system, bed)
    before = bed.pump.log.last_seq
    _send(system, bed, command)
    assert command.order in bed.agent.pending
    assert bed.pump.channels[0].state is ChannelState.IDLE  # nothing runs on the network's word
    assert bed.pump.log.last_seq == before
    assert _order_state(system, command.order) == "pending"
    bed.agent.confirm(command.order)
    settle(system)
    assert bed.pump.channels[0].state is ChannelState.INFUSING
    assert _order_state(system, command.order) == "confirmed"
    kinds = [e.kind.value for e in bed.pump.log.events(before)]
    assert "ders_check" in kinds and "infusion_started" in kinds  # the same guarded path as the keypad


@pytest.mark.req("OI-NET-1")
def test_a_confirmed_order_still_meets_the_drug_library_limits(system: LocalSystem, bed: Bedside) -> None:
    command = _order(system, bed, rate="1500")  # beyond the pump's range / library limits
    _send(system, bed, command)
    with pytest.raises(InputError):
        bed.agent.confirm(command.order)
    settle(system)
    assert bed.pump.channels[0].state is not ChannelState.INFUSING
    assert _order_state(system, command.order) == "refused"


def _refusals(system: LocalSystem) -> list[str]:
    with system.hospital.sessions() as db:
        return list(db.execute(select(LinkRejection.reason).where(LinkRejection.side == "pump")).scalars())


@pytest.mark.req("OI-NET-1")
def test_replayed_expired_forged_and_misaddressed_orders_are_refused_and_logged(
    system: LocalSystem, bed: Bedside
) -> None:
    good = _order(system, bed)
    _send(system, bed, good)
    _send(system, bed, good)  # replay: same nonce, new envelope
    expired = _order(system, bed, lifetime_s=-1)
    _send(system, bed, expired)
    forged = _order(system, bed).model_copy(update={"signature": _order(system, bed).signature})
    _send(system, bed, forged)
    unsigned = _order(system, bed).model_copy(update={"signature": "AAAA"})
    _send(system, bed, unsigned)
    other = system.ward.beds[1]
    _send(system, other, _order(system, bed))  # signed for pump 1, sent to pump 2
    reasons = [r.reason for r in bed.agent.refusals] + [r.reason for r in other.agent.refusals]
    assert any("replayed" in r for r in reasons)
    assert any("expired" in r for r in reasons)
    assert sum("signature" in r for r in reasons) == 3  # forged, unsigned, another pump's
    assert list(bed.agent.pending) == [good.order]
    assert not other.agent.pending
    assert len(_refusals(system)) == 5  # each reported to the server
    assert _order_state(system, expired.order) == "refused"


def test_a_duplicate_or_malformed_downlink_message_is_refused_and_changes_nothing(
    system: LocalSystem, bed: Bedside
) -> None:
    message = m.down(bed.pump.config.pump_id, dt.datetime.now(dt.UTC), m.Config(config="c1", status_interval_s=7))
    data = m.encode(message)
    pump_id = bed.pump.config.pump_id
    for raw in (data, data, b"{not json", b'{"v": 9}'):
        system.bus.server().publish(pump_id, raw)
    settle(system)
    assert bed.agent.status_interval_s == 7
    reasons = [r.reason for r in bed.agent.refusals]
    assert any("duplicate" in r for r in reasons)
    assert any("malformed" in r for r in reasons)
    assert any("unknown version 9" in r for r in reasons)
    assert bed.pump.channels[0].state is ChannelState.IDLE


def test_the_server_refuses_spoofed_unknown_and_malformed_uplink_messages(system: LocalSystem) -> None:
    hospital = system.hospital
    claim = m.encode(m.up("vp-0002", dt.datetime.now(dt.UTC), m.Notice(refused=None, reason="x")))
    hospital.handle("vp-0001", claim)  # vp-0001 claims to be vp-0002
    hospital.handle("intruder", m.encode(m.up("intruder", dt.datetime.now(dt.UTC), m.Notice(refused=None, reason="x"))))
    hospital.handle("vp-0001", b"\x00garbage")
    same = m.encode(m.up("vp-0001", dt.datetime.now(dt.UTC), m.ChunkRequest(release="nope", offset=0)))
    hospital.handle("vp-0001", same)
    with hospital.sessions() as db:
        reasons = list(db.execute(select(LinkRejection.reason).where(LinkRejection.side == "server")).scalars())
        assert db.execute(select(func.count()).select_from(Event)).scalar_one() == 0
    assert any("claims to be from pump vp-0002" in r for r in reasons)
    assert any("unknown pump" in r for r in reasons)
    assert any("malformed" in r for r in reasons)
    assert any("no release nope" in r for r in reasons)
