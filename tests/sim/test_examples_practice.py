"""The example scenarios model safe practice (issue 10 §3): a drug dosed by the pump comes from the library."""

from __future__ import annotations

from pathlib import Path

from openinfusion.sim.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
# Shown as basic infusions on purpose, each for a unit the library does not list for that use (docs/scenarios.md).
BASIC_ON_PURPOSE = {"heparin_units.yaml", "potassium_meq.yaml", "bsa_chemo.yaml"}


def test_every_dosed_drug_in_the_examples_is_programmed_from_the_library() -> None:
    unchecked = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        scenario, _ = load_scenario(path)
        for i, ch in enumerate(scenario.channels):
            program = ch.program
            dosed = program is not None and getattr(program, "type", "") in ("dose", "pca")
            if dosed and program.from_library is None and path.name not in BASIC_ON_PURPOSE:
                unchecked.append(f"{path.name}: channels[{i}]")
    assert not unchecked, f"a drug dosed without the drug library: {unchecked}"
