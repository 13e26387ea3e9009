"""SysML v2 textual notation of the safety model: requirement defs and usages, risk controls as parts of the pump,
``satisfy`` (control satisfies requirement) and ``verify`` (test verifies requirement) relationships, hazards as
attribute usages, and the channel lifecycle as a ``state def`` generated from ``pump.statechart.TRANSITIONS``.

Names that are not SysML identifiers (``OI-ALM-2``) are written as unrestricted names in single quotes;
documentation goes in ``doc /* ... */`` comments with ``*/`` made harmless. The output is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable

from openinfusion.pump.statechart import TRANSITIONS, ChannelEvent, ChannelState
from openinfusion.trace.model import SafetyModel
from openinfusion.trace.scan import ScannedTest


def name(text: str) -> str:
    """A SysML v2 unrestricted name: ``'text'`` with quotes and backslashes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _doc(text: str, indent: str) -> str:
    clean = " ".join(text.split()).replace("*/", "* /")
    return f"{indent}doc /* {clean} */"


def _state(s: ChannelState) -> str:
    return s.value


def _signal(e: ChannelEvent) -> str:
    return "".join(part.capitalize() for part in e.value.split("_"))


def statechart() -> list[str]:
    """The channel lifecycle as a SysML v2 ``state def``: one ``transition`` per row of the table, in order."""
    lines = [
        "  // Channel lifecycle, generated from openinfusion.pump.statechart.TRANSITIONS (one transition per row)."
    ]
    lines += [f"  item def {_signal(e)};" for e in ChannelEvent]
    lines.append("  state def ChannelLifecycle {")
    lines.append(f"    entry; then {_state(ChannelState.IDLE)};")
    lines += [f"    state {_state(s)};" for s in ChannelState]
    for i, row in enumerate(TRANSITIONS, start=1):
        guard = f" if {row.guard.name}" if row.guard is not None else ""
        lines.append(f"    // row {i}: {row.source.value} --{row.event.value}{guard}--> {row.target.value}")
        lines.append(
            f"    transition row{i} first {_state(row.source)} accept {_signal(row.event)} then {_state(row.target)};"
        )
    lines.append("  }")
    return lines


def export(model: SafetyModel, tests: Iterable[ScannedTest]) -> str:
    """The whole model as one SysML v2 package ``OpenInfusionSafety``."""
    out = [
        "package OpenInfusionSafety {",
        _doc(
            "openinfusion safety model, generated from safety/*.yaml, the tests' req markers and pump/statechart.py.",
            "  ",
        ),
    ]
    out += ["  requirement def SafetyRequirement;", "  requirement def FunctionalRequirement;"]
    out += ["  attribute def Hazard { attribute severity : ScalarValues::String; }", "  part def RiskControl;"]
    for r in model.requirements:
        base = "SafetyRequirement" if r.kind.value == "safety" else "FunctionalRequirement"
        out += [f"  requirement def {name(r.id)} :> {base} {{", _doc(f"{r.title}. {r.text}", "    "), "  }"]
    out += [f"  requirement {name('req ' + r.id)} : {name(r.id)};" for r in model.requirements]
    for h in model.hazards:
        out += [
            f"  attribute {name(h.id)} : Hazard {{",
            _doc(f"{h.hazard} Harm: {h.harm}", "    "),
            f'    attribute redefines severity = "{h.severity.value}";',
            "  }",
        ]
    out.append("  part def InfusionPump;")
    out.append("  part pump : InfusionPump {")
    for c in model.controls:
        out += [
            f"    part {name(c.id)} : RiskControl {{",
            _doc(f"{c.title}. {c.control} Mitigates {', '.join(c.mitigates)}.", "      "),
            "    }",
        ]
    out.append("  }")
    for c in model.controls:
        out += [f"  satisfy {name('req ' + r)} by pump.{name(c.id)};" for r in c.requirements]
    known = {r.id for r in model.requirements}
    for t in sorted(tests, key=lambda t: t.nodeid):
        reqs = [r for r in t.requirements if r in known]
        if not reqs:
            continue
        out.append(f"  verification def {name(t.nodeid)} {{")
        out.append("    subject s : InfusionPump;")
        out.append("    objective { " + " ".join(f"verify {name('req ' + r)};" for r in reqs) + " }")
        out.append("  }")
    out += statechart()
    out.append("}")
    return "\n".join(out) + "\n"
