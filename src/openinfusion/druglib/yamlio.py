"""The library as YAML, the form people author (issue 5, item 2).

Reading uses ruamel.yaml's safe loader, YAML 1.2: ``NO`` and ``yes`` stay strings, a duplicate key is
an error, and nothing but plain data is constructed. The data then goes through
:func:`~openinfusion.druglib.validate.validate_data`. Writing produces the canonical document of
:meth:`~openinfusion.druglib.model.Library.to_data`, with limits and concentrations on one line each,
so that a written file reads back to an equal library.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from openinfusion.druglib.model import BOUND_NAMES, Library
from openinfusion.druglib.validate import Report, validate_data
from openinfusion.errors import LibraryError

_ONE_LINE_MAPS: Final = frozenset(BOUND_NAMES) | {"amount", "volume"}
_ONE_LINE_LISTS: Final = frozenset({"synonyms", "ndc"})


def parse_yaml(text: str, source: str = "") -> object:
    """Plain data from YAML text; a syntax error (or a duplicate key) is a LibraryError with its line."""
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LibraryError(source or "yaml", f"not valid YAML: {problem}{line}") from None


def read_text(path: Path) -> str:
    """A file's text (UTF-8); a missing or unreadable file is a LibraryError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LibraryError(str(path), f"cannot read: {e}") from None


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
