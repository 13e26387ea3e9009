"""MDC (ISO/IEEE 11073-10101) and UCUM codes used at the interfaces: the one table (interop.md §3).

Context-free MDC codes are ``partition * 65536 + term``. Codes marked *derived* in interop.md were
computed by that rule, not read from a source; codes with no public source are not invented here:
alarms without a known MDC term are sent with the generic ``MDC_EVT_ALARM`` and their own text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MDC_SYSTEM: Final = "urn:iso:std:iso:11073:10101"  # FHIR system URI (THO-MDC)
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class Code:
    """One MDC term: context-free code and reference ID."""

    code: int
    refid: str

    def cwe(self) -> str:
        """``157784^MDC_FLOW_FLUID_PUMP^MDC`` (HL7 CWE, coding system MDC)."""
        return f"{self.code}^{self.refid}^MDC"


@dataclass(frozen=True, slots=True)
class LocalCode:
    """A term of openinfusion's own code system, where no MDC code is known (decision 0034)."""

    code: str
    display: str
    system: str = "urn:openinfusion:codesystem:observation"

    def cwe(self) -> str:
        """``line-pressure-downstream^...^L`` (HL7 CWE, coding system L: local, table 0396)."""
        return f"{self.code}^{self.display}^L"


# downstream line pressure (UCUM mm[Hg]): no MDC code in the shared reference (0034), the same code in FHIR and PCD-01
LINE_PRESSURE: Final = LocalCode("line-pressure-downstream", "Infusion line pressure, downstream (filtered)")

# --- containment (partition 1) ----------------------------------------------------------------
PUMP_MDS: Final = Code(70049, "MDC_DEV_PUMP_INFUS_LVP_MDS")
PUMP_VMD: Final = Code(70050, "MDC_DEV_PUMP_INFUS_LVP_VMD")
PUMP_VMD_ORDER: Final = Code(69986, "MDC_DEV_PUMP_INFUS_VMD")  # the pump-ID OBX of PCD-03
DELIVERY_INFO: Final = Code(70067, "MDC_DEV_PUMP_DELIVERY_INFO")
SOURCE_PRIMARY: Final = Code(70071, "MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY")
PUMP_MDS_GENERIC: Final = Code(69985, "MDC_DEV_PUMP_INFUS_MDS")
ATTR_EVT_COND: Final = Code(68487, "MDC_ATTR_EVT_COND")
ATTR_EVT_SOURCE: Final = Code(68488, "MDC_ATTR_EVT_SOURCE")
PT_WEIGHT: Final = Code(68063, "MDC_ATTR_PT_WEIGHT")
PT_HEIGHT: Final = Code(68060, "MDC_ATTR_PT_HEIGHT")
BSA: Final = Code(188744, "MDC_AREA_BODY_SURF_ACTUAL")

# --- metrics (partition 2) -------------------------------------------------------------------
FLOW_PUMP: Final = Code(157784, "MDC_FLOW_FLUID_PUMP")
FLOW_CURRENT: Final = Code(158014, "MDC_FLOW_FLUID_PUMP_CURRENT")
RATE_DOSE: Final = Code(157924, "MDC_RATE_DOSE")
VOL_TBI: Final = Code(157884, "MDC_VOL_FLUID_TBI")
VOL_REMAIN: Final = Code(157872, "MDC_VOL_FLUID_TBI_REMAIN")
VOL_DELIV_TOTAL: Final = Code(157993, "MDC_VOL_FLUID_DELIV_TOTAL")
TIME_REMAIN: Final = Code(157916, "MDC_TIME_PD_REMAIN")
DRUG_NAME: Final = Code(184514, "MDC_DRUG_NAME_LABEL")
CONC_DRUG: Final = Code(157760, "MDC_CONC_DRUG")
LIBRARY_VERSION: Final = Code(184517, "MDC_PUMP_DRUG_LIBRARY_VERSION")
CARE_AREA: Final = Code(184516, "MDC_PUMP_DRUG_LIBRARY_CARE_AREA")
INFUSING_STATUS: Final = Code(184519, "MDC_PUMP_INFUSING_STATUS")
ACTIVE_SOURCES: Final = Code(158016, "MDC_DEV_PUMP_ACTIVE_SOURCES")
DELIVERY_STATUS: Final = Code(158005, "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS")
DELIVERY_MODE: Final = Code(158008, "MDC_DEV_PUMP_PROGRAM_DELIVERY_MODE")
CHANNEL_LABEL: Final = Code(158012, "MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL")

