"""The trace: hazard -> control -> requirement -> code -> test, its counts, and the problems found.

Problems that fail CI (level ``error``): a safety requirement no test verifies; a requirement adopted from a
public set (GPCA, Open PCA) that no test verifies, whatever its kind; a safety requirement no risk control
reaches; a hazard no control mitigates; a test naming an unknown requirement, or a ``req`` marker that cannot be
read statically. Warnings: a requirement no code names; code naming an unknown requirement.
A control naming an unknown hazard or requirement, a duplicate ID or a malformed file is an InputError when
the model is loaded (:func:`~openinfusion.trace.model.load_safety_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Final

from openinfusion.trace.model import (
    REQUIREMENTS_FILE,
    RequirementKind,
    RequirementSource,
    SafetyModel,
    load_safety_model,
)
from openinfusion.trace.scan import CODE_DIR, CodeRef, ScannedTest, requirement_pattern, scan_code, scan_tests
from openinfusion.trace.verification import DEFAULT_BUDGET_S, RequirementVerdict, verify


class Level(StrEnum):
    """An ``error`` fails CI (``openinfusion trace`` exits 1 in strict mode); a ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


class ProblemCode(StrEnum):
    """One code per kind of problem, so CI logs and tests can tell them apart."""

    SAFETY_REQUIREMENT_UNTESTED = "safety-requirement-untested"
    ADOPTED_REQUIREMENT_UNTESTED = "adopted-requirement-untested"
    SAFETY_REQUIREMENT_UNCONTROLLED = "safety-requirement-uncontrolled"
    HAZARD_UNCONTROLLED = "hazard-uncontrolled"
    UNKNOWN_REQUIREMENT_IN_TEST = "unknown-requirement-in-test"
    UNREADABLE_MARKER = "unreadable-req-marker"
    REQUIREMENT_NOT_IN_CODE = "requirement-not-in-code"
    UNKNOWN_REQUIREMENT_IN_CODE = "unknown-requirement-in-code"
    SAFETY_REQUIREMENT_NOT_MUTATION_VERIFIED = "safety-requirement-not-mutation-verified"
    MUTATION_NOT_EVALUATED = "mutation-not-evaluated"
    MODULE_LINK_ONLY = "requirement-linked-to-module-only"

    @property
    def level(self) -> Level:
        """Whether this kind of problem fails CI."""
        return _WARNINGS.get(self, Level.ERROR)


