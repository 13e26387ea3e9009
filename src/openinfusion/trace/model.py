"""The safety model as data: requirements, hazards and risk controls, loaded from ``safety/*.yaml``.

Each file is parsed (YAML), validated against its schema (pydantic), and then the references between
the files are resolved. Anything wrong is an :class:`~openinfusion.errors.InputError` whose ``where`` names
the file, the line, the entry and the field, e.g. ``safety/controls.yaml:40 controls[2] (RC-AIR).mitigates[1]``.
The schemas are documented in ``safety/README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from openinfusion.errors import InputError

REQUIREMENTS_FILE: Final = "safety/requirements.yaml"
HAZARDS_FILE: Final = "safety/hazards.yaml"
CONTROLS_FILE: Final = "safety/controls.yaml"

# A requirement ID ends in a number (the code scanner relies on it); hazard and control IDs are names.
REQUIREMENT_ID_PATTERN: Final = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[0-9]+$"
RequirementId = Annotated[str, StringConstraints(pattern=REQUIREMENT_ID_PATTERN)]
HazardId = Annotated[str, StringConstraints(pattern=r"^H-[A-Z0-9]+(-[A-Z0-9]+)*$")]
ControlId = Annotated[str, StringConstraints(pattern=r"^RC-[A-Z0-9]+(-[A-Z0-9]+)*$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class RequirementKind(StrEnum):
    """Safety requirements must each be reached by a risk control and verified by a test."""

    SAFETY = "safety"
    FUNCTIONAL = "functional"


class RequirementSource(StrEnum):
    """``own``, or ``adopted`` from a public requirement set (its public ID in ``ref``)."""

    OWN = "own"
    ADOPTED = "adopted"


class Category(StrEnum):
    """The eight hazard categories of the GPCA hazard analysis (standards-and-safety.md §1.2)."""

    OPERATIONAL = "operational"
    ENVIRONMENTAL = "environmental"
    ELECTRICAL = "electrical"
    HARDWARE = "hardware"
    SOFTWARE = "software"
    MECHANICAL = "mechanical"
    BIOLOGICAL_CHEMICAL = "biological_chemical"
    USE = "use"


class PumpType(StrEnum):
    """The GPCA "Pump Type" column: the kind of pump a hazard applies to."""

    ALL = "all"
    LVP = "lvp"
    SYRINGE = "syringe"
    PCA = "pca"


class Severity(StrEnum):
    """Qualitative five-level severity scale in the style used with ISO 14971, least to most severe.

    The wording of each level is ours (safety/README.md); it is not quoted from the standard.
    """

    NEGLIGIBLE = "negligible"
    MINOR = "minor"
    SERIOUS = "serious"
    CRITICAL = "critical"
    CATASTROPHIC = "catastrophic"

    @property
    def rank(self) -> int:
        """1 (negligible) to 5 (catastrophic)."""
        return list(Severity).index(self) + 1

    @property
    def meaning(self) -> str:
        """What the level means for the patient."""
        return _SEVERITY_MEANING[self]


_SEVERITY_MEANING: Final = {
    Severity.NEGLIGIBLE: "inconvenience or temporary discomfort; no injury",
    Severity.MINOR: "temporary injury or impairment not needing professional medical intervention",
    Severity.SERIOUS: "injury or impairment needing professional medical intervention",
    Severity.CRITICAL: "permanent impairment or life-threatening injury",
    Severity.CATASTROPHIC: "death",
}


class ControlKind(StrEnum):
    """The risk-control options of ISO 14971, in its order of priority."""

    DESIGN = "design"
    PROTECTIVE = "protective"
    INFORMATION = "information"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(_Entry):
    """One requirement of ``safety/requirements.yaml``."""

    id: RequirementId
    title: Text
    text: Text
    kind: RequirementKind
    source: RequirementSource
    ref: Text | None = None

    @model_validator(mode="after")
    def _adopted_names_its_source(self) -> Self:
        if self.source is RequirementSource.ADOPTED and self.ref is None:
            raise ValueError("an adopted requirement needs `ref`, its public ID")
        return self


class Hazard(_Entry):
    """One hazard of ``safety/hazards.yaml`` (a row of a GPCA-style hazard table)."""

    id: HazardId
    hazard: Text
    category: Category
    pump_type: PumpType
    causes: tuple[Text, ...] = Field(min_length=1)
    harm: Text
    severity: Severity
    ref: tuple[Text, ...] = ()


class Control(_Entry):
    """One risk control of ``safety/controls.yaml``: the hazards it mitigates, the requirements that specify it."""

    id: ControlId
    title: Text
    control: Text
    kind: ControlKind
    mitigates: tuple[HazardId, ...] = Field(min_length=1)
    requirements: tuple[RequirementId, ...] = Field(min_length=1)


class _RequirementsFile(_Entry):
    schema_: Literal["openinfusion.requirements/1"] = Field(alias="schema")
    requirements: tuple[Requirement, ...] = Field(min_length=1)


class _HazardsFile(_Entry):
    schema_: Literal["openinfusion.hazards/1"] = Field(alias="schema")
    hazards: tuple[Hazard, ...] = Field(min_length=1)


class _ControlsFile(_Entry):
    schema_: Literal["openinfusion.controls/1"] = Field(alias="schema")
    controls: tuple[Control, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class SafetyModel:
    """The three files, validated, with every reference between them resolved."""

    requirements: tuple[Requirement, ...]
    hazards: tuple[Hazard, ...]
    controls: tuple[Control, ...]

    def controls_of_hazard(self, hazard_id: str) -> tuple[Control, ...]:
        """The controls that mitigate ``hazard_id``, in file order."""
        return tuple(c for c in self.controls if hazard_id in c.mitigates)

    def controls_of_requirement(self, requirement_id: str) -> tuple[Control, ...]:
        """The controls that ``requirement_id`` specifies, in file order."""
        return tuple(c for c in self.controls if requirement_id in c.requirements)


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed YAML file, kept in ruamel's round-trip form so errors can name their line."""

    rel: str
    raw: Any

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line entries[i] (ID).field`` for a location path inside the document."""
        node, line, path = self.raw, None, ""
        for key in loc:
            if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
                item = node[key]
                entry_id = item.get("id") if isinstance(item, dict) else None
                path += f"[{key}]" + (f" ({entry_id})" if isinstance(entry_id, str) else "")
                line = _line_of(node, key) or line
                node = item
            else:
                path += f".{key}" if path else str(key)
                if isinstance(node, dict) and key in node:
                    line = _line_of(node, key) or line
                    node = node[key]
                else:  # a missing field: point at its entry
                    node = None
        located = f"{self.rel}:{line}" if line is not None else self.rel
        return f"{located} {path}" if path else located


def _line_of(container: Any, key: str | int) -> int | None:
    lc = getattr(container, "lc", None)
    if lc is None:
        return None
    position = lc.item(key) if isinstance(key, int) else lc.key(key)
    return int(position[0]) + 1


def _read(root: Path, rel: str) -> _Document:
    path = root / rel
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(rel, f"no such file under {root}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(rel, f"cannot read: {e}") from None
    try:
        raw = YAML(typ="rt").load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{rel}:{mark.line + 1}" if mark is not None else rel
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(where, f"not valid YAML: {problem}") from None
    return _Document(rel, raw)


def _plain(node: Any) -> Any:
    """ruamel's round-trip types as plain Python, so that validation sees only dict, list, str and numbers."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