# --- events and alerts (partition 3) -----------------------------------------------------------
EVT_ALARM: Final = Code(196616, "MDC_EVT_ALARM")
EVT_DELIV_START: Final = Code(197288, "MDC_EVT_PUMP_DELIV_START")
# interop.md §2.5: numeric codes for the other IPEC events are in no IHE text found. They are sent with
# the REFID and the private code 0 (``0^MDC_EVT_PUMP_DELIV_STOP^MDC``), as IPEC examples did, until
# resolved against RTMMS; receivers key on the REFID.
EVT_DELIV_STOP: Final = Code(0, "MDC_EVT_PUMP_DELIV_STOP")
EVT_DELIV_COMP: Final = Code(0, "MDC_EVT_PUMP_DELIV_COMP")
EVT_PROG_CLEARED: Final = Code(0, "MDC_EVT_PUMP_PROG_CLEARED")
NOT_DELIVERING_REASON: Final = Code(0, "MDC_PUMP_NOT_DELIVERING_REASON")  # IPEC "Pump Not Delivering Reason"
ATTR_ALERT_SOURCE: Final = Code(68480, "MDC_ATTR_ALERT_SOURCE")
ATTR_EVENT_PHASE: Final = Code(68481, "MDC_ATTR_EVENT_PHASE")
ATTR_ALARM_STATE: Final = Code(68482, "MDC_ATTR_ALARM_STATE")
ATTR_INACTIVATION_STATE: Final = Code(68483, "MDC_ATTR_ALARM_INACTIVATION_STATE")
ATTR_ALARM_PRIORITY: Final = Code(68484, "MDC_ATTR_ALARM_PRIORITY")
ATTR_ALERT_TYPE: Final = Code(68485, "MDC_ATTR_ALERT_TYPE")
ATTR_ALERT_TEXT: Final = Code(68546, "MDC_ATTR_ALERT_TEXT")

#: pump alarm code (openinfusion.pump.alarms.AlarmCode value) -> MDC event, where interop.md §3.5 has one.
ALARM_EVENTS: Final[dict[str, Code]] = {
    "occlusion_downstream": Code(196940, "MDC_EVT_FLUID_LINE_OCCL"),
    "occlusion_upstream": Code(196688, "MDC_EVT_OCCL"),
    "door_open": Code(196842, "MDC_EVT_DOOR_OR_HANDLE_POSN_PROB"),
    "set_not_loaded": Code(196860, "MDC_EVT_FLUID_LINE_PROB"),
    "vtbi_complete": Code(197332, "MDC_EVT_PUMP_VOL_INFUS_COMP"),  # derived 3::724 (FHIR R5 snapshot)
    "vtbi_complete_kvo": Code(197332, "MDC_EVT_PUMP_VOL_INFUS_COMP"),
    "battery_low": Code(196802, "MDC_EVT_BATT_LO"),
    "battery_depleted": Code(196800, "MDC_EVT_BATT_FAIL"),
    "motor_fault": Code(196646, "MDC_EVT_FAIL"),
    "encoder_fault": Code(196646, "MDC_EVT_FAIL"),
    "pressure_sensor_fault": Code(196920, "MDC_EVT_SENSOR_PROB"),
    "air_sensor_fault": Code(196920, "MDC_EVT_SENSOR_PROB"),
    "self_test_failed": Code(196660, "MDC_EVT_INOP"),
    "watchdog_fault": Code(196638, "MDC_EVT_ERR"),
    "system_fault": Code(196638, "MDC_EVT_ERR"),
    "callback_paused": Code(203276, "MDC_EVT_ADVIS_SETTINGS_CHK"),
    "callback_programming": Code(203276, "MDC_EVT_ADVIS_SETTINGS_CHK"),
    "unconfirmed_titration": Code(203276, "MDC_EVT_ADVIS_SETTINGS_CHK"),
}


