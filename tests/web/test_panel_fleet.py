"""The panel's pump as a fleet member: the same agent and link as a ward's pumps, against a real server.

Over MQTT (a Mosquitto of the test's own, TLS with the pump's commissioned certificate): ``openinfusion panel
--server URL --mqtt mqtts://... --certs DIR`` runs as a process; its pump reports to the fleet and an occlusion
alarm raised on the panel reaches the server's alarm board. In process (the in-process link, the same agent):
a remote order is listed pending on the panel and confirmed there; a library release reaches the pump.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hospitalkit import ROOT, wait_for
from openinfusion.agent import messages as m
from openinfusion.agent.agent import AgentConfig
from openinfusion.agent.link.inprocess import Bus
from openinfusion.agent.link.mqtt import MqttServerLink
from openinfusion.druglib.package import public_key_pem, simulation_release
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.pump.statechart import ChannelState
from openinfusion.server import alarms, fleet, library, orders
from openinfusion.server.broker import SERVER_IDENTITY, Broker, client_files, free_port, write_config
from openinfusion.server.db.models import Alarm, Deployment, Order, Pump
from openinfusion.server.hospital import Hospital
from openinfusion.server.settings import Settings
from openinfusion.sim.scenario import load_scenario
from openinfusion.web.panel.app import create_app
from openinfusion.web.panel.session import PanelSession

from browserkit import axe_violations

BEDSIDE = ROOT / "examples/panel/bedside.yaml"
PUMP = "panel-1"
mosquitto = pytest.mark.skipif(shutil.which("/usr/sbin/mosquitto") is None, reason="needs mosquitto")

OCCLUDING = f"""\
schema: openinfusion.scenario/1
name: panel joins the fleet
seed: 1
duration: 2 h
library: {ROOT / "examples/library/example-library.yaml"}
pump: {{care_area: ADULT-ICU}}
channels:
  - program: {{type: continuous, rate: 100 mL/h, vtbi: 500 mL, from_library: {{drug: maintenance-fluid}}}}
timeline:
  - {{at: 0 s, do: start}}
  - {{at: 10 s, do: occlusion, side: downstream, on: true}}
"""


def _commission(hospital: Hospital, certs: Path) -> None:
    """What a biomed does (POST /api/devices) and saves for the pump: key, certificate, CA, order key."""
    with hospital.sessions.begin() as db:
        done = fleet.commission(db, PUMP, care_area="ADULT-ICU", location="sim lab", actor="biomed", ca=hospital.ca)
        alarms.assign(db, "ADULT-ICU", "nurse", "charge", "setup")
    assert done.credentials is not None
    certs.mkdir()
    (certs / f"{PUMP}.pem").write_bytes(done.credentials.cert_pem)
    (certs / f"{PUMP}.key").write_bytes(done.credentials.key_pem)
    (certs / "ca.pem").write_bytes(hospital.ca.cert_pem)
    (certs / "order-key.pem").write_bytes(public_key_pem(hospital.order_key.public_key()))


@pytest.fixture
def hospital(tmp_path: Path) -> Iterator[Hospital]:
    h = Hospital(Settings(data_dir=tmp_path / "server"))
    yield h
    h.stop()


@mosquitto
@pytest.mark.req("OI-NET-2", "OI-NET-3")
def test_panel_with_server_joins_the_fleet_and_its_alarm_reaches_the_board(tmp_path: Path, hospital: Hospital) -> None:
    broker = Broker(write_config(tmp_path / "broker", hospital.ca, free_port()))
    broker.start()
    panel: subprocess.Popen[bytes] | None = None
    try:
        cert, key = client_files(hospital.ca, SERVER_IDENTITY, tmp_path / "server-certs")
        hospital.link = MqttServerLink(broker.files.endpoint(cert, key), "server-a")
        hospital.start()
        _commission(hospital, tmp_path / "certs")
        situation = tmp_path / "occluding.yaml"
        situation.write_text(OCCLUDING, encoding="utf-8")
        port, endpoint = free_port(), broker.files.endpoint(cert, key)
        panel = subprocess.Popen(
            [str(Path(sys.executable).parent / "openinfusion"), "panel", "--no-browser", "--port", str(port),
             "--situation", str(situation), "--speed", "5", "--server", "http://127.0.0.1:8000",
             "--mqtt", f"mqtts://{endpoint.host}:{endpoint.port}", "--certs", str(tmp_path / "certs")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def board() -> list[Alarm]:
            with hospital.sessions() as db:
                return [a for a in alarms.board(db) if a.pump_id == PUMP]

        wait_for(lambda: any(a.code == "occlusion_downstream" for a in board()), 60, "the occlusion on the board")
        with hospital.sessions() as db:
            pump = db.get(Pump, PUMP)
            assert pump is not None and pump.status is not None and pump.last_seen is not None
            assert pump.library_version == "2026.1"  # the pump's own library, reported in its status
        alarm = next(a for a in board() if a.code == "occlusion_downstream")
        assert alarm.priority == "high" and alarm.channel == 0 and alarm.forwarded_to == "nurse"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=10) as r:
            state = json.load(r)
        assert state["server"] == {"connected": True}
        assert any(a["code"] == "occlusion_downstream" for a in state["alarms"])
    finally:
        if panel is not None:
            panel.terminate()
            out = panel.communicate(timeout=20)[0].decode()
            assert "Traceback" not in out, out
        broker.stop()


def _joined(hospital: Hospital, bus: Bus) -> PanelSession:
    with hospital.sessions.begin() as db:
        fleet.commission(db, PUMP, care_area="ADULT-ICU", location="", actor="biomed", ca=None)
    scenario, _ = load_scenario(BEDSIDE)
    scenario = scenario.model_copy(update={"pump": scenario.pump.model_copy(update={"id": PUMP})})
    session = PanelSession(scenario, str(BEDSIDE))
    config = AgentConfig(order_keys=(hospital.order_key.public_key(),), resend_after_s=0.3)
    session.join(bus.pump(PUMP), config)
    bus.set_online(True)
    return session


def _exchange(session: PanelSession, bus: Bus, rounds: int = 6) -> None:
    for _ in range(rounds):
        session.tick()
        bus.drain()


def _order(hospital: Hospital) -> str:
    """A nurse at the central station orders maintenance fluid at 75 mL/h on channel A of the panel's pump."""
    program = m.OrderedProgram(
        area="ADULT-ICU",
        drug="maintenance-fluid",
        rate=m.WireQuantity(value="75", unit="mL/h"),
        vtbi=m.WireQuantity(value="1000", unit="mL"),
    )
    with hospital.sessions.begin() as db:
        order, command = orders.create(
            db, hospital.order_key, pump_id=PUMP, channel=0, program=program, actor="nurse",
            lifetime=dt.timedelta(minutes=5),
        )  # fmt: skip
        order_id = order.id
    hospital.send(PUMP, command)
    return order_id


