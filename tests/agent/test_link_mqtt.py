"""The MQTT 5 transport against a Mosquitto of the test's own: TLS with per-device client certificates from
the hospital CA, an ACL that confines each pump to its own topics, revocation with immediate effect (CRL
reloaded, session taken over); a ward infuses through a broker restart and every event still reaches the
server exactly once, the infusions unchanged."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from hospitalkit import example_library, make_system, run, wait_for
from openinfusion.agent import messages as m
from openinfusion.agent.agent import AgentConfig
from openinfusion.agent.link.mqtt import Endpoint, MqttPumpLink, MqttServerLink, down_topic, up_topic
from openinfusion.agent.ward import Clock, Ward, WardSpec, pump_id
from openinfusion.server import fleet
from openinfusion.server.broker import SERVER_IDENTITY, Broker, BrokerFiles, client_files, free_port, write_config
from openinfusion.server.db.models import Event, LinkRejection
from openinfusion.server.hospital import Hospital
from openinfusion.server.pki import CertificateAuthority
from openinfusion.server.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("/usr/sbin/mosquitto") is None, reason="needs mosquitto")
PUMPS = 3


@pytest.fixture
def hospital(tmp_path: Path) -> Iterator[Hospital]:
    h = Hospital(Settings(data_dir=tmp_path / "server"))
    yield h
    h.stop()


@pytest.fixture
def broker(tmp_path: Path, hospital: Hospital) -> Iterator[Broker]:
    b = Broker(write_config(tmp_path / "broker", hospital.ca, free_port()))
    b.start()
    yield b
    b.stop()


def _endpoint(files: BrokerFiles, ca: CertificateAuthority, identity: str, where: Path) -> Endpoint:
    cert, key = client_files(ca, identity, where)
    return files.endpoint(cert, key)


def _commission(hospital: Hospital, where: Path) -> dict[str, tuple[Path, Path]]:
    creds = {}
    with hospital.sessions.begin() as db:
        for i, area in enumerate(("ADULT-ICU", "MED-SURG", "PICU")):
            done = fleet.commission(db, pump_id(i), care_area=area, location="", actor="biomed", ca=hospital.ca)
            assert done.credentials is not None
            cert, key = where / f"{pump_id(i)}.pem", where / f"{pump_id(i)}.key"
            where.mkdir(exist_ok=True)
            cert.write_bytes(done.credentials.cert_pem)
            key.write_bytes(done.credentials.key_pem)
            creds[pump_id(i)] = (cert, key)
    return creds


@pytest.mark.req("OI-NET-1", "OI-NET-2")
def test_a_ward_through_a_broker_restart_loses_and_duplicates_nothing(
    tmp_path: Path, hospital: Hospital, broker: Broker
) -> None:
    files = broker.files
    hospital.link = MqttServerLink(_endpoint(files, hospital.ca, SERVER_IDENTITY, tmp_path / "c"), "server-a")
    hospital.start()
    creds = _commission(hospital, tmp_path / "pumps")
    spec = WardSpec(pumps=PUMPS, library=example_library(), agent=AgentConfig(resend_after_s=0.5))
    ward = Ward(
        spec,
        lambda p: MqttPumpLink(files.endpoint(*creds[p]), p),
        Clock(lambda: dt.datetime.now(dt.UTC), time.monotonic),
    )

    def go(seconds: int) -> None:
        for _ in range(seconds):
            ward.step(1.0)
            time.sleep(0.002)

    def caught_up() -> bool:
        ward.poll()
        return all(b.agent.acked == b.pump.log.last_seq for b in ward.beds)

    go(300)
    wait_for(caught_up, what="events acknowledged over MQTT")
    broker.stop()  # the broker dies while pumps infuse
    go(600)
    broker.start()
    go(300)
    wait_for(caught_up, 40, what="events acknowledged after the broker restart")
    reference = make_system(tmp_path / "reference", pumps=PUMPS)
    try:
        run(reference, 1200)
        assert [b.pump.log.to_jsonl() for b in ward.beds] == [b.pump.log.to_jsonl() for b in reference.ward.beds]
    finally:
        reference.hospital.stop()
    with hospital.sessions() as db:
        for bed in ward.beds:
            counts = select(func.count(), func.count(func.distinct(Event.seq)))
            count, distinct = db.execute(counts.where(Event.pump_id == bed.pump.config.pump_id)).one()
            assert count == distinct == bed.pump.log.last_seq
    for bed in ward.beds:
        bed.agent.link.close()


def _client(files: BrokerFiles, endpoint: Endpoint | None, client_id: str) -> tuple[mqtt.Client, list[bool]]:
    connected: list[bool] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if endpoint is not None:
        c.tls_set(ca_certs=str(endpoint.ca), certfile=str(endpoint.cert), keyfile=str(endpoint.key))
    else:
        c.tls_set(ca_certs=str(files.ca))
    c.on_connect = lambda _c, _u, _f, reason, _p: connected.append(not reason.is_failure)
    try:
        c.connect("127.0.0.1", files.port, keepalive=5)
    except OSError:
        connected.append(False)
        return c, connected
    c.loop_start()
    return c, connected


def test_the_broker_admits_only_certified_pumps_and_confines_each_to_its_own_topics(
    tmp_path: Path, hospital: Hospital, broker: Broker
) -> None:
    files = broker.files
    # no client certificate: refused at the TLS handshake
    anonymous, ok = _client(files, None, "anon")
    time.sleep(1)
    assert True not in ok
    anonymous.loop_stop()
    # a certificate from another CA: refused
    rogue_ca = CertificateAuthority(tmp_path / "rogue")
    rogue = _endpoint(files, rogue_ca, "vp-0001", tmp_path / "rogue-certs")
    rogue_client, ok = _client(files, Endpoint("127.0.0.1", files.port, files.ca, rogue.cert, rogue.key), "rogue")
    time.sleep(1)
    assert True not in ok
    rogue_client.loop_stop()
    # pump A may not publish as pump B nor read pump B's commands
    a = _endpoint(files, hospital.ca, "vp-0001", tmp_path / "a")
    b = _endpoint(files, hospital.ca, "vp-0002", tmp_path / "b")
    server = _endpoint(files, hospital.ca, SERVER_IDENTITY, tmp_path / "s")
    seen: list[tuple[str, bytes]] = []
    link = MqttServerLink(server, "server-acl")
    link.start(seen.extend)
    spy, spy_ok = _client(files, a, "vp-0001-spy")
    spied: list[bytes] = []
    spy.on_message = lambda _c, _u, msg: spied.append(msg.payload)
    wait_for(lambda: bool(spy_ok) and link.connected.is_set(), what="connections")
    spy.subscribe(down_topic("vp-0002"), qos=1)
    spy.publish(up_topic("vp-0002"), b"forged", qos=1)
    pump_b = MqttPumpLink(b, "vp-0002")
    wait_for(lambda: pump_b.connected, what="pump B")
    pump_b.publish(b"genuine")
    link.publish("vp-0002", b"for B only")
    wait_for(lambda: pump_b.receive() == [b"for B only"] or False, what="B's command")
    wait_for(lambda: ("vp-0002", b"genuine") in seen, what="B's message")
    time.sleep(0.5)
    assert seen == [("vp-0002", b"genuine")]
    assert spied == []
    spy.loop_stop()
    pump_b.close()
    link.stop()


def test_a_decommissioned_pump_is_dropped_and_refused_at_once(tmp_path: Path, broker: Broker) -> None:
    """Decommissioning through the API: the connected pump is disconnected within a second, cannot connect
    again (the broker reloaded the CRL: no restart), and nothing it sent after is stored; its neighbour is
    unaffected."""
    hospital = Hospital(Settings(data_dir=tmp_path / "server", broker_pid_file=broker.files.pid))
    files = broker.files
    hospital.link = MqttServerLink(_endpoint(files, hospital.ca, SERVER_IDENTITY, tmp_path / "c"), "server-r")
    hospital.start()
    try:
        creds = _commission(hospital, tmp_path / "pumps")
        kept, revoked = (MqttPumpLink(files.endpoint(*creds[p]), p) for p in ("vp-0001", "vp-0002"))
        wait_for(lambda: kept.connected and revoked.connected, what="both pumps connect")
        with hospital.sessions.begin() as db:
            fleet.decommission(db, "vp-0002", actor="biomed", ca=hospital.ca)
        started = time.monotonic()
        hospital.revoke("vp-0002")
        wait_for(lambda: not revoked.connected, 5, what="the decommissioned pump is dropped")
        print(f"decommissioned pump dropped after {time.monotonic() - started:.2f} s")
        epoch = revoked.epoch
        time.sleep(3)  # paho retries every second: every attempt fails the TLS handshake
        assert not revoked.connected and revoked.epoch == epoch
        assert kept.connected
        fresh, fresh_ok = _client(files, files.endpoint(*creds["vp-0002"]), "vp-0002-again")
        time.sleep(1)
        assert True not in fresh_ok
        fresh.loop_stop()
        kept.close()
        revoked.close()
    finally:
        hospital.stop()


def test_the_server_refuses_a_decommissioned_pump_at_once(tmp_path: Path, hospital: Hospital) -> None:
    """Even through a broker that has not reloaded its CRL, the server stores nothing from the pump."""
    _commission(hospital, tmp_path / "pumps")
    with hospital.sessions.begin() as db:
        fleet.decommission(db, "vp-0002", actor="biomed", ca=hospital.ca)
    status = m.up("vp-0002", dt.datetime.now(dt.UTC), m.Events(events=(_record(1),)))
    hospital.handle("vp-0002", m.encode(status))
    with hospital.sessions() as db:
        assert db.execute(select(func.count()).select_from(Event)).scalar() == 0
        reasons = list(db.execute(select(LinkRejection.reason).where(LinkRejection.pump_id == "vp-0002")).scalars())
    assert reasons == ["pump: decommissioned pump"]


def _record(seq: int) -> m.EventRecord:
    return m.EventRecord(seq=seq, t_us=seq, at=dt.datetime.now(dt.UTC), kind="self_test", channel=None, data={})
