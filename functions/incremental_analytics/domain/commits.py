"""Planning the atomic commits of one (user, aggregate rule) group (docs/design.md).

A commit is one DynamoDB transaction: a claim per event, the counter conditioned on the version read, and the
outbox outcomes. A transaction holds at most 100 items, so a large group is split into chunks committed in
order, each expecting the version the one before it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from incremental_analytics.domain.outcomes import Contribution, Outcome
from incremental_analytics.domain.replay import CounterState, replay_contributions
from incremental_analytics.domain.rules import Rule

MAX_TRANSACTION_ITEMS = 100


@dataclass(frozen=True, slots=True)
class Chunk:
    events: tuple[Contribution, ...]
    outcomes: tuple[Outcome, ...]
    state: CounterState  # the counters after this chunk
    expected_version: int  # the version the counter must have for this chunk to commit

    @property
    def version(self) -> int:
        return self.expected_version + 1

    @property
    def item_count(self) -> int:
        return 1 + len(self.events) + len(self.outcomes)


def plan_commits(
    state: CounterState,
    version: int,
    rule: Rule,
    user_id: str,
    events: Sequence[Contribution],
    *,
    max_items: int = MAX_TRANSACTION_ITEMS,
) -> list[Chunk]:
    """Replay `events` (new to this rule, in stream order) from `state`, cut into transactions that fit."""
    if max_items < 3:
        raise ValueError("a transaction must hold the counter, a claim and an outcome")
    chunks: list[Chunk] = []
    chunk_events: list[Contribution] = []
    chunk_outcomes: list[Outcome] = []
    chunk_state, expected = state, version
    current = state
    for event in events:
        result = replay_contributions(current, rule, user_id, [event])
        if 1 + len(chunk_events) + len(chunk_outcomes) + 1 + len(result.outcomes) > max_items:
            chunks.append(Chunk(tuple(chunk_events), tuple(chunk_outcomes), chunk_state, expected))
            expected += 1
            chunk_events, chunk_outcomes = [], []
        chunk_events.append(event)
        chunk_outcomes.extend(result.outcomes)
        current = chunk_state = result.state
    if chunk_events:
        chunks.append(Chunk(tuple(chunk_events), tuple(chunk_outcomes), chunk_state, expected))
    return chunks
