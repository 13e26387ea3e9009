"""The assurance case in Goal Structuring Notation, built from the safety model and its evidence.

Top goal: the pump is acceptably safe for its intended use. Strategy: argue over every identified
hazard (safety/hazards.yaml, the FDA infusion pump guidance's hazard-based case). Each hazard goal is
argued over the risk controls that mitigate it; each control over the requirements that specify it; each
requirement goal is supported by solutions:

- mutation evidence: the linked test that kills a mutant of the linked code (the trace);
- test results: the linked tests passed in the recorded run (JUnit XML), when given;
- campaign evidence: each oracle property the requirement is linked to, "0 violations in N runs",
  when a campaign report is given (a property with violations is a failed solution and an open item).

A goal with no solution, or whose evidence failed, is an *open item*, listed first on the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openinfusion.assurance.evidence import Evidence, junit_outcomes, provenance, read_json
from openinfusion.lab.campaign.oracle import PROPERTIES
from openinfusion.trace.model import SafetyModel
from openinfusion.trace.verification import RequirementVerdict


@dataclass(slots=True)
class Node:
    """A GSN element: ``kind`` is goal, strategy, solution, context or undeveloped (an open item)."""

    ident: str
    kind: str
    text: str
    children: list[Node] = field(default_factory=list)
    evidence: Evidence | None = None

    @property
    def open(self) -> bool:
        """True if this goal (or a goal under it) lacks passing evidence."""
        if self.kind == "undeveloped":
            return True
        if self.kind == "solution":
            return not (self.evidence is not None and self.evidence.ok)
        return any(c.open for c in self.children) or (self.kind == "goal" and not self.children)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Where the evidence is (all optional except the repository root)."""

    root: Path
    verdicts: tuple[RequirementVerdict, ...]
    junit: Path | None = None
    campaign: Path | None = None


def _requirement_goal(
    req_id: str,
    *,
    title: str,
    inputs: Inputs,
    tests: dict[str, bool] | None,
    campaign: dict[str, Any] | None,
    campaign_src: tuple[str, str, str] | None,
) -> Node:
    goal = Node(f"G-{req_id}", "goal", f"{req_id} ({title}) is met")
    verdict = next((v for v in inputs.verdicts if v.requirement == req_id), None)
    if verdict is not None and verdict.status == "verified" and verdict.killer is not None:
        killed = next(m for m in verdict.mutants if m.outcome == "killed")
        test_file = _test_file(verdict.killer)
        date, commit = provenance(inputs.root, test_file)
        text = (
            f"{verdict.killer} fails on mutant '{killed.site.description}' of {killed.unit} (line {killed.site.line})"
        )
        evidence = Evidence(f"Sn-M-{req_id}", "mutation kill", test_file, date, commit, True)
        goal.children.append(Node(f"Sn-M-{req_id}", "solution", text, evidence=evidence))
    elif verdict is not None:
        text = f"no linked test shown to fail on broken code ({verdict.status})"
        goal.children.append(Node(f"U-M-{req_id}", "undeveloped", text))
    if tests is not None and inputs.junit is not None:
        linked = [n for n in tests if n in _linked_tests(inputs, req_id)]
        if linked:
            passed = all(tests[n] for n in linked)
            date, commit = provenance(inputs.root, str(inputs.junit))
            evidence = Evidence(f"Sn-T-{req_id}", "test results", str(inputs.junit), date, commit, passed)
            text = f"{len(linked)} linked test(s) {'passed' if passed else 'FAILED'}"
            goal.children.append(Node(f"Sn-T-{req_id}", "solution", text, evidence=evidence))
    if campaign is not None and campaign_src is not None:
        for prop, reqs in PROPERTIES.items():
            stats = campaign.get("properties", {}).get(prop)
            if req_id in reqs and stats is not None:
                ok = stats["runs_violating"] == 0
                goal.children.append(
                    Node(
                        f"Sn-C-{prop}-{req_id}",
                        "solution",
                        f"campaign property {prop}: {stats['runs_violating']} of {campaign['runs_done']} runs violate",
                        evidence=Evidence(
                            f"Sn-C-{prop}", "campaign", campaign_src[0], campaign_src[1], campaign_src[2], ok
                        ),
                    )
                )
    if not goal.children:
        goal.children.append(Node(f"U-{req_id}", "undeveloped", "no evidence"))
    return goal


def _test_file(killer: str) -> str:
    """The test file of a JUnit-style killer name (``tests.pump.test_x::test_y`` -> ``tests/pump/test_x.py``)."""
    module = killer.split("::", maxsplit=1)[0]
    return module if module.endswith(".py") else module.replace(".", "/") + ".py"


_LINKED: dict[str, set[str]] = {}


def _linked_tests(inputs: Inputs, req_id: str) -> set[str]:
    from openinfusion.trace.scan import scan_tests

    if not _LINKED:
        tests, _ = scan_tests(inputs.root)
        for t in tests:
            for r in t.requirements:
                _LINKED.setdefault(r, set()).add(t.nodeid)
    return _LINKED.get(req_id, set())


def build(model: SafetyModel, inputs: Inputs) -> Node:
    """The whole case, top goal first."""
    tests = junit_outcomes(inputs.junit) if inputs.junit is not None else None
    campaign = None
    campaign_src = None
    if inputs.campaign is not None:
        report_path = inputs.campaign / "report.json"
        campaign = read_json(report_path, "campaign report")
        date, commit = provenance(inputs.root, str(report_path))
        campaign_src = (str(report_path), date, commit)
    titles = {r.id: r.title for r in model.requirements}
    top = Node("G0", "goal", "The openinfusion pump is acceptably safe for its intended use")
    top.children.append(
        Node(
            "C0",
            "context",
            "Intended use: IV infusion of fluids and drugs (LVP, syringe, PCA); "
            "FDA infusion pump guidance; IEC 60601-2-24; ISO 14971 risk management",
        )
    )
    s0 = Node("S0", "strategy", "Argue over each identified hazard (safety/hazards.yaml)")
    top.children.append(s0)
    for h in model.hazards:
        hg = Node(f"G-{h.id}", "goal", f"{h.id}: {h.hazard} is mitigated (severity {h.severity.value})")
        sh = Node(f"S-{h.id}", "strategy", "Argue over the risk controls that mitigate it")
        hg.children.append(sh)
        for c in model.controls_of_hazard(h.id):
            cg = Node(f"G-{h.id}-{c.id}", "goal", f"{c.id}: {c.title} is effective")
            cg.children += [
                _requirement_goal(
                    r, title=titles[r], inputs=inputs, tests=tests, campaign=campaign, campaign_src=campaign_src
                )
                for r in c.requirements
            ]
            sh.children.append(cg)
        if not sh.children:
            sh.children.append(Node(f"U-{h.id}", "undeveloped", "no risk control"))
        s0.children.append(hg)
    return top


def walk(node: Node) -> list[Node]:
    """Every node, depth first."""
    out = [node]
    for c in node.children:
        out += walk(c)
    return out
