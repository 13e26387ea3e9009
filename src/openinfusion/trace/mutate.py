"""Mutation check of requirement -> test links: does a linked test fail when the linked code is broken?

For each safety requirement, mutants are made in its linked code only (:mod:`openinfusion.trace.links`):
one AST operator applied at one site (a comparison reversed, ``and``/``or`` swapped, a ``not`` dropped,
a boolean flipped, a number moved by one, ``+``/``-`` swapped). Sites are taken from the requirement's
function and class links, or from the call or literal of a data link (a catalogue row); only when a
requirement has module links alone are sites drawn from the module's functions (reported as weaker).
The tests marked with the requirement run against a copy of the package with the one mutant in place;
a test failing (pytest exit 1) kills it. Up to ``MAX_MUTANTS`` mutants are tried per requirement, spread
over its sites in a fixed order, stopping at the first kill.

Results are cached in ``safety/mutation-cache.json``, keyed by the SHA-256 of the mutated file's source,
the mutant, and the test files that ran: an entry stays valid until one of them changes. CI runs in a
fresh clone, so the cache is committed; entries it lacks are computed within a time budget (default 8 min
of the 10 the test command allows), and a requirement left unevaluated when the budget runs out is
reported as a warning, never counted as verified (docs/traceability.md).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from openinfusion.trace.links import CodeLink, LinkKind

CACHE_FILE: Final = "safety/mutation-cache.json"
MAX_MUTANTS: Final = 3
RUN_TIMEOUT_S: Final = 120.0

_SWAPS: Final[dict[type[ast.AST], type[ast.AST]]] = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
}


@dataclass(frozen=True, slots=True)
class Site:
    """One mutable node: its index among the file's sites, where it is, and what the mutant does."""

    index: int
    line: int
    description: str


@dataclass(slots=True)
class MutantResult:
    """What the linked tests did to one mutant: ``killed``, ``survived``, ``error`` or ``timeout``."""

    requirement: str
    unit: str
    path: str
    site: Site
    outcome: str
    killed_by: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            out.add(id(first.value))
    return out


def _enums(tree: ast.AST) -> dict[str, list[str]]:
    """Enum classes of the module (a base named ``*Enum``) and their members, in order."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "").endswith("Enum") for b in node.bases):
            members = [
                t.id for st in node.body if isinstance(st, ast.Assign) for t in st.targets if isinstance(t, ast.Name)
            ]
            if len(members) >= 2:
                out[node.name] = members
    return out


def _other_member(enums: dict[str, list[str]], node: ast.Attribute) -> str:
    members = enums[node.value.id]  # type: ignore[attr-defined]
    return members[(members.index(node.attr) + 1) % len(members)] if node.attr in members else members[0]


def _mutable(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """(node, what its mutant does) for every mutable node, in a fixed walk order."""
    skip = _docstring_nodes(tree)
    enums = _enums(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in enums:
            yield node, f"{node.value.id}.{node.attr} -> {node.value.id}.{_other_member(enums, node)}"
            continue
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            yield node, f"{type(node.ops[0]).__name__} -> {_SWAPS[type(node.ops[0])].__name__}"
        elif isinstance(node, ast.BoolOp) or (isinstance(node, ast.BinOp) and type(node.op) in _SWAPS):
            yield node, f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop not"
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, bool):
                yield node, f"{node.value} -> {not node.value}"
            elif isinstance(node.value, int | float):
                yield node, f"{node.value!r} -> {node.value + 1!r}"


def sites(source: str) -> list[tuple[Site, ast.AST]]:
    """Every mutation site of a module's source, indexed in walk order."""
    tree = ast.parse(source)
    return [(Site(i, getattr(n, "lineno", 0), d), n) for i, (n, d) in enumerate(_mutable(tree))]


def apply(source: str, index: int) -> str:
    """The module's source with the mutant at site ``index`` (comments are lost; behaviour is what counts)."""
    tree = ast.parse(source)
    node = next(n for i, (n, _) in enumerate(_mutable(tree)) if i == index)
    if isinstance(node, ast.Attribute):
        node.attr = _other_member(_enums(tree), node)
    elif isinstance(node, ast.Compare):
        node.ops[0] = _SWAPS[type(node.ops[0])]()  # type: ignore[call-overload]
    elif isinstance(node, ast.BoolOp | ast.BinOp):
        node.op = _SWAPS[type(node.op)]()  # type: ignore[assignment]
    elif isinstance(node, ast.UnaryOp):
        _replace(tree, node, node.operand)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        node.value = not node.value
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        node.value = node.value + 1
    return ast.unparse(ast.fix_missing_locations(tree))


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, copy.copy(new))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new


