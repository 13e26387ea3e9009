"""The independent peers of the interop tests: the Node.js EHR (node-hl7-server/-client) and TLS certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PEERS = Path(__file__).resolve().parent / "peers"


def need_node() -> str:
    """The node binary, with the npm peers installed (scripts/bootstrap.sh); in CI their absence is a failure."""
    node = shutil.which("node")
    if node is None or not (PEERS / "node_modules" / "node-hl7-server").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and the npm peers (scripts/bootstrap.sh) are required in CI")
        pytest.skip("node or the npm peers are not installed (run scripts/bootstrap.sh)")
    return node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost``/127.0.0.1 and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class NodeEhr:
    """``peers/ehr.js`` as a subprocess; its JSON-line events are collected as they come."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.events: list[dict[str, Any]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NodeEhr:
        node = need_node()
        self._process = await asyncio.create_subprocess_exec(
            node, str(PEERS / "ehr.js"), json.dumps(self.config), cwd=PEERS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_for(lambda e: e["event"] == "listening")
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            self.events.append(json.loads(line))

    async def wait_for(self, test: Any, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The first ``count`` events passing ``test``, waiting up to ``timeout`` seconds."""

        async def poll() -> list[dict[str, Any]]:
            while True:
                found = [e for e in self.events if test(e)]
                if len(found) >= count:
                    return found[:count]
                if self._process is not None and self._process.returncode is not None:
                    err = b"" if self._process.stderr is None else await self._process.stderr.read()
                    raise AssertionError(f"ehr.js exited: {err.decode()[-2000:]} events={self.events}")
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), timeout)

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            await self._reader
