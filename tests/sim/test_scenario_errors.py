"""Bad scenario files: each gives one line naming the file, the field path and the reason (OI-IN-1).

Errors found when the file is read (YAML, unknown fields, units, values, the timeline) and errors the
pump core finds when it builds a program or takes a clinician action (a bolus larger than what is left)
both come out as a :class:`ScenarioError` ``FILE: field.path: reason``, never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openinfusion.errors import ScenarioError
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import load_scenario

HEAD = "schema: openinfusion.scenario/1\nname: bad\nseed: 1\nduration: 1 h\n"
ONE_CHANNEL = "channels:\n  - program: {type: continuous, rate: 25 mL/h, vtbi: 50 mL}\n"
START = "timeline:\n  - {at: 0 s, do: start}\n"

# name: (file text, field path (regex), reason (regex), requirements)
CASES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "malformed_yaml": (
        HEAD + "channels:\n  - program: {type: continuous, rate: 25 mL/h\n",
        r"",  # located by line instead: FILE:7
        r"malformed YAML: .+",
        ("OI-IN-1",),
    ),
    "unknown_field": (
        HEAD + "channels:\n  - program: {type: continuous, rate: 25 mL/h, colour: blue}\n",
        r"channels\[0\]\.program\.colour",
        r"unknown field",
        ("OI-IN-1",),
    ),
    "unknown_unit": (
        HEAD + "channels:\n  - program: {type: continuous, rate: 25 mL/hr}\n",
        r"channels\[0\]\.program\.rate",
        r"unknown unit 'hr' in 'mL/hr'; use 'h' \(UCUM\) for hours",
        ("OI-IN-1", "OI-UNIT-1"),
    ),
    "banned_unit": (
        HEAD + 'channels:\n  - program: {type: dose, dose: 1000 U/h, concentration: "25000 [iU] / 250 mL"}\n',
        r"channels\[0\]\.program\.dose",
        r".*'U' is banned.*\[iU\].*",
        ("OI-IN-1", "OI-UNIT-1"),
    ),
    "weight_in_pounds": (
        HEAD + "patient: {weight: 154 lb}\n" + ONE_CHANNEL,
        r"patient\.weight",
        r".*kg only.*",
        ("OI-IN-1", "OI-UNIT-1"),
    ),
    "negative_rate": (
        HEAD + "channels:\n  - program: {type: continuous, rate: -25 mL/h}\n",
        r"channels\[0\]\.program\.rate",
        r"rate must be positive, got -25 mL/h",
        ("OI-IN-1", "OI-PROG-1"),
    ),
    "event_after_the_end": (
        HEAD + ONE_CHANNEL + START + "  - {at: 2 h, do: pause}\n",
        r"timeline\[1\]\.at",
        r"2 h is outside the scenario \(0 to 1 h\)",
        ("OI-IN-1",),
    ),
    "bolus_larger_than_the_vtbi": (
        HEAD + ONE_CHANNEL + START + "  - {at: 10 min, do: bolus, volume: 100 mL, duration: 10 min}\n",
        r"timeline\[1\](\.volume)?",
        r"100 mL is more than the [0-9.]+ mL remaining to be infused",
        ("OI-IN-1", "OI-PROG-4"),
    ),
    "weight_based_dose_without_weight": (
        HEAD + "channels:\n  - program: {type: dose, dose: 0.1 ug/kg/min, concentration: 4 mg / 250 mL}\n",
        r"channels\[0\]\.program\.(dose|patient\.weight)",
        r"a dose in ug/kg/min needs the patient's weight \(kg\)",
        ("OI-IN-1", "OI-PROG-3"),
    ),
    "pca_lockout_of_zero": (
        HEAD
        + "channels:\n  - program: {type: pca, concentration: 1 mg/mL, demand_dose: 1 mg, lockout: 0 min,"
        + " demand_rate: 60 mL/h}\n",
        r"channels\[0\]\.program\.lockout",
        r"must be positive, got 0 s",
        ("OI-IN-1", "OI-PROG-1", "OI-PCA-1"),
    ),
    "unknown_alarm_code": (
        HEAD + ONE_CHANNEL + START + "  - {at: 1 min, do: reset_alarm, code: occlusion}\n",
        r"timeline\[1\]\.code",
        r".*occlusion_downstream.*",
        ("OI-IN-1",),
    ),
    "unknown_syringe_size": (
        HEAD + "pump: {mechanism: syringe, syringe: 40 mL}\n" + ONE_CHANNEL,
        r"pump\.syringe",
        r"no syringe of 40 mL; sizes: 3, 5, 10, 20, 30, 50",
        ("OI-IN-1",),
    ),
    "misspelt_fault_parameter": (
        HEAD + ONE_CHANNEL + START + "  - {at: 1 min, do: fault, fault: motor_stall, params: {flaged: true}}\n",
        r"timeline\[1\]\.params(\.flaged)?",
        r"motor_stall takes flagged; got flaged",
        ("OI-IN-1",),
    ),
    "channel_beyond_the_channels": (
        HEAD + ONE_CHANNEL + "timeline:\n  - {at: 0 s, channel: 3, do: start}\n",
        r"timeline\[0\]\.channel",
        r"the scenario has 1 channel\(s\) \(A\), not 3 \(C\)",
        ("OI-IN-1", "OI-CHAN-2"),
    ),
}

MISLOCATED: dict[str, str] = {}  # every case is located in the file by its field path


def _case(name: str) -> object:
    marks = [pytest.mark.req(*CASES[name][3])]
    if name in MISLOCATED:
        reason = "sim/run.py: not located in the file by its field path. Today: " + MISLOCATED[name]
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(name, marks=marks, id=name)


def scenario_error(path: Path) -> ScenarioError:
    """The error loading and running ``path`` gives (the test fails if it gives none)."""
    with pytest.raises(ScenarioError) as caught:
        scenario, _ = load_scenario(path)
        Simulation(scenario, str(path)).run()
    return caught.value


@pytest.mark.parametrize("name", [_case(n) for n in CASES])
def test_a_bad_scenario_gives_one_line_with_file_field_and_reason(name: str, tmp_path: Path) -> None:
    text, where, why, _ = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    message = str(scenario_error(path))
    assert "\n" not in message
    located = r":\d+" if not where else rf": {where}"
    assert re.fullmatch(rf"{re.escape(str(path))}{located}: {why}", message), message


@pytest.mark.req("OI-IN-1")
def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert str(scenario_error(path)) == f"{path}: cannot read: No such file or directory"


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_a_file_that_is_not_a_mapping_is_refused(text: str, tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    assert str(scenario_error(path)) == f"{path}: a scenario is a YAML mapping"
