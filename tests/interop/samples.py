"""Sample IHE PCD messages for the interop tests, built field by field so a test can change one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from openinfusion.druglib.model import Library
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.interop.ward import VirtualWard
from openinfusion.units import Duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "hl7"
ORIGIN = dt.datetime(2026, 1, 15, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
PUMP = "WARD-PUMP-01"


def library() -> Library:
    return read_yaml(ROOT / "examples" / "library" / "example-library.yaml").require()


def ward(lib: Library, *pumps: tuple[str, str | None, int]) -> VirtualWard:
    """A ward at ORIGIN with ``pumps`` (id, care area, channels), past their self-tests."""
    w = VirtualWard(lib, time_origin=ORIGIN)
    for pump_id, area, channels in pumps or ((PUMP, "ADULT-ICU", 1),):
        w.add_pump(pump_id, area, channels)
    w.advance(Duration.s(2))
    return w


SEGMENTS: dict[str, list[str]] = {
    "MSH": ["MSH", "^~\\&", "BCMA^0123456789ABCDEF^EUI-64", "", "OPENINFUSION^08002FFFE0000001^EUI-64", "",
            "20260115083000-0500", "", "RGV^O15^RGV_O15", "MSG00001", "P", "2.6", "", "", "AL", "AL", "",
            "UNICODE UTF-8", "en^English^ISO639", "", "IHE_PCD_PIV_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.3.1^ISO"],
    "PID": ["PID", "", "", "MRN12345^^^Hospital^MR", "", "Doe^Jane^^^^^L", "", "19700101", "F"],
    "PV1": ["PV1", "", "I", "ICU^101^1"],
    "ORC": ["ORC", "RE", "ORD-1001^BCMA", "", "", "", "", "", "", "20260115082900-0500"] + [""] * 9
           + ["NURSE01^Nightingale^Florence"],
    "RXG": ["RXG", "1", "", "", "4001^dopamine^LOCAL", "250", "", "263762^MDC_DIM_MILLI_L^MDC", "", "", "", "",
            "", "", "", "5", "265619^MDC_DIM_MICRO_G_PER_KG_PER_MIN^MDC", "400", "263890^MDC_DIM_MILLI_G^MDC",
            "", "", "", "", "250", "263762^MDC_DIM_MILLI_L^MDC"],
    "RXR": ["RXR", "^IV^HL70162", "", "^IVP^HL70164", "^IV^HL70165"],
    "OBX1": ["OBX", "1", "", "69986^MDC_DEV_PUMP_INFUS_VMD^MDC"] + [""] * 14 + [f"{PUMP}/1^^08002FFFE0000001^EUI-64"],
    "OBX2": ["OBX", "2", "NM", "68063^MDC_ATTR_PT_WEIGHT^MDC", "", "70", "263875^MDC_DIM_KILO_G^MDC", "", "", "",
             "", "F"],
}  # fmt: skip
ORDER = ("MSH", "PID", "PV1", "ORC", "RXG", "RXR", "OBX1", "OBX2")


def rgv(changes: dict[str, str] | None = None, drop: tuple[str, ...] = (), sep: str = "\r") -> str:
    """The dopamine order of examples/hl7, with ``changes`` ``{"RXG-15": "7"}`` applied (OBX1/OBX2 by key)."""
    segs = {k: list(v) for k, v in SEGMENTS.items()}
    for where, value in (changes or {}).items():
        key, _, number = where.partition("-")
        fields = segs[key]
        n = int(number) - 1 if key == "MSH" else int(number)  # MSH-1 is the separator itself
        while len(fields) <= n:
            fields.append("")
        fields[n] = value
    lines = []
    for key in ORDER:
        if key in drop:
            continue
        fields = segs[key]
        lines.append("MSH|" + "|".join(fields[1:]) if key == "MSH" else "|".join(fields))
    return sep.join(lines) + sep
