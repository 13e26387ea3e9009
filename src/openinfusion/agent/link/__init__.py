"""One link interface, two transports: in-process (:mod:`.inprocess`) and MQTT 5 (:mod:`.mqtt`).

A transport moves opaque bytes; it never parses them (both ends decode with :mod:`openinfusion.agent.messages`).
Neither side blocks: ``publish`` returns at once, False when the message could not be handed to the
transport (offline), and inbound messages wait in a queue until their reader drains it.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol

Handler = Callable[[Sequence[tuple[str, bytes]]], None]
"""Called by a server link with messages in arrival order: (authenticated pump id, message bytes) each."""
MAX_BATCH: Final = 500  # messages handed to the handler at once (one database transaction on the server)


class PumpLink(Protocol):
    """The pump's end of the link."""

    @property
    def connected(self) -> bool: ...

    @property
    def epoch(self) -> int:
        """Incremented at each (re)connection: the agent resends what is unacknowledged."""
        ...

    def publish(self, data: bytes) -> bool: ...

    def receive(self) -> list[bytes]:
        """Every message received since the last call, in order of arrival."""
        ...

    def close(self) -> None: ...


class PumpEnd:
    """What both transports' pump ends share: the inbound queue and the connection state with its epoch."""

    def __init__(self, pump_id: str) -> None:
        self.pump_id = pump_id
        self._inbox: deque[bytes] = deque()
        self._connected = False
        self._epoch = 0

    def _set_connected(self, online: bool) -> None:
        if online and not self._connected:
            self._epoch += 1
        self._connected = online

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def epoch(self) -> int:
        return self._epoch

    def receive(self) -> list[bytes]:
        out: list[bytes] = []
        while self._inbox:
            out.append(self._inbox.popleft())
        return out


class ServerLink(Protocol):
    """The server's end: one for all pumps."""

    def start(self, handler: Handler) -> None:
        """Deliver the pumps' messages to ``handler`` from the link's own thread, in arrival order, in batches of
        whatever has arrived (at most :data:`MAX_BATCH`)."""
        ...

    def publish(self, pump: str, data: bytes) -> bool: ...

    def evict(self, pump: str) -> None:
        """Disconnect ``pump`` now (decommissioned): whether it can connect again is the broker's CRL's call."""
        ...

    def stop(self) -> None: ...


def take_batch(source: queue.Queue[tuple[str, bytes] | None]) -> list[tuple[str, bytes]] | None:
    """Wait for a message, then take whatever else has arrived (up to :data:`MAX_BATCH`); None: stop.

    The stop marker is acknowledged (``task_done``) here; the caller acknowledges the batch it got.
    """
    first = source.get()
    if first is None:
        source.task_done()
        return None
    batch = [first]
    while len(batch) < MAX_BATCH:
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
        if item is None:
            source.put(None)  # stop after this batch
            source.task_done()
            break
        batch.append(item)
    return batch
