"""PCD-04 Report Alert (``ORU^R40^ORU_R40``) out, from the pump's alarm events (interop.md §2.3).

One alert per message, sent on every state transition the log records: raised (phase ``start``),
latched (``update``, state latched), acknowledged (``acknowledged``), escalated (``escalate``), audio
paused and its end (``update``, inactivation state), cleared or reset (``end``). The onset's OBR-3 is
the alert instance ID (``<pump>.<alarm instance>``); later messages carry it in OBR-29.2. OBR-4 is
``196616^MDC_EVT_ALARM^MDC``; the seven facets (event, source, phase, state, inactivation state,
priority, type) are OBX ``1.<vmd>.0.0.<facet>``; OBX-11 is ``F``. MSH-16 ``AL`` asks the Alert Manager
for PCD-05 status reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from openinfusion.interop import terminology as mdc
from openinfusion.interop.gateway import EventSource
from openinfusion.interop.hl7.message import format_ts
from openinfusion.interop.hl7.observations import Obx, obx_segments, pump_rows
from openinfusion.interop.hl7.pcd10 import Report, new_events
from openinfusion.interop.hl7.writer import Sender, components, join, segment, text
from openinfusion.pump.eventlog import EventKind, LoggedEvent

_PHASES: Final = {
    EventKind.ALARM_RAISED: ("start", "active"),
    EventKind.ALARM_LATCHED: ("update", "latched"),
    EventKind.ALARM_ACKNOWLEDGED: ("acknowledged", "active"),
    EventKind.ALARM_ESCALATED: ("escalate", "active"),
    EventKind.ALARM_CLEARED: ("end", "inactive"),
    EventKind.ALARM_RESET: ("end", "inactive"),
}
_PRIORITY: Final = {"high": "PH", "medium": "PM", "low": "PL", "info": "PN"}
_ADVISORY: Final = frozenset({"vtbi_complete", "vtbi_complete_kvo", "near_end", "callback_paused",
                              "callback_programming", "unconfirmed_titration", "on_battery"})  # fmt: skip


@dataclass
class Pcd04Reporter:
    """Alarm events to PCD-04 messages (see the module docstring)."""

    source: EventSource
    sender: Sender
    cursors: dict[str, int] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)
    onsets: dict[tuple[str, str], str] = field(default_factory=dict)  # (pump, instance) -> onset MSH-10

    def poll(self) -> list[Report]:
        reports: list[Report] = []
        for pump_id, status, events in new_events(self.source, self.cursors):
            for event in events:
                if event.kind in (EventKind.AUDIO_PAUSED, EventKind.AUDIO_PAUSE_ENDED):
                    self.paused[pump_id] = event.kind is EventKind.AUDIO_PAUSED
                elif event.kind in _PHASES and "instance" in event.data:
                    when = status.time_origin + timedelta(microseconds=event.t.us)
                    reports.append(self._report(pump_id, event, when, status.library, status.patient_id))
        return reports

    def _report(self, pump_id: str, event: LoggedEvent, when: datetime, library: str | None,
                patient: str | None) -> Report:  # fmt: skip
        phase, state = _PHASES[event.kind]
        code_name = str(event.data.get("code", ""))
        instance = f"{pump_id}.{event.data['instance']}"
        msh, control = self.sender.msh("ORU^R40^ORU_R40", accept="AL", application="AL", profile="PCD-04")
        onset = phase == "start"
        if onset:
            self.onsets[(pump_id, instance)] = control
        obr3 = instance if onset else f"{instance}.{event.seq}"
        parent = "" if onset else "^" + components(instance, "OPENINFUSION").replace("^", "&")
        obr = segment("OBR", "1", "", components(obr3, "OPENINFUSION"), mdc.EVT_ALARM.cwe(), "", "",
                      format_ts(self.sender.now()), *[""] * 21, parent)  # fmt: skip
        vmd = 0 if event.channel is None else event.channel + 1
        source = mdc.PUMP_MDS if event.channel is None else mdc.PUMP_VMD
        condition = mdc.ALARM_EVENTS.get(code_name)
        label = text(str(event.data.get("text", code_name)))
        event_value = (condition.cwe() if condition else mdc.EVT_ALARM.cwe()) + f"^^^^^^{label}"
        priority = _PRIORITY.get(str(event.data.get("priority", "")), "PN")
        rows = pump_rows(pump_id, library, None)
        inactivation = "audio-paused" if self.paused.get(pump_id) else "enabled"
        facets = (
            Obx((1, vmd, 0, 0, 1), mdc.EVT_ALARM, "CWE", event_value, time=when, status="F"),
            Obx((1, vmd, 0, 0, 2), mdc.ATTR_ALERT_SOURCE, "CWE", source.cwe(), status="F"),
            Obx((1, vmd, 0, 0, 3), mdc.ATTR_EVENT_PHASE, "ST", phase, status="F"),
            Obx((1, vmd, 0, 0, 4), mdc.ATTR_ALARM_STATE, "ST", state, status="F"),
            Obx((1, vmd, 0, 0, 5), mdc.ATTR_INACTIVATION_STATE, "ST", inactivation, status="F"),
            Obx((1, vmd, 0, 0, 6), mdc.ATTR_ALARM_PRIORITY, "ST", priority, status="F"),
            Obx((1, vmd, 0, 0, 7), mdc.ATTR_ALERT_TYPE, "ST", "SA" if code_name in _ADVISORY else "ST", status="F"),
        )
        pid = [segment("PID", "", "", components(patient), "", '""')] if patient else []
        message = join([msh, *pid, obr, *obx_segments([*rows, *facets])])
        return Report(pump_id, event.seq, f"{code_name}:{phase}", message)
