"""Per safety requirement: is a linked test shown to fail when the linked code is broken?

Joins the AST links (:mod:`openinfusion.trace.links`), the tests' ``req`` markers and the mutation
check (:mod:`openinfusion.trace.mutate`) into one verdict per safety requirement:

``verified``       a linked test killed a mutant of the linked code (the test names the killer);
``unkilled``       every mutant tried survived: the tests do not check this behaviour (an error for function,
                   class or data links; a warning for module-only links, whose mutants may hit unrelated code);
``no-code``        no code names the requirement, or no test is marked with it (an error);
``no-sites``       the linked units hold nothing a mutant operator can change, e.g. an enum (a warning);
``not-evaluated``  the budget ran out, or a run timed out, before a verdict (a warning, never counted verified).

A timed-out run is not counted as a kill (mutmut counts it so): on a shared machine a slow test is more often
the cause than a mutant that loops. A mutant that breaks the import (pytest exit 2, e.g. an alarm code swapped
into a duplicate that the catalogue refuses at build) is *incompetent*: it counts neither way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from openinfusion.trace.links import CodeLink, LinkKind, scan_links
from openinfusion.trace.model import RequirementKind, SafetyModel
from openinfusion.trace.mutate import MutantResult, Sandbox, check_requirement, load_cache, save_cache
from openinfusion.trace.scan import CODE_DIR, ScannedTest, requirement_pattern

DEFAULT_BUDGET_S: Final = 480.0


@dataclass(frozen=True, slots=True)
class RequirementVerdict:
    """The mutation verdict of one safety requirement."""

    requirement: str
    status: str  # verified | unkilled | no-code | not-evaluated
    strength: str  # "unit" (function/class/data links) or "module" (module links only)
    units: tuple[str, ...]
    mutants: tuple[MutantResult, ...]

    @property
    def killer(self) -> str | None:
        """The test that killed a mutant, if one did."""
        return next((m.killed_by[0] for m in self.mutants if m.outcome == "killed" and m.killed_by), None)


SLOW_TEST_DIRS: Final = ("tests/sim/", "tests/lab/", "tests/scenarios/")


def fast_first(nodeids: list[str]) -> list[str]:
    """The linked tests to run: the unit-level ones when there are any, else all (simulation tests are slow)."""
    fast = [n for n in nodeids if not n.startswith(SLOW_TEST_DIRS)]
    return fast or nodeids


def _status(results: list[MutantResult]) -> str:
    """verified (a kill), unkilled (every mutant judged, none killed), not-evaluated (a run timed out), no-sites."""
    if not results:
        return "no-sites"
    if any(r.outcome == "killed" for r in results):
        return "verified"
    if any(r.outcome == "survived" for r in results) and not any(r.outcome == "timeout" for r in results):
        return "unkilled"
    return "not-evaluated"  # a run timed out, or every mutant was incompetent (it broke the import)


def code_links(root: Path, model: SafetyModel) -> list[CodeLink]:
    """The implementation links (evidence links from verification code left out) to known requirements."""
    known = {r.id for r in model.requirements}
    links = scan_links(root, CODE_DIR, requirement_pattern(known))
    return [lk for lk in links if lk.requirement in known and not lk.evidence]


def verify(
    root: Path, model: SafetyModel, tests: list[ScannedTest], *, budget_s: float = DEFAULT_BUDGET_S, run: bool = True
) -> list[RequirementVerdict]:
    """A verdict per safety requirement; mutants missing from the cache run if ``run`` within ``budget_s``."""
    links = code_links(root, model)
    cache = load_cache(root)
    deadline = time.monotonic() + (budget_s if run else -1.0)
    box: list[Sandbox] = []

    def sandbox() -> Sandbox:
        if not box:
            box.append(Sandbox(root))
        return box[0]

    verdicts = []
    try:
        for req in model.requirements:
            if req.kind is not RequirementKind.SAFETY:
                continue
            mine = [lk for lk in links if lk.requirement == req.id]
            strong = [lk for lk in mine if lk.kind is not LinkKind.MODULE]
            units = tuple(sorted({lk.unit.qualname for lk in (strong or mine)}))
            strength = "unit" if strong else "module"
            linked_tests = fast_first(sorted(t.nodeid for t in tests if req.id in t.requirements))
            if not mine or not linked_tests:
                verdicts.append(RequirementVerdict(req.id, "no-code", strength, units, ()))
                continue
            results = check_requirement(
                root, req.id, links=mine, tests=linked_tests, cache=cache, sandbox=sandbox, deadline=deadline
            )
            if results is None:
                verdicts.append(RequirementVerdict(req.id, "not-evaluated", strength, units, ()))
                continue
            status = _status(results)
            verdicts.append(RequirementVerdict(req.id, status, strength, units, tuple(results)))
    finally:
        if box:
            box[0].close()
        if run:
            save_cache(root, cache)
    return verdicts
