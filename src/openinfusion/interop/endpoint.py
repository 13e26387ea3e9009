"""The gateway's HL7 endpoint over MLLP: the Infusion Order Consumer and the Alert Reporter's inbound.

Each frame goes to :class:`~openinfusion.interop.hl7.receiver.Receiver`. The commit ACK goes back on
the same connection; the ``RRG^O16`` goes to the order's IOP on a new connection (interop.md §4.1,
PCD-03 uses two connections) when ``iop`` is set, else back on the same connection; application ACKs
in original mode and PCD-05 ACKs go back on the same connection. Every RRG sent and the IOP's ACK^O16
are kept in :attr:`sent`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from openinfusion.interop.hl7.ack import commit_ack
from openinfusion.interop.hl7.problems import Hl7Code, problem
from openinfusion.interop.hl7.receiver import Receiver
from openinfusion.interop.mllp import MllpClient


@dataclass
class Endpoint:
    """Frames in, frames out (see the module docstring)."""

    receiver: Receiver
    iop: MllpClient | None = None
    sent: list[tuple[str, str | None]] = field(default_factory=list)  # (RRG^O16 sent, the IOP's reply or None)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, frame: bytes) -> list[bytes]:
        answer = self.receiver.receive(frame)
        replies = [] if answer.commit is None else [answer.commit.encode()]
        if answer.application is None:
            return replies
        if answer.application_here or self.iop is None:
            return [*replies, answer.application.encode()]
        task = asyncio.get_running_loop().create_task(self._to_iop(answer.application))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return replies

    async def _to_iop(self, message: str) -> None:
        assert self.iop is not None
        reply: str | None = None
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            reply = (await self.iop.send(message.encode())).decode("utf-8", "replace")
        self.sent.append((message, reply))

    async def drain(self) -> None:
        """Wait until every RRG^O16 in flight has been sent (and answered or timed out)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def refuse(self, why: str) -> bytes:
        """The commit reject for a frame that could not be read at all."""
        found = (problem("MSH", 0, why, Hl7Code.SEGMENT_SEQUENCE),)
        return commit_ack(self.receiver.sender, None, "CR", found).encode()
