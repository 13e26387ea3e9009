"""Request and response bodies of the HTTP API (validated; unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from openinfusion.agent.messages import Name, PumpId


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Me(BaseModel):
    name: str
    role: str
    csrf: str


class CommissionIn(_In):
    pump_id: PumpId
    care_area: Name
    location: Annotated[str, Field(max_length=120)] = ""


class Credentials(BaseModel):
    """Returned once at commissioning: the pump's key and certificate, the CA, and the server's order key."""

    pump_id: str
    key_pem: str
    cert_pem: str
    ca_pem: str
    order_key_pem: str


class AssignmentIn(_In):
    nurse: Annotated[str, Field(max_length=64)] | None = None
    charge_nurse: Annotated[str, Field(max_length=64)] | None = None


class TargetIn(_In):
    care_areas: Annotated[list[Name], Field(min_length=1, max_length=50)]


Decimal = Annotated[str, Field(pattern=r"^[0-9]{1,6}(\.[0-9]{1,4})?$")]


class OrderIn(_In):
    pump_id: PumpId
    channel: Annotated[int, Field(ge=1, le=4)] = 1
    area: Name
    drug: Name
    concentration: Name | None = None
    rate_ml_h: Decimal
    vtbi_ml: Decimal


class Row(BaseModel):
    """A generic read model (the fields of a stored row)."""

    model_config = ConfigDict(extra="allow")


class EventOut(BaseModel):
    pump_id: str
    seq: int
    t_us: int
    at: datetime
    kind: str
    channel: int | None
    drug: str | None
    patient: str | None
    data: dict[str, Any]


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    first_break: int | None
    reason: str
