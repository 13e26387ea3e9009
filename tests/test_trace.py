"""The traceability tool, on small safety trees built here, and on the repository's own safety files.

Expected counts, lines and messages come from the trees written below, counted by hand.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from openinfusion.cli.trace import app
from openinfusion.errors import InputError
from openinfusion.trace import (
    Level,
    ProblemCode,
    RefKind,
    RequirementKind,
    Summary,
    build_trace,
    load_safety_model,
    render_markdown,
    scan_code_source,
    scan_test_source,
)
from openinfusion.trace.scan import requirement_pattern

REPO = Path(__file__).resolve().parents[1]

REQUIREMENTS = """\
schema: openinfusion.requirements/1
requirements:
  - id: T-SAFE-1
    title: First safety requirement
    text: Something safe.
    kind: safety
    source: own
  - id: T-SAFE-2
    title: Adopted safety requirement
    text: Something adopted.
    kind: safety
    source: adopted
    ref: PUB-7
  - id: T-FUNC-1
    title: A function
    text: Something useful.
    kind: functional
    source: own
"""

HAZARDS = """\
schema: openinfusion.hazards/1
hazards:
  - id: H-A
    hazard: Over-infusion | too fast
    category: operational
    pump_type: all
    causes: [rate too high]
    harm: overdose
    severity: catastrophic
    ref: [GPCA 1.1]
  - id: H-B
    hazard: Air embolism
    category: mechanical
    pump_type: lvp
    causes: [air in line]
    harm: embolism
    severity: critical
"""

CONTROLS = """\
schema: openinfusion.controls/1
controls:
  - id: RC-A
    title: Limits
    control: Keeps the rate within limits.
    kind: protective
    mitigates: [H-A]
    requirements: [T-SAFE-1, T-FUNC-1]
  - id: RC-B
    title: Detector
    control: Stops on air.
    kind: protective
    mitigates:
      - H-A
      - H-B
    requirements: [T-SAFE-2]
"""

TESTS = """\
import pytest


@pytest.mark.req("T-SAFE-1")
def test_one():
    pass


class TestGroup:
    @pytest.mark.req("T-SAFE-2", "T-SAFE-1")
    def test_two(self):
        pass

    def helper(self):
        pass


def test_unmarked():
    pass
"""

CODE = '''\
"""Module.

