"""Safe number entry on the pump's keypad: a pure model of one numeric field (OI-UI-1).

The rules are those of the published work on number entry for infusion pumps (market-and-peers.md
§3.1: Thimbleby & Cairns 2010 [U1], the CHI+MED guidelines [U2], ISMP [U4][U5], Alaris SE key bounce
[B14]). Every key press gets an :class:`Outcome`: accepted, or refused with the reason shown to the
user. A refused key never changes the display (refused, never silently dropped or altered):

- a leading zero before a decimal point: "." on an empty field shows "0.";
- no leading zeros ("007" cannot be keyed), one decimal point;
- digits beyond the field's resolution are refused ("0.1 mL/h is the finest step"), not dropped;
- a key that would take the value above the field's maximum is blocked at entry; a value below the
  minimum is refused at Enter;
- key debounce: the same key again within ``debounce_ms`` is a bounce, not a second press;
- a change of 10x or more from the current value (either way) is flagged for confirmation;
- the committed value is shown without trailing zeros ("5", never "5.0"); a dangling "." is refused.

The model is pure: the caller gives each key with a monotonic time in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Final

from openinfusion.errors import ConfigError
from openinfusion.units import Quantity, format_decimal

DIGITS: Final = frozenset("0123456789")
KEYS: Final = DIGITS | {".", "back", "clear", "enter"}
TENFOLD: Final = 10  # a change by this factor or more (up or down) is flagged


class Status(Enum):
    """What a key press did."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    BOUNCE = "bounce"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A numeric field: its unit (UCUM), bounds in that unit, decimal places allowed and key debounce.

    ``maximum`` is the largest value the field accepts (the pump's or the hard limit's);
    ``minimum`` the smallest; ``decimals`` the resolution (1 -> 0.1). ``current`` is the value now in
    force (for the 10x check), None when there is none.
    """

    name: str
    unit: str
    minimum: Fraction
    maximum: Fraction
    decimals: int
    current: Fraction | None = None
    debounce_ms: int = 60  # switch bounce lasts well under this; a deliberate repeat takes longer

    def __post_init__(self) -> None:
        where = f"entry field {self.name!r}"
        if not 0 <= self.decimals <= 6:
            raise ConfigError(where, f"decimals must be 0..6, got {self.decimals}")
        if self.minimum < 0 or self.maximum <= self.minimum:
            raise ConfigError(where, f"bounds must satisfy 0 <= minimum < maximum, got {self.minimum}..{self.maximum}")
        if self.debounce_ms < 0:
            raise ConfigError(where, "debounce_ms must not be negative")

    @property
    def step(self) -> Fraction:
        return Fraction(1, 10**self.decimals)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one key: its status, the text now displayed, and why (for a refusal or a flag)."""

    status: Status
    display: str
    reason: str = ""
    value: Quantity | None = None  # set when committed
    tenfold: bool = False  # the committed value is 10x or more away from the current one


@dataclass(slots=True)
class NumberEntry:
    """One field being keyed. ``keystrokes`` counts every press, bounces and refusals included."""

    spec: FieldSpec
    text: str = ""
    keystrokes: int = 0
    _last_key: str | None = field(default=None, repr=False)
    _last_ms: int | None = field(default=None, repr=False)

    def press(self, key: str, at_ms: int) -> Outcome:
        """Apply ``key`` (a digit, ".", "back", "clear" or "enter") pressed at ``at_ms`` (monotonic ms)."""
        self.keystrokes += 1
        if key not in KEYS:
            return self._refuse(f"unknown key {key!r}")
        last = self._last_ms
        bounce = key == self._last_key and last is not None and 0 <= at_ms - last < self.spec.debounce_ms
        self._last_key, self._last_ms = key, at_ms
        if bounce:
            return Outcome(Status.BOUNCE, self.text, f"{key!r} again within {self.spec.debounce_ms} ms: key bounce")
        if key == "clear":
            return self._accept("")
        if key == "back":
            return self._accept("" if self.text == "0." else self.text[:-1])
        if key == "enter":
            return self._commit()
        return self._type(key)

    def _type(self, key: str) -> Outcome:
        text = self.text
        if key == ".":
            if "." in text:
                return self._refuse("a number has one decimal point")
            if self.spec.decimals == 0:
                return self._refuse(f"{self.spec.name} is entered in whole {self.spec.unit}")
            return self._accept((text or "0") + ".")
        if text == "0":
            return self._refuse("no leading zeros: press '.' for a value below 1")
        if "." in text and len(text.split(".")[1]) >= self.spec.decimals:
            return self._refuse(f"{format_decimal(self.spec.step)} {self.spec.unit} is the finest step")
        candidate = text + key
        if Fraction(candidate) > self.spec.maximum:
            return self._refuse(f"above the maximum of {format_decimal(self.spec.maximum)} {self.spec.unit}")
        return self._accept(candidate)

    def _commit(self) -> Outcome:
        text = self.text
        if not text:
            return self._refuse("enter a value")
        if text.endswith("."):
            return self._refuse("finish the number after the decimal point, or delete the point")
        value = Fraction(text)
        if value < self.spec.minimum:
            return self._refuse(f"below the minimum of {format_decimal(self.spec.minimum)} {self.spec.unit}")
        shown = format_decimal(value, self.spec.decimals)
        current = self.spec.current
        tenfold = current is not None and current > 0 and (value >= current * TENFOLD or value * TENFOLD <= current)
        reason = f"{shown} is 10x or more from the current {format_decimal(current)}" if tenfold and current else ""
        self.text = shown
        return Outcome(Status.COMMITTED, shown, reason, Quantity.of(value, self.spec.unit), tenfold)

    def _accept(self, text: str) -> Outcome:
        self.text = text
        return Outcome(Status.ACCEPTED, text)

    def _refuse(self, reason: str) -> Outcome:
        return Outcome(Status.REFUSED, self.text, reason)
