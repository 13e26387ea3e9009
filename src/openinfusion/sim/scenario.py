"""Simulation scenarios: YAML files validated at load, turned into core objects.

A scenario names the pump (mechanism, channels, settings), the patient, each channel's program and
a timeline of clinician actions and physical events. Files are read with ruamel.yaml (YAML 1.2:
``NO`` stays a string) and validated with pydantic v2; every error is reported as one line
``FILE: field.path: reason`` (:class:`~openinfusion.errors.ScenarioError`). Quantities are strings
with a UCUM unit (``"25 mL/h"``, ``"0.1 ug/kg/min"``, ``"400 mg / 250 mL"``), parsed strictly;
pressures are plain numbers in fields named ``*_mmhg``. The JSON Schema in
``docs/scenario.schema.json`` is generated from these models.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator, model_validator
from pydantic.functional_validators import BeforeValidator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from openinfusion.druglib.model import Library
from openinfusion.errors import InputError, ScenarioError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.dosing import Concentration
from openinfusion.sim.params import SyringeSize
from openinfusion.sim.screen import LABELS
from openinfusion.units import Quantity, exact


def _quantity(value: object) -> Quantity:
    if isinstance(value, Quantity):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a quantity with a unit such as '25 mL/h', got {value!r}")
    try:
        return Quantity.parse(value)
    except InputError as e:
        raise ValueError(e.why) from None


def _concentration(value: object) -> Concentration:
    """``"400 mg / 250 mL"`` (amount in a bag volume) or ``"4 mg/mL"`` (amount per mL)."""
    if isinstance(value, Concentration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a concentration such as '400 mg / 250 mL' or '4 mg/mL', got {value!r}")
    try:
        if " / " in value:
            amount, volume = value.split(" / ", 1)
            return Concentration(Quantity.parse(amount), Quantity.parse(volume))
        return Concentration.from_quantity(Quantity.parse(value))
    except InputError as e:
        raise ValueError(e.why) from None


C = Annotated[
    Concentration,
    BeforeValidator(_concentration),
    WithJsonSchema({"type": "string", "examples": ["400 mg / 250 mL", "4 mg/mL"]}),
]
Q = Annotated[
    Quantity,
    BeforeValidator(_quantity),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9.]+ \S+$", "examples": ["25 mL/h"]}),
]

START_EXAMPLE = "2026-12-06T08:00:00+01:00"


def _wall_clock(value: object) -> datetime.datetime:
    """An ISO 8601 date and time with its UTC offset (YAML gives a datetime; JSON a string)."""
    when = value
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            when = None
    if not isinstance(when, datetime.datetime) or when.utcoffset() is None:
        shown = value.isoformat() if isinstance(value, datetime.datetime) else repr(value)
        raise ValueError(
            f"expected a date and time with its UTC offset, such as '{START_EXAMPLE}' or "
            f"'2026-12-06T07:00:00Z', got {shown}"
        )
    return when


WallClock = Annotated[
    datetime.datetime,
    BeforeValidator(_wall_clock),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": [START_EXAMPLE]}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


# --- programs ------------------------------------------------------------------------------------


class FromLibrary(_Model):
    """The library entry a program is programmed from (the pump's care area is the scenario's)."""

    drug: str = Field(min_length=1)
    therapy: str | None = None
    concentration: str | None = None  # a standard concentration key, e.g. "8 mg/500 mL"
    custom_concentration: Q | None = None  # or a custom one the entry allows, as amount per volume, e.g. "2.5 mg/mL"


class _ProgramSpec(_Model):
    from_library: FromLibrary | None = None
    override_reason: str | None = None  # the clinician's answer if a soft limit alerts
    basic_reason: str | None = None  # why a program is not from the library (basic infusion)


class ContinuousSpec(_ProgramSpec):
    type: Literal["continuous"]
    rate: Q
    vtbi: Q | None = None


class VolumeOverTimeSpec(_ProgramSpec):
    type: Literal["volume_over_time"]
    vtbi: Q
    duration: Q


class LoadingSpec(_Model):
    amount: Q
    duration: Q | None = None
    rate: Q | None = None

    @model_validator(mode="after")
    def _pace(self) -> LoadingSpec:
        if (self.duration is None) == (self.rate is None):
            raise ValueError("give exactly one of duration or rate")
        return self


class DoseSpec(_ProgramSpec):
    type: Literal["dose"]
    dose: Q
    concentration: C
    vtbi: Q | None = None
    loading: LoadingSpec | None = None


class StepSpec(_Model):
    rate: Q
    vtbi: Q


class MultistepSpec(_ProgramSpec):
    type: Literal["multistep"]
    steps: list[StepSpec] = Field(min_length=1)


class RampTaperSpec(_ProgramSpec):
    type: Literal["ramp_taper"]
    total_volume: Q
    total_duration: Q
    ramp_up: Q
    ramp_down: Q
    increments: int = Field(ge=1, le=25)


class IntermittentSpec(_ProgramSpec):
    type: Literal["intermittent"]
    dose_volume: Q
    rate: Q
    interval: Q
    doses: int = Field(ge=1)


class PcaSpec(_ProgramSpec):
    type: Literal["pca"]
    concentration: C
    demand_dose: Q
    lockout: Q
    demand_rate: Q
    basal: Q | None = None
    loading: Q | None = None
    limit_1h: Q | None = None
    limit_4h: Q | None = None


ProgramSpec = Annotated[
    ContinuousSpec | VolumeOverTimeSpec | DoseSpec | MultistepSpec | RampTaperSpec | IntermittentSpec | PcaSpec,
    Field(discriminator="type"),
]


class SecondarySpec(_ProgramSpec):
    rate: Q
    vtbi: Q


# --- pump, patient, channels ---------------------------------------------------------------------


class KvoSpec(_Model):
    enabled: bool = True
    rate: Q | None = None


class PumpSpec(_Model):
    id: str = Field("openinfusion-sim-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the serial a server knows
    mechanism: Literal["peristaltic", "syringe"] = "peristaltic"
    syringe: Q | None = None
    kvo: KvoSpec = KvoSpec()
    near_end: Q | None = None
    callback: Q | None = None
    sensitivity: Literal["low", "medium", "high"] = "medium"
    care_area: str | None = None  # the library care area (profile) the pump is set to
    on_mains: bool = True
    battery_charge_percent: float = Field(100.0, ge=0, le=100)
    battery_age_years: float = Field(0.0, ge=0, le=10)

    @field_validator("syringe")
    @classmethod
    def _size(cls, q: Quantity | None) -> Quantity | None:
        if q is not None and syringe_size(q) is None:
            sizes = ", ".join(str(ml) for ml in SYRINGE_ML if ml != 60)  # 60 mL syringes use the 50 mL setting
            raise ValueError(f"no syringe of {q}; sizes: {sizes}")
        return q

    @model_validator(mode="after")
    def _syringe(self) -> PumpSpec:
        if self.mechanism == "syringe" and self.syringe is None:
            raise ValueError("a syringe pump needs 'syringe' (e.g. '50 mL')")
        if self.mechanism == "peristaltic" and self.syringe is not None:
            raise ValueError("'syringe' applies to a syringe pump only")
        return self


class PatientSpec(_Model):
    weight: Q | None = None
    bsa: Q | None = None
    venous_mmhg: float = Field(8.0, ge=0, le=40)
    movement_per_hour: float = Field(2.0, ge=0, le=60)


class ChannelSpec(_Model):
    program: ProgramSpec | None = None
    head_height_m: float = Field(0.0, ge=-1.5, le=1.5)
    fill: Q | None = None  # volume in the LVP container or the syringe at the start (None: endless / full)
    container: Q | None = None  # the LVP container's volume as the nurse enters it into the pump (None: not entered)
    flow_sensor: bool = False  # fit the optional in-line flow sensor
    temperature_sensor: bool = False  # fit the optional housing temperature sensor (reads 22 C until changed)

    @field_validator("fill", "container")
    @classmethod
    def _fill(cls, q: Quantity | None) -> Quantity | None:
        if q is not None and (not q.unit.same_dimension(Quantity.of(1, "mL").unit) or q.value < 0):
            raise ValueError(f"must be a volume of at least 0 mL, got {q}")
        return q


# --- timeline ------------------------------------------------------------------------------------


def _channel(value: object) -> object:
    """A channel as the pump's screen letters it (``A`` to ``D``) or by its number (1 to 4): the number."""
    if isinstance(value, str) and len(value) == 1 and value in LABELS:
        return LABELS.index(value) + 1
    return value


