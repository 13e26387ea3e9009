"""The server's settings: one validated object (never scattered environment reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEFAULT_DATA: Final = Path("openinfusion-data")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """``data_dir`` holds the SQLite file (default database), the device CA and the order-signing key."""

    data_dir: Path = DEFAULT_DATA
    db_url: str | None = None  # None: sqlite:///<data_dir>/openinfusion.db
    escalate_after_s: float = 60.0  # unacknowledged alarms go to the charge nurse after this
    order_lifetime_s: int = 300  # remote orders expire this long after they are sent
    offline_after_s: float = 10.0  # a pump silent this long shows offline
    reoffer_after_s: float = 30.0  # a library offer not acted on is sent again
    cookie_secure: bool = True
    stream_max_s: float = 300.0  # a station's event stream ends after this (the browser reconnects)
    library_keys: tuple[Ed25519PublicKey, ...] = field(default=())  # pharmacy keys a release must be signed by
    broker_pid_file: Path | None = None  # Mosquitto's pid_file: signalled to reload the CRL at decommissioning

    @property
    def database(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'openinfusion.db').resolve()}"
