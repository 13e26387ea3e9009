"""What a nurse reads after ``simulate`` and ``demo``: clock times, drugs and doses, alarms, DERS, screens.

Each check reads the terminal or the report as a clinician would and compares it with what the scenario
file says happened (its description), never with the simulator's own numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli import app
from openinfusion.errors import ScenarioError
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import load_scenario
from openinfusion.sim.story import ScreenRecorder, q, tell

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
WIDE = {"COLUMNS": "200"}


def story_of(name: str):  # type: ignore[no-untyped-def]
    path = EXAMPLES / name
    scenario, _ = load_scenario(path)
    sim = Simulation(scenario, str(path))
    recorder = ScreenRecorder(sim)
    sim.run()
    recorder.finish()
    return tell(sim, recorder.screens)


def test_demo_tells_the_story_in_clock_time_with_drug_and_alarm(tmp_path: Path) -> None:
    result = CliRunner(env=WIDE).invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    # the kink at 20 min raises the high-priority alarm within seconds; reset at 25 min
    assert re.search(r"00:20:\d\d .*Downstream occlusion.*HIGH", out.replace("│", " ").replace("\n", " "))
    assert "00:25:00" in out and "reset" in out
    assert "cefazolin 2 g/100 mL" in out  # the secondary's drug from the library, by name
    assert "cefazolin" in out.split("Alarms")[0]  # named in the timeline, not only in the DERS table
    assert "into patient" in out and "Battery:" in out and "min of running left" in out
    page = (tmp_path / "report.html").read_text()
    for section in ("What happened (hh:mm:ss from the start)", "Alarms", "Drug library checks",
                    "screen at key moments", "air past the detector"):  # fmt: skip
        assert section in page, section
    assert "<!-- story -->" not in page


def test_hard_block_and_override_are_visible_and_refusal_warns(tmp_path: Path) -> None:
    result = CliRunner(env=WIDE).invoke(app, ["simulate", str(EXAMPLES / "ders_picu.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert "HARD LIMIT: blocked" in result.stdout
    assert "OVERRIDDEN: Titration per protocol" in result.stdout
    flat = " ".join(result.stdout.replace("│", " ").split())
    assert "dose 3 ug/kg/min, upper hard limit 2 ug/kg/min" in flat  # what was checked against which limit
    assert "warning: the pump refused 1 action" in result.stderr
    assert "above the hard maximum 2 ug/kg/min" in result.stderr
    args = ["simulate", str(EXAMPLES / "ders_picu.yaml"), "--out", str(tmp_path), "--strict"]
    strict = CliRunner(env=WIDE).invoke(app, args)
    assert strict.exit_code == 3


def test_escalation_and_end_of_an_unattended_alert() -> None:
    """dose_weight_based: an unconfirmed titration alerts at medium, escalates to high 2 min later, ends at 45 min."""
    story = story_of("dose_weight_based.yaml")
    (alert,) = [a for a in story.alarms if "not confirmed" in a.text.lower() or "confirm" in a.text.lower()]
    assert alert.priority == "MEDIUM"
    assert alert.escalated.startswith("to HIGH at 00:42:")
    assert alert.ended.startswith("00:45:00")


def test_pca_totals_read_like_a_chart() -> None:
    story = story_of("pca_lockout.yaml")
    ((ch, text),) = story.pca
    # demands at 5, 7, 9, 11, 20, 35, 50 min: given at 5 and 20; 3 lockout and 2 one-hour-limit denials
    assert ch == "A" and text.startswith("7 demands: 2 given, 5 denied (2 limit_1h, 3 lockout)")


@pytest.mark.parametrize("name", ["demo.yaml", "pca_lockout.yaml"])
def test_examples_program_from_the_library(name: str) -> None:
    story = story_of(name)
    assert story.ders and all("HARD" not in row[5] for row in story.ders)
    assert not any("basic infusion" in row[2] for row in story.timeline)


def scenario_text(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    library = EXAMPLES.parent / "library" / "example-library.yaml"
    path.write_text(
        f"schema: openinfusion.scenario/1\nname: s\nseed: 1\nduration: 10 min\nlibrary: {library}\n"
        f"pump: {{care_area: ADULT-ICU}}\npatient: {{weight: 80 kg}}\n{body}",
        encoding="utf-8",
    )
    return path


@pytest.mark.req("OI-IN-1")
def test_scenario_errors_all_reported_with_the_nearest_name_and_time_examples(tmp_path: Path) -> None:
    path = scenario_text(
        tmp_path,
        "channels:\n  - program: {type: continuous, rate: 25 mL/h, vtbl: 50 mL}\n"
        "timeline:\n  - {at: 20, do: start}\n  - {at: 5 min, do: strat}\n",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert "\n" not in text
    assert "channels[0].program.vtbl: unknown field (did you mean vtbi?)" in text
    assert "timeline[0].at: expected a time with its unit, such as '20 min'" in text
    assert "timeline[1]: 'strat' is not a known kind (did you mean start?)" in text


def test_a_drug_is_chosen_by_a_synonym_and_a_misspelling_names_the_nearest(tmp_path: Path) -> None:
    program = "{type: dose, dose: 10 ug/min, concentration: 4 mg / 250 mL, vtbi: 250 mL, from_library: {drug: %s}}"
    scenario, _ = load_scenario(scenario_text(tmp_path, f"channels:\n  - program: {program % 'Levophed'}\n"))
    chosen = scenario.channels[0].program
    assert chosen is not None and chosen.from_library is not None and chosen.from_library.drug == "norepinephrine"
    with pytest.raises(ScenarioError, match=r"'norepinephrin' is not in the library \(did you mean norepinephrine\?\)"):
        load_scenario(scenario_text(tmp_path, f"channels:\n  - program: {program % 'norepinephrin'}\n"))


def test_dose_is_told_next_to_the_rate() -> None:
    """ders_picu: 0.08 ug/kg/min for 20 kg of 16 ug/mL is 6 mL/h; the titration to 0.15 is 11.25 mL/h."""
    told = [row[3] for row in story_of("ders_picu.yaml").timeline]
    assert "Program confirmed: 0.08 ug/kg/min = 6 mL/h, no VTBI" in told
    assert any(t.startswith("New rate 0.15 ug/kg/min = 11.25 mL/h entered; 6 mL/h continues") for t in told)


def test_durations_read_in_minutes_and_short_ones_in_seconds() -> None:
    assert q({"value": "7200", "unit": "s"}) == "120 min"  # a 2-hour potassium dose, not "7200 s"
    assert q({"value": "90", "unit": "s"}) == "1.5 min"
    assert q({"value": "30", "unit": "s"}) == "30 s"


def test_the_library_advisory_the_screen_shows_is_in_the_report() -> None:
    (program,) = story_of("potassium_meq.yaml").ders
    assert program[2] == "program" and program[5].endswith("Advisory on the screen: Central line only.")
    assert "duration 120 min" in program[4]
    checks = story_of("loading_then_maintenance.yaml").ders
    assert sum("Advisory on the screen:" in row[5] for row in checks) == 1  # once, when the drug is chosen
