"""The sampler draws every program type and every fault kind of the simulator, reproducibly."""

from __future__ import annotations

from pathlib import Path

import pytest

from openinfusion.lab.campaign.faultmodel import fault_catalogue, physical_event_models
from openinfusion.lab.campaign.sampler import PROGRAM_TYPES, draw_run
from openinfusion.lab.campaign.spec import load_spec
from openinfusion.sim.faults import FaultKind
from openinfusion.sim.run import Simulation
from openinfusion.sim.scenario import Scenario


def test_catalogue_is_the_simulators_fault_model() -> None:
    names = {k.name for k in fault_catalogue()}
    assert {k.value for k in FaultKind} <= names
    assert {"occlusion", "air", "door", "load", "mains"} <= set(physical_event_models())
    assert not ({"start", "bolus", "titrate", "program", "fault"} & names)
    assert all(k.drawable for k in fault_catalogue()), [k for k in fault_catalogue() if not k.drawable]


def test_same_index_same_run_and_valid_scenarios(spec_file: Path) -> None:
    spec, _, library = load_spec(spec_file)
    for i in range(20):
        a, b = draw_run(spec, library, i), draw_run(spec, library, i)
        assert a.scenario == b.scenario
        Scenario.model_validate(a.scenario)
    assert draw_run(spec, library, 1).scenario != draw_run(spec, library, 2).scenario


def test_every_program_type_and_fault_kind_is_drawn(spec_file: Path) -> None:
    spec, _, library = load_spec(spec_file)
    cases = [draw_run(spec, library, i) for i in range(300)]
    assert {c.program_type for c in cases} == set(PROGRAM_TYPES)
    assert {f.kind for c in cases for f in c.faults} == {k.name for k in fault_catalogue()}
    assert any(len(c.faults) >= 2 for c in cases)  # combined faults
    assert {"titration", "secondary", "bolus", "pause", "pca_demands"} <= {b for c in cases for b in c.behaviours}
    drugs = {c.drug for c in cases if c.program_type in {"dose", "pca"}}
    assert len(drugs) > 5 and None not in drugs  # drug programs come from the library


def test_drawn_faults_fit_the_pump_they_hit(spec_file: Path) -> None:
    """A temperature fault comes with the sensor that reads it; a syringe is never refilled mid-run: the simulator
    accepts every such run (the 10,000-run campaign lost 10 % of its runs to these two refusals)."""
    spec, _, library = load_spec(spec_file)
    cases = [draw_run(spec, library, i) for i in range(300)]
    hit = [c for c in cases if {f.kind for f in c.faults} & {"temperature", "fill"}]
    assert any(c.mechanism == "syringe" for c in hit) and any(f.kind == "temperature" for c in hit for f in c.faults)
    for case in hit:
        Simulation(Scenario.model_validate(case.scenario), str(library.parent / "run.yaml"))
        assert not (case.mechanism == "syringe" and any(e["do"] == "fill" for e in case.scenario["timeline"]))


def test_bad_spec_is_one_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "schema: openinfusion.campaign/1\nname: x\nseed: 1\nruns: 0\nlibrary: x.yaml\n"
        "duration: {min: 1 min, max: 2 min}\n",
        encoding="utf-8",
    )
    with pytest.raises(Exception, match=r"bad.yaml: runs: .*greater than or equal to 1"):
        load_spec(bad)
