"""FHIR R4 in the server: interop's router over the event store and the order gateway, behind the server's login.

Every route is guarded like the rest of the API (:func:`openinfusion.server.api.deps.guard`): a session
cookie, the route's row in the role table (``fhir_*``), and the CSRF token for ``POST /MedicationRequest``.
"""

from __future__ import annotations

from fastapi import APIRouter

from openinfusion.interop.fhir.router import fhir_router
from openinfusion.server.api.deps import guard
from openinfusion.server.hospital import Hospital
from openinfusion.server.interop_gateway import ServerGateway
from openinfusion.server.interop_store import StoreSource

PREFIX = "/fhir"


def fhir_api(hospital: Hospital) -> APIRouter:
    """The FHIR router (its paths under :data:`PREFIX`): searches from the event store, orders to the pumps."""
    return fhir_router(StoreSource(hospital), ServerGateway(hospital), auth=guard, prefix=PREFIX)