ChannelNumber = Annotated[
    int,
    BeforeValidator(_channel),
    Field(ge=1, le=4),
    WithJsonSchema({"oneOf": [{"type": "integer", "minimum": 1, "maximum": 4}, {"enum": list(LABELS)}]}),
]

ClinicianAction = Literal[
    "start", "pause", "resume", "clear", "confirm_titration", "cancel_titration", "pca_demand", "begin_programming"
]


class _Event(_Model):
    at: Q
    channel: ChannelNumber = 1


class ActionEvent(_Event):
    do: ClinicianAction


class ProgramEvent(_Event):
    do: Literal["program"]
    program: ProgramSpec


class TitrateEvent(_Event):
    do: Literal["titrate"]
    rate: Q | None = None
    dose: Q | None = None
    confirm_after: Q | None = None
    override_reason: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TitrateEvent:
        if (self.rate is None) == (self.dose is None):
            raise ValueError("give exactly one of rate or dose")
        return self


class BolusEvent(_Event):
    do: Literal["bolus"]
    volume: Q | None = None
    amount: Q | None = None
    duration: Q | None = None
    rate: Q | None = None
    override_reason: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BolusEvent:
        if (self.volume is None) == (self.amount is None):
            raise ValueError("give exactly one of volume or amount")
        if (self.duration is None) == (self.rate is None):
            raise ValueError("give exactly one of duration or rate")
        return self


