"""Keystrokes the front panel needs for five common tasks (plus answering an occlusion).

Each task is pressed on the real panel model (:class:`~openinfusion.web.panel.session.PanelSession`, the
same presses the browser sends) on the real core, from the situation a nurse would meet; every widget
press counts one keystroke: a key of the keypad, a choice from a list, Confirm, Start. The script
checks that each task reached its end state, so a count is never that of a task that failed.

Run: .venv/bin/python benchmarks/panel_keystrokes.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from openinfusion.sim.scenario import PumpSpec, load_scenario
from openinfusion.web.panel.session import PanelSession

BEDSIDE = Path("examples/panel/bedside.yaml")
MED_SURG = PumpSpec(care_area="MED-SURG")


def session(pump: PumpSpec | None = None) -> PanelSession:
    scenario, _ = load_scenario(BEDSIDE)
    if pump is not None:
        scenario = scenario.model_copy(update={"pump": pump})
    t = [0.0]
    return PanelSession(scenario, str(BEDSIDE), clock=lambda: t[0])


class Keys:
    """Presses with a 300 ms gap (outside the key debounce), counted from zero."""

    def __init__(self, s: PanelSession) -> None:
        self.s, self.ms, self.start = s, 0, len(s.presses)

    def __call__(self, widget: str, arg: str | None = None, channel: int | None = 0) -> None:
        self.ms += 300
        self.s.press(widget, channel, arg, self.ms)
        if not self.s.presses[-1].ok:
            raise RuntimeError(f"{widget} {arg or ''}: {self.s.presses[-1].detail}")

    def number(self, text: str) -> None:
        for k in text:
            self(f"key_{k}")
        self("key_enter")

    @property
    def count(self) -> int:
        return len(self.s.presses) - self.start


def primary_dose() -> int:
    s = session()
    k = Keys(s)
    k("program"), k("choose", "dopamine"), k("choose", "400 mg/250 mL")
    k.number("70"), k.number("5"), k.number("250"), k("confirm"), k("start")
    assert s.pump.channels[0].state.value == "infusing"
    return k.count


def primary_rate() -> int:
    s = session(MED_SURG)
    k = Keys(s)
    k("program"), k("choose", "maintenance-fluid"), k.number("125"), k.number("1000"), k("confirm"), k("start")
    assert s.pump.channels[0].state.value == "infusing"
    return k.count


def running(s: PanelSession, drug: str, conc: str | None, rate_or_dose: str, vtbi: str) -> None:
    k = Keys(s)
    k("program"), k("choose", drug)
    if conc:
        k("choose", conc)
    k.number(rate_or_dose), k.number(vtbi), k("confirm"), k("start")


def titration() -> int:
    s = session()
    running(s, "norepinephrine", "4 mg/250 mL", "10", "250")
    k = Keys(s)
    k("titrate"), k.number("15"), k("confirm"), k("confirm_titration")
    assert s.pump.channels[0].pending is None and s.pump.channels[0].active.dose.value == 15
    return k.count


def secondary() -> int:
    s = session(MED_SURG)
    running(s, "maintenance-fluid", None, "75", "1000")
    k = Keys(s)
    k("secondary"), k("choose", "cefazolin"), k("choose", "2 g/100 mL"), k.number("200"), k.number("100")
    k("confirm")
    assert s.pump.channels[0].counters is not None and "Secondary" in s.state()["channels"][0]["status"]
    return k.count


def pca() -> int:
    s = session(MED_SURG)
    k = Keys(s)
    k("pca"), k("choose", "morphine/pca"), k("choose", "1 mg/1 mL")
    k.number("1"), k.number("8"), k.number("20"), k("confirm"), k("start")
    assert s.pump.channels[0].state.value == "infusing"
    return k.count


TASKS: dict[str, Callable[[], int]] = {
    "Start a primary infusion, weight-based dose (dopamine 5 ug/kg/min, 70 kg, 250 mL)": primary_dose,
    "Start a primary infusion by rate (maintenance fluid 125 mL/h, 1000 mL)": primary_rate,
    "Titrate a running dose and confirm (norepinephrine 10 -> 15 ug/min)": titration,
    "Secondary piggyback (cefazolin 2 g/100 mL at 200 mL/h, 100 mL)": secondary,
    "Program and start a PCA (morphine 1 mg, lockout 8 min, 20 mg per 4 h)": pca,
}


def main() -> None:
    print("| Task | Keystrokes |\n|---|---|")
    for name, task in TASKS.items():
        print(f"| {name} | {task()} |")


if __name__ == "__main__":
    main()
