"""Alarm catalogue and alarm manager, read as timelines (STYLE.md §4): advance time, change a condition, look."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from openinfusion.errors import ConfigError, InputError, OpenInfusionError
from openinfusion.pump.alarms import (
    AUDIO_PAUSE,
    CATALOGUE,
    AlarmCode,
    AlarmError,
    AlarmEvent,
    AlarmEventKind,
    AlarmManager,
    AlarmState,
    Priority,
    Scope,
    build_catalogue,
    catalogue_markdown,
)
from openinfusion.pump.eventlog import EventKind, EventLog
from openinfusion.units import Duration, Instant

ROOT = Path(__file__).resolve().parents[2]
A = AlarmCode
K = AlarmEventKind

# From the brief and OI-SAFE-*/OI-POST-*: the conditions that force the failsafe state.
FAILSAFE = {
    A.MOTOR_FAULT,
    A.ENCODER_FAULT,
    A.DELIVERY_ACCURACY,
    A.MOTION_MISMATCH,
    A.REVERSE_DELIVERY,
    A.SELF_TEST_FAILED,
    A.WATCHDOG_FAULT,
    A.SYSTEM_FAULT,
}
# Conditions during which delivery may continue (OI-ALM-7 KVO and near end, OI-ALM-8 battery low and
# on battery, OI-ALM-10 callbacks and titration, GPCA NOTIF-14 frequent demands: no inhibition).
NON_STOPPING = {
    A.LIBRARY_FALLBACK,
    A.VTBI_COMPLETE_KVO,
    A.NEAR_END,
    A.BATTERY_LOW,
    A.MAX_DOSE,  # KVO while in effect (open-pca-requirements.md Table 4)
    A.UNDER_INFUSION,  # a warning: the rate continues (Table 4)
    A.RESERVOIR_LOW,  # a warning (Table 4)
    A.ON_BATTERY,
    A.CALLBACK_PAUSED,
    A.CALLBACK_PROGRAMMING,
    A.UNCONFIRMED_TITRATION,
    A.PCA_FREQUENT_DEMANDS,
}
PUMP_WIDE = {A.BATTERY_LOW, A.BATTERY_DEPLETED, A.ON_BATTERY, A.SELF_TEST_FAILED, A.WATCHDOG_FAULT, A.SYSTEM_FAULT}
PUMP_WIDE |= {A.LIBRARY_FALLBACK}


def at(seconds: float | str) -> Instant:
    """Pump time ``seconds`` after power-on."""
    return Instant(Duration.s(seconds).us)


def channel_of(code: AlarmCode, channel: int = 0) -> int | None:
    return None if code in PUMP_WIDE else channel


def kinds(events: list[AlarmEvent] | tuple[AlarmEvent, ...]) -> list[AlarmEventKind]:
    return [event.kind for event in events]


def requirement_ids() -> set[str]:
    data = YAML(typ="safe").load((ROOT / "safety" / "requirements.yaml").read_text(encoding="utf-8"))
    return {row["id"] for row in data["requirements"]}


# --- catalogue -------------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-1")
def test_catalogue_has_one_row_per_code_naming_a_known_requirement() -> None:
    known = requirement_ids()
    assert set(CATALOGUE) == set(AlarmCode)
    for code, spec in CATALOGUE.items():
        assert spec.code is code
        assert spec.requirement in known, f"{code.name}: {spec.requirement} is not in safety/requirements.yaml"
        assert spec.scope is (Scope.PUMP if code in PUMP_WIDE else Scope.CHANNEL), code.name


@pytest.mark.req("OI-ALM-1", "OI-SAFE-3", "OI-ALM-9")
def test_failsafe_rows_are_high_latching_and_stopping() -> None:
    assert {code for code, spec in CATALOGUE.items() if spec.failsafe} == FAILSAFE
    for code in FAILSAFE:
        spec = CATALOGUE[code]
        assert (spec.priority, spec.latching, spec.stops_delivery) == (Priority.HIGH, True, True), code.name


@pytest.mark.req("OI-ALM-1", "OI-ALM-2", "OI-ALM-4", "UMN-GPCA-REQ-21", "OI-ALM-5", "OI-ALM-6", "OI-ALM-8")
def test_hazardous_conditions_stop_delivery_with_a_high_priority_alarm() -> None:
    for code in (A.OCCLUSION_DOWNSTREAM, A.OCCLUSION_UPSTREAM, A.AIR_IN_LINE, A.AIR_CUMULATIVE, A.DOOR_OPEN):
        assert CATALOGUE[code].priority is Priority.HIGH and CATALOGUE[code].stops_delivery, code.name
    assert CATALOGUE[A.BATTERY_DEPLETED].priority is Priority.HIGH and CATALOGUE[A.BATTERY_DEPLETED].stops_delivery
    assert {code for code, spec in CATALOGUE.items() if not spec.stops_delivery} == NON_STOPPING


@pytest.mark.req("OI-ALM-1")
def test_catalogue_refuses_duplicate_and_missing_rows() -> None:
    rows = tuple(CATALOGUE.values())
    with pytest.raises(OpenInfusionError, match="duplicate row for OCCLUSION_DOWNSTREAM"):
        build_catalogue((*rows, CATALOGUE[A.OCCLUSION_DOWNSTREAM]))
    with pytest.raises(OpenInfusionError, match="no row for SYSTEM_FAULT"):
        build_catalogue(row for row in rows if row.code is not A.SYSTEM_FAULT)


@pytest.mark.req("OI-ALM-1")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"priority": Priority.MEDIUM}, "failsafe alarm is high priority"),
        ({"latching": False}, "failsafe alarm is high priority"),
        ({"escalate_after": Duration.min(1)}, "go together"),
        ({"escalate_after": Duration.min(1), "escalate_to": Priority.HIGH}, "must be above"),
        ({"requirement": "ALM 2"}, "not a requirement ID"),
        ({"text": " "}, "must not be empty"),
    ],
)
def test_an_inconsistent_row_cannot_exist(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(CATALOGUE[A.MOTOR_FAULT], **change)  # type: ignore[arg-type]


@pytest.mark.req("OI-ALM-1")
def test_information_signals_are_silent_and_stop_nothing() -> None:
    with pytest.raises(ConfigError, match="information signal"):
        replace(CATALOGUE[A.ON_BATTERY], audible=True)
    with pytest.raises(ConfigError, match="at least medium"):
        replace(CATALOGUE[A.NEAR_END], stops_delivery=True)


@pytest.mark.req("OI-ALM-1")
def test_docs_alarms_md_is_generated_from_the_catalogue() -> None:
    committed = (ROOT / "docs" / "alarms.md").read_text(encoding="utf-8")
    assert committed == catalogue_markdown(), "docs/alarms.md is stale: regenerate it (command at its top)"
    for code in AlarmCode:
        assert f"`{code.value}`" in committed


# --- arbitration -----------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-11", "UMN-GPCA-REQ-60")
def test_raise_medium_then_high_annunciates_high() -> None:
    pump = AlarmManager()
    pump.activate(A.CALLBACK_PAUSED, 1, at(0))
    assert pump.annunciation(at(0)).signal == "medium"

    pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(3))
    now = pump.annunciation(at(3))
    assert (now.priority, now.signal, now.audible) == (Priority.HIGH, "high", True)
    assert now.top is not None and now.top.code is A.OCCLUSION_DOWNSTREAM
    assert [a.code for a in now.active] == [A.OCCLUSION_DOWNSTREAM, A.CALLBACK_PAUSED]

    pump.activate(A.NEAR_END, 2, at(4))  # a lower priority is only added to the list (GPCA REQ 64)
    assert pump.annunciation(at(4)).top == now.top

    pump.condition_cleared(A.OCCLUSION_DOWNSTREAM, 0, at(6))
    pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(7))
    assert pump.annunciation(at(7)).signal == "medium"


@pytest.mark.req("OI-ALM-11", "UMN-GPCA-REQ-60")
def test_equal_priorities_are_listed_most_recent_first() -> None:
    pump = AlarmManager()
    pump.activate(A.AIR_IN_LINE, 0, at(1))
    pump.activate(A.DOOR_OPEN, 1, at(2))
    pump.activate(A.NEAR_END, 0, at(3))
    assert [a.code for a in pump.active()] == [A.DOOR_OPEN, A.AIR_IN_LINE, A.NEAR_END]
    assert [a.code for a in pump.active(0)] == [A.AIR_IN_LINE, A.NEAR_END]


@pytest.mark.req("OI-ALM-8")
def test_information_signal_is_listed_but_gives_no_alarm_signal() -> None:
    pump = AlarmManager()
    pump.activate(A.ON_BATTERY, None, at(0))
    now = pump.annunciation(at(0))
    assert [a.code for a in now.active] == [A.ON_BATTERY]
    assert (now.signal, now.audible) == (None, False)
    assert not pump.stops_delivery(0)


# --- audio pause -----------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-11")
def test_audio_pause_silences_for_two_minutes_then_reannounces() -> None:
    pump = AlarmManager()
    pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(0))
    paused = pump.audio_pause(at(10))
    assert kinds(paused) == [K.AUDIO_PAUSED] and paused[0].until == at(130)
    assert Duration.s(120) == AUDIO_PAUSE

    assert not pump.annunciation(at(10)).audible
    assert not pump.annunciation(Instant(at(130).us - 1)).audible
    assert pump.annunciation(at(130)).signal == "high"  # shown throughout: only the sound pauses
    assert pump.annunciation(at(130)).audible
    assert pump.next_attention(at(10)) == at(130)

    # The core is called late, at 3:20: the events are logged then and say the pause ran out at 2:10.
    events = pump.advance(at(200))
    assert kinds(events) == [K.AUDIO_PAUSE_ENDED, K.REANNOUNCED]
    assert {(e.t, e.due) for e in events} == {(at(200), at(130))}
    assert events[1].code is A.OCCLUSION_DOWNSTREAM


@pytest.mark.req("OI-ALM-11")
def test_pause_that_runs_out_with_nothing_left_reannounces_nothing() -> None:
    pump = AlarmManager()
    pump.activate(A.CALLBACK_PROGRAMMING, 0, at(0))
    pump.audio_pause(at(1))
    pump.condition_cleared(A.CALLBACK_PROGRAMMING, 0, at(20))
    assert kinds(pump.advance(at(121))) == [K.AUDIO_PAUSE_ENDED]
    assert pump.next_attention(at(121)) is None


@pytest.mark.req("OI-ALM-11", "UMN-GPCA-REQ-60")
def test_new_high_alarm_during_a_pause_ends_it() -> None:
    pump = AlarmManager()
    pump.activate(A.UNCONFIRMED_TITRATION, 0, at(0))
    pump.audio_pause(at(5))

    low = pump.activate(A.NEAR_END, 1, at(20))  # lower than the paused medium: stays silent
    assert kinds(low) == [K.RAISED] and not pump.annunciation(at(20)).audible

    high = pump.activate(A.AIR_IN_LINE, 1, at(30))
    assert kinds(high) == [K.RAISED, K.AUDIO_PAUSE_ENDED]
    now = pump.annunciation(at(30))
    assert now.audible and now.paused_until is None and now.signal == "high"


@pytest.mark.req("OI-ALM-11")
def test_new_alarm_of_the_paused_priority_ends_the_pause() -> None:
    pump = AlarmManager()
    pump.activate(A.CALLBACK_PAUSED, 0, at(0))
    pump.audio_pause(at(1))
    assert kinds(pump.activate(A.CALLBACK_PAUSED, 1, at(2))) == [K.RAISED, K.AUDIO_PAUSE_ENDED]


# --- latching and reset ----------------------------------------------------------------------


@pytest.mark.req("OI-ALM-2", "OI-ALM-12", "OI-ALM-11")
def test_latched_occlusion_remains_after_the_condition_clears_until_reset() -> None:
    pump = AlarmManager()
    assert kinds(pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(0), "42 mmHg/s rise")) == [K.RAISED]
    assert pump.stops_delivery(0)

    refused = pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(5))  # still occluded
    assert not refused.accepted and "condition still present" in refused.reason

    latched = pump.condition_cleared(A.OCCLUSION_DOWNSTREAM, 0, at(10))
    assert kinds(latched) == [K.LATCHED] and latched[0].state is AlarmState.LATCHED
    now = pump.annunciation(at(60))
    assert now.audible and now.top is not None and now.top.state is AlarmState.LATCHED
    assert pump.stops_delivery(0)  # delivery does not resume by itself

    done = pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(61))
    assert done.accepted and kinds(done.events) == [K.RESET]
    assert pump.active() == () and not pump.stops_delivery(0)


@pytest.mark.req("OI-ALM-2")
def test_latched_condition_that_returns_becomes_active_again() -> None:
    pump = AlarmManager()
    pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(0))
    pump.condition_cleared(A.OCCLUSION_DOWNSTREAM, 0, at(1))
    again = pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(2))
    assert kinds(again) == [K.RAISED] and again[0].instance == 1
    (alarm,) = pump.active()
    assert (alarm.state, alarm.onset, alarm.last_onset) == (AlarmState.ACTIVE, at(0), at(2))
    assert not pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(3)).accepted


@pytest.mark.req("OI-ALM-6", "OI-ALM-12")
def test_door_alarm_reset_refused_while_the_door_is_open() -> None:
    pump = AlarmManager()
    pump.activate(A.DOOR_OPEN, 2, at(0))
    before = pump.active()

    refused = pump.reset(A.DOOR_OPEN, 2, at(3))
    assert not refused.accepted and refused.reason.startswith("condition still present")
    assert kinds(refused.events) == [K.RESET_REFUSED] and refused.events[0].detail == refused.reason
    assert pump.active() == before  # nothing changed

    pump.condition_cleared(A.DOOR_OPEN, 2, at(8))  # door closed: still latched, delivery still stopped
    assert pump.stops_delivery(2)
    assert pump.reset(A.DOOR_OPEN, 2, at(9)).accepted
    assert not pump.stops_delivery(2)


@pytest.mark.req("OI-ALM-7")
def test_reset_while_a_condition_persists_acknowledges_when_the_row_allows_it() -> None:
    pump = AlarmManager()
    pump.activate(A.VTBI_COMPLETE_KVO, 0, at(0))
    ack = pump.reset(A.VTBI_COMPLETE_KVO, 0, at(4))
    assert ack.accepted and kinds(ack.events) == [K.ACKNOWLEDGED]
    now = pump.annunciation(at(4))
    assert [a.state for a in now.active] == [AlarmState.ACKNOWLEDGED] and not now.audible
    assert pump.next_attention(at(4)) is None  # an acknowledged alarm does not escalate
    assert not pump.reset(A.VTBI_COMPLETE_KVO, 0, at(5)).accepted  # already acknowledged
    assert kinds(pump.condition_cleared(A.VTBI_COMPLETE_KVO, 0, at(9))) == [K.CLEARED]
    assert pump.active() == ()


def test_reset_of_an_alarm_that_is_not_listed_is_refused() -> None:
    result = AlarmManager().reset(A.NEAR_END, 0, at(1))
    assert not result.accepted and result.reason == "no such alarm is active"
    assert result.events[0].code is A.NEAR_END and result.events[0].instance is None


@pytest.mark.req("OI-SAFE-3", "OI-SAFE-1", "OI-CHAN-2")
def test_failsafe_alarm_is_never_reset() -> None:
    pump = AlarmManager()
    pump.activate(A.MOTION_MISMATCH, 1, at(0), "issued 400 steps, encoder 0 counts")
    assert pump.in_failsafe(1) and pump.stops_delivery(1)
    assert not pump.in_failsafe(0) and not pump.stops_delivery(0)

    assert not pump.reset(A.MOTION_MISMATCH, 1, at(1)).accepted
    pump.condition_cleared(A.MOTION_MISMATCH, 1, at(2))
    result = pump.reset(A.MOTION_MISMATCH, 1, at(3))
    assert not result.accepted and "power cycle" in result.reason
    assert pump.in_failsafe(1) and pump.annunciation(at(3_600)).signal == "high"

    assert not AlarmManager().in_failsafe(1)  # a power cycle (a new manager) is the way out


@pytest.mark.req("OI-SAFE-3")
@settings(max_examples=50, deadline=None)
@given(
    code=st.sampled_from(sorted(FAILSAFE, key=lambda c: c.value)),
    steps=st.lists(st.tuples(st.sampled_from(["clear", "reset", "pause"]), st.integers(0, 10**9)), max_size=12),
)
def test_no_sequence_of_operator_actions_leaves_failsafe(code: AlarmCode, steps: list[tuple[str, int]]) -> None:
    pump = AlarmManager(channels=2)
    channel = channel_of(code, 1)
    pump.activate(code, channel, at(0))
    now = at(0)
    for action, gap_us in steps:
        now = Instant(now.us + gap_us)
        if action == "clear":
            pump.condition_cleared(code, channel, now)
        elif action == "reset":
            assert not pump.reset(code, channel, now).accepted
        else:
            pump.audio_pause(now)
    assert pump.in_failsafe(1) and pump.stops_delivery(1)


@pytest.mark.req("OI-CHAN-2", "OI-ALM-8")
def test_pump_wide_alarm_stops_every_channel_and_channel_alarm_only_its_own() -> None:
    pump = AlarmManager(channels=3)
    pump.activate(A.AIR_IN_LINE, 0, at(0))
    assert [pump.stops_delivery(c) for c in range(3)] == [True, False, False]
    pump.activate(A.BATTERY_DEPLETED, None, at(1))
    assert [pump.stops_delivery(c) for c in range(3)] == [True, True, True]
    pump.activate(A.WATCHDOG_FAULT, None, at(2))
    assert all(pump.in_failsafe(c) for c in range(3))


# --- escalation ------------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-11", "OI-ALM-10")
def test_unattended_callback_alarm_escalates_from_medium_to_high() -> None:
    pump = AlarmManager()
    pump.activate(A.CALLBACK_PAUSED, 0, at(0))
    after = CATALOGUE[A.CALLBACK_PAUSED].escalate_after
    assert after is not None
    assert pump.next_attention(at(0)) == at(0) + after

    assert pump.advance(Instant((at(0) + after).us - 1)) == []
    assert pump.annunciation(Instant((at(0) + after).us - 1)).signal == "medium"
    events = pump.advance(at(0) + after)
    assert kinds(events) == [K.ESCALATED] and events[0].priority is Priority.HIGH
    assert pump.annunciation(at(0) + after).signal == "high"
    assert pump.next_attention(at(0) + after) is None  # escalates once


@pytest.mark.req("OI-ALM-11", "OI-ALM-10")
def test_audio_pause_attends_to_an_alarm_and_restarts_its_escalation_clock() -> None:
    pump = AlarmManager()
    pump.activate(A.CALLBACK_PROGRAMMING, 0, at(0))
    after = CATALOGUE[A.CALLBACK_PROGRAMMING].escalate_after
    assert after is not None and after > AUDIO_PAUSE
    pump.audio_pause(at(60))
    assert pump.next_attention(at(60)) == at(60) + AUDIO_PAUSE  # the pause ends first
    events = pump.advance(at(60) + after)
    assert kinds(events) == [K.AUDIO_PAUSE_ENDED, K.REANNOUNCED, K.ESCALATED]
    assert [e.due for e in events] == [at(60) + AUDIO_PAUSE, at(60) + AUDIO_PAUSE, at(60) + after]


# --- delivery ------------------------------------------------------------------------------


@pytest.mark.req("OI-ALM-1", "OI-ALM-7")
@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(sorted(NON_STOPPING, key=lambda c: c.value)),
            st.integers(0, 3),
            st.sampled_from(["raise", "clear", "reset", "pause"]),
            st.integers(0, 400_000_000),
        ),
        max_size=25,
    )
)
def test_non_stopping_alarms_never_stop_delivery(ops: list[tuple[AlarmCode, int, str, int]]) -> None:
    pump = AlarmManager()
    now = at(0)
    for code, channel, action, gap_us in ops:
        now = Instant(now.us + gap_us)
        where = channel_of(code, channel)
        if action == "raise":
            pump.activate(code, where, now)
        elif action == "clear":
            pump.condition_cleared(code, where, now)
        elif action == "reset":
            pump.reset(code, where, now)
        else:
            pump.audio_pause(now)
        pump.advance(now)
        assert not any(pump.stops_delivery(c) for c in range(4))


# --- whole-system properties -----------------------------------------------------------------

_OP = st.tuples(
    st.sampled_from(list(AlarmCode)),
    st.integers(0, 1),
    st.sampled_from(["raise", "raise", "clear", "reset", "pause", "tick"]),
    st.integers(0, 200_000_000),
)


@pytest.mark.req("OI-ALM-11", "UMN-GPCA-REQ-60", "OI-SAFE-3")
@settings(max_examples=120, deadline=None)
@given(ops=st.lists(_OP, max_size=30))
def test_invariants_hold_over_random_timelines(ops: list[tuple[AlarmCode, int, str, int]]) -> None:
    pump = AlarmManager(channels=2)
    now = at(0)
    log: list[AlarmEvent] = []
    record = EventLog()
    failsafe_seen: set[tuple[AlarmCode, int | None]] = set()
    for code, channel, action, gap_us in ops:
        now = Instant(now.us + gap_us)
        where = channel_of(code, channel)
        if action == "raise":
            events = pump.activate(code, where, now)
        elif action == "clear":
            events = pump.condition_cleared(code, where, now)
        elif action == "reset":
            events = list(pump.reset(code, where, now).events)
        elif action == "pause":
            events = pump.audio_pause(now)
        else:
            events = pump.advance(now)
        # Stamped when the core acts, so they always fit into the caller's time-ordered log.
        assert all(e.t == now and (e.due is None or e.due <= now) for e in events)
        for event in events:
            record.append(event.t, event.log_kind, event.channel, **event.log_data())
        record.append(now, EventKind.STATE_CHANGED, None, note="caller's own event")
        log.extend(events)
        if action == "raise" and code in FAILSAFE:
            failsafe_seen.add((code, where))

        listed = pump.active()
        now_signal = pump.annunciation(now)
        assert now_signal.active == listed
        assert now_signal.priority == max((a.priority for a in listed), default=None)
        assert [a.priority.rank for a in listed] == sorted((a.priority.rank for a in listed), reverse=True)
        sounding = any(a.spec.audible and a.state is not AlarmState.ACKNOWLEDGED for a in listed)
        assert now_signal.audible == (sounding and now_signal.paused_until is None)
        assert failsafe_seen <= {(a.code, a.channel) for a in listed}
        for c in range(2):
            stopping = any(a.spec.stops_delivery and a.channel in (c, None) for a in listed)
            assert pump.stops_delivery(c) == stopping
    assert [e.t for e in log] == sorted(e.t for e in log)
    ended = {e.instance for e in log if e.kind in (K.CLEARED, K.RESET)}
    assert not ended & {a.instance for a in pump.active()}


# --- misuse --------------------------------------------------------------------------------


def test_scope_channel_and_time_are_checked() -> None:
    pump = AlarmManager(channels=2)
    with pytest.raises(AlarmError, match="whole pump"):
        pump.activate(A.BATTERY_LOW, 0, at(0))
    with pytest.raises(AlarmError, match="one channel"):
        pump.activate(A.DOOR_OPEN, None, at(0))
    with pytest.raises(AlarmError, match="no channel 2"):
        pump.activate(A.DOOR_OPEN, 2, at(0))
    pump.activate(A.DOOR_OPEN, 1, at(5))
    with pytest.raises(AlarmError, match="backwards"):
        pump.activate(A.AIR_IN_LINE, 1, at(4))
    assert [a.code for a in pump.active()] == [A.DOOR_OPEN]
    with pytest.raises(ConfigError):
        AlarmManager(channels=5)
    assert issubclass(AlarmError, InputError)


def test_activate_is_idempotent_while_the_condition_persists() -> None:
    pump = AlarmManager()
    first = pump.activate(A.AIR_IN_LINE, 0, at(0), "80 uL bubble")
    assert pump.activate(A.AIR_IN_LINE, 0, at(1), "90 uL bubble") == []
    (alarm,) = pump.active()
    assert (alarm.instance, alarm.onset, alarm.detail) == (first[0].instance, at(0), "80 uL bubble")


# --- logging ---------------------------------------------------------------------------------


@pytest.mark.req("UMN-GPCA-REQ-80", "OI-LOG-1")
def test_every_alarm_event_is_logged_with_its_time_and_description() -> None:
    pump = AlarmManager()
    events = [
        *pump.activate(A.OCCLUSION_DOWNSTREAM, 0, at(0), "pressure 610 mmHg"),
        *pump.audio_pause(at(2)),
        *pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(3)).events,
        *pump.condition_cleared(A.OCCLUSION_DOWNSTREAM, 0, at(4)),
        *pump.advance(at(200)),
        *pump.reset(A.OCCLUSION_DOWNSTREAM, 0, at(201)).events,
    ]
    log = EventLog(pump_id="pump-7")
    for event in events:
        log.append(event.t, event.log_kind, event.channel, state="alarm_stopped", **event.log_data())
    logged = log.events()
    assert [e.kind for e in logged] == [
        EventKind.ALARM_RAISED,
        EventKind.AUDIO_PAUSED,
        EventKind.EVENT_REFUSED,
        EventKind.ALARM_LATCHED,
        EventKind.AUDIO_PAUSE_ENDED,
        EventKind.ALARM_REANNOUNCED,
        EventKind.ALARM_RESET,
    ]
    raised = logged[0]
    assert raised.t == at(0) and raised.channel == 0
    assert raised.data["text"] == CATALOGUE[A.OCCLUSION_DOWNSTREAM].text
    assert (raised.data["code"], raised.data["priority"], raised.data["detail"]) == (
        "occlusion_downstream",
        "high",
        "pressure 610 mmHg",
    )
    assert logged[1].data["until_us"] == at(122).us
    assert logged[5].t == at(200) and logged[5].data["due_us"] == at(122).us
    assert logged[2].data["reason"] == "condition still present: " + CATALOGUE[A.OCCLUSION_DOWNSTREAM].text
    assert logged[-1].data["alarm_state"] == "ended"
    assert {e.data.get("instance") for e in logged if "code" in e.data} == {1}
    assert EventLog.from_jsonl(log.to_jsonl()).to_jsonl() == log.to_jsonl()