class SecondaryEvent(_Event):
    do: Literal["secondary"]
    secondary: SecondarySpec


class PumpActionEvent(_Model):
    at: Q
    do: Literal["audio_pause"]


class ResetAlarmEvent(_Event):
    do: Literal["reset_alarm"]
    code: AlarmCode  # the alarm's code as the event log writes it, e.g. occlusion_downstream
    pump_scope: bool = False


class OcclusionEvent(_Event):
    do: Literal["occlusion"]
    side: Literal["downstream", "upstream"] = "downstream"
    on: bool = True


class PartialOcclusionEvent(_Event):
    """The line below the pump narrows: its resistance becomes ``factor`` times the open line's (1 reopens it)."""

    do: Literal["partial_occlusion"]
    factor: float = Field(ge=1, le=1e6)


class FreeFlowEvent(_Event):
    """The set is taken out of the pump with its clamp open (``on``), or the clamp is closed again."""

    do: Literal["free_flow"]
    on: bool = True


class FillEvent(_Event):
    """A new LVP container holding ``volume`` is hung on the channel."""

    do: Literal["fill"]
    volume: Q


class TemperatureEvent(_Event):
    """The pump housing reaches ``celsius`` (read by the channel's temperature sensor)."""

    do: Literal["temperature"]
    celsius: float = Field(ge=-40, le=125)


class PowerEvent(_Model):
    """The pump is switched off (``on: false``, the power key) or on again (it boots: self-test, no program)."""

    at: Q
    do: Literal["power"]
    on: bool


class AirEvent(_Event):
    do: Literal["air"]
    volume: Q


class DoorEvent(_Event):
    do: Literal["door"]
    closed: bool


class LoadEvent(_Event):
    do: Literal["load"]
    loaded: bool


class MainsEvent(_Model):
    at: Q
    do: Literal["mains"]
    on: bool


class HeadHeightEvent(_Event):
    do: Literal["head_height"]
    metres: float = Field(ge=-1.5, le=1.5)


class FaultEvent(_Model):
    at: Q
    do: Literal["fault"]
    fault: Literal[
        "stuck_pressure",
        "drifting_pressure",
        "air_detector_failure",
        "motor_stall",
        "encoder_slip",
        "missed_timer_tick",
        "clock_jump",
        "battery_cell_failure",
        "storage_corruption",
        "annunciator_failure",
    ]  # fmt: skip  (the names of openinfusion.sim.faults.FaultKind)
    channel: ChannelNumber | None = 1
    params: dict[str, bool | int | float | str] = Field(default_factory=dict)


TimelineEvent = Annotated[
    ActionEvent
    | ProgramEvent
    | TitrateEvent
    | BolusEvent
    | SecondaryEvent
    | PumpActionEvent
    | ResetAlarmEvent
    | OcclusionEvent
    | PartialOcclusionEvent
    | FreeFlowEvent
    | FillEvent
    | TemperatureEvent
    | PowerEvent
    | AirEvent
    | DoorEvent
    | LoadEvent
    | MainsEvent
    | HeadHeightEvent
    | FaultEvent,
    Field(discriminator="do"),
]


