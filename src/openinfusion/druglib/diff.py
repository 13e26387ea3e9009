"""What changed between two library versions, for the second pharmacist's review (issue 5, item 2).

The diff walks the canonical documents of both libraries. Lists are matched by identity, never by
position: care areas and drugs by id, a drug's entries by care area (and therapy), concentrations by
their text, names and reasons by value. So reordering is not a change, and a change reads as a path:
``drugs[norepinephrine].care_areas[ADULT-ICU].limits.dose.soft_max: 60 ug/min -> 80 ug/min``.

Each limit change is marked *loosened* (a maximum raised or removed, a minimum lowered or removed, a
custom concentration or basic infusion newly allowed, a high-alert flag dropped) or *tightened*, so a
reviewer sees at a glance which changes widen what the pump lets through.

Names and values are shown with :func:`~openinfusion.druglib.names.visible`: any character outside printable
ASCII is written as its code point (``d<U+043E>pamine``) and spacing that matters is quoted
(``"dopamine "``), so two different strings never print alike (OI-LIB-NAME-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from openinfusion.druglib.model import Library
from openinfusion.druglib.names import visible
from openinfusion.errors import UnitError
from openinfusion.units import Quantity


class ChangeKind(Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class Direction(Enum):
    LOOSENED = "loosened"  # the pump lets more through than before
    TIGHTENED = "tightened"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: where, the old and new values (as text; None when absent), and its direction."""

    kind: ChangeKind
    where: str
    old: str | None = None
    new: str | None = None
    direction: Direction | None = None

    def __str__(self) -> str:
        note = f" ({self.direction.value})" if self.direction else ""
        if self.kind is ChangeKind.CHANGED:
            return f"changed {self.where}: {self.old} -> {self.new}{note}"
        value = self.new if self.kind is ChangeKind.ADDED else self.old
        shown = f": {value}" if value is not None else ""
        return f"{self.kind.value} {self.where}{shown}{note}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "where": self.where,
            "old": self.old,
            "new": self.new,
            "direction": None if self.direction is None else self.direction.value,
        }


# booleans whose change from the first value to the second lets more through
_LOOSENING_FLAGS: Final = {
    "high_alert": (True, False),
    "custom_concentration": (False, True),
    "basic_infusion": (False, True),
}
_CAPS: Final = frozenset({"max_rate", "max_vtbi"})


def diff_libraries(old: Library, new: Library) -> tuple[Change, ...]:
    """Every difference between ``old`` and ``new``, in document order."""
    changes: list[Change] = []
    _walk("", old.to_data(), new.to_data(), changes)
    return tuple(changes)


def release_diff(active: Library | None, new: Library) -> tuple[Change, ...]:
    """What the approver reviews: the diff against the active release, or every value of a first release."""
    if active is not None:
        return diff_libraries(active, new)
    changes: list[Change] = []
    for key, value in new.to_data().items():
        _added(key, value, changes)
    return tuple(changes)


def _walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        _walk_items(path, old, new, ".", out)
    elif isinstance(old, list) and isinstance(new, list):
        _walk_items(path, _keyed(old), _keyed(new), "[]", out)
    elif old != new:
        out.append(Change(ChangeKind.CHANGED, path, _text(old), _text(new), _direction(path, old, new)))


def _walk_items(path: str, old: dict[str, Any], new: dict[str, Any], style: str, out: list[Change]) -> None:
    for key in [*old, *(k for k in new if k not in old)]:
        sub = f"{path}[{visible(key)}]" if style == "[]" else (f"{path}.{key}" if path else key)
        if key not in new:
            out.append(Change(ChangeKind.REMOVED, sub, _text(old[key]), None, _direction(sub, old[key], None)))
        elif key not in old:
            _added(sub, new[key], out)
        else:
            _walk(sub, old[key], new[key], out)


def _added(path: str, value: Any, out: list[Change]) -> None:
    """An added object is listed leaf by leaf, so the reviewer sees every new limit."""
    if isinstance(value, dict):
        for k, v in value.items():
            _added(f"{path}.{k}", v, out)
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        for k, v in _keyed(value).items():
            _added(f"{path}[{visible(k)}]", v, out)
    else:
        out.append(Change(ChangeKind.ADDED, path, None, _text(value), _direction(path, None, value)))


def _keyed(items: list[Any]) -> dict[str, Any]:
    keyed: dict[str, Any] = {}
    for i, item in enumerate(items):
        key = _identity(item, i)
        while key in keyed:  # cannot happen in a valid library; keep both rather than lose one
            key += "'"
        keyed[key] = item
    return keyed


def _identity(item: Any, index: int) -> str:
    if isinstance(item, dict):
        if "id" in item:
            return str(item["id"])
        if "area" in item:
            return str(item["area"]) if "therapy" not in item else f"{item['area']}/{item['therapy']}"
        if "amount" in item:
            return str(item["amount"]) if "volume" not in item else f"{item['amount']}/{item['volume']}"
        return str(index)
    return str(item)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return visible(str(value))


def _direction(path: str, old: Any, new: Any) -> Direction | None:
    name = path.rsplit(".", 1)[-1]
    if name in _LOOSENING_FLAGS and isinstance(old, bool) and isinstance(new, bool):
        return Direction.LOOSENED if (old, new) == _LOOSENING_FLAGS[name] else Direction.TIGHTENED
    is_max = name.endswith("_max") or name in _CAPS
    is_min = name.endswith("_min")
    if not (is_max or is_min) or isinstance(old, dict | list) or isinstance(new, dict | list):
        return None
    if old is None or new is None:  # a bound removed lets more through; a bound added, less
        return Direction.LOOSENED if new is None else Direction.TIGHTENED
    try:
        before, after = Quantity.parse(str(old)), Quantity.parse(str(new))
        if after.equals(before):
            return None
        raised = after > before
    except UnitError:
        return None
    return Direction.LOOSENED if raised == is_max else Direction.TIGHTENED
