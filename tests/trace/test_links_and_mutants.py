"""AST links name real functions and classes; mutants change behaviour; a test that checks it kills one."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from openinfusion.trace.links import LinkKind, links_in_source
from openinfusion.trace.mutate import Sandbox, apply, candidate_sites, sites

PATTERN = re.compile(r"T-REQ-[0-9]+")

SOURCE = textwrap.dedent('''
    """Module naming T-REQ-9."""
    from enum import Enum


    class Mode(Enum):
        A = 1
        B = 2


    TABLE = (
        dict(mode=Mode.A, req="T-REQ-3"),
    )


    class Limiter:
        """Keeps the rate under the limit (T-REQ-1)."""

        def allowed(self, rate: int, limit: int) -> bool:
            # T-REQ-2: equal to the limit is allowed
            return rate <= limit and not rate < 0
''')


def test_links_attribute_each_id_to_its_unit() -> None:
    links = {(lk.requirement, lk.kind, lk.unit.qualname) for lk in links_in_source(SOURCE, "src/pkg/mod.py", PATTERN)}
    assert links == {
        ("T-REQ-9", LinkKind.MODULE, "pkg.mod"),
        ("T-REQ-3", LinkKind.DATA, "pkg.mod.TABLE"),
        ("T-REQ-1", LinkKind.DOCSTRING, "pkg.mod.Limiter"),
        ("T-REQ-2", LinkKind.BODY, "pkg.mod.Limiter.allowed"),
    }


def test_mutants_stay_inside_the_linked_unit_and_change_the_code() -> None:
    links = [lk for lk in links_in_source(SOURCE, "src/pkg/mod.py", PATTERN) if lk.requirement == "T-REQ-2"]
    chosen = candidate_sites(SOURCE, links)
    assert {s.description for s in chosen} >= {"LtE -> Gt", "And -> Or", "drop not", "Lt -> GtE"}
    assert all(s.line >= 19 for s in chosen)  # inside Limiter.allowed only
    data = [lk for lk in links_in_source(SOURCE, "src/pkg/mod.py", PATTERN) if lk.requirement == "T-REQ-3"]
    assert [s.description for s in candidate_sites(SOURCE, data)] == ["Mode.A -> Mode.B"]
    original = " ".join(SOURCE.split())
    assert all(" ".join(apply(SOURCE, site.index).split()) != original for site, _ in sites(SOURCE))
    mutated = apply(SOURCE, next(s.index for s in chosen if s.description == "LtE -> Gt"))
    namespace: dict[str, object] = {}
    exec(compile(mutated, "m", "exec"), namespace)  # the mutant is valid Python with the operator changed
    assert namespace["Limiter"]().allowed(5, 5) is False  # type: ignore[operator]


def test_a_checking_test_kills_the_mutant_and_a_blind_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "src" / "pkg" / "mod.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").write_text(
        "from pkg.mod import Limiter\n\n"
        "def test_checks():\n    assert Limiter().allowed(5, 5) and not Limiter().allowed(6, 5)\n\n"
        "def test_blind():\n    Limiter().allowed(5, 5)\n",
        encoding="utf-8",
    )
    links = [lk for lk in links_in_source(SOURCE, "src/pkg/mod.py", PATTERN) if lk.requirement == "T-REQ-2"]
    site = next(s for s in candidate_sites(SOURCE, links) if s.description == "LtE -> Gt")
    box = Sandbox(tmp_path)
    try:
        mutated = apply(SOURCE, site.index)
        killed = box.run("src/pkg/mod.py", mutated, ["tests/test_mod.py::test_checks"])
        blind = box.run("src/pkg/mod.py", mutated, ["tests/test_mod.py::test_blind"])
    finally:
        box.close()
    assert killed[0] == "killed" and killed[1] == ["tests.test_mod::test_checks"]
    assert blind[0] == "survived"
