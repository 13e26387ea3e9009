"""The pump as an OBX tree (interop.md §1.3-1.4, §2.5): shared by PCD-01, PCD-04 and PCD-10.

One pump is MDS 1; channel *n* is VMD *n* (one VMD per delivery line, 11073-10101b model) holding a
Delivery-Info group (channel 1) and the primary Infusate-Source group (channel 2), so a metric sits at
``1.<n>.<1|2>.<m>``. Device-related OBX (the MDS, VMDs, groups) have OBX-2/-5 empty and OBX-11 ``X``;
OBX segments are emitted in numeric depth-first order of OBX-4 and numbered in OBX-1. Programmed values
carry OBX-17 ``MSET``. Numbers keep the device's precision: exact decimals, at most 3 places for
non-terminating ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from openinfusion.interop import terminology as mdc
from openinfusion.interop.hl7.message import format_ts
from openinfusion.interop.hl7.writer import components, segment, text
from openinfusion.interop.terminology import Code, LocalCode, UnitCode, unit_code
from openinfusion.pump.eventlog import exact_decimal
from openinfusion.units import Quantity, format_decimal

MSET = "MSET^manual-setting^MDC"
AMEAS = "AMEAS^auto-measurement^MDC"
ACALC = "ACALC^auto-calculation^MDC"


@dataclass(frozen=True, slots=True)
class Obx:
    """One OBX row: its place in the tree, code, value (already encoded), unit, method, time."""

    path: tuple[int, ...]
    code: Code | LocalCode
    value_type: str = ""  # NM, ST, CWE; "" for a device-related row
    value: str = ""
    unit: UnitCode | None = None
    method: str = ""
    time: datetime | None = None
    equipment: str = ""
    status: str = "R"  # R unverified (device data), F final, X device-related

    def fields(self, set_id: int) -> str:
        status = "X" if not self.value_type else self.status
        return segment(
            "OBX", str(set_id), self.value_type, self.code.cwe(), ".".join(str(p) for p in self.path), self.value,
            "" if self.unit is None else self.unit.cwe(), "", "", "", "", status, "", "",
            "" if self.time is None else format_ts(self.time), "", "", self.method, self.equipment,
        )  # fmt: skip


def number(value: Fraction) -> str:
    """An exact value as an HL7 NM (``13.12``); non-terminating decimals to 3 places."""
    exact = exact_decimal(value)
    return exact if "/" not in exact else format_decimal(value, 3)


def numeric(path: tuple[int, ...], code: Code, q: Quantity, method: str = "") -> Obx:
    return Obx(path, code, "NM", number(q.value), unit_code(q.unit.code), method)


def coded(path: tuple[int, ...], code: Code, enum: str) -> Obx:
    """An enumeration value (``^pump-status-infusing``: no code, the token as text)."""
    return Obx(path, code, "CWE", components("", enum))


def string(path: tuple[int, ...], code: Code, value: str) -> Obx:
    return Obx(path, code, "ST", text(value))


def obx_segments(rows: list[Obx]) -> list[str]:
    """The OBX segments in depth-first order of OBX-4, numbered from 1."""
    ordered = sorted(rows, key=lambda r: r.path)
    return [row.fields(i) for i, row in enumerate(ordered, start=1)]


def pump_rows(pump_id: str, library: str | None, care_area: str | None) -> list[Obx]:
    """The MDS and its attributes (library version)."""
    rows = [Obx((1, 0, 0, 0), mdc.PUMP_MDS, equipment=components(pump_id, "OPENINFUSION"))]
    if library:
        rows.append(string((1, 0, 0, 1), mdc.LIBRARY_VERSION, library))
    if care_area:
        rows.append(string((1, 0, 0, 4), mdc.CARE_AREA, care_area))
    return rows


@dataclass(frozen=True, slots=True)
class ChannelView:
    """What one channel reports (a moment of its life), units in the quantities."""

    number: int
    infusing: bool
    delivery_status: str  # pump-delivery-status-...
    source: str = "pump-source-info-primary"
    not_delivering: str | None = None  # pump-stopped-...
    rate: Quantity | None = None  # current flow, mL/h
    programmed_rate: Quantity | None = None
    dose: Quantity | None = None
    vtbi: Quantity | None = None
    delivered: Quantity | None = None
    remaining: Quantity | None = None
    time_left: Quantity | None = None  # min
    drug: str | None = None
    concentration: Quantity | None = None
    weight: Quantity | None = None
    pressure_mmhg: float | None = None  # downstream line pressure, filtered (gauge mmHg; 0034)
    mode: str = "pump-program-delivery-mode-continuous"


def channel_rows(view: ChannelView) -> list[Obx]:
    """The VMD of one channel with its Delivery-Info and Infusate-Source groups (IPEC Table M.1.2.1-2)."""
    n = view.number
    rows = [
        Obx((1, n, 0, 0), mdc.PUMP_VMD),
        Obx((1, n, 1, 0), mdc.DELIVERY_INFO),
        coded(
            (1, n, 1, 1), mdc.INFUSING_STATUS, "pump-status-infusing" if view.infusing else "pump-status-not-infusing"
        ),
        coded((1, n, 1, 3), mdc.ACTIVE_SOURCES, view.source),
        Obx((1, n, 2, 0), mdc.SOURCE_PRIMARY),
        coded((1, n, 2, 1), mdc.DELIVERY_STATUS, view.delivery_status),
        coded((1, n, 2, 2), mdc.DELIVERY_MODE, view.mode),
        string((1, n, 2, 3), mdc.CHANNEL_LABEL, f"channel {n}"),
    ]
    if view.not_delivering is not None:
        rows.append(coded((1, n, 2, 14), mdc.NOT_DELIVERING_REASON, view.not_delivering))
    optional = (
        ((1, n, 1, 2), mdc.FLOW_CURRENT, view.rate, AMEAS),
        ((1, n, 2, 4), mdc.FLOW_PUMP, view.programmed_rate, MSET),
        ((1, n, 2, 5), mdc.RATE_DOSE, view.dose, MSET),
        ((1, n, 2, 6), mdc.VOL_TBI, view.vtbi, MSET),
        ((1, n, 2, 7), mdc.VOL_DELIV_TOTAL, view.delivered, AMEAS),
        ((1, n, 2, 8), mdc.VOL_REMAIN, view.remaining, ACALC),
        ((1, n, 2, 9), mdc.TIME_REMAIN, view.time_left, ACALC),
        ((1, n, 2, 11), mdc.CONC_DRUG, view.concentration, MSET),
        ((1, n, 2, 13), mdc.PT_WEIGHT, view.weight, MSET),
    )
    rows += [numeric(path, code, q, method) for path, code, q, method in optional if q is not None]
    if view.pressure_mmhg is not None:  # no pressure dimension in units.py (0034): mmHg to 0.1, as FHIR has it
        rows.append(Obx((1, n, 1, 4), mdc.LINE_PRESSURE, "NM", f"{view.pressure_mmhg:.1f}", unit_code("mm[Hg]"), AMEAS))
    if view.drug:
        rows.append(string((1, n, 2, 10), mdc.DRUG_NAME, view.drug))
    return rows


def concentration_of(key: str | None) -> Quantity | None:
    """A library concentration key (``"400 mg/250 mL"``) as amount per mL (``1.6 mg/mL``); None for amount-only keys."""
    if key is None or "/" not in key:
        return None
    amount, _, volume = key.partition("/")
    a, v = Quantity.parse(amount.strip()), Quantity.parse(volume.strip())
    per_ml = v.to("mL")
    return Quantity(a.value / per_ml.value, a.unit.per(per_ml.unit))
