"""Write HL7 v2.6 messages strictly: MSH as IHE PCD Appendix B.1 asks, values escaped, CR separators.

Everything we send goes through :func:`segment` (which escapes values; components are joined by the
caller with ``^``) and :class:`Sender` (our identity, the clock and unique control IDs).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from openinfusion.interop.hl7.message import escape, format_ts

PROFILE_OIDS: Final = {
    "PCD-01": "1.3.6.1.4.1.19376.1.6.1.1.1",
    "PCD-03": "1.3.6.1.4.1.19376.1.6.1.3.1",
    "RRG": "1.3.6.1.4.1.19376.1.6.1.3.2",
    "PCD-04": "1.3.6.1.4.1.19376.1.6.1.4.1",
    "PCD-05": "1.3.6.1.4.1.19376.1.6.1.5.1",
    "PCD-10": "1.3.6.1.4.1.19376.1.6.4.10",
}
PROFILE_NAMES: Final = {
    "PCD-01": "IHE_PCD_001",
    "PCD-03": "IHE_PCD_PIV_001",
    "RRG": "IHE_PCD_PIV_002",
    "PCD-04": "IHE_PCD_ACM_001",
    "PCD-05": "IHE_PCD_ACM_002",
    "PCD-10": "IHE_PCD_IPEC_001",
}


def text(value: str) -> str:
    """A plain value as an HL7 field (escaped)."""
    return escape(value)


def components(*values: str) -> str:
    """Components of one field, each escaped, trailing empty ones dropped."""
    out = [escape(v) for v in values]
    while out and not out[-1]:
        out.pop()
    return "^".join(out)


def segment(seg_id: str, *fields: str) -> str:
    """``SEG|f1|f2...`` with trailing empty fields dropped (fields are already encoded)."""
    out = list(fields)
    while out and not out[-1]:
        out.pop()
    return "|".join([seg_id, *out])


def join(segments: list[str]) -> str:
    """A message: segments separated (and ended) by CR."""
    return "\r".join(segments) + "\r"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Application:
    """An HD: namespace ID and EUI-64 (``OPENINFUSION^08002FFFE0000001^EUI-64``)."""

    name: str
    eui64: str = ""

    def hd(self) -> str:
        return components(self.name, self.eui64, "EUI-64" if self.eui64 else "")


@dataclass(slots=True)
class Sender:
    """Who we are on the wire, our clock, and unique message control IDs (MSH-10)."""

    application: Application = field(default_factory=lambda: Application("OPENINFUSION", "08002FFFE0000001"))
    facility: str = ""
    processing_id: str = "P"  # P production, D debugging, T training
    clock: Callable[[], datetime] = _utc_now
    prefix: str = "OI"
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock()

    def next_id(self) -> str:
        return f"{self.prefix}{next(self._ids):08d}"

    def msh(
        self, message_type: str, *, accept: str, application: str, profile: str | None,
        receiver: str = "", control_id: str | None = None,
    ) -> tuple[str, str]:  # fmt: skip
        """The MSH segment and its control ID. ``message_type`` is MSH-9 as sent (``ORU^R42^ORU_R01``)."""
        cid = control_id or self.next_id()
        profile_field = (
            components(PROFILE_NAMES[profile], "IHE PCD", PROFILE_OIDS[profile], "ISO") if profile is not None else ""
        )
        fields = [
            "^~\\&", self.application.hd(), text(self.facility), receiver, "",
            format_ts(self.now()), "", message_type, text(cid), self.processing_id, "2.6", "", "",
            accept, application, "", "UNICODE UTF-8", "en^English^ISO639", "", profile_field,
        ]  # fmt: skip
        return "MSH|" + segment("", *fields)[1:], cid
