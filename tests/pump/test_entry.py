"""Safe number entry (OI-UI-1): property tests of the keypad model against the published rules."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import ConfigError
from openinfusion.pump.entry import FieldSpec, NumberEntry, Status

pytestmark = pytest.mark.req("OI-UI-1")

KEY = st.sampled_from([*"0123456789", ".", "back", "clear", "enter"])
GAP = 500  # ms between presses: well past the debounce

fields = st.builds(
    FieldSpec,
    name=st.just("rate"),
    unit=st.just("mL/h"),
    minimum=st.sampled_from([Fraction(0), Fraction(1, 10), Fraction(1)]),
    maximum=st.sampled_from([Fraction(25), Fraction(999), Fraction(1200), Fraction(5, 2)]),
    decimals=st.integers(0, 3),
    current=st.one_of(st.none(), st.sampled_from([Fraction(1, 2), Fraction(12), Fraction(125)])),
)


def typed(spec: FieldSpec, keys: str) -> NumberEntry:
    entry = NumberEntry(spec)
    for i, k in enumerate(keys):
        entry.press(k, i * GAP)
    return entry


def wellformed(text: str, spec: FieldSpec) -> bool:
    if text == "":
        return True
    if not re.fullmatch(r"(0|[1-9][0-9]*)(\.[0-9]*)?", text):
        return False  # a leading zero, a bare ".", two points
    return "." not in text or len(text.split(".")[1]) <= spec.decimals


@settings(max_examples=300, deadline=None)
@given(spec=fields, keys=st.lists(KEY, max_size=14))
def test_display_always_wellformed_and_within_maximum(spec: FieldSpec, keys: list[str]) -> None:
    entry = NumberEntry(spec)
    for i, k in enumerate(keys):
        before = entry.text
        out = entry.press(k, i * GAP)
        assert wellformed(out.display, spec), (keys[: i + 1], out)
        assert out.display == entry.text
        if out.display.rstrip("."):
            assert Fraction(out.display.rstrip(".")) <= spec.maximum
        if out.status is Status.REFUSED:  # refused, never altered or dropped silently
            assert entry.text == before and out.reason
        if out.status is Status.ACCEPTED and k in "0123456789":
            assert entry.text == before + k


@settings(max_examples=300, deadline=None)
@given(spec=fields, keys=st.lists(KEY, max_size=14))
def test_committed_value_in_range_at_resolution_without_trailing_zeros(spec: FieldSpec, keys: list[str]) -> None:
    entry = NumberEntry(spec)
    for i, k in enumerate([*keys, "enter"]):
        out = entry.press(k, i * GAP)
        if out.status is Status.COMMITTED:
            assert out.value is not None
            v = out.value.value
            assert spec.minimum <= v <= spec.maximum
            assert (v / spec.step).denominator == 1
            assert not (("." in out.display) and out.display.endswith("0")) and not out.display.endswith(".")
            assert Fraction(out.display) == v
            cur = spec.current
            assert out.tenfold == (cur is not None and (v >= 10 * cur or 10 * v <= cur))


@given(spec=fields)
def test_decimal_point_first_gets_a_leading_zero(spec: FieldSpec) -> None:
    out = NumberEntry(spec).press(".", 0)
    assert out.display == ("0." if spec.decimals else "")
    assert out.status is (Status.ACCEPTED if spec.decimals else Status.REFUSED)


def test_second_point_and_leading_zero_refused() -> None:
    spec = FieldSpec("rate", "mL/h", Fraction(0), Fraction(999), 1)
    entry = typed(spec, "4.")
    out = entry.press(".", 10_000)
    assert (out.status, out.display) == (Status.REFUSED, "4.")
    assert "one decimal point" in out.reason
    zero = typed(spec, "0")
    assert zero.press("7", 10_000).status is Status.REFUSED and zero.text == "0"


def test_digit_beyond_resolution_is_refused_not_dropped() -> None:
    """4.85 on a 0.1 mL/h field: the 5 is refused with a reason and the display stays 4.8."""
    spec = FieldSpec("rate", "mL/h", Fraction(0), Fraction(999), 1)
    entry = typed(spec, "4.8")
    out = entry.press("5", 10_000)
    assert (out.status, out.display) == (Status.REFUSED, "4.8")
    assert "0.1 mL/h is the finest step" in out.reason


def test_above_maximum_blocked_at_entry_below_minimum_at_enter() -> None:
    spec = FieldSpec("rate", "mL/h", Fraction(1, 2), Fraction(25), 1)
    entry = typed(spec, "2")
    assert entry.press("6", 10_000).status is Status.REFUSED and entry.text == "2"
    low = typed(spec, "0.4")
    out = low.press("enter", 10_000)
    assert out.status is Status.REFUSED and "below the minimum of 0.5 mL/h" in out.reason


def test_key_bounce_is_one_press() -> None:
    """The Alaris SE case: 4.8 keyed with a bouncing 4 must not become 44.8."""
    spec = FieldSpec("rate", "mL/h", Fraction(0), Fraction(999), 1)
    entry = NumberEntry(spec)
    entry.press("4", 0)
    assert entry.press("4", 40).status is Status.BOUNCE
    for t, k in ((400, "."), (800, "8")):
        entry.press(k, t)
    assert entry.press("enter", 1200).display == "4.8"
    assert entry.keystrokes == 5
    again = NumberEntry(spec)  # the same key pressed deliberately, after the debounce, counts
    again.press("4", 0)
    again.press("4", 300)
    assert again.text == "44"


def test_tenfold_change_flagged_both_ways() -> None:
    spec = FieldSpec("dose", "ug/kg/min", Fraction(0), Fraction(2), 2, current=Fraction(1, 10))
    assert typed(spec, "1").press("enter", 10_000).tenfold
    assert not typed(spec, "0.5").press("enter", 10_000).tenfold
    assert typed(spec, "0.01").press("enter", 10_000).tenfold


def test_trailing_zero_not_shown_and_dangling_point_refused() -> None:
    spec = FieldSpec("vtbi", "mL", Fraction(1), Fraction(1000), 1)
    out = typed(spec, "5.0").press("enter", 10_000)
    assert (out.status, out.display) == (Status.COMMITTED, "5")
    assert typed(spec, "5.").press("enter", 10_000).status is Status.REFUSED


def test_bad_field_refused() -> None:
    with pytest.raises(ConfigError, match="decimals"):
        FieldSpec("rate", "mL/h", Fraction(0), Fraction(1), 9)
    with pytest.raises(ConfigError, match="minimum < maximum"):
        FieldSpec("rate", "mL/h", Fraction(5), Fraction(1), 1)
