"""Static scans: which tests verify which requirement, and where the code names one.

Tests are read with :mod:`ast`, never imported or run. A test declares what it verifies with
``@pytest.mark.req("ID", ...)`` on the function, on its ``Test*`` class, or in a module- or class-level
``pytestmark``; the IDs must be string literals so that they can be read here.

Code is read with :mod:`tokenize`: a requirement ID in a comment, docstring or other string literal is a
reference to where the requirement is implemented (a catalogue row's ``requirement=`` field, say).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from openinfusion.errors import InputError

TESTS_DIR: Final = "tests"
CODE_DIR: Final = "src/openinfusion"
MARKER: Final = "req"

# Python 3.12 splits f-strings into several tokens; the text between the braces is FSTRING_MIDDLE.
_STRING_TOKENS: Final = frozenset(t for t in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", None)) if t)


@dataclass(frozen=True, slots=True)
class ScannedTest:
    """A test function found in ``tests/``; ``requirements`` are the IDs its ``req`` markers name, in order."""

    nodeid: str
    path: str
    line: int
    requirements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MarkerIssue:
    """A ``req`` marker that cannot be read statically (no ID, or an ID that is not a string literal)."""

    where: str
    message: str


class RefKind(StrEnum):
    """Where in the source a requirement ID was found."""

    COMMENT = "comment"
    STRING = "string"


@dataclass(frozen=True, slots=True)
class CodeRef:
    """A requirement ID named at ``path:line`` (root-relative, POSIX) of the code."""

    requirement: str
    path: str
    line: int
    kind: RefKind


def _is_marker(node: ast.expr) -> bool:
    """``pytest.mark.req`` or ``mark.req`` (after ``from pytest import mark``)."""
    if not (isinstance(node, ast.Attribute) and node.attr == MARKER):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "mark") or (
        isinstance(owner, ast.Attribute) and owner.attr == "mark"
    )


def _marker_ids(node: ast.expr, where: str, issues: list[MarkerIssue]) -> list[str]:
    """The IDs of one decorator or ``pytestmark`` item, if it is a ``req`` marker."""
    if isinstance(node, ast.Call) and _is_marker(node.func):
        ids = []
        for position, arg in enumerate(node.args, start=1):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                ids.append(arg.value)
            else:
                issues.append(MarkerIssue(where, f"argument {position} of pytest.mark.req is not a string literal"))
        if not node.args:
            issues.append(MarkerIssue(where, "pytest.mark.req() names no requirement"))
        return ids
    if _is_marker(node):
        issues.append(MarkerIssue(where, "pytest.mark.req is used without naming a requirement"))
    return []


def _pytestmark(body: list[ast.stmt], path: str, issues: list[MarkerIssue]) -> list[str]:
    """IDs of ``pytestmark = <mark>`` or ``pytestmark = [<mark>, ...]`` in a module or class body."""
    ids: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            for item in items:
                ids += _marker_ids(item, f"{path}:{item.lineno}", issues)
    return ids


def _decorated(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, nodeid: str, issues: list[MarkerIssue]
) -> list[str]:
    ids: list[str] = []
    for decorator in node.decorator_list:
        ids += _marker_ids(decorator, nodeid, issues)
    return ids


def _tests_in(
    body: list[ast.stmt], path: str, prefix: str, inherited: list[str], issues: list[MarkerIssue]
) -> Iterator[ScannedTest]:
    """Tests pytest would collect from a module or ``Test*`` class body (default naming rules)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            nodeid = f"{prefix}::{node.name}"
            ids = inherited + _decorated(node, nodeid, issues)
            yield ScannedTest(nodeid, path, node.lineno, tuple(dict.fromkeys(ids)))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            nodeid = f"{prefix}::{node.name}"
            class_ids = inherited + _decorated(node, nodeid, issues) + _pytestmark(node.body, path, issues)
            yield from _tests_in(node.body, path, nodeid, class_ids, issues)


def scan_test_source(source: str, path: str) -> tuple[list[ScannedTest], list[MarkerIssue]]:
    """The tests in one test file's ``source`` (``path`` is its root-relative name), and unreadable markers.

    Raises InputError naming the file and line if the source is not valid Python.
    """
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise InputError(f"{path}:{e.lineno}", f"not valid Python: {e.msg}") from None
    issues: list[MarkerIssue] = []
    module_ids = _pytestmark(tree.body, path, issues)
    return list(_tests_in(tree.body, path, path, module_ids, issues)), issues


def requirement_pattern(ids: Iterable[str]) -> re.Pattern[str]:
    """A regex for requirement-shaped IDs: any number after a prefix that a known ID has.

    With ``AB-CD-2`` known, ``AB-CD-99`` is found too (to be reported unknown), and ``AB-CD-2`` is never
    found inside ``AB-CD-20`` or ``XAB-CD-2``.
    """
    families = sorted({i.rsplit("-", 1)[0] for i in ids}, key=lambda f: (-len(f), f))
    if not families:
        raise ValueError("requirement_pattern needs at least one requirement ID")
    alternatives = "|".join(re.escape(f) for f in families)
    return re.compile(rf"(?<![\w-])(?:{alternatives})-[0-9]+(?![\w])")


def scan_code_source(source: str, path: str, pattern: re.Pattern[str]) -> list[CodeRef]:
    """Every match of ``pattern`` in the comments and string literals of ``source``, with its line.

    Raises InputError naming the file if the source cannot be tokenized.
    """
    refs: list[CodeRef] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                kind = RefKind.COMMENT
            elif token.type in _STRING_TOKENS:
                kind = RefKind.STRING
            else:
                continue
            for match in pattern.finditer(token.string):
                line = token.start[0] + token.string.count("\n", 0, match.start())
                refs.append(CodeRef(match.group(), path, line, kind))
    except (tokenize.TokenError, SyntaxError) as e:
        raise InputError(path, f"not valid Python: {e}") from None
    return refs


def _python_files(root: Path, rel_dir: str) -> list[tuple[str, str]]:
    """(root-relative POSIX path, text) of every ``*.py`` under ``root/rel_dir``, sorted; none if it is absent."""
    files = []
    for file in sorted((root / rel_dir).rglob("*.py")):
        rel = file.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in Path(rel).parts):
            continue
        try:
            files.append((rel, file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(rel, f"cannot read: {e}") from None
    return files


def scan_tests(root: Path) -> tuple[list[ScannedTest], list[MarkerIssue]]:
    """The tests under ``root/tests`` and their ``req`` markers, in path order."""
    tests: list[ScannedTest] = []
    issues: list[MarkerIssue] = []
    for rel, source in _python_files(root, TESTS_DIR):
        found, unreadable = scan_test_source(source, rel)
        tests += found
        issues += unreadable
    return tests, issues


def scan_code(root: Path, pattern: re.Pattern[str]) -> list[CodeRef]:
    """Requirement-shaped IDs named under ``root/src/openinfusion``, in path and line order."""
    refs: list[CodeRef] = []
    for rel, source in _python_files(root, CODE_DIR):
        refs += scan_code_source(source, rel, pattern)
    return refs
