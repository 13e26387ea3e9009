"""The front panel's widgets, declared as data and bound to actions (STYLE.md §6, after PVSio-web).

Each widget names the action it calls; the page draws the widgets from this table and sends the
widget's id when pressed, and a Playwright test or a trainee presses the same ids. ``scope`` says
where it sits: ``pump`` (top bar), ``channel`` (under each channel), ``keypad`` or ``screen`` (the
programming screen). ``key`` is the computer keyboard shortcut for keypad widgets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

Scope = Literal["pump", "channel", "keypad", "screen"]


@dataclass(frozen=True, slots=True)
class Widget:
    id: str
    label: str
    scope: Scope
    action: str
    key: str | None = None
    hint: str = ""


_KEYPAD: Final = (
    *(Widget(f"key_{d}", d, "keypad", "key", d) for d in "123456789"),
    Widget("key_.", ".", "keypad", "key", "."),
    Widget("key_0", "0", "keypad", "key", "0"),
    Widget("key_back", "Delete", "keypad", "key", "Backspace", "delete the last character"),
    Widget("key_clear", "Clear", "keypad", "key", "Delete", "clear the field"),
    Widget("key_enter", "Enter", "keypad", "key", "Enter", "accept the value"),
)

WIDGETS: Final[tuple[Widget, ...]] = (
    Widget("audio_pause", "Audio paused 2 min", "pump", "audio_pause", hint="silence alarm sounds for 2 minutes"),
    Widget("order_confirm", "Confirm order", "pump", "order_confirm", hint="program and start the server's order"),
    Widget("order_decline", "Decline order", "pump", "order_decline"),
    Widget("program", "Program", "channel", "program", hint="new infusion from the drug library"),
    Widget("start", "Start", "channel", "start"),
    Widget("pause", "Pause", "channel", "pause"),
    Widget("resume", "Resume", "channel", "resume"),
    Widget("titrate", "Titrate", "channel", "titrate", hint="change the dose or rate"),
    Widget("bolus", "Bolus", "channel", "bolus"),
    Widget("secondary", "Secondary", "channel", "secondary", hint="piggyback infusion"),
    Widget("pca", "PCA", "channel", "pca", hint="patient-controlled analgesia"),
    Widget("pca_demand", "Patient button", "channel", "pca_demand", hint="the patient's PCA demand button"),
    Widget("reset_alarm", "Reset alarm", "channel", "reset_alarm", hint="reset this channel's top alarm"),
    Widget("clear", "Clear program", "channel", "clear"),
    *_KEYPAD,
    Widget("choose", "Choose", "screen", "choose"),
    Widget("confirm", "Confirm", "screen", "confirm"),
    Widget("override", "Override", "screen", "override", hint="proceed beyond a soft limit, with a reason"),
    Widget("change", "Change value", "screen", "change"),
    Widget("back", "Back", "screen", "back"),
    Widget("cancel", "Cancel", "screen", "cancel"),
    Widget("confirm_titration", "Confirm change", "screen", "confirm_titration"),
    Widget("cancel_titration", "Cancel change", "screen", "cancel_titration"),
)

BY_ID: Final = {w.id: w for w in WIDGETS}


def as_data() -> list[dict[str, Any]]:
    """The table as JSON for the page."""
    return [asdict(w) for w in WIDGETS]
