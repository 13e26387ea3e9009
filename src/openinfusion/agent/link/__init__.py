"""One link interface, two transports: in-process (:mod:`.inprocess`) and MQTT 5 (:mod:`.mqtt`).

A transport moves opaque bytes; it never parses them (both ends decode with :mod:`openinfusion.agent.messages`).
Neither side blocks: ``publish`` returns at once, False when the message could not be handed to the
transport (offline), and inbound messages wait in a queue until their reader drains it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[str, bytes], None]
"""Called by a server link with the authenticated pump id and a message's bytes."""


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


class ServerLink(Protocol):
    """The server's end: one for all pumps."""

    def start(self, handler: Handler) -> None:
        """Deliver each pump message to ``handler`` (from the link's own thread, in arrival order)."""
        ...

    def publish(self, pump: str, data: bytes) -> bool: ...

    def stop(self) -> None: ...
