"""Batching, splitting and redelivery never change the replay of docs/rules.md (property tests)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.domain.events import Event
from incremental_analytics.domain.matching import first_occurrences
from incremental_analytics.domain.outcomes import Outcome
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition

operators = st.sampled_from(list(Operator))
decimals = st.decimals(min_value=-50, max_value=50, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    count = draw(st.none() | st.builds(CountCondition, operators, st.integers(0, 8)))
    metric = draw(st.sampled_from([None, "price", "qty"]))
    total = draw(st.builds(SumCondition, operators, decimals, st.just(metric)))
    if count is None or draw(st.booleans()):
        return Rule("r", RuleType.AGGREGATE, "x", count=count, sum=total, reset=draw(st.booleans()))
    return Rule("r", RuleType.AGGREGATE, "x", count=count, reset=draw(st.booleans()))


METRICS = st.dictionaries(st.sampled_from(["price", "qty", "other"]), decimals, max_size=2)


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """A user's stream with repeated records: a repeat is the same event (same event_id) delivered again."""
    metrics = draw(st.lists(METRICS, max_size=40))
    repeats = draw(st.lists(st.integers(0, 200), min_size=len(metrics), max_size=len(metrics)))
    stream: list[Event] = []
    for n, (values, repeat) in enumerate(zip(metrics, repeats, strict=True)):
        stream.append(Event(f"e{n}", "u1", "x", 1_600_000_000_000 + n, metrics=values))
        if repeat < 40:  # about one in five records is followed by a copy of an earlier one
            stream.append(stream[repeat % len(stream)])
    return stream


def _one_at_a_time(rule: Rule, stream: list[Event]) -> tuple[CounterState, list[Outcome]]:
    state, outcomes = CounterState(), []
    for item in first_occurrences(stream):
        result = replay(state, rule, "u1", [item])
        state = result.state
        outcomes.extend(result.outcomes)
    return state, outcomes


def _in_deliveries(rule: Rule, deliveries: list[list[Event]]) -> tuple[CounterState, list[Outcome]]:
    """Each delivery is deduplicated against the claims committed so far, then replayed carrying state."""
    state, outcomes, claimed = CounterState(), [], set[tuple[str, str]]()
    for batch in deliveries:
        fresh = first_occurrences(batch, claimed)
        result = replay(state, rule, "u1", fresh)
        state = result.state
        outcomes.extend(result.outcomes)
        claimed.update(item.key for item in fresh)
    return state, outcomes


@settings(max_examples=300, deadline=None)
@given(rules(), streams(), st.data())
def test_any_batch_split_equals_one_event_at_a_time(rule: Rule, stream: list[Event], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    bounds = [0, *cuts, len(stream)]
    batches = [stream[start:end] for start, end in itertools.pairwise(bounds)]
    assert _in_deliveries(rule, batches) == _one_at_a_time(rule, stream)


@settings(max_examples=300, deadline=None)
@given(rules(), streams(), st.data())
def test_redelivering_earlier_records_changes_nothing(rule: Rule, stream: list[Event], data: st.DataObject) -> None:
    """At-least-once delivery: a batch may come again, whole or split (bisection), before the stream moves on."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    deliveries: list[list[Event]] = []
    for start, end in itertools.pairwise(bounds):
        deliveries.append(stream[start:end])
        if end and data.draw(st.booleans()):
            again_from = data.draw(st.integers(0, end))
            deliveries.append(stream[again_from:end])  # a redelivered tail of what was already committed
    assert _in_deliveries(rule, deliveries) == _one_at_a_time(rule, stream)


@settings(max_examples=200, deadline=None)
@given(rules(), streams())
def test_a_prefix_delivered_again_after_dedupe_changes_nothing(rule: Rule, stream: list[Event]) -> None:
    state, outcomes = _in_deliveries(rule, [stream])
    for end in range(len(stream) + 1):
        assert _in_deliveries(rule, [stream, stream[:end]]) == (state, outcomes)


@settings(max_examples=200, deadline=None)
@given(rules(), streams())
def test_reset_rules_fire_once_per_cycle_and_non_reset_rules_at_most_once(rule: Rule, stream: list[Event]) -> None:
    state, outcomes = _one_at_a_time(rule, stream)
    if rule.reset:
        assert [o.cycle for o in outcomes] == list(range(1, state.cycle + 1))
    else:
        assert len(outcomes) <= 1 and state.qualified == bool(outcomes)
    assert len({o.outcome_id for o in outcomes}) == len(outcomes)


def test_a_sum_of_many_cents_stays_exact() -> None:
    rule = Rule("r", RuleType.AGGREGATE, "x", sum=SumCondition(Operator.EQUAL, Decimal("1000.00")))
    stream = [Event(f"e{n}", "u1", "x", 1_600_000_000_000 + n, metrics={"v": Decimal("0.1")}) for n in range(10_000)]
    state, outcomes = _one_at_a_time(rule, stream)
    assert state.sum == Decimal("1000.0") and len(outcomes) == 1