_WARNINGS: Final = {
    ProblemCode.REQUIREMENT_NOT_IN_CODE: Level.WARNING,
    ProblemCode.UNKNOWN_REQUIREMENT_IN_CODE: Level.WARNING,
    ProblemCode.MUTATION_NOT_EVALUATED: Level.WARNING,
    ProblemCode.MODULE_LINK_ONLY: Level.WARNING,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """A gap in the trace: ``subject`` is the ID, test node ID or ``file:line`` it is about."""

    code: ProblemCode
    subject: str
    message: str

    @property
    def level(self) -> Level:
        """Error or warning, from the code."""
        return self.code.level

    def __str__(self) -> str:
        return f"{self.level}: {self.subject}: {self.message} [{self.code}]"


@dataclass(frozen=True, slots=True)
class Summary:
    """The counts of the trace. A link is one reference from one item to the next in the chain."""

    hazards: int
    controls: int
    requirements: int
    safety_requirements: int
    functional_requirements: int
    requirements_with_tests: int
    safety_requirements_with_tests: int
    adopted_requirements: int
    adopted_requirements_with_tests: int
    requirements_with_code: int
    tests: int
    tests_with_req_markers: int
    hazard_control_links: int
    control_requirement_links: int
    requirement_code_links: int
    requirement_test_links: int
    errors: int
    warnings: int

    def rows(self) -> list[tuple[str, int]]:
        """(label, count) in declaration order, for tables."""
        return [(f.name.replace("_", " ").capitalize(), getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True, slots=True)
class Trace:
    """The safety model joined with the tests that verify it and the code that names it."""

    model: SafetyModel
    tests: tuple[ScannedTest, ...]
    code: tuple[CodeRef, ...]
    problems: tuple[Problem, ...]
    verdicts: tuple[RequirementVerdict, ...] = ()  # the mutation criterion, when it was checked

    def tests_of(self, requirement_id: str) -> tuple[ScannedTest, ...]:
        """The tests whose ``req`` markers name ``requirement_id``."""
        return tuple(t for t in self.tests if requirement_id in t.requirements)

    def code_of(self, requirement_id: str) -> tuple[CodeRef, ...]:
        """Where the code names ``requirement_id``."""
        return tuple(c for c in self.code if c.requirement == requirement_id)

    @property
    def failed(self) -> bool:
        """True if any problem is an error."""
        return any(p.level is Level.ERROR for p in self.problems)

    @property
    def summary(self) -> Summary:
        """The counts, computed from the trace."""
        model = self.model
        safety = [r for r in model.requirements if r.kind is RequirementKind.SAFETY]
        adopted = [r for r in model.requirements if r.source is RequirementSource.ADOPTED]
        known = {r.id for r in model.requirements}
        return Summary(
            hazards=len(model.hazards),
            controls=len(model.controls),
            requirements=len(model.requirements),
            safety_requirements=len(safety),
            functional_requirements=len(model.requirements) - len(safety),
            requirements_with_tests=sum(1 for r in model.requirements if self.tests_of(r.id)),
            safety_requirements_with_tests=sum(1 for r in safety if self.tests_of(r.id)),
            adopted_requirements=len(adopted),
            adopted_requirements_with_tests=sum(1 for r in adopted if self.tests_of(r.id)),
            requirements_with_code=sum(1 for r in model.requirements if self.code_of(r.id)),
            tests=len(self.tests),
            tests_with_req_markers=sum(1 for t in self.tests if t.requirements),
            hazard_control_links=sum(len(c.mitigates) for c in model.controls),
            control_requirement_links=sum(len(c.requirements) for c in model.controls),
            requirement_code_links=len(self.code),
            requirement_test_links=sum(1 for t in self.tests for r in t.requirements if r in known),
            errors=sum(1 for p in self.problems if p.level is Level.ERROR),
            warnings=sum(1 for p in self.problems if p.level is Level.WARNING),
        )


def build_trace(root: Path, *, mutation: bool = False, budget_s: float = DEFAULT_BUDGET_S) -> Trace:
    """Load the safety model under ``root``, scan ``root/tests`` and ``root/src/openinfusion``, find the gaps.

    With ``mutation``, each safety requirement must also have a linked test that kills a mutant of its linked
    code (:mod:`openinfusion.trace.verification`); mutants missing from the cache run within ``budget_s``.
    Raises InputError for a malformed safety file or an unparsable Python file.
    """
    model = load_safety_model(root)
    known = {r.id for r in model.requirements}
    tests, marker_issues = scan_tests(root)
    found = scan_code(root, requirement_pattern(known))
    code = tuple(ref for ref in found if ref.requirement in known)
    partial = Trace(model, tuple(tests), code, ())

    problems = [Problem(ProblemCode.UNREADABLE_MARKER, i.where, i.message) for i in marker_issues]
    problems += [
        Problem(
            ProblemCode.UNKNOWN_REQUIREMENT_IN_TEST,
            t.nodeid,
            f"names unknown requirement {r!r} (not in {REQUIREMENTS_FILE})",
        )
        for t in tests
        for r in t.requirements
        if r not in known
    ]
    problems += [
        Problem(ProblemCode.HAZARD_UNCONTROLLED, h.id, "no risk control mitigates this hazard")
        for h in model.hazards
        if not model.controls_of_hazard(h.id)
    ]
    safety = [r for r in model.requirements if r.kind is RequirementKind.SAFETY]
    problems += [
        Problem(ProblemCode.SAFETY_REQUIREMENT_UNCONTROLLED, r.id, "safety requirement reached by no risk control")
        for r in safety
        if not model.controls_of_requirement(r.id)
    ]
    problems += [
        Problem(ProblemCode.SAFETY_REQUIREMENT_UNTESTED, r.id, f'no test verifies it (@pytest.mark.req("{r.id}"))')
        for r in safety
        if not partial.tests_of(r.id)
    ]
    problems += [
        Problem(
            ProblemCode.ADOPTED_REQUIREMENT_UNTESTED,
            r.id,
            f'adopted from {r.ref}, but no test verifies it (@pytest.mark.req("{r.id}")): add one or drop the adoption',
        )
        for r in model.requirements
        if r.source is RequirementSource.ADOPTED and r.kind is not RequirementKind.SAFETY and not partial.tests_of(r.id)
    ]  # an adopted safety requirement without a test is already a safety-requirement-untested error
    problems += [
        Problem(ProblemCode.REQUIREMENT_NOT_IN_CODE, r.id, f"not named anywhere in {CODE_DIR}")
        for r in model.requirements
        if not partial.code_of(r.id)
    ]
    problems += [
        Problem(
            ProblemCode.UNKNOWN_REQUIREMENT_IN_CODE,
            f"{ref.path}:{ref.line}",
            f"names unknown requirement {ref.requirement!r}",
        )
        for ref in found
        if ref.requirement not in known
    ]
    verdicts: list[RequirementVerdict] = verify(root, model, tests, budget_s=budget_s) if mutation else []
    problems += _mutation_problems(verdicts)
    return Trace(model, tuple(tests), code, tuple(problems), tuple(verdicts))


_VERDICT_MESSAGES: Final = {
    "unkilled": "no linked test failed on any mutant of its linked code",
    "no-code": "no function, class or data in the code names it, or no test is marked with it",
    "no-sites": "its linked code has nothing a mutant operator can change",
}


def _mutation_problems(verdicts: list[RequirementVerdict]) -> list[Problem]:
    problems = []
    for v in verdicts:
        weak = v.status == "no-sites" or (v.status == "unkilled" and v.strength == "module")
        if v.status == "not-evaluated":
            message = "no verdict yet: the budget ran out or a linked test run timed out"
            problems.append(Problem(ProblemCode.MUTATION_NOT_EVALUATED, v.requirement, message))
        elif weak:
            message = f"{_VERDICT_MESSAGES[v.status]} (units: {', '.join(v.units) or 'none'}): criterion not applicable"
            problems.append(Problem(ProblemCode.MUTATION_NOT_EVALUATED, v.requirement, message))
        elif v.status != "verified":
            message = f"{_VERDICT_MESSAGES[v.status]} (units: {', '.join(v.units) or 'none'})"
            problems.append(Problem(ProblemCode.SAFETY_REQUIREMENT_NOT_MUTATION_VERIFIED, v.requirement, message))
        if v.strength == "module" and v.status != "no-code":
            message = (
                "linked to its module(s) only: name it in the docstring of the function or class that implements it"
            )
            problems.append(Problem(ProblemCode.MODULE_LINK_ONLY, v.requirement, message))
    return problems
