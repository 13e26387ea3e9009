"""MLLP over TCP (optionally TLS), with python-hl7's asyncio streams (interop.md §4.1).

Framing: ``<VT> message <FS><CR>``. :class:`MllpServer` reads frames from each connection (several per
read, or split across reads, are the stream reader's business) and answers each with the blocks its
handler returns, on the same connection. A frame larger than ``max_bytes``, or bytes that are not an
MLLP frame, get a commit reject from the handler's ``refuse`` and the connection is closed; an idle
connection is closed after ``idle``. :class:`MllpClient` sends one message and waits for its
acknowledgement, with a timeout. Both take an ``ssl.SSLContext`` for MLLP over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from hl7.mllp import InvalidBlockError, open_hl7_connection, start_hl7_server

MAX_FRAME_BYTES: Final = 1 << 20
IDLE_SECONDS: Final = 300.0
REPLY_SECONDS: Final = 30.0

#: turns one received frame into the frames to send back on the same connection
Handler = Callable[[bytes], Awaitable[list[bytes]]]
#: the commit reject to send for a frame that could not be read (too large, not MLLP); the reason in words
Refuse = Callable[[str], bytes]


class MllpServer:
    """An MLLP listener (see the module docstring). Use as ``async with MllpServer(...) as server``."""

    def __init__(
        self, handler: Handler, refuse: Refuse, host: str = "127.0.0.1", port: int = 0, *,
        tls: ssl.SSLContext | None = None, max_bytes: int = MAX_FRAME_BYTES, idle: float = IDLE_SECONDS,
    ) -> None:  # fmt: skip
        self.handler, self.refuse = handler, refuse
        self.host, self.port, self.tls = host, port, tls
        self.max_bytes, self.idle = max_bytes, idle
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await start_hl7_server(
            self._connection, self.host, self.port, ssl=self.tls, limit=self.max_bytes
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await asyncio.wait_for(reader.readblock(), self.idle)  # type: ignore[attr-defined]
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                except ValueError:
                    writer.writeblock(self.refuse(f"frame larger than {self.max_bytes} bytes"))  # type: ignore[attr-defined]
                    await writer.drain()
                    return
                except InvalidBlockError:
                    writer.writeblock(self.refuse("bytes outside an MLLP frame (no <VT> start block)"))  # type: ignore[attr-defined]
                    await writer.drain()
                    return
                for reply in await self.handler(bytes(block)):
                    writer.writeblock(reply)  # type: ignore[attr-defined]
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@dataclass(frozen=True, slots=True)
class MllpClient:
    """Send one message to ``host:port`` and return the acknowledgement frame (or raise on timeout)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    timeout: float = REPLY_SECONDS

    async def send(self, message: bytes) -> bytes:
        reader, writer = await asyncio.wait_for(
            open_hl7_connection(self.host, self.port, ssl=self.tls, limit=MAX_FRAME_BYTES), self.timeout
        )
        try:
            writer.writeblock(message)
            await writer.drain()
            return bytes(await asyncio.wait_for(reader.readblock(), self.timeout))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def server_tls(certfile: str, keyfile: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS context for an MLLP listener; with ``client_ca`` clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(server_ca: str, certfile: str | None = None, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS context that trusts ``server_ca`` (and presents a client certificate when given)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context
