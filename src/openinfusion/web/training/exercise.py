"""Training exercises as data: a YAML file validated at load (pydantic), errors naming file and field.

An exercise is a starting situation (a scenario: patient, pump, library, channels already running),
events the script injects at their times (the scenario's timeline) or the instructor injects live,
the actions expected of the trainee (each after a trigger, within a time limit, for points), the
errors to watch for, and a keystroke par. See docs/training.md for the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from openinfusion.errors import ScenarioError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.sim.scenario import ChannelNumber, Q, Scenario

# What a trainee can do, as the panel records it (widget ids plus the outcomes the pump gives them).
ACTIONS = (
    "program", "start", "pause", "resume", "clear", "titrate", "confirm_titration", "cancel_titration",
    "bolus", "secondary", "pca", "pca_demand", "audio_pause", "reset_alarm", "override", "cancel",
    "change", "confirm", "choose",
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Trigger(_Model):
    """When the clock for an expected action starts: an alarm raised, or a time (from the start)."""

    alarm: AlarmCode | None = None
    at: Q | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.alarm is None) == (self.at is None):
            raise ValueError("give exactly one of alarm (an alarm code) or at (a time such as '5 min')")
        return self


class Expected(_Model):
    """An action expected of the trainee: ``do`` (an action) on ``channel`` after ``after``, ``within`` a time."""

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)  # what the educator expects, in words
    after: Trigger = Trigger(at="0 s")
    do: Literal[ACTIONS]  # type: ignore[valid-type]
    channel: ChannelNumber | None = None  # A to D (or 1 to 4)
    arg: str | None = None  # e.g. the override reason, or a drug id chosen
    within: Q
    points: int = Field(10, ge=0, le=100)


class Mistake(_Model):
    """An error to watch for: the trainee doing ``do`` (with ``arg``) is an error made, costing points."""

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    do: Literal[ACTIONS]  # type: ignore[valid-type]
    arg: str | None = None
    penalty: int = Field(10, ge=0, le=100)


class Exercise(_Model):
    """A whole exercise file."""

    schema_: Literal["openinfusion.exercise/1"] = Field("openinfusion.exercise/1", alias="schema")
    title: str = Field(min_length=1)
    objectives: list[str] = Field(min_length=1)
    briefing: str = Field(min_length=1)  # what the nurse is told at the start (handover)
    situation: Scenario
    expected: list[Expected] = Field(min_length=1)
    mistakes: list[Mistake] = Field(default_factory=list)
    keystroke_par: int = Field(ge=1)  # keystrokes an expert needs
    speed: float = Field(1.0, gt=0, le=600)  # how fast the pump's time runs (1 = real time)


def load_exercise(path: Path) -> Exercise:
    """Read and validate an exercise; every error is reported as ``FILE: field: reason`` (all of them)."""
    name = str(path)
    try:
        data: Any = YAML(typ="safe", pure=True).load(path.read_bytes())
    except OSError as e:
        raise ScenarioError(name, f"cannot read: {e.strerror}") from None
    except YAMLError as e:
        raise ScenarioError(name, f"malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise ScenarioError(name, "an exercise is a YAML mapping")
    try:
        return Exercise.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {str(err['msg']).removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise ScenarioError(name, problems) from None
