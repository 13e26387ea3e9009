"""A Mosquitto broker for the pump link: its TLS configuration and ACL, and running it (tests, benchmarks).

The listener requires a client certificate signed by the hospital CA, takes the certificate's common name as
the user name (``use_identity_as_username``), checks the CA's CRL (decommissioned pumps), and applies the
ACL of :func:`openinfusion.agent.link.mqtt.acl`. No anonymous clients, no cleartext listener.

Mosquitto (2.0.11 measured) reads the CRL at start and again on SIGHUP, for new connections only: a connected
pump stays connected. So decommissioning writes the CRL, signals the broker (:func:`reload_broker`, through
the ``pid_file`` it writes) and then takes the pump's session over (:meth:`MqttServerLink.evict
<openinfusion.agent.link.mqtt.MqttServerLink.evict>`), which drops it at once; its reconnections fail the
TLS handshake.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from openinfusion.agent.link.mqtt import Endpoint, acl
from openinfusion.errors import InputError
from openinfusion.server.pki import CertificateAuthority

MOSQUITTO: Final = "/usr/sbin/mosquitto"
SERVER_IDENTITY: Final = "oi-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    conf: Path
    port: int
    ca: Path
    pid: Path  # the broker's pid_file: the server signals it to reload the CRL

    def endpoint(self, cert: Path, key: Path) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, self.ca, cert, key)


def write_config(
    directory: Path, ca: CertificateAuthority, port: int, host: str = "127.0.0.1", extra_acl: str = ""
) -> BrokerFiles:
    """Broker certificate, ACL (plus ``extra_acl`` lines, e.g. a benchmark's load generator), CRL and
    mosquitto.conf in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue("mqtt-broker", server_hosts=(host, "localhost"))
    (directory / "broker.key").write_bytes(issued.key_pem)
    (directory / "broker.key").chmod(0o600)
    (directory / "broker.pem").write_bytes(issued.cert_pem)
    (directory / "acl").write_text(extra_acl + "\n" + acl(SERVER_IDENTITY))
    if not ca.crl_path.exists():
        ca.write_crl([])
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"  # run as whoever starts it (as root it would switch to 'mosquitto')
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        "persistence false\n"
        f"pid_file {directory / 'mosquitto.pid'}\n"
        f"acl_file {directory / 'acl'}\n"
        "log_type error\nlog_type warning\n"
        "max_queued_messages 10000\n"
        f"listener {port} {host}\n"
        f"cafile {ca.cert_path}\n"
        f"certfile {directory / 'broker.pem'}\n"
        f"keyfile {directory / 'broker.key'}\n"
        f"crlfile {ca.crl_path}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "tls_version tlsv1.2\n"
    )
    return BrokerFiles(conf, port, ca.cert_path, directory / "mosquitto.pid")


def reload_broker(pid_file: Path) -> None:
    """Ask the broker to read its configuration and CRL again (SIGHUP to the pid in ``pid_file``)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise InputError("broker pid file", f"{pid_file} holds no process id") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise InputError("broker pid file", f"no broker process {pid} ({pid_file})") from None
    except PermissionError:
        raise InputError("broker pid file", f"not allowed to signal broker process {pid} ({pid_file})") from None


def client_files(ca: CertificateAuthority, identity: str, directory: Path) -> tuple[Path, Path]:
    """A client certificate and key for ``identity`` as PEM files (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue(identity)
    cert, key = directory / f"{identity}.pem", directory / f"{identity}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    return cert, key


class Broker:
    """A mosquitto process on 127.0.0.1 (stopped with :meth:`stop`, restartable with :meth:`start`)."""

    def __init__(self, files: BrokerFiles) -> None:
        if shutil.which(MOSQUITTO) is None:
            raise InputError("mosquitto", f"{MOSQUITTO} is not installed (apt-get install mosquitto)")
        self.files = files
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.files.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise InputError("mosquitto", f"exited at start: {err.strip()[:300]}")
            try:
                with socket.create_connection(("127.0.0.1", self.files.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise InputError("mosquitto", f"not listening on port {self.files.port} after {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