@dataclass(frozen=True, slots=True)
class UnitCode:
    """A unit at the interfaces: UCUM code, and the MDC unit where interop.md §3.4 lists one."""

    ucum: str
    mdc: Code | None

    def cwe(self) -> str:
        """MDC first, UCUM as the alternate (``265266^MDC_DIM_MILLI_L_PER_HR^MDC^mL/h^mL/h^UCUM``)."""
        if self.mdc is None:
            return f"{self.ucum}^{self.ucum}^UCUM"
        return f"{self.mdc.cwe()}^{self.ucum}^{self.ucum}^UCUM"


UNITS: Final[tuple[UnitCode, ...]] = (
    UnitCode("mL/h", Code(265266, "MDC_DIM_MILLI_L_PER_HR")),
    UnitCode("ug/kg/min", Code(265619, "MDC_DIM_MICRO_G_PER_KG_PER_MIN")),
    UnitCode("mL", Code(263762, "MDC_DIM_MILLI_L")),
    UnitCode("mg", Code(263890, "MDC_DIM_MILLI_G")),
    UnitCode("g", Code(263872, "MDC_DIM_X_G")),
    UnitCode("kg", Code(263875, "MDC_DIM_KILO_G")),
    UnitCode("mg/mL", Code(264306, "MDC_DIM_MILLI_G_PER_ML")),
    UnitCode("min", Code(264352, "MDC_DIM_MIN")),
    UnitCode("h", Code(264384, "MDC_DIM_HR")),
    UnitCode("s", Code(264320, "MDC_DIM_X_SEC")),
    UnitCode("cm", Code(263441, "MDC_DIM_CENTI_M")),
    UnitCode("m2", Code(263616, "MDC_DIM_SQ_X_M")),
    UnitCode("mg/h", Code(265522, "MDC_DIM_MILLI_G_PER_HR")),
    UnitCode("mg/min", Code(265490, "MDC_DIM_MILLI_G_PER_MIN")),
    UnitCode("ug/h", Code(265523, "MDC_DIM_MICRO_G_PER_HR")),
    UnitCode("ug/min", Code(265491, "MDC_DIM_MICRO_G_PER_MIN")),
    UnitCode("[iU]/h", Code(267840, "MDC_DIM_X_INTL_UNIT_PER_HR")),
)
_BY_UCUM: Final = {u.ucum: u for u in UNITS}
_BY_MDC: Final = {u.mdc.code: u for u in UNITS if u.mdc is not None}
_BY_REFID: Final = {u.mdc.refid: u for u in UNITS if u.mdc is not None}
# interop.md §3.4: TF examples put the partition-4 term code (3122, 3475, 1746...) in CWE-1.
_BY_TERM: Final = {u.mdc.code - 4 * 65536: u for u in UNITS if u.mdc is not None}


def unit_code(ucum: str) -> UnitCode:
    """The interface unit for a UCUM code (MDC where known, UCUM only otherwise)."""
    return _BY_UCUM.get(ucum, UnitCode(ucum, None))


def mdc_unit(identifier: str, text: str) -> str | None:
    """The UCUM code of an MDC unit given as ``code^REFID`` (either may be empty or the term code)."""
    found = _BY_REFID.get(text.strip())
    if found is None and identifier.strip().isdigit():
        number = int(identifier)
        found = _BY_MDC.get(number) or _BY_TERM.get(number)
    return None if found is None else found.ucum
