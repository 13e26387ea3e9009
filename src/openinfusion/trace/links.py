"""Requirement -> code links that name a function or class, derived from the AST so that they survive refactoring.

A requirement ID found in the code links to the innermost unit that contains it:

``docstring``  the ID is in the docstring of a function or class: it links that function or class
               (by qualified name, ``openinfusion.pump.pca.decide_demand``);
``body``       the ID is in a comment or string inside a function or class body: it links the innermost
               enclosing function or class (a comment sits in the code it explains, so this is sound);
``data``       the ID is in a module-level statement (a catalogue row ``AlarmSpec(..., requirement="OI-ALM-2")``,
               a table entry): it links the module-level name the statement assigns (``alarms.CATALOGUE``),
               and the mutants are drawn from the call or literal that holds the ID;
``module``     the ID is in a module docstring or a free module-level comment: it links the module only.
               A module link is reported, but it is not a link to a function or class: mutants are then
               drawn from the module's functions, a weaker criterion the report shows as such.

Each link's target exists by construction (it is where the ID was read). Verification code (``lab``,
``trace``, ``assurance``) names requirements as the evidence it produces, not as what it implements: its
links are kept apart as ``evidence`` and never mutated.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from openinfusion.errors import InputError

EVIDENCE_PACKAGES: Final = ("openinfusion.lab", "openinfusion.trace", "openinfusion.assurance")


class LinkKind(StrEnum):
    """How a requirement ID is tied to its code unit (strongest first)."""

    DOCSTRING = "docstring"
    BODY = "body"
    DATA = "data"
    MODULE = "module"


@dataclass(frozen=True, slots=True)
class Unit:
    """A function, class or module-level assignment: qualified name, file, and line span (inclusive)."""

    qualname: str
    path: str
    first: int
    last: int
    kind: str  # "function", "class", "data" or "module"


@dataclass(frozen=True, slots=True)
class CodeLink:
    """Requirement ``requirement`` is implemented by ``unit`` (read at ``path:line``)."""

    requirement: str
    unit: Unit
    kind: LinkKind
    line: int

    @property
    def evidence(self) -> bool:
        """True for links from verification code (the lab, the trace, the assurance case)."""
        return self.unit.qualname.startswith(EVIDENCE_PACKAGES)


def module_name(path: str) -> str:
    """``src/openinfusion/pump/pca.py`` -> ``openinfusion.pump.pca`` (``__init__`` is its package)."""
    parts = list(Path(path).with_suffix("").parts)
    if "src" in parts:
        parts = parts[parts.index("src") + 1 :]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def units_of(tree: ast.Module, path: str) -> list[Unit]:
    """Every function and class (nested too) and every module-level assignment of ``tree``."""
    module = module_name(path)
    out: list[Unit] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}.{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                out.append(Unit(name, path, first, child.end_lineno or child.lineno, kind))
                walk(child, name)

    walk(tree, module)
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names:
            out.append(Unit(f"{module}.{names[0]}", path, stmt.lineno, stmt.end_lineno or stmt.lineno, "data"))
    return out


def _docstring_lines(tree: ast.Module) -> dict[int, str]:
    """First line of each function/class docstring -> the qualified-name suffix it documents ('' for the module)."""
    spans: dict[int, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for line in range(value.lineno, (value.end_lineno or value.lineno) + 1):
                    spans[line] = prefix
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                walk(child, f"{prefix}.{child.name}" if prefix else child.name)

    walk(tree, "")
    return spans


def links_in_source(source: str, path: str, pattern: re.Pattern[str]) -> list[CodeLink]:
    """The links of one file (``path`` root-relative). Raises InputError if it is not valid Python."""
    try:
        tree = ast.parse(source, filename=path)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError) as e:
        raise InputError(path, f"not valid Python: {e}") from None
    module = module_name(path)
    units = units_of(tree, path)
    scopes = [u for u in units if u.kind in {"function", "class"}]
    data = [u for u in units if u.kind == "data"]
    docstrings = _docstring_lines(tree)
    out: list[CodeLink] = []
    for token in tokens:
        if token.type not in {tokenize.COMMENT, tokenize.STRING}:
            continue
        for match in pattern.finditer(token.string):
            line = token.start[0] + token.string.count("\n", 0, match.start())
            out.append(
                _attribute(match.group(), path, line, module=module, scopes=scopes, data=data, docstrings=docstrings)
            )
    return out


def _attribute(
    req: str, path: str, line: int, *, module: str, scopes: list[Unit], data: list[Unit], docstrings: dict[int, str]
) -> CodeLink:
    documented = docstrings.get(line)
    if documented:
        unit = next(u for u in scopes if u.qualname == f"{module}.{documented}")
        return CodeLink(req, unit, LinkKind.DOCSTRING, line)
    enclosing = [u for u in scopes if u.first <= line <= u.last]
    if enclosing:
        return CodeLink(req, max(enclosing, key=lambda u: u.first), LinkKind.BODY, line)
    assigned = [u for u in data if u.first <= line <= u.last]
    if assigned:
        return CodeLink(req, assigned[0], LinkKind.DATA, line)
    return CodeLink(req, Unit(module, path, 1, line, "module"), LinkKind.MODULE, line)


def scan_links(root: Path, code_dir: str, pattern: re.Pattern[str]) -> list[CodeLink]:
    """Every link under ``root/code_dir`` in path and line order."""
    out: list[CodeLink] = []
    for file in sorted((root / code_dir).rglob("*.py")):
        rel = file.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in Path(rel).parts):
            continue
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(rel, f"cannot read: {e}") from None
        out += links_in_source(source, rel, pattern)
    return out