class Scenario(_Model):
    """A whole scenario file."""

    schema_: Literal["openinfusion.scenario/1"] = Field("openinfusion.scenario/1", alias="schema")
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(ge=0)
    duration: Q
    start: WallClock | None = None  # the wall-clock time of scenario time 0: reports then show clock times
    library: str | None = None  # a drug library YAML, relative to the scenario file
    sample_period: Q | None = None
    pump: PumpSpec = PumpSpec()
    patient: PatientSpec = PatientSpec()
    channels: list[ChannelSpec] = Field(min_length=1, max_length=4)
    timeline: list[TimelineEvent] = Field(default_factory=list)

    @field_validator("duration")
    @classmethod
    def _duration(cls, q: Quantity) -> Quantity:
        if not q.unit.same_dimension(Quantity.of(1, "s").unit) or q.value <= 0:
            raise ValueError(f"must be a positive time such as '2 h', got {q}")
        return q

    @model_validator(mode="after")
    def _timeline(self) -> Scenario:
        end = self.duration.in_("s")
        for i, event in enumerate(self.timeline):
            if not event.at.unit.same_dimension(self.duration.unit):
                raise ValueError(f"timeline[{i}].at: must be a time, got {event.at}")
            t = event.at.in_("s")
            if t < 0 or t > end:
                raise ValueError(f"timeline[{i}].at: {event.at} is outside the scenario (0 to {self.duration})")
            ch = getattr(event, "channel", None)
            if ch is not None and ch > len(self.channels):
                raise ValueError(
                    f"timeline[{i}].channel: the scenario has {len(self.channels)} channel(s) "
                    f"({', '.join(LABELS[: len(self.channels)])}), not {ch} ({LABELS[ch - 1]})"
                )
        return self


def _loc(parts: tuple[int | str, ...]) -> str:
    """A pydantic error location as a file path (``timeline[2].volume``), without union tags."""
    out = ""
    for i, p in enumerate(parts):
        prev = parts[i - 1] if i else None
        in_union = prev == "program" or (isinstance(prev, int) and i >= 2 and parts[i - 2] == "timeline")
        if isinstance(p, str) and in_union and p in _DISCRIMINATOR_VALUES:
            continue  # pydantic's tag of the union member, not a field of the file
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


_DISCRIMINATOR_VALUES = {
    "continuous", "volume_over_time", "dose", "multistep", "ramp_taper", "intermittent", "pca", "start", "pause",
    "resume", "clear", "confirm_titration", "cancel_titration", "pca_demand", "begin_programming", "program",
    "titrate", "bolus", "secondary", "audio_pause", "reset_alarm", "occlusion", "air", "door", "load", "mains",
    "head_height", "fault", "partial_occlusion", "free_flow", "fill", "temperature", "power",
}  # fmt: skip


def load_scenario(path: Path) -> tuple[Scenario, str]:
    """Read and validate a scenario file; returns it and the SHA-256 of its bytes.

    Raises :class:`ScenarioError` ``FILE: field.path: reason`` for unreadable files, malformed YAML,
    unknown fields (with the nearest valid name), bad units or values (a time field shows examples),
    events outside the scenario, and drugs the library does not list; every error of the file is in
    the one line. A drug may be named by any of the library's names (synonyms, brand names).
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScenarioError(name, f"cannot read: {e.strerror}") from None
    try:
        data: Any = YAML(typ="safe", pure=True).load(raw)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ScenarioError(where, f"malformed YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ScenarioError(name, "a scenario is a YAML mapping")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise _every_error(name, e) from None
    return _library_names(scenario, path), hashlib.sha256(raw).hexdigest()


_TIME_FIELDS = {
    "at", "duration", "lockout", "interval", "confirm_after", "ramp_up", "ramp_down", "total_duration",
    "near_end", "callback", "sample_period",
}  # fmt: skip


def _field_names() -> list[str]:
    """Every field name a scenario may use (for "did you mean")."""
    models: set[type[_Model]] = set()
    stack: list[type[_Model]] = [_Model]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in models:
                models.add(sub)
                stack.append(sub)
    return sorted({n.rstrip("_") for m in models for n in m.model_fields})


def _explained(err: Any) -> tuple[str, str]:
    """One pydantic error as (field path, reason), with a suggestion where one helps."""
    loc = _loc(tuple(err["loc"]))
    msg = str(err["msg"]).removeprefix("Value error, ")
    last = str(err["loc"][-1]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(last, _field_names(), n=1, cutoff=0.7)
        msg = "unknown field" + (f" (did you mean {close[0]}?)" if close else "")
    elif err["type"] == "union_tag_invalid":
        tag = str(err.get("ctx", {}).get("tag", ""))
        close = difflib.get_close_matches(tag, sorted(_DISCRIMINATOR_VALUES), n=1, cutoff=0.6)
        msg = f"{tag!r} is not a known kind" + (f" (did you mean {close[0]}?)" if close else "")
    if last in _TIME_FIELDS and "expected a quantity" in msg:
        msg = f"expected a time with its unit, such as '20 min', '90 s' or '1.5 h', got {err.get('input')!r}"
    return loc, msg


def _every_error(name: str, e: ValidationError) -> ScenarioError:
    """All the file's errors in one line: the first as ``FILE: field: reason``, the others after it."""
    found = [_explained(err) for err in e.errors()]
    (loc, msg), rest = found[0], found[1:]
    more = "".join(f"; also {where}: {why}" if where else f"; also {why}" for where, why in rest)
    return ScenarioError(f"{name}: {loc}" if loc else name, msg + more)


