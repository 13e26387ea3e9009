"""The server's HL7 links: the MLLP listener (PCD-03 and PCD-05 in) and the sender of device reports to the EHR.

:class:`InteropLinks` runs one asyncio loop on a thread of the server process:

* an :class:`~openinfusion.interop.mllp.MllpServer` (optionally TLS) whose orders go to
  :class:`~openinfusion.server.interop_gateway.ServerGateway`; the ``RRG^O16`` goes to the EHR's endpoint
  on a new connection (PCD-03 uses two), or back on the same connection when none is configured;
* every ``report_every_s``, the PCD-10 (event log), PCD-04 (alarm events) and PCD-01 (status, periodic and
  on change) reporters run over the event store (:class:`~openinfusion.server.interop_store.StoreSource`)
  and their messages are sent, in order, to the EHR. A message the EHR did not acknowledge stays first in
  the outbox and is sent again on the next round (PCD-10 times are event times, so late is correct).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from openinfusion.errors import InputError
from openinfusion.interop.endpoint import Endpoint
from openinfusion.interop.hl7.message import read_message
from openinfusion.interop.hl7.pcd01 import Pcd01Reporter
from openinfusion.interop.hl7.pcd04 import Pcd04Reporter
from openinfusion.interop.hl7.pcd10 import Pcd10Reporter
from openinfusion.interop.hl7.problems import MessageError
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.hl7.writer import Sender
from openinfusion.interop.mllp import MllpClient, MllpServer, client_tls, server_tls
from openinfusion.server.hospital import Hospital
from openinfusion.server.interop_gateway import ServerGateway
from openinfusion.server.interop_store import StoreSource

log = logging.getLogger("openinfusion.server.interop")
MLLP_PORT: Final = 2575  # the port registered for HL7 over MLLP
OUTBOX_MAX: Final = 100_000  # messages held while the EHR is down (the oldest are dropped beyond, and logged)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """Where to listen, where the EHR is, TLS, and the reporting cadence."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see InteropLinks.port)
    ehr: tuple[str, int] | None = None  # the EHR's MLLP endpoint (IOP, DOC and Alert Manager)
    server_tls: ssl.SSLContext | None = None
    client_tls: ssl.SSLContext | None = None
    report_every_s: float = 1.0
    status_period: timedelta = timedelta(seconds=60)


def link_settings(
    port: int | None, ehr: str | None, tls: tuple[Path, Path] | None, ehr_ca: Path | None
) -> LinkSettings:
    """Settings from the command line: ``ehr`` as ``HOST:PORT``; ``tls`` (certificate, key) for the listener,
    ``ehr_ca`` to reach the EHR over TLS."""
    endpoint = None
    if ehr is not None:
        host, _, number = ehr.rpartition(":")
        if not host or not number.isdigit() or not 0 < int(number) < 65536:
            raise InputError("--ehr", f"expected HOST:PORT, got {ehr!r}")
        endpoint = (host, int(number))
    port = MLLP_PORT if port is None else port
    if not 0 <= port < 65536:
        raise InputError("--hl7-port", f"expected 0..65535, got {port}")
    server = None if tls is None else server_tls(str(tls[0]), str(tls[1]))
    client = None if ehr_ca is None else client_tls(str(ehr_ca))
    return LinkSettings(port=port, ehr=endpoint, server_tls=server, client_tls=client)


@dataclass(slots=True)
class Sent:
    """One report and the EHR's MSA-1 (``None``: not acknowledged yet)."""

    kind: str
    text: str
    ack: str | None = None


@dataclass
class InteropLinks:
    """The listener and the report sender of one server process (see the module docstring)."""

    hospital: Hospital
    settings: LinkSettings = field(default_factory=LinkSettings)
    sent: list[Sent] = field(default_factory=list)
    port: int = 0
    _outbox: deque[Sent] = field(default_factory=deque)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: asyncio.Event | None = None
    _error: BaseException | None = None

    def __post_init__(self) -> None:
        source = StoreSource(self.hospital)
        s = self.settings
        ehr = None if s.ehr is None else MllpClient(s.ehr[0], s.ehr[1], s.client_tls)
        self.gateway = ServerGateway(self.hospital)
        self.endpoint = Endpoint(Receiver(self.gateway, Sender(prefix="IOC")), ehr)
        self._ehr = ehr
        self._pcd10 = Pcd10Reporter(source, Sender(prefix="DOC"))
        self._pcd04 = Pcd04Reporter(source, Sender(prefix="AR"))
        self._pcd01 = Pcd01Reporter(source, Sender(prefix="DEC"), s.status_period)

    def start(self, timeout_s: float = 20.0) -> None:
        self._thread = threading.Thread(target=self._run, name="hl7-links", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            where = f"{self.settings.host}:{self.settings.port}"
            raise InputError("--hl7-port", f"the MLLP listener could not start on {where}: {self._error}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        s = self.settings
        try:
            server = MllpServer(self.endpoint.handle, self.endpoint.refuse, s.host, s.port, tls=s.server_tls)
            await server.start()
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self.port = server.port
        self._ready.set()
        try:
            while not self._stop.is_set():
                await self.report_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), s.report_every_s)
        finally:
            await server.close()
            await self.endpoint.drain()

    def collect(self) -> list[Sent]:
        """The reports due now (PCD-10, PCD-04 from new events; PCD-01 when due), in that order."""
        found = [Sent(r.kind, r.text) for r in self._pcd10.poll()]
        found += [Sent(r.kind, r.text) for r in self._pcd04.poll()]
        found += [Sent("PCD-01", text) for _, text in self._pcd01.due(datetime.now(UTC))]
        return found

    async def report_once(self) -> None:
        """Collect the reports due and send the outbox to the EHR (what it does not acknowledge stays)."""
        self._outbox.extend(await asyncio.to_thread(self.collect))
        while len(self._outbox) > OUTBOX_MAX:
            log.warning("EHR outbox full: dropped %s", self._outbox.popleft().kind)
        if self._ehr is None:
            self._outbox.clear()  # nowhere to send: reports are only produced (the FHIR API serves the same data)
            return
        while self._outbox:
            report = self._outbox[0]
            try:
                reply = await self._ehr.send(report.text.encode())
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                log.warning("EHR unreachable (%s); %d reports wait", type(e).__name__, len(self._outbox))
                return
            try:
                msa = read_message(reply).first("MSA")
            except MessageError:
                msa = None
            report.ack = None if msa is None else msa.get(1)
            if report.ack not in ("AA", "CA"):
                log.warning("EHR answered %s to a %s: kept to send again", report.ack, report.kind)
                return
            self.sent.append(self._outbox.popleft())


def start_links(hospital: Hospital, settings: LinkSettings, fall_back: bool) -> InteropLinks:
    """Started links; with ``fall_back``, on any free port when the one asked for is taken."""
    links = InteropLinks(hospital, settings)
    try:
        links.start()
    except InputError:
        if not fall_back:
            raise
        links = InteropLinks(hospital, dataclasses.replace(settings, port=0))
        links.start()
    return links
