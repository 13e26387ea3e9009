"""The channel lifecycle table: exhaustive (state, event, guard context) exploration."""

import itertools
from pathlib import Path

import pytest

from openinfusion.cli.statechart import document
from openinfusion.pump.statechart import (
    CONDITION_TRIGGERED_TRANSITIONS,
    DELIVERING,
    TRANSITIONS,
    ChannelEvent,
    ChannelState,
    Conditions,
    GuardContext,
    Refusal,
    Transition,
    allowed_events,
    fire,
    triggered,
)

CONTEXTS = [GuardContext(*flags) for flags in itertools.product([False, True], repeat=6)]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.req("OI-CHAN-1")
def test_every_state_event_pair_fires_or_is_refused_with_a_reason() -> None:
    for state, event, ctx in itertools.product(ChannelState, ChannelEvent, CONTEXTS):
        outcome = fire(state, event, ctx)
        if isinstance(outcome, Refusal):
            assert outcome.state is state and outcome.event is event
            assert outcome.reason.strip(), (state, event)
        else:
            assert isinstance(outcome, Transition)
            assert outcome.source is state and outcome.event is event


@pytest.mark.req("OI-CHAN-1")
def test_an_event_with_no_row_names_the_state_and_event() -> None:
    ctx = CONTEXTS[-1]
    outcome = fire(ChannelState.IDLE, ChannelEvent.START, ctx)
    assert isinstance(outcome, Refusal)
    assert outcome.reason == "start is not allowed while idle"


@pytest.mark.req("OI-SAFE-3")
def test_failsafe_has_no_way_out_and_every_other_state_reaches_it_on_fault() -> None:
    assert allowed_events(ChannelState.FAILSAFE) == ()
    for state in ChannelState:
        if state is ChannelState.FAILSAFE:
            continue
        outcome = fire(state, ChannelEvent.FAULT, CONTEXTS[0])
        assert isinstance(outcome, Transition) and outcome.target is ChannelState.FAILSAFE


@pytest.mark.req("OI-ALM-12", "OI-ALM-6")
def test_delivery_starts_only_when_loaded_and_no_stopping_alarm() -> None:
    for row in TRANSITIONS:
        entering = row.target in DELIVERING and row.source not in DELIVERING
        if entering and row.event is not ChannelEvent.PLAN_DONE:
            for ctx in CONTEXTS:
                if not ctx.loaded or ctx.stopping_alarm:
                    assert isinstance(fire(row.source, row.event, ctx), Refusal), row


@pytest.mark.req("UMN-GPCA-REQ-06")
def test_every_transition_out_of_delivery_stops_the_motor() -> None:
    from openinfusion.pump.statechart import Action

    for row in TRANSITIONS:
        if row.source in DELIVERING and row.target not in DELIVERING:
            assert Action.STOP_MOTOR in row.actions, row


@pytest.mark.req("OI-CHAN-1")
def test_every_state_is_reachable_from_idle() -> None:
    seen = {ChannelState.IDLE}
    frontier = [ChannelState.IDLE]
    while frontier:
        state = frontier.pop()
        for row in TRANSITIONS:
            if row.source is state and row.target not in seen:
                seen.add(row.target)
                frontier.append(row.target)
    assert seen == set(ChannelState)


@pytest.mark.req("OI-CHAN-1")
def test_committed_diagram_matches_the_code() -> None:
    committed = (REPO / "docs" / "statechart.md").read_text(encoding="utf-8")
    assert committed == document(), "run `openinfusion statechart --out docs` and commit the result"


CONDITIONS = [Conditions(*flags) for flags in itertools.product([False, True], repeat=4)]


@pytest.mark.req("OI-CHAN-1")
def test_every_condition_triggered_event_has_a_row_where_it_fires() -> None:
    for trigger in CONDITION_TRIGGERED_TRANSITIONS:
        for state in trigger.sources:
            assert trigger.event in allowed_events(state), (state, trigger.event)


@pytest.mark.req("OI-SAFE-3", "OI-ALM-12")
def test_conditions_fire_by_priority_and_settle() -> None:
    """A failsafe alarm beats everything; a stopping alarm beats the plan; chains of triggers end."""
    failsafe = Conditions(failsafe_alarm=True, stopping_alarm=True, segment_done=True, more_segments=False)
    assert triggered(ChannelState.INFUSING, failsafe) is ChannelEvent.FAULT
    assert triggered(ChannelState.FAILSAFE, failsafe) is None
    stopping = Conditions(failsafe_alarm=False, stopping_alarm=True, segment_done=True, more_segments=True)
    assert triggered(ChannelState.INFUSING, stopping) is ChannelEvent.STOPPING_ALARM
    assert triggered(ChannelState.ALARM, stopping) is None
    ctx = CONTEXTS[0]
    for state, conditions in itertools.product(ChannelState, CONDITIONS):
        seen = [state]
        while (event := triggered(seen[-1], conditions)) is not None and len(seen) < 5:
            outcome = fire(seen[-1], event, ctx)
            if isinstance(outcome, Refusal) or outcome.target is seen[-1]:
                break  # a refused or self-loop event stops here (the conditions change as the plan advances)
            seen.append(outcome.target)
        assert len(seen) < 5, seen
