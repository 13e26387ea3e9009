"""The infusion-pump MDIB (BICEPS, ISO/IEEE 11073-10207), generated for a pump's channels (interop.md §6.2).

SDPi's infusion-pump content module is still an empty placeholder, so this follows the PCD pump model:
``Mds`` (70049, LVP MDS) with a system context (patient, location) and an alert system for pump-wide
conditions; one ``Vmd`` (70050) per channel with its alert system (occlusion, air in line, VTBI
complete), an ``Sco`` with a SetValue operation on the rate (a request: the pump holds it for
confirmation), and a ``Channel`` (70067, delivery information) with the metrics: current flow, rate
setting, VTBI, volume delivered, volume remaining (mL/h, mL), infusing status and drug label. Handles
are ``<name>.ch<n>``. Every type carries its MDC code with CodingSystem set explicitly.
"""

from __future__ import annotations

from typing import Final

from openinfusion.interop import terminology as mdc

MDC: Final = "urn:oid:1.2.840.10004.1.1.1.0.0.1"  # the MDC coding system (interop.md §1.1)
_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<msg:GetMdibResponse xmlns:msg="http://standards.ieee.org/downloads/11073/11073-10207-2017/message" '
    'xmlns:pm="http://standards.ieee.org/downloads/11073/11073-10207-2017/participant" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" SequenceId="urn:oid:1">'
    '<msg:Mdib SequenceId="urn:oid:1"><pm:MdDescription>'
)
_TAIL = "</pm:MdDescription></msg:Mdib></msg:GetMdibResponse>"
#: (handle prefix, MDC term, BICEPS type, category, unit): the metrics of each channel
METRICS: Final = (
    ("flow", mdc.FLOW_CURRENT, "NumericMetricDescriptor", "Msrmt", mdc.unit_code("mL/h")),
    ("rate", mdc.FLOW_PUMP, "NumericMetricDescriptor", "Set", mdc.unit_code("mL/h")),
    ("vtbi", mdc.VOL_TBI, "NumericMetricDescriptor", "Set", mdc.unit_code("mL")),
    ("delivered", mdc.VOL_DELIV_TOTAL, "NumericMetricDescriptor", "Msrmt", mdc.unit_code("mL")),
    ("remaining", mdc.VOL_REMAIN, "NumericMetricDescriptor", "Clc", mdc.unit_code("mL")),
    ("status", mdc.INFUSING_STATUS, "StringMetricDescriptor", "Msrmt", None),
    ("drug", mdc.DRUG_NAME, "StringMetricDescriptor", "Set", None),
)
#: (handle prefix, MDC event, pump alarm codes it stands for): the alert conditions of each channel
ALERTS: Final = (
    ("occlusion", mdc.ALARM_EVENTS["occlusion_downstream"], ("occlusion_downstream", "occlusion_upstream")),
    ("air", mdc.Code(196630, "MDC_EVT_DISCONN"), ("air_in_line", "air_cumulative")),
    ("complete", mdc.ALARM_EVENTS["vtbi_complete"], ("vtbi_complete", "vtbi_complete_kvo")),
)


def _type(code: mdc.Code, tag: str = "Type") -> str:
    text = f'<pm:ConceptDescription Lang="en">{code.refid}</pm:ConceptDescription>'
    return f'<pm:{tag} Code="{code.code}" CodingSystem="{MDC}">{text}</pm:{tag}>'


def _metric(n: int, row: tuple[str, mdc.Code, str, str, mdc.UnitCode | None]) -> str:
    name, code, kind, category, unit = row
    unit_code = unit.mdc if unit is not None and unit.mdc is not None else mdc.Code(262656, "MDC_DIM_DIMLESS")
    resolution = ' Resolution="0.001"' if kind == "NumericMetricDescriptor" else ""
    return (
        f'<pm:Metric Handle="{name}.ch{n}" xsi:type="pm:{kind}" MetricCategory="{category}" '
        f'MetricAvailability="Cont" SafetyClassification="MedA"{resolution}>{_type(code)}{_type(unit_code, "Unit")}'
        "</pm:Metric>"
    )


def _alerts(n: int) -> str:
    parts = [f'<pm:AlertSystem Handle="alerts.ch{n}" SelfCheckPeriod="PT5S">']
    parts += [
        f'<pm:AlertCondition Handle="{name}.ch{n}" Kind="Tec" Priority="Hi" SafetyClassification="MedA">'
        f"{_type(code)}<pm:Source>vmd.ch{n}</pm:Source></pm:AlertCondition>"
        for name, code, _ in ALERTS
    ]  # BICEPS: every AlertCondition, then every AlertSignal
    parts += [
        f'<pm:AlertSignal Handle="{name}.signal.ch{n}" ConditionSignaled="{name}.ch{n}" Manifestation="Aud" '
        'Latching="false"/>'
        for name, _, _ in ALERTS
    ]
    return "".join(parts) + "</pm:AlertSystem>"


def pump_mdib(channels: int) -> bytes:
    """The MDIB XML (GetMdibResponse) of a pump with ``channels`` channels."""
    vmds = []
    for n in range(1, channels + 1):
        metrics = "".join(_metric(n, row) for row in METRICS)
        sco = (
            f'<pm:Sco Handle="sco.ch{n}"><pm:Operation xsi:type="pm:SetValueOperationDescriptor" '
            f'Handle="set-rate.ch{n}" OperationTarget="rate.ch{n}" SafetyClassification="MedC" '
            f'MaxTimeToFinish="PT5S" Retriggerable="false" AccessLevel="CSUsr">{_type(mdc.FLOW_PUMP)}</pm:Operation>'
            "</pm:Sco>"
        )
        channel = (
            f'<pm:Channel Handle="delivery.ch{n}" SafetyClassification="MedA">{_type(mdc.DELIVERY_INFO)}{metrics}'
            "</pm:Channel>"
        )
        head = f'<pm:Vmd Handle="vmd.ch{n}" SafetyClassification="MedA">{_type(mdc.PUMP_VMD)}'
        vmds.append(f"{head}{_alerts(n)}{sco}{channel}</pm:Vmd>")
    mds = (
        f'<pm:Mds Handle="mds" SafetyClassification="MedB">{_type(mdc.PUMP_MDS)}'
        '<pm:SystemContext Handle="context"><pm:PatientContext Handle="patient"/>'
        '<pm:LocationContext Handle="location"/></pm:SystemContext>'
        f"{''.join(vmds)}</pm:Mds>"
    )
    return (_HEAD + mds + _TAIL).encode()