def candidate_sites(source: str, links: list[CodeLink]) -> list[Site]:
    """The sites inside the linked units of one file (data links: the call or literal holding the ID)."""
    all_sites = sites(source)
    tree = ast.parse(source)
    spans: list[tuple[int, int]] = []
    for link in links:
        if link.kind is LinkKind.DATA:
            holder = _innermost_call(tree, link.line)
            spans.append(
                (holder.lineno, holder.end_lineno or holder.lineno) if holder else (link.unit.first, link.unit.last)
            )
            spans += _users(tree, link.unit.qualname.rsplit(".", 1)[-1])
        elif link.kind is LinkKind.MODULE:
            spans += [
                (n.lineno, n.end_lineno or n.lineno)
                for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
        else:
            spans.append((link.unit.first, link.unit.last))
    return [s for s, _ in all_sites if any(a <= s.line <= b for a, b in spans)]


def _users(tree: ast.AST, name: str) -> list[tuple[int, int]]:
    """Line spans of the module's functions that read the module-level ``name`` (the code that uses a table row)."""
    return [
        (n.lineno, n.end_lineno or n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(isinstance(x, ast.Name) and x.id == name for x in ast.walk(n))
    ]


def _innermost_call(tree: ast.AST, line: int) -> ast.expr | None:
    holders: list[ast.expr] = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call | ast.Dict | ast.Tuple) and n.lineno <= line <= (n.end_lineno or n.lineno)
    ]
    return max(holders, key=lambda n: (n.lineno, -(n.end_lineno or n.lineno)), default=None)


def cache_key(mutated: str, site: Site, tests: list[str], root: Path) -> str:
    """SHA-256 of the mutated source, the mutant and the test files (and their node IDs) that judge it."""
    h = hashlib.sha256(mutated.encode())
    h.update(site.description.encode())
    for nodeid in sorted(tests):
        h.update(nodeid.encode())
    for file in sorted({t.split("::")[0] for t in tests}):
        h.update((root / file).read_bytes())
    return h.hexdigest()


class Sandbox:
    """A copy of ``src/openinfusion`` in a temporary directory, first on the tests' PYTHONPATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dir = Path(tempfile.mkdtemp(prefix="oi-mutants-"))
        shutil.copytree(root / "src", self._dir / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def run(self, path: str, mutated: str, tests: list[str]) -> tuple[str, list[str], float]:
        """Run ``tests`` with ``path`` replaced by ``mutated``; (outcome, failing tests, seconds)."""
        target = self._dir / path
        original = target.read_text(encoding="utf-8")
        target.write_text(mutated, encoding="utf-8")
        report = self._dir / "junit.xml"
        env = {**os.environ, "PYTHONPATH": str(self._dir / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-x",
                    "-p",
                    "no:cacheprovider",
                    "-o",
                    "addopts=",
                    f"--junitxml={report}",
                    *tests,
                ],
                cwd=self.root,
                env=env,
                capture_output=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
            outcome = {0: "survived", 1: "killed"}.get(done.returncode, "error")
        except subprocess.TimeoutExpired:
            outcome = "timeout"
        finally:
            target.write_text(original, encoding="utf-8")
        failing = _failures(report) if outcome == "killed" else []
        return outcome, failing, time.perf_counter() - started

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _failures(report: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    if not report.exists():
        return []
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            out.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return out


def load_cache(root: Path) -> dict[str, dict[str, object]]:
    path = root / CACHE_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("entries", {}))


def save_cache(root: Path, entries: dict[str, dict[str, object]]) -> None:
    doc = {"schema": "openinfusion.mutation-cache/1", "entries": dict(sorted(entries.items()))}
    (root / CACHE_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def check_requirement(
    root: Path,
    requirement: str,
    *,
    links: list[CodeLink],
    tests: list[str],
    cache: dict[str, dict[str, object]],
    sandbox: Callable[[], Sandbox],
    deadline: float,
) -> list[MutantResult] | None:
    """Mutants of ``requirement``'s linked code judged by ``tests``; None if the budget ran out first."""
    by_file: dict[str, list[CodeLink]] = {}
    strong = [lk for lk in links if lk.kind is not LinkKind.MODULE]
    for link in strong or links:
        by_file.setdefault(link.unit.path, []).append(link)
    candidates: list[tuple[str, Site]] = []
    sources = {p: (root / p).read_text(encoding="utf-8") for p in by_file}
    for path, file_links in sorted(by_file.items()):
        candidates += [(path, s) for s in candidate_sites(sources[path], file_links)]
    results: list[MutantResult] = []
    for path, site in _spread_pairs(candidates, MAX_MUTANTS):
        mutated = apply(sources[path], site.index)
        key = cache_key(mutated, site, tests, root)
        unit = next((lk.unit.qualname for lk in by_file[path] if lk.unit.first <= site.line <= lk.unit.last), path)
        hit = cache.get(key)
        if hit is None:
            if time.monotonic() > deadline:
                return None
            outcome, failing, seconds = sandbox().run(path, mutated, tests)
            hit = {
                "requirement": requirement,
                "unit": unit,
                "path": path,
                "line": site.line,
                "mutant": site.description,
                "outcome": outcome,
                "killed_by": failing,
                "seconds": round(seconds, 1),
            }
            cache[key] = hit
        result = MutantResult(requirement, unit, path, site, str(hit["outcome"]), list(hit["killed_by"]))  # type: ignore[call-overload]
        results.append(result)
        if result.outcome == "killed":
            break
    return results


def _spread_pairs(candidates: list[tuple[str, Site]], k: int) -> list[tuple[str, Site]]:
    """Up to ``k`` sites evenly spread over ``candidates`` (a fixed choice, so cache keys stay stable)."""
    if len(candidates) <= k:
        return candidates
    step = len(candidates) / k
    return [candidates[int(i * step + step / 2)] for i in range(k)]
