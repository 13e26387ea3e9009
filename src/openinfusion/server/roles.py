"""Who may do what: every endpoint's role rule in ONE table (tested as a full matrix, anonymous included).

Rules are keyed by the route's name. A route missing from the table is refused to everyone (deny by
default), and a test checks that every route of the app has a row. ``PUBLIC`` routes need no session.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    NURSE = "nurse"
    PHARMACIST = "pharmacist"
    BIOMED = "biomed"
    ADMIN = "admin"


PUBLIC: Final = "public"
Rule = frozenset[Role] | str

_ALL: Final = frozenset(Role)
_N, _P, _B, _A = Role.NURSE, Role.PHARMACIST, Role.BIOMED, Role.ADMIN

RULES: Final[dict[str, Rule]] = {
    # service
    "health": PUBLIC,
    "login": PUBLIC,
    "login_page": PUBLIC,
    "station_login": PUBLIC,
    "logout": _ALL,
    "me": _ALL,
    # fleet and devices
    "fleet": _ALL,
    "pump_detail": _ALL,
    "pump_events": frozenset({_N, _P, _B, _A}),
    "events_query": frozenset({_N, _P, _A}),
    "devices_commission": frozenset({_B}),
    "devices_decommission": frozenset({_B}),
    "link_rejections": frozenset({_B, _A}),
    # alarms (secondary alarm system)
    "alarms_list": frozenset({_N, _A}),
    "alarm_ack": frozenset({_N}),
    "assignments_list": frozenset({_N, _A}),
    "assignment_set": frozenset({_A}),
    # drug library distribution
    "releases_list": frozenset({_P, _B, _A}),
    "release_upload": frozenset({_P}),
    "release_target": frozenset({_P}),
    "release_status": frozenset({_P, _B, _A}),
    # remote programming
    "orders_list": frozenset({_N, _P}),
    "order_create": frozenset({_N}),
    # FHIR R4 (interop): documentation reads, orders as remote programming
    "fhir_device": frozenset({_N, _P, _B, _A}),
    "fhir_device_metric": frozenset({_N, _P, _B, _A}),
    "fhir_observation": frozenset({_N, _P, _A}),
    "fhir_medication_administration": frozenset({_N, _P, _A}),
    "fhir_medication_request": frozenset({_N}),
    # audit
    "audit_list": frozenset({_A}),
    "audit_verify": frozenset({_A}),
    # central station pages
    "station_home": _ALL,
    "station_fleet": _ALL,
    "station_alarms": frozenset({_N, _A}),
    "station_alarm_ack": frozenset({_N}),
    "station_logout": _ALL,
    "station_library": frozenset({_P, _B, _A}),
    "station_release_upload": frozenset({_P}),
    "station_release_target": frozenset({_P}),
    "station_pump": _ALL,
    "station_stream": _ALL,
}


def allows(route: str, role: Role | None) -> bool:
    """True if ``role`` (None: no session) may use ``route``."""
    rule = RULES.get(route)
    if rule is None:
        return False
    if rule == PUBLIC:
        return True
    return role is not None and isinstance(rule, frozenset) and role in rule
