"""The in-process transport: pumps and server in one process (demo, tests, one machine).

A :class:`Bus` carries bytes between pump ends and one server end through queues, so the server
handles messages on its own thread and no pump ever waits for it. Fault switches for tests and
benchmarks: :meth:`Bus.set_online` (a pump or the whole network goes away: publish fails, the pump
sees itself offline) and :attr:`Bus.loss` (a lossy network: that fraction of messages, drawn from a
seeded random stream, vanishes silently after ``publish`` said yes).
"""

from __future__ import annotations

import queue
import random
import threading

from openinfusion.agent.link import Handler, PumpEnd, take_batch


class Bus:
    """Every pump end and the server end of one in-process network."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pumps: dict[str, InProcessPumpLink] = {}
        self._network = True
        self._offline: set[str] = set()
        self.loss = 0.0  # fraction of messages lost
        self._random = random.Random(0)
        self.uplink: queue.Queue[tuple[str, bytes] | None] = queue.Queue()

    def pump(self, pump_id: str) -> InProcessPumpLink:
        with self._lock:
            end = self._pumps.get(pump_id)
            if end is None:
                end = self._pumps[pump_id] = InProcessPumpLink(self, pump_id)
            return end

    def server(self) -> InProcessServerLink:
        return InProcessServerLink(self)

    def set_online(self, online: bool, pump_id: str | None = None) -> None:
        """Connect or disconnect one pump (or, with None, the whole network)."""
        with self._lock:
            if pump_id is None:
                self._network = online
            elif online:
                self._offline.discard(pump_id)
            else:
                self._offline.add(pump_id)
            for end in self._pumps.values():
                end._sync(self._network and end.pump_id not in self._offline)

    def drain(self) -> None:
        """Wait until the server has handled every message sent so far (tests and benchmarks)."""
        self.uplink.join()

    def is_online(self, pump_id: str) -> bool:
        return self._network and pump_id not in self._offline

    def _lost(self) -> bool:
        with self._lock:
            return self.loss > 0 and self._random.random() < self.loss

    def _to_pump(self, pump_id: str, data: bytes) -> bool:
        end = self._pumps.get(pump_id)
        if end is None or not self.is_online(pump_id):
            return False
        if not self._lost():
            end._inbox.append(data)
        return True


class InProcessPumpLink(PumpEnd):
    def __init__(self, bus: Bus, pump_id: str) -> None:
        super().__init__(pump_id)
        self._bus = bus
        self._set_connected(bus.is_online(pump_id))

    def _sync(self, online: bool) -> None:
        self._set_connected(online)

    def publish(self, data: bytes) -> bool:
        if not self._connected:
            return False
        if not self._bus._lost():
            self._bus.uplink.put((self.pump_id, data))
        return True

    def close(self) -> None:
        self._connected = False


class InProcessServerLink:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._thread: threading.Thread | None = None

    def start(self, handler: Handler) -> None:
        def run() -> None:
            while (batch := take_batch(self._bus.uplink)) is not None:
                try:
                    handler(batch)
                finally:
                    for _ in batch:
                        self._bus.uplink.task_done()

        self._thread = threading.Thread(target=run, name="inprocess-link", daemon=True)
        self._thread.start()

    def publish(self, pump: str, data: bytes) -> bool:
        return self._bus._to_pump(pump, data)

    def evict(self, pump: str) -> None:
        self._bus.set_online(False, pump)  # the in-process network has no certificates: the pump stays out

    def stop(self) -> None:
        if self._thread is not None:
            self._bus.uplink.put(None)
            self._thread.join(timeout=10)
            self._thread = None
