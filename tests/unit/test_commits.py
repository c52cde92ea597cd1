"""Planning a group's commits: transactions that fit, in order, each expecting the version before it."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.domain.commits import plan_commits
from incremental_analytics.domain.outcomes import Contribution
from incremental_analytics.domain.replay import CounterState, replay_contributions
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType

RESET_EVERY_2 = Rule("r", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER_OR_EQUAL, 2), reset=True)


def _events(count: int) -> list[Contribution]:
    return [Contribution(f"e{n}", 1_600_000_000_000 + n, Decimal(1)) for n in range(count)]


def test_a_small_group_is_one_chunk() -> None:
    (chunk,) = plan_commits(CounterState(), 4, RESET_EVERY_2, "u1", _events(5))
    assert chunk.expected_version == 4 and chunk.version == 5
    assert len(chunk.events) == 5 and [o.cycle for o in chunk.outcomes] == [1, 2]
    assert chunk.state.count == 1 and chunk.state.cycle == 2
    assert chunk.item_count == 1 + 5 + 2


def test_a_250_event_group_is_cut_into_transactions_of_at_most_100_items() -> None:
    chunks = plan_commits(CounterState(), 0, RESET_EVERY_2, "u1", _events(250))
    assert all(chunk.item_count <= 100 for chunk in chunks)
    assert [chunk.expected_version for chunk in chunks] == list(range(len(chunks)))
    assert [e for chunk in chunks for e in chunk.events] == _events(250)
    assert [o.cycle for chunk in chunks for o in chunk.outcomes] == list(range(1, 126))
    assert len(chunks) == 4  # each event adds a claim, every second one an outcome: 66 events a chunk


def test_no_events_no_commit() -> None:
    assert plan_commits(CounterState(), 3, RESET_EVERY_2, "u1", []) == []


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.integers(3, 100))
def test_chunks_replay_exactly_the_whole_group(count: int, max_items: int) -> None:
    events = _events(count)
    chunks = plan_commits(CounterState(), 0, RESET_EVERY_2, "u1", events, max_items=max_items)
    whole = replay_contributions(CounterState(), RESET_EVERY_2, "u1", events)
    assert all(chunk.item_count <= max_items for chunk in chunks)
    assert [o for chunk in chunks for o in chunk.outcomes] == list(whole.outcomes)
    assert (chunks[-1].state if chunks else CounterState()) == whole.state