_M = TypeVar("_M", bound=BaseModel)


def _validate(doc: _Document, model: type[_M]) -> _M:
    if not isinstance(doc.raw, dict):
        keys = ", ".join(f"`{field.alias or name}`" for name, field in model.model_fields.items())
        raise InputError(doc.rel, f"expected a mapping with {keys}")
    try:
        return model.model_validate(_plain(doc.raw))
    except ValidationError as e:
        # A misspelt field is both missing and extra; the extra one names what was typed, so it goes first.
        errors = sorted(e.errors(), key=lambda error: error["type"] != "extra_forbidden")
        first = errors[0]
        why = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        if first["type"] not in {"missing", "extra_forbidden"} and (
            value is None or isinstance(value, str | int | float)
        ):
            why += f" (got {value!r})"
        if len(errors) > 1:
            why += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} in this file)"
        raise InputError(doc.where(first["loc"]), why) from None


def _check_unique_ids(doc: _Document, section: str, ids: Sequence[str]) -> None:
    first_index: dict[str, int] = {}
    for i, entry_id in enumerate(ids):
        if entry_id in first_index:
            earlier = doc.where((section, first_index[entry_id]))
            raise InputError(doc.where((section, i, "id")), f"duplicate id {entry_id!r}, first defined at {earlier}")
        first_index[entry_id] = i


def _check_references(
    doc: _Document, loc: tuple[str | int, ...], refs: Iterable[str], *, known: set[str], what: str, home: str
) -> None:
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        if ref not in known:
            raise InputError(doc.where((*loc, i)), f"unknown {what} {ref!r} (not in {home})")
        if ref in seen:
            raise InputError(doc.where((*loc, i)), f"{ref!r} is listed twice")
        seen.add(ref)


def load_requirements(root: Path) -> tuple[Requirement, ...]:
    """The requirements of ``root/safety/requirements.yaml``, validated, IDs unique. Raises InputError."""
    doc = _read(root, REQUIREMENTS_FILE)
    requirements = _validate(doc, _RequirementsFile).requirements
    _check_unique_ids(doc, "requirements", [r.id for r in requirements])
    return requirements


def load_safety_model(root: Path) -> SafetyModel:
    """Requirements, hazards and controls under ``root/safety``, validated and cross-referenced.

    Raises InputError (file, line, entry, field) for a malformed file, a duplicate ID, or a control naming
    an unknown hazard or requirement.
    """
    requirements = load_requirements(root)
    hazards_doc = _read(root, HAZARDS_FILE)
    hazards = _validate(hazards_doc, _HazardsFile).hazards
    _check_unique_ids(hazards_doc, "hazards", [h.id for h in hazards])
    controls_doc = _read(root, CONTROLS_FILE)
    controls = _validate(controls_doc, _ControlsFile).controls
    _check_unique_ids(controls_doc, "controls", [c.id for c in controls])
    hazard_ids = {h.id for h in hazards}
    requirement_ids = {r.id for r in requirements}
    for i, control in enumerate(controls):
        _check_references(
            controls_doc,
            ("controls", i, "mitigates"),
            control.mitigates,
            known=hazard_ids,
            what="hazard",
            home=HAZARDS_FILE,
        )
        _check_references(
            controls_doc,
            ("controls", i, "requirements"),
            control.requirements,
            known=requirement_ids,
            what="requirement",
            home=REQUIREMENTS_FILE,
        )
    return SafetyModel(requirements, hazards, controls)
