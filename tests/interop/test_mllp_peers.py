"""MLLP against an independent EHR: node-hl7-client sends our sample order, node-hl7-server takes our RRG^O16."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from peers import NodeEhr, free_port, self_signed
from samples import EXAMPLES, PUMP, library, ward
from test_device_reports import started

from openinfusion.interop.endpoint import Endpoint
from openinfusion.interop.hl7.message import read_message
from openinfusion.interop.hl7.pcd01 import Pcd01Reporter
from openinfusion.interop.hl7.pcd04 import Pcd04Reporter
from openinfusion.interop.hl7.pcd10 import Pcd10Reporter
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.mllp import MllpClient, MllpServer, client_tls, server_tls
from openinfusion.units import Duration

pytestmark = pytest.mark.asyncio
ORDER = EXAMPLES / "pcd03-rgv-o15-dopamine.hl7"


async def _round_trip(tmp_path: Path, tls: bool) -> None:
    w = ward(library())
    ehr_port = free_port()
    cert = key = None
    if tls:
        cert, key = self_signed(tmp_path)
    iop = MllpClient("127.0.0.1", ehr_port, tls=client_tls(str(cert)) if tls else None)
    endpoint = Endpoint(Receiver(w, Sender(clock=w.now)), iop)
    server_ctx = server_tls(str(cert), str(key)) if tls else None
    async with MllpServer(endpoint.handle, endpoint.refuse, tls=server_ctx) as gateway:
        config = {"listen": ehr_port, "gateway": gateway.port, "send": [str(ORDER)]}
        if tls:
            config |= {"tls": {"key": str(key), "cert": str(cert)}, "gatewayTls": {"ca": str(cert)}}
        async with NodeEhr(config) as ehr:
            (ack,) = await ehr.wait_for(lambda e: e["event"] == "ack")
            (rrg,) = await ehr.wait_for(lambda e: e["event"] == "received")
            await endpoint.drain()
    assert (ack["code"], ack["acked"]) == ("CA", "MSG00001")
    assert rrg["type"] == "RRG^O16^RRG_O16"
    assert read_message(rrg["text"].replace("\n", "\r")).first("MSA").get(1) == "AA"  # type: ignore[union-attr]
    ((rrg_sent, reply),) = endpoint.sent
    assert "RRG^O16" in rrg_sent
    assert reply is not None and read_message(reply).first("MSA").get(1) == "AA"  # type: ignore[union-attr]
    assert w.pending(PUMP, 1) is not None


@pytest.mark.req("OI-IOP-1")
async def test_node_ehr_orders_over_mllp(tmp_path: Path) -> None:
    await _round_trip(tmp_path, tls=False)


async def test_node_ehr_orders_over_mllp_with_tls(tmp_path: Path) -> None:
    await _round_trip(tmp_path, tls=True)


async def test_frames_that_are_not_mllp_or_too_large_get_a_commit_reject() -> None:
    w = ward(library())
    endpoint = Endpoint(Receiver(w, Sender(clock=w.now)))
    async with MllpServer(endpoint.handle, endpoint.refuse, max_bytes=2000) as gateway:
        for payload, why in (
            (b"garbage\x1c\r", "outside an MLLP frame"),
            (b"\x0b" + b"A" * 5000 + b"\x1c\r", "larger"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(payload)
            await writer.drain()
            reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
            writer.close()
            text = reply.decode().strip("\x0b\x1c\r")
            assert read_message(text).first("MSA").get(1) == "CR"  # type: ignore[union-attr]
            assert why in text


async def test_node_ehr_accepts_our_device_reports() -> None:
    """PCD-10, PCD-01 and PCD-04 as an independent HL7 implementation reads them (it answers AA)."""
    w = started()
    w.advance(Duration.min(1))
    w.hardware(PUMP).channel(0).set_occlusion("downstream", True)
    w.advance(Duration.min(5))
    sender = Sender(clock=w.now)
    messages = [r.text for r in Pcd10Reporter(w, sender).poll()]
    messages += [text for _, text in Pcd01Reporter(w, sender).due(w.now())]
    alerts = [r.text for r in Pcd04Reporter(w, sender).poll()]
    assert alerts
    ehr_port = free_port()
    async with NodeEhr({"listen": ehr_port}) as ehr:
        client = MllpClient("127.0.0.1", ehr_port)
        for message in [*messages, *alerts]:
            ack = read_message((await client.send(message.encode())).decode())
            assert ack.first("MSA").get(1) == "AA"  # type: ignore[union-attr]
            assert ack.first("MSA").get(2) == read_message(message).control_id  # type: ignore[union-attr]
        received = await ehr.wait_for(lambda e: e["event"] == "received", count=len(messages) + len(alerts))
    types = {e["type"] for e in received}
    assert types == {"ORU^R42^ORU_R01", "ORU^R01^ORU_R01", "ORU^R40^ORU_R40"}
    [status] = [e["text"] for e in received if e["type"] == "ORU^R01^ORU_R01"]
    assert "|line-pressure-downstream^" in status and "|mm[Hg]^mm[Hg]^UCUM|" in status  # the peer got the pressure
