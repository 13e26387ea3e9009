"""The library as YAML, the form people author (issue 5, item 2; issue 8, item 4).

Reading is bounded (OI-LIB-IN-1): a file of at most ``MAX_FILE_BYTES``; at most ``MAX_NODES`` YAML events,
counted by libyaml's C parser before anything is built; then the document is built by a safe loader with
the YAML 1.2 core schema (``NO``, ``yes`` and ``off`` stay strings, ``0123`` is 123, never octal), where a
duplicate key is an error and nothing but plain data is constructed; finally aliases may not expand the
document beyond ``MAX_NODES`` values (a "billion laughs" alias bomb is 17 kB) nor refer to themselves.
Each breach is one :class:`~openinfusion.errors.LibraryError`. Why libyaml and not ruamel.yaml's pure
Python parser for reading: ``docs/decisions/0014-druglib-bounded-inputs.md`` (ruamel took 6 s for 40 kB
of flow sequence here). The data then goes through :func:`~openinfusion.druglib.validate.validate_data`.

Writing (ruamel.yaml) produces the canonical document of :meth:`~openinfusion.druglib.model.Library.to_data`,
with limits and concentrations on one line each, so that a written file reads back to an equal library.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from openinfusion.druglib.model import BOUND_NAMES, Library
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.errors import LibraryError

_ONE_LINE_MAPS: Final = frozenset(BOUND_NAMES) | {"amount", "volume"}
_ONE_LINE_LISTS: Final = frozenset({"synonyms", "ndc"})


MAX_FILE_BYTES: Final = 2 * 1024 * 1024
MAX_NODES: Final = 60_000
"""Largest library document: 60,000 YAML nodes (the 84-drug example library has 7,188), so that reading
and validating any file stays within seconds on a loaded 2-core machine."""

_CORE_SCHEMA: Final = (  # YAML 1.2 core schema, section 10.3.2
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+0123456789.",
    ),
)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser, the YAML 1.2 core schema, duplicate keys refused."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {}

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            problem = "a list or mapping as a key" if isinstance(key, list | dict) else None
            problem = problem or (f"duplicate key {str(key)[:40]!r}" if key in seen else None)
            if problem is not None:
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        return int(text[2:] if base != 10 else text, base)

    def construct_yaml_bool(self, node: Any) -> bool:
        return str(self.construct_scalar(node)).lower() == "true"


for _tag, _pattern, _first in _CORE_SCHEMA:
    _Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), [*_first, *([""] if "~" in _first else [])])
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)


def parse_yaml(text: str, source: str = "") -> object:
    """Plain data from YAML text, bounded; a syntax error, a duplicate key, too many nodes, an alias bomb or a
    recursive alias is a LibraryError with its line."""
    where = source or "yaml"
    try:
        for count, _ in enumerate(yaml.parse(text, Loader=_Loader)):
            if count >= MAX_NODES:
                raise LibraryError(where, f"more than {MAX_NODES} YAML nodes: larger than a drug library this reads")
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LibraryError(where, f"not valid YAML: {problem}{line}") from None
    except (ValueError, RecursionError) as e:
        raise LibraryError(where, f"not valid YAML: {str(e)[:80]}") from None
    _check_expansion(data, where)
    return data


def _check_expansion(data: object, where: str) -> None:
    """Refuse aliases that expand the document beyond MAX_NODES values or contain themselves (a shared object
    is measured once and counted at each use, so the walk itself is linear in the file)."""
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    def size(node: object) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in walking:
            raise LibraryError(where, "not valid YAML for a library: an alias refers to itself")
        walking.add(key)
        total = 1
        for child in [*node.keys(), *node.values()] if isinstance(node, dict) else node:
            total += size(child)
            if total > MAX_NODES:
                raise LibraryError(where, f"aliases expand the document beyond {MAX_NODES} values (an alias bomb)")
        walking.discard(key)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise LibraryError(where, "not valid YAML for a library: nested too deeply") from None


def read_text(path: Path) -> str:
    """A file's text (UTF-8), at most MAX_FILE_BYTES; a missing, unreadable or oversized file is a LibraryError."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise LibraryError(str(path), f"cannot read: {e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise LibraryError(str(path), f"larger than {MAX_FILE_BYTES // 1024 // 1024} MiB: not a drug library")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LibraryError(str(path), f"cannot read: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_yaml(path: Path) -> Report:
    """Validate the library in a YAML file: all findings, and the library if it is valid."""
    return validate_data(parse_yaml(read_text(path), str(path)), str(path))


def dump_yaml(library: Library) -> str:
    """The library as canonical YAML text (reads back to an equal library)."""
    yaml = YAML()
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    notice = library.info.notice
    if notice:
        out.write("".join(f"# {line}\n" for line in notice.splitlines()))
    yaml.dump(_styled(library.to_data(), ""), out)
    return out.getvalue()


def write_yaml(library: Library, path: Path) -> None:
    try:
        path.write_text(dump_yaml(library), encoding="utf-8")
    except OSError as e:
        raise LibraryError(str(path), f"cannot write: {e}") from None


def _styled(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        styled = CommentedMap((k, _styled(v, k)) for k, v in value.items())
        if value and set(value) <= _ONE_LINE_MAPS:
            styled.fa.set_flow_style()
        return styled
    if isinstance(value, list):
        if key in _ONE_LINE_LISTS:  # free text on one line: quoted, as ruamel may emit some plain items unreadably
            seq = CommentedSeq(DoubleQuotedScalarString(v) for v in value)
            seq.fa.set_flow_style()
            return seq
        return CommentedSeq(_styled(v, "") for v in value)
    return value
