"""The MQTT 5 transport (paho-mqtt 2, threaded): TLS both ways, one client certificate per device.

Topics: a pump publishes on ``oi/v1/pumps/<pump>/up`` and subscribes to ``oi/v1/pumps/<pump>/down``. The
broker takes the pump's identity from its certificate's common name (``use_identity_as_username``) and its
ACL (:func:`acl`) lets a pump write only its own ``up`` and read only its own ``down``; so the pump id
the server reads from the topic is authenticated. The server subscribes through a shared subscription
(``$share/oi-server/...``), so several server processes split the pumps' messages between them.

Sessions persist (clean start off, session expiry :data:`SESSION_EXPIRY_S`): QoS 1 messages for a pump
that is away wait at the broker. paho reconnects by itself (1 s to 30 s back-off).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from openinfusion.agent.link import Handler, PumpEnd, take_batch
from openinfusion.errors import InputError

log = logging.getLogger("openinfusion.link")

PREFIX: Final = "oi/v1/pumps"
SERVER_SHARE: Final = "$share/oi-server"
SESSION_EXPIRY_S: Final = 3600


def up_topic(pump: str) -> str:
    return f"{PREFIX}/{pump}/up"


def down_topic(pump: str) -> str:
    return f"{PREFIX}/{pump}/down"


def acl(server_identity: str) -> str:
    """The broker ACL: each pump its own two topics; the server every pump's."""
    return (
        f"user {server_identity}\n"
        f"topic read {PREFIX}/+/up\n"
        f"topic write {PREFIX}/+/down\n"
        "\n"
        f"pattern write {PREFIX}/%u/up\n"
        f"pattern read {PREFIX}/%u/down\n"
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the broker is and how to prove who we are: CA bundle, our certificate and key (PEM files)."""

    host: str
    port: int
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def parse(cls, url: str, ca: Path, cert: Path, key: Path) -> Endpoint:
        """``mqtts://host:port`` (TLS only: a cleartext link is refused)."""
        parts = urlsplit(url)
        if parts.scheme != "mqtts" or not parts.hostname:
            raise InputError("--mqtt", f"expected mqtts://HOST:PORT (TLS), got {url!r}")
        return cls(parts.hostname, parts.port or 8883, ca, cert, key)


def _client(endpoint: Endpoint, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(endpoint.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(endpoint.cert), str(endpoint.key))
    client.tls_set_context(context)
    client.reconnect_delay_set(1, 30)
    client.max_queued_messages_set(1000)
    return client


def _connect(client: mqtt.Client, endpoint: Endpoint) -> None:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    try:
        client.connect_async(endpoint.host, endpoint.port, keepalive=10, clean_start=False, properties=props)
    except OSError as e:  # name resolution of a bad host
        raise InputError("--mqtt", f"cannot reach {endpoint.host}:{endpoint.port}: {e}") from None
    client.loop_start()


class MqttPumpLink(PumpEnd):
    """A pump's end: connects in the background and keeps reconnecting; never blocks the caller."""

    def __init__(self, endpoint: Endpoint, pump_id: str) -> None:
        super().__init__(pump_id)
        self._client = _client(endpoint, pump_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        _connect(self._client, endpoint)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(down_topic(self.pump_id), qos=1)
            self._set_connected(True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._connected = False

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.append(bytes(message.payload))

    def publish(self, data: bytes) -> bool:
        if not self._connected:
            return False
        info = self._client.publish(up_topic(self.pump_id), data, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False


class MqttServerLink:
    """The server's end: a shared subscription to every pump's uplink; one worker thread handles them."""

    def __init__(self, endpoint: Endpoint, client_id: str) -> None:
        self._endpoint = endpoint
        self._client = _client(endpoint, client_id)
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self, handler: Handler) -> None:
        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                client.subscribe(f"{SERVER_SHARE}/{PREFIX}/+/up", qos=1)
                self.connected.set()

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
            self.connected.clear()

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            parts = message.topic.split("/")
            if len(parts) == 5 and parts[4] == "up":
                self._queue.put((parts[3], bytes(message.payload)))

        def work() -> None:
            while (batch := take_batch(self._queue)) is not None:
                try:
                    handler(batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()

        self._client.on_connect = on_connect
        self._client.on_disconnect = on_disconnect
        self._client.on_message = on_message
        self._worker = threading.Thread(target=work, name="mqtt-server-link", daemon=True)
        self._worker.start()
        _connect(self._client, self._endpoint)

    def publish(self, pump: str, data: bytes) -> bool:
        info = self._client.publish(down_topic(pump), data, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def evict(self, pump: str, timeout_s: float = 5.0) -> None:
        """Take the pump's client id over with a clean session: the broker drops the pump's connection and its
        queued commands (MQTT 5 session takeover); the reloaded CRL then refuses its reconnections."""
        accepted = threading.Event()
        client = _client(self._endpoint, pump)
        client.on_connect = lambda _c, _u, _f, reason, _p: None if reason.is_failure else accepted.set()
        client.reconnect_delay_set(1, 1)
        try:
            client.connect(self._endpoint.host, self._endpoint.port, keepalive=10, clean_start=True)
        except OSError as e:
            log.warning("could not evict pump %s: broker unreachable (%s)", pump, e)
            return
        client.loop_start()
        if not accepted.wait(timeout_s):
            log.warning("could not evict pump %s: the broker did not accept the takeover", pump)
        client.disconnect()
        client.loop_stop()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None
