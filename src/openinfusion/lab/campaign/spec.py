"""A campaign specification: what to draw (programs, patients, faults, clinicians) and how to judge.

Read from YAML (``schema: openinfusion.campaign/1``) and validated with pydantic; an error is one line
``FILE: field.path: reason``. The drug library is named relative to the spec file. Distributions are
documented in docs/campaigns.md; the oracle's tolerances and alarm deadlines are part of the spec, so
that a case file carries the exact criteria it was judged by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from openinfusion.errors import InputError
from openinfusion.sim.scenario import Q
from openinfusion.units import Quantity

SCHEMA = "openinfusion.campaign/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class DurationRange(_Model):
    """Run length, drawn log-uniform between ``min`` and ``max``."""

    min: Q
    max: Q

    @model_validator(mode="after")
    def _ordered(self) -> DurationRange:
        if self.min.in_("s") <= 0 or self.max.in_("s") < self.min.in_("s"):
            raise ValueError("need 0 < min <= max (times such as '20 min', '2 h')")
        return self


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Clinician(_Model):
    """Probabilities (per run) of each clinician behaviour, and how late a late response is."""

    titration: Probability = 0.3
    unconfirmed_titration: Probability = 0.1  # of titrations, never confirmed
    secondary: Probability = 0.2
    bolus: Probability = 0.2
    pause: Probability = 0.1
    late_response: Probability = 0.3  # the nurse answers an alarm late (up to late_max)
    response_min: Q = Quantity.of(20, "s")
    late_max: Q = Quantity.of(30, "min")
    pca_demands_per_hour: Annotated[float, Field(ge=0, le=60)] = 6.0


class Oracle(_Model):
    """The criteria the oracle judges by (sources in docs/campaigns.md)."""

    accuracy_percent_lvp: Annotated[float, Field(gt=0, le=50)] = 5.0  # IEC 60601-2-24 claims, +/- 5 % LVP
    accuracy_percent_syringe: Annotated[float, Field(gt=0, le=50)] = 2.0  # +/- 2 % syringe
    startup_lvp: Q = Quantity.of(2, "min")  # start-up and compliance lag allowed at the programmed rate
    startup_syringe: Q = Quantity.of(15, "min")
    floor: Q = Quantity.of(0.2, "mL")  # absolute allowance (compliance, one pumping cycle)
    accuracy_alarm_within: Q = Quantity.of(15, "min")  # an alarm after leaving the tolerance
    release_bolus_max: Q = Quantity.of(0.5, "mL")  # FDA infusion pump guidance: <= 0.5 mL after release
    release_window: Q = Quantity.of(60, "s")
    no_flow_epsilon: Q = Quantity.of(0.005, "mL")  # mechanism displacement allowed while not delivering
    occlusion_alarm_within: Q = Quantity.of(60, "min")  # at the lowest rates; scaled by rate, see oracle
    air_alarm_within: Q = Quantity.of(10, "s")
    door_alarm_within: Q = Quantity.of(5, "s")
    power_alarm_within: Q = Quantity.of(5, "s")
    controller_fault_alarm_within: Q = Quantity.of(5, "min")


class CampaignSpec(_Model):
    """A whole campaign file."""

    schema_: Literal["openinfusion.campaign/1"] = Field("openinfusion.campaign/1", alias="schema")
    name: str = Field(min_length=1)
    seed: int = Field(ge=0)
    runs: int = Field(ge=1, le=100_000_000)
    library: str = Field(min_length=1)  # a drug library YAML, relative to the spec file
    duration: DurationRange
    syringe_fraction: Probability = 0.3
    faults_per_run: tuple[Annotated[float, Field(ge=0)], ...] = Field((0.15, 0.45, 0.3, 0.1), min_length=1)
    clinician: Clinician = Clinician()
    oracle: Oracle = Oracle()
    sample_period: Q | None = None

    @model_validator(mode="after")
    def _weights(self) -> CampaignSpec:
        if sum(self.faults_per_run) <= 0:
            raise ValueError("faults_per_run: weights must not all be zero")
        return self


def _location(parts: tuple[int | str, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_spec(data: Any, name: str) -> CampaignSpec:
    """Validate a spec given as data (``name`` locates errors)."""
    if not isinstance(data, dict):
        raise InputError(name, "a campaign spec is a YAML mapping")
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        why = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        loc = _location(tuple(err["loc"]))
        raise InputError(f"{name}: {loc}" if loc else name, why) from None


def load_spec(path: Path) -> tuple[CampaignSpec, dict[str, Any], Path]:
    """Read a spec file: the spec, its raw data (kept in case files) and the library's absolute path."""
    name = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(name, f"cannot read: {e}") from None
    try:
        data = YAML(typ="safe", pure=True).load(raw)
    except YAMLError as e:
        raise InputError(name, f"malformed YAML: {getattr(e, 'problem', None) or e}") from None
    spec = parse_spec(data, name)
    library = (path.parent / spec.library).resolve()
    if not library.is_file():
        raise InputError(f"{name}: library", f"no such file {library}")
    return spec, dict(data), library