def read_library(path: Path) -> Library:
    """The validated library in ``path`` (cached by path and modification time: a library file is read
    once however many scenarios and panels name it; a changed file is read again)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as e:
        raise ScenarioError(str(path), f"cannot read the library: {e.strerror}") from None
    return _read_library(str(path), stamp)


@functools.lru_cache(maxsize=8)
def _read_library(path: str, _stamp: int) -> Library:
    from openinfusion.druglib.yamlio import read_yaml  # only scenarios with a library pay for importing it

    return read_yaml(Path(path)).require()


def _library_names(scenario: Scenario, path: Path) -> Scenario:
    """Programs may name a drug by any of the library's names (id, generic, display, synonyms such as
    brand names); each is replaced by the drug's id. An unknown drug is an error naming the nearest."""
    if scenario.library is None:
        return scenario
    library = read_library(path.parent / scenario.library)
    ids: dict[str, str] = {}
    for d in library.drugs:
        for n in (d.id, d.generic_name, d.display_name, *d.synonyms):
            ids.setdefault(n.lower(), d.id)

    def fixed(spec: Any, where: str) -> Any:
        chosen = getattr(spec, "from_library", None)
        if chosen is None:
            return spec
        drug = ids.get(chosen.drug.lower())
        if drug is None:
            close = difflib.get_close_matches(chosen.drug.lower(), sorted(ids), n=1, cutoff=0.6)
            hint = f" (did you mean {ids[close[0]]}?)" if close else ""
            raise ScenarioError(f"{path}: {where}.from_library.drug", f"{chosen.drug!r} is not in the library{hint}")
        return spec.model_copy(update={"from_library": chosen.model_copy(update={"drug": drug})})

    channels = [c.model_copy(update={"program": fixed(c.program, f"channels[{i}].program")})
                for i, c in enumerate(scenario.channels)]  # fmt: skip
    timeline: list[TimelineEvent] = []
    for i, event in enumerate(scenario.timeline):
        if isinstance(event, ProgramEvent):
            timeline.append(event.model_copy(update={"program": fixed(event.program, f"timeline[{i}].program")}))
        elif isinstance(event, SecondaryEvent):
            where = f"timeline[{i}].secondary"
            timeline.append(event.model_copy(update={"secondary": fixed(event.secondary, where)}))
        else:
            timeline.append(event)
    return scenario.model_copy(update={"channels": channels, "timeline": timeline})


SYRINGE_ML: dict[int, SyringeSize] = {3: SyringeSize.ML3, 5: SyringeSize.ML5, 10: SyringeSize.ML10,
                                       20: SyringeSize.ML20, 30: SyringeSize.ML30, 50: SyringeSize.ML50,
                                       60: SyringeSize.ML50}  # fmt: skip


def syringe_size(q: Quantity) -> SyringeSize | None:
    """The syringe of nominal capacity ``q`` (a volume), or None if there is none of that size."""
    if not q.unit.same_dimension(Quantity.of(1, "mL").unit):
        return None
    ml = q.in_("mL")
    return SYRINGE_ML.get(int(ml)) if ml.denominator == 1 else None


def seconds(q: Quantity) -> float:
    """A time quantity in seconds, as a float for the simulator's physics edge."""
    return float(q.in_("s"))


def number(value: float | int | str) -> float:
    """A YAML number read exactly then given to the physics as a float."""
    return float(exact(value))