def _order_state(hospital: Hospital, order_id: str) -> str | None:
    with hospital.sessions() as db:
        return db.execute(select(Order.state).where(Order.id == order_id)).scalar()


def test_a_remote_order_waits_on_the_panel_until_a_nurse_confirms_it(tmp_path: Path) -> None:
    bus = Bus()
    hospital = Hospital(Settings(data_dir=tmp_path / "server"), bus.server())
    hospital.start()
    try:
        session = _joined(hospital, bus)
        _exchange(session, bus)
        order_id = _order(hospital)
        _exchange(session, bus)
        listed = session.state()["orders"]
        assert [o["id"] for o in listed] == [order_id]
        assert listed[0]["channel"] == "A" and "75 mL/h" in listed[0]["text"] and "1000 mL" in listed[0]["text"]
        assert session.pump.channels[0].state is ChannelState.IDLE  # the network never starts an infusion
        assert _order_state(hospital, order_id) == "pending"
        session.press("order_confirm", None, order_id)
        assert session.presses[-1].ok, session.presses[-1].detail
        assert session.pump.channels[0].state is ChannelState.INFUSING
        _exchange(session, bus)
        assert session.state()["orders"] == []
        assert _order_state(hospital, order_id) == "confirmed"
    finally:
        hospital.stop()


@pytest.mark.browser
def test_the_page_lists_a_remote_order_and_a_click_confirms_it(tmp_path: Path, serve: Any, page: Any) -> None:
    bus = Bus()
    hospital = Hospital(Settings(data_dir=tmp_path / "server"), bus.server())
    hospital.start()
    try:
        session = _joined(hospital, bus)
        served = serve(create_app(session))  # its pacing loop runs the pump and the agent
        page.goto(served.url)
        page.get_by_text("Server: connected").wait_for()
        order_id = _order(hospital)
        page.get_by_text("Orders from the central station (confirm at the pump)").wait_for()
        assert "Channel A: maintenance IV fluid at 75 mL/h" in page.locator("#orders").inner_text()
        assert axe_violations(page) == []

        def reported_pending() -> bool:  # the pump's status tells the station what waits at the bedside
            with hospital.sessions() as db:
                pump = db.get(Pump, PUMP)
                return pump is not None and (pump.status or {}).get("pending_orders") == [order_id]

        wait_for(reported_pending, 20, "the pending order in the pump's status")
        page.locator(f'[data-key="order_confirm:null:{order_id}"]').click()
        page.get_by_text(f"order {order_id} confirmed and started").wait_for()
        page.locator('[data-status="infusing"]').first.wait_for()
        wait_for(lambda: _order_state(hospital, order_id) == "confirmed", 20, "the server told of the confirmation")
    finally:
        hospital.stop()


def test_a_library_release_from_the_server_reaches_the_panel_pump(tmp_path: Path) -> None:
    """The pump trusts its situation's pharmacy keys (``sim:<seed>``); a release signed with them is staged."""
    lib = read_yaml(ROOT / "examples/library/example-library.yaml").require()
    newer = dataclasses.replace(lib, info=dataclasses.replace(lib.info, version="2026.2"))
    keys, package = simulation_release(newer, "sim:1")
    bus = Bus()
    hospital = Hospital(Settings(data_dir=tmp_path / "server", library_keys=keys), bus.server())
    hospital.settings = dataclasses.replace(hospital.settings, reoffer_after_s=0.2)
    hospital.start()
    try:
        session = _joined(hospital, bus)
        with hospital.sessions.begin() as db:
            release = library.upload(db, package, "pharmacist", keys)
            library.target(db, release.id, ["ADULT-ICU"], "pharmacist")
            release_id = release.id

        def deployed() -> str | None:
            _exchange(session, bus, 2)
            with hospital.sessions() as db:
                row = db.get(Deployment, (PUMP, release_id))
                return None if row is None else row.state

        wait_for(lambda: deployed() == "active", 20, "the release active on the panel's pump")
        assert session.state()["library"]["version"] == "2026.2"
    finally:
        hospital.stop()
