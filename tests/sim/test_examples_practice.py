"""The example scenarios model safe practice (issue 10 §3): a drug dosed by the pump comes from the library."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from openinfusion.druglib.yamlio import read_yaml
from openinfusion.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "scenarios"
LIBRARY = ROOT / "examples" / "library" / "example-library.yaml"


def test_every_dosed_drug_in_the_examples_is_programmed_from_the_library() -> None:
    unchecked = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        scenario, _ = load_scenario(path)
        for i, ch in enumerate(scenario.channels):
            program = ch.program
            dosed = program is not None and getattr(program, "type", "") in ("dose", "pca")
            if dosed and program.from_library is None:
                unchecked.append(f"{path.name}: channels[{i}]")
    assert not unchecked, f"a drug dosed without the drug library: {unchecked}"


def _library_drugs(node: object) -> set[str]:
    """The drug of every ``from_library`` anywhere in a scenario (channel programs and secondaries)."""
    if isinstance(node, dict):
        found = {str(node["from_library"]["drug"])} if "from_library" in node else set()
        return found.union(*(_library_drugs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_library_drugs(v) for v in node))
    return set()


def test_every_high_alert_drug_a_description_names_is_programmed_from_the_library() -> None:
    library = read_yaml(LIBRARY).require()
    names = {
        d.id: [n.lower() for n in (d.generic_name, d.display_name, *d.synonyms)] for d in library.drugs if d.high_alert
    }
    unsafe = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = YAML(typ="safe").load(path.read_text())
        text = " ".join(data["description"].lower().split())
        named = {drug for drug, words in names.items() if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)}
        missing = named - _library_drugs(data)
        if missing:
            unsafe.append(f"{path.name}: {sorted(missing)}")
    assert not unsafe, f"a high-alert drug not programmed from the drug library: {unsafe}"