Implements T-SAFE-1.
"""
X = "T-SAFE-2"  # also T-SAFE-1
T_FUNC_1 = 1
'''


def make_tree(root: Path, **override: str) -> Path:
    """A repository with the files above; ``override`` replaces one by name (e.g. ``controls=...``)."""
    files = {
        "safety/requirements.yaml": override.get("requirements", REQUIREMENTS),
        "safety/hazards.yaml": override.get("hazards", HAZARDS),
        "safety/controls.yaml": override.get("controls", CONTROLS),
        "tests/test_a.py": override.get("tests", TESTS),
        "src/openinfusion/mod.py": override.get("code", CODE),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


# --- counts and links --------------------------------------------------------------------------------


def test_counts_of_a_small_tree(tmp_path: Path) -> None:
    trace = build_trace(make_tree(tmp_path))
    assert trace.summary == Summary(
        hazards=2,
        controls=2,
        requirements=3,
        safety_requirements=2,
        functional_requirements=1,
        requirements_with_tests=2,  # T-SAFE-1, T-SAFE-2
        safety_requirements_with_tests=2,
        adopted_requirements=1,  # T-SAFE-2
        adopted_requirements_with_tests=1,
        requirements_with_code=2,  # T-FUNC-1 only as an identifier, which does not count
        tests=3,
        tests_with_req_markers=2,
        hazard_control_links=3,  # RC-A -> H-A, RC-B -> H-A, H-B
        control_requirement_links=3,
        requirement_code_links=3,  # docstring line 3, string and comment on line 5
        requirement_test_links=3,  # test_one 1, test_two 2
        errors=0,
        warnings=1,
    )
    assert not trace.failed
    [warning] = trace.problems
    assert (warning.code, warning.subject, warning.level) == (
        ProblemCode.REQUIREMENT_NOT_IN_CODE,
        "T-FUNC-1",
        Level.WARNING,
    )
    assert [t.nodeid for t in trace.tests_of("T-SAFE-1")] == [
        "tests/test_a.py::test_one",
        "tests/test_a.py::TestGroup::test_two",
    ]
    assert [(c.path, c.line, c.kind) for c in trace.code_of("T-SAFE-1")] == [
        ("src/openinfusion/mod.py", 3, RefKind.STRING),
        ("src/openinfusion/mod.py", 5, RefKind.COMMENT),
    ]
    assert [c.id for c in trace.model.controls_of_hazard("H-A")] == ["RC-A", "RC-B"]


def test_markers_from_module_class_and_function_are_combined() -> None:
    source = textwrap.dedent(
        """\
        import pytest
        from pytest import mark

        pytestmark = [pytest.mark.slow, pytest.mark.req("M-1")]


        @pytest.mark.req("C-1")
        class TestOuter:
            pytestmark = pytest.mark.req("C-2")

            class TestInner:
                @mark.req("F-1", "M-1")
                async def test_deep(self):
                    pass

            def test_shallow(self):
                pass


        class Helper:
            @pytest.mark.req("X-1")
            def test_not_collected(self):
                pass


        def not_a_test():
            pass
        """
    )
    tests, issues = scan_test_source(source, "tests/t.py")
    assert issues == []
    assert [(t.nodeid, t.line, t.requirements) for t in tests] == [
        ("tests/t.py::TestOuter::TestInner::test_deep", 13, ("M-1", "C-1", "C-2", "F-1")),
        ("tests/t.py::TestOuter::test_shallow", 16, ("M-1", "C-1", "C-2")),
    ]


def test_a_requirement_id_is_not_found_inside_a_longer_one() -> None:
    pattern = requirement_pattern(["T-SAFE-1", "UMN-GPCA-REQ-06"])
    source = '# T-SAFE-10 XT-SAFE-1 T-SAFE-1x GPCA-REQ-06\ny = "UMN-GPCA-REQ-06."\n'
    refs = scan_code_source(source, "m.py", pattern)
    assert [(r.requirement, r.line) for r in refs] == [("T-SAFE-10", 1), ("UMN-GPCA-REQ-06", 2)]


def test_code_naming_an_unknown_requirement_is_a_warning(tmp_path: Path) -> None:
    trace = build_trace(make_tree(tmp_path, code=CODE + "# see T-FUNC-1 and T-SAFE-10\n"))
    unknown = [p for p in trace.problems if p.code is ProblemCode.UNKNOWN_REQUIREMENT_IN_CODE]
    assert [(p.subject, p.level) for p in unknown] == [("src/openinfusion/mod.py:7", Level.WARNING)]
    assert "'T-SAFE-10'" in unknown[0].message
    assert not trace.failed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["T-SAFE-1", "T-SAFE-2", "T-FUNC-1"]), st.sampled_from(list(RefKind))),
        max_size=12,
    )
)
def test_every_planted_id_is_found_at_its_line(planted: list[tuple[str, RefKind]]) -> None:
    lines, expected = ["T_SAFE_1 = 0  # an identifier is not a reference"], []
    for i, (rid, kind) in enumerate(planted):
        lines.append(f"# implements {rid}" if kind is RefKind.COMMENT else f'v{i} = "row {rid}"')
        expected.append((rid, len(lines), kind))
    refs = scan_code_source("\n".join(lines) + "\n", "m.py", requirement_pattern(["T-SAFE-1", "T-FUNC-1"]))
    assert [(r.requirement, r.line, r.kind) for r in refs] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["A-1", "B-2", "C-3"]), max_size=3, unique=True), max_size=8))
def test_every_test_keeps_the_ids_its_markers_name(assigned: list[list[str]]) -> None:
    source = "import pytest\n"
    for i, ids in enumerate(assigned):
        args = ", ".join(f'"{r}"' for r in ids)
        source += (f"@pytest.mark.req({args})\n" if ids else "") + f"def test_{i}():\n    pass\n"
    tests, _ = scan_test_source(source, "t.py")
    assert [t.requirements for t in tests] == [tuple(ids) for ids in assigned]


# --- problems that fail CI, each with its own message -------------------------------------------------


def test_a_safety_requirement_without_a_test_fails(tmp_path: Path) -> None:
    tests = TESTS.replace('@pytest.mark.req("T-SAFE-2", "T-SAFE-1")', '@pytest.mark.req("T-SAFE-1")')
    trace = build_trace(make_tree(tmp_path, tests=tests))
    assert trace.failed
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.SAFETY_REQUIREMENT_UNTESTED, "T-SAFE-2")
    assert 'no test verifies it (@pytest.mark.req("T-SAFE-2"))' in problem.message


def test_an_adopted_requirement_without_a_test_fails_whatever_its_kind(tmp_path: Path) -> None:
    adopted = REQUIREMENTS + "  - id: T-FUNC-2\n    title: Adopted function\n    text: Public.\n"
    adopted += "    kind: functional\n    source: adopted\n    ref: PUB-9\n"
    trace = build_trace(make_tree(tmp_path, requirements=adopted))
    assert trace.failed
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.ADOPTED_REQUIREMENT_UNTESTED, "T-FUNC-2")
    assert "adopted from PUB-9" in problem.message
    assert (trace.summary.adopted_requirements, trace.summary.adopted_requirements_with_tests) == (2, 1)


def test_a_functional_requirement_without_a_test_does_not_fail(tmp_path: Path) -> None:
    trace = build_trace(make_tree(tmp_path))
    assert trace.tests_of("T-FUNC-1") == ()
    assert not trace.failed


def test_a_test_naming_an_unknown_requirement_fails(tmp_path: Path) -> None:
    tests = TESTS + '\n\n@pytest.mark.req("T-SAFE-1", "T-NOPE-1")\ndef test_typo():\n    pass\n'
    trace = build_trace(make_tree(tmp_path, tests=tests))
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.UNKNOWN_REQUIREMENT_IN_TEST, "tests/test_a.py::test_typo")
    assert "'T-NOPE-1'" in problem.message


def test_a_marker_that_cannot_be_read_statically_fails(tmp_path: Path) -> None:
    tests = TESTS + "\n\nIDS = 'T-SAFE-1'\n\n\n@pytest.mark.req(IDS)\ndef test_indirect():\n    pass\n"
    trace = build_trace(make_tree(tmp_path, tests=tests))
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.UNREADABLE_MARKER, "tests/test_a.py::test_indirect")
    assert "not a string literal" in problem.message


def test_a_hazard_without_a_control_fails(tmp_path: Path) -> None:
    hazards = HAZARDS + (
        "  - id: H-C\n    hazard: Loss of power\n    category: electrical\n    pump_type: all\n"
        "    causes: [battery]\n    harm: therapy stops\n    severity: critical\n"
    )
    trace = build_trace(make_tree(tmp_path, hazards=hazards))
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.HAZARD_UNCONTROLLED, "H-C")
    assert "no risk control mitigates" in problem.message


def test_a_safety_requirement_without_a_control_fails(tmp_path: Path) -> None:
    requirements = REQUIREMENTS + (
        "  - id: T-SAFE-3\n    title: Orphan\n    text: Nothing reaches it.\n    kind: safety\n    source: own\n"
    )
    tests = TESTS + '\n\n@pytest.mark.req("T-SAFE-3")\ndef test_three():\n    pass\n'
    trace = build_trace(make_tree(tmp_path, requirements=requirements, tests=tests))
    [problem] = [p for p in trace.problems if p.level is Level.ERROR]
    assert (problem.code, problem.subject) == (ProblemCode.SAFETY_REQUIREMENT_UNCONTROLLED, "T-SAFE-3")
    assert "no risk control" in problem.message


# --- malformed safety files: one InputError naming file, line, entry and field ----------------------


def load_error(root: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        load_safety_model(root)
    return caught.value


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("controls", "      - H-B\n", "      - H-Z\n"),
            (
                "safety/controls.yaml:15 controls[1] (RC-B).mitigates[1]",
                "unknown hazard 'H-Z' (not in safety/hazards.yaml)",
            ),
            id="control-unknown-hazard",
        ),
        pytest.param(
            ("controls", "[T-SAFE-1, T-FUNC-1]", "[T-SAFE-1, T-FUNC-9]"),
            (
                "safety/controls.yaml:8 controls[0] (RC-A).requirements[1]",
                "unknown requirement 'T-FUNC-9' (not in safety/requirements.yaml)",
            ),
            id="control-unknown-requirement",
        ),
        pytest.param(
            ("controls", "[T-SAFE-2]", "[T-SAFE-2, T-SAFE-2]"),
            ("safety/controls.yaml:16 controls[1] (RC-B).requirements[1]", "'T-SAFE-2' is listed twice"),
            id="control-repeated-reference",
        ),
        pytest.param(
            ("hazards", "  - id: H-B\n", "  - id: H-A\n"),
            (
                "safety/hazards.yaml:11 hazards[1] (H-A).id",
                "duplicate id 'H-A', first defined at safety/hazards.yaml:3 hazards[0] (H-A)",
            ),
            id="duplicate-hazard",
        ),
        pytest.param(
            ("hazards", "severity: critical", "severity: severe"),
            (
                "safety/hazards.yaml:17 hazards[1] (H-B).severity",
                "Input should be 'negligible', 'minor', 'serious', 'critical' or 'catastrophic' (got 'severe')",
            ),
            id="unknown-severity",
        ),
        pytest.param(
            ("hazards", "    harm: embolism\n", "    harms: embolism\n"),
            (
                "safety/hazards.yaml:16 hazards[1] (H-B).harms",
                "Extra inputs are not permitted (and 1 more problem in this file)",
            ),
            id="misspelt-field",
        ),
        pytest.param(
            ("hazards", "causes: [air in line]", "causes: []"),
            (
                "safety/hazards.yaml:15 hazards[1] (H-B).causes",
                "Tuple should have at least 1 item after validation, not 0",
            ),
            id="no-cause",
        ),
        pytest.param(
            ("hazards", "  - id: H-B\n", "  - id: h-b\n"),
            (
                "safety/hazards.yaml:11 hazards[1] (h-b).id",
                "String should match pattern '^H-[A-Z0-9]+(-[A-Z0-9]+)*$' (got 'h-b')",
            ),
            id="bad-hazard-id",
        ),
        pytest.param(
            ("requirements", "    ref: PUB-7\n", ""),
            (
                "safety/requirements.yaml:8 requirements[1] (T-SAFE-2)",
                "an adopted requirement needs `ref`, its public ID",
            ),
            id="adopted-without-ref",
        ),
        pytest.param(
            ("requirements", "openinfusion.requirements/1", "openinfusion.requirements/2"),
            (
                "safety/requirements.yaml:1 schema",
                "Input should be 'openinfusion.requirements/1' (got 'openinfusion.requirements/2')",
            ),
            id="wrong-schema",
        ),
    ],
)
def test_a_malformed_safety_file_names_file_line_entry_and_field(
    tmp_path: Path, edit: tuple[str, str, str], expected: tuple[str, str]
) -> None:
    file, old, new = edit
    original = {"requirements": REQUIREMENTS, "hazards": HAZARDS, "controls": CONTROLS}[file]
    assert old in original
    error = load_error(make_tree(tmp_path, **{file: original.replace(old, new, 1)}))
    assert (error.where, error.why) == expected


@pytest.mark.req("OI-IN-1")
def test_invalid_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    stray = REQUIREMENTS.replace("    title: A function\n", "    title: A function\n  title: stray\n")
    error = load_error(make_tree(tmp_path, requirements=stray))
    assert error.where == "safety/requirements.yaml:16"
    assert error.why.startswith("not valid YAML: ")


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize("text", ["", "- a list\n"])
def test_a_safety_file_that_is_not_a_mapping_is_named(tmp_path: Path, text: str) -> None:
    error = load_error(make_tree(tmp_path, hazards=text))
    assert (error.where, error.why) == ("safety/hazards.yaml", "expected a mapping with `schema`, `hazards`")


@pytest.mark.req("OI-IN-1")
def test_a_missing_safety_file_is_named(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "safety/controls.yaml").unlink()
    error = load_error(tmp_path)
    assert error.where == "safety/controls.yaml"
    assert error.why.startswith("no such file")


@pytest.mark.req("OI-IN-1")
def test_a_test_file_that_is_not_python_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        build_trace(make_tree(tmp_path, tests=TESTS + "\ndef broken(:\n"))
    assert caught.value.where == "tests/test_a.py:21"
    assert caught.value.why.startswith("not valid Python")


# --- reports and the command ----------------------------------------------------------------------------


def test_markdown_has_the_matrix_rows_and_escapes_cells(tmp_path: Path) -> None:
    markdown = render_markdown(build_trace(make_tree(tmp_path)))
    # T-SAFE-1: named twice in code (docstring, comment) and verified by two tests.
    assert "| H-A | catastrophic | RC-A | T-SAFE-1 | 2 | 2 |" in markdown
    assert "| H-A | catastrophic | RC-A | T-FUNC-1 | **0** | **0** |" in markdown
    assert "| H-B | critical | RC-B | T-SAFE-2 | 1 | 1 |" in markdown
    assert "Over-infusion \\| too fast" in markdown
    assert "  - `tests/test_a.py::TestGroup::test_two`" in markdown


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--no-mutation"])  # the mutation check: tests/trace/
    return result.exit_code, result.stdout, result.stderr


def test_command_writes_both_reports_and_passes_a_complete_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo")
    code, stdout, _ = invoke("--root", str(root), "--out", str(tmp_path / "out"))
    assert code == 0
    assert "0 error(s), 1 warning(s)" in stdout
    data = json.loads((tmp_path / "out/trace.json").read_text(encoding="utf-8"))
    assert data["summary"]["tests_with_req_markers"] == 2
    [safe1] = [r for r in data["requirements"] if r["id"] == "T-SAFE-1"]
    assert safe1["controls"] == ["RC-A"]
    assert safe1["tests"] == ["tests/test_a.py::test_one", "tests/test_a.py::TestGroup::test_two"]
    assert (tmp_path / "out/trace.md").read_text(encoding="utf-8").startswith("# Traceability report")


def test_command_fails_on_a_gap_unless_not_strict(tmp_path: Path) -> None:
    root = make_tree(tmp_path, tests=TESTS.replace('"T-SAFE-2", ', ""))
    code, stdout, _ = invoke("--root", str(root))
    assert code == 1
    assert "T-SAFE-2" in stdout
    assert "safety-requirement-untested" in stdout
    assert (root / "out/trace/trace.md").is_file()
    assert invoke("--root", str(root), "--no-strict")[0] == 0


def test_command_json_is_the_report(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    code, stdout, _ = invoke("--root", str(root), "--json")
    assert code == 0
    assert json.loads(stdout) == json.loads((root / "out/trace/trace.json").read_text(encoding="utf-8"))


@pytest.mark.req("OI-IN-1")
def test_command_reports_a_bad_file_in_one_line_without_traceback(tmp_path: Path) -> None:
    root = make_tree(tmp_path, controls=CONTROLS.replace("- H-B", "- H-Z"))
    code, stdout, stderr = invoke("--root", str(root))
    assert code == 1
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        "error: safety/controls.yaml:15 controls[1] (RC-B).mitigates[1]: unknown hazard 'H-Z' (not in "
        "safety/hazards.yaml)"
    ]
    code, stdout, _ = invoke("--root", str(root), "--json")
    assert code == 1
    assert json.loads(stdout)["where"] == "safety/controls.yaml:15 controls[1] (RC-B).mitigates[1]"


@pytest.mark.req("OI-IN-1")
def test_command_names_a_missing_root(tmp_path: Path) -> None:
    code, _, stderr = invoke("--root", str(tmp_path / "nowhere"))
    assert code == 1
    assert re.fullmatch(r"error: --root: .*nowhere is not a directory", " ".join(stderr.split()))


# --- the repository's own safety model ------------------------------------------------------------------


def test_repository_safety_model_resolves() -> None:
    trace = build_trace(REPO)
    model = trace.model
    # Everything but missing tests is in the safety files' hands, so it must already hold.
    assert {p.code for p in trace.problems if p.level is Level.ERROR} <= {ProblemCode.SAFETY_REQUIREMENT_UNTESTED}
    assert all(model.controls_of_hazard(h.id) for h in model.hazards)
    safety = [r for r in model.requirements if r.kind is RequirementKind.SAFETY]
    assert all(model.controls_of_requirement(r.id) for r in safety)
    assert 15 <= len(model.hazards) <= 25


# --- the pytest plugin in tests/conftest.py ----------------------------------------------------------------


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throw-away project with this suite's conftest and the small requirements file."""
    pytester.makeconftest((REPO / "tests/conftest.py").read_text(encoding="utf-8"))
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nmarkers = ["req(*ids): requirement IDs"]\n')
    (pytester.path / "safety").mkdir()
    (pytester.path / "safety/requirements.yaml").write_text(REQUIREMENTS, encoding="utf-8")
    return pytester


def test_plugin_accepts_known_requirements(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_ok='import pytest\n\n@pytest.mark.req("T-SAFE-1")\ndef test_fine():\n    pass\n')
    inner.runpytest().assert_outcomes(passed=1)


def test_plugin_fails_collection_naming_test_and_id(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_bad='import pytest\n\npytestmark = pytest.mark.req("T-SAFE-1")\n\n'
        '@pytest.mark.req("T-NOPE-1")\ndef test_typo():\n    pass\n\n@pytest.mark.req()\ndef test_empty():\n    pass\n'
    )
    result = inner.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*test_bad.py::test_typo: @pytest.mark.req names unknown requirement 'T-NOPE-1'*",
            "*test_bad.py::test_empty: @pytest.mark.req() names no requirement*",
        ]
    )
