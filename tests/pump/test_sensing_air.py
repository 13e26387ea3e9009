"""Air-in-line: single bubble (UMN-GPCA-REQ-21) and cumulative air over delivered fluid (OI-ALM-5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import ConfigError
from openinfusion.pump.hal import AirBatch, AirBubble
from openinfusion.pump.sensing import AirMonitor, AirVerdict, DeliveryTrace
from openinfusion.units import Duration, Instant, Volume

ML = 1_000_000  # nL


def at_s(seconds: int) -> Instant:
    return Instant(0) + Duration.s(seconds)


def one_ml_per_second(t: Instant) -> Volume:
    """A delivery at 3600 mL/h, so that the delivered volume in mL is the time in seconds."""
    return Volume(t.us)


def batch(*bubbles: tuple[int, str]) -> AirBatch:
    """Bubbles as (second, volume in mL)."""
    return AirBatch(tuple(AirBubble(at_s(s), Volume.ml(v)) for s, v in bubbles))


@pytest.mark.req("UMN-GPCA-REQ-21")
def test_a_bubble_larger_than_the_single_limit_alarms_at_once() -> None:
    monitor = AirMonitor()  # 0.1 mL single limit
    verdict = monitor.observe(batch((3, "0.02"), (4, "0.15")), one_ml_per_second, at_s(5))
    assert verdict == AirVerdict(single=True, cumulative=False, air_in_window=Volume.ml("0.17"), at=at_s(4))


@pytest.mark.req("UMN-GPCA-REQ-21")
def test_a_bubble_of_exactly_the_single_limit_does_not_alarm() -> None:
    verdict = AirMonitor().observe(batch((1, "0.1")), one_ml_per_second, at_s(1))
    assert not verdict.single
    assert verdict.air_in_window == Volume.ml("0.1")


@pytest.mark.req("OI-ALM-5")
def test_small_bubbles_accumulate_to_a_cumulative_alarm() -> None:
    monitor = AirMonitor()  # 1 mL in 15 mL
    first = monitor.observe(batch(*[(s, "0.09") for s in range(11)]), one_ml_per_second, at_s(11))
    assert not first.single and not first.cumulative
    assert first.air_in_window == Volume.ml("0.99")
    second = monitor.observe(batch((12, "0.09")), one_ml_per_second, at_s(12))
    assert second == AirVerdict(single=False, cumulative=True, air_in_window=Volume.ml("1.08"), at=at_s(12))


@pytest.mark.req("OI-ALM-5")
def test_old_air_leaves_the_window_as_fluid_is_delivered() -> None:
    monitor = AirMonitor(Volume.ml("0.5"), Volume.ml(1), Volume.ml(15))
    monitor.observe(batch((0, "0.4"), (5, "0.4")), one_ml_per_second, at_s(5))
    # At 16 mL the bubble at 0 mL has left the window (16 - 0 >= 15): 0.4 + 0.4 is not above 1 mL.
    late = monitor.observe(batch((16, "0.4")), one_ml_per_second, at_s(16))
    assert not late.cumulative and late.air_in_window == Volume.ml("0.8")
    # The same bubble at 14 mL would have found both earlier ones still in the window.
    early = AirMonitor(Volume.ml("0.5"), Volume.ml(1), Volume.ml(15))
    early.observe(batch((0, "0.4"), (5, "0.4")), one_ml_per_second, at_s(5))
    assert early.observe(batch((14, "0.4")), one_ml_per_second, at_s(14)).cumulative
    # With no new bubble the window keeps sliding.
    assert monitor.observe(AirBatch(()), one_ml_per_second, at_s(20)).air_in_window == Volume.ml("0.4")
    assert monitor.observe(AirBatch(()), one_ml_per_second, at_s(31)).air_in_window == Volume(0)


@pytest.mark.req("OI-ALM-5")
def test_no_delivery_means_no_sliding_and_back_off_does_not_slide_it_back() -> None:
    monitor = AirMonitor()
    monitor.observe(batch((0, "0.09")), lambda _: Volume.ml(20), at_s(0))
    # Delivered volume reported lower later (reverse motion): the window does not move back.
    verdict = monitor.observe(batch((1, "0.09")), lambda _: Volume.ml(19), at_s(1))
    assert verdict.air_in_window == Volume.ml("0.18")
    assert monitor.observe(AirBatch(()), lambda _: Volume.ml(34), at_s(2)).air_in_window == Volume.ml("0.18")
    assert monitor.observe(AirBatch(()), lambda _: Volume.ml(35), at_s(3)).air_in_window == Volume(0)


@st.composite
def bubble_history(draw: st.DrawFn) -> list[list[tuple[int, int]]]:
    """Batches of (delivered position nL, bubble volume nL), positions non-decreasing overall."""
    position = 0
    batches: list[list[tuple[int, int]]] = []
    for _ in range(draw(st.integers(1, 8))):
        bubbles = []
        for _ in range(draw(st.integers(0, 6))):
            position += draw(st.integers(0, 8 * ML))
            bubbles.append((position, draw(st.integers(0, 400_000))))
        batches.append(bubbles)
    return batches


@pytest.mark.req("OI-ALM-5")
@given(history=bubble_history())
def test_window_matches_a_direct_count(history: list[list[tuple[int, int]]]) -> None:
    limit, window = 1 * ML, 15 * ML
    monitor = AirMonitor(Volume(100_000), Volume(limit), Volume(window))
    seen: list[tuple[int, int]] = []
    for bubbles in history:
        # The position doubles as the instant (us), so delivered_at is the identity.
        air = AirBatch(tuple(AirBubble(Instant(p), Volume(v)) for p, v in bubbles))
        now = bubbles[-1][0] if bubbles else (seen[-1][0] if seen else 0)
        verdict = monitor.observe(air, lambda t: Volume(t.us), Instant(now))
        cumulative = False
        for position, volume in bubbles:
            seen.append((position, volume))
            cumulative |= sum(v for p, v in seen if position - p < window) > limit
        assert verdict.cumulative == cumulative
        assert verdict.single == any(v > 100_000 for _, v in bubbles)
        assert verdict.air_in_window.nl == sum(v for p, v in seen if now - p < window)


def test_delivery_trace_interpolates_down_and_holds_at_the_ends() -> None:
    trace = DeliveryTrace(((at_s(10), Volume(1_000)), (at_s(13), Volume(2_000))))
    assert trace(at_s(0)) == Volume(1_000)
    assert trace(at_s(11)) == Volume(1_333)  # 1000 + 1000/3, rounded down
    assert trace(at_s(13)) == Volume(2_000)
    assert trace(at_s(99)) == Volume(2_000)


@pytest.mark.req("OI-IN-1")
@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: AirMonitor(Volume(0)), "air.single_limit"),
        (lambda: AirMonitor(Volume.ml(2), Volume.ml(1)), "air.cumulative_limit"),
        (lambda: AirMonitor(window=Volume.ml(1)), "air.window"),
        (lambda: DeliveryTrace(()), "delivery.points"),
        (lambda: DeliveryTrace(((at_s(2), Volume(5)), (at_s(1), Volume(6)))), "delivery.points[1]"),
        (lambda: DeliveryTrace(((at_s(1), Volume(5)), (at_s(2), Volume(4)))), "delivery.points[1]"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(build: object, where: str) -> None:
    with pytest.raises(ConfigError) as error:
        build()  # type: ignore[operator]
    assert error.value.where == where
