"""docs/rules.md: the per-event replay of an aggregate rule for one user, as one pure function."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from incremental_analytics.domain.events import Event
from incremental_analytics.domain.numbers import add
from incremental_analytics.domain.outcomes import (
    EVIDENCE_EVENTS,
    Contribution,
    Outcome,
    OutcomeKind,
    make_outcome,
)
from incremental_analytics.domain.rules import Rule, RuleType


@dataclass(frozen=True, slots=True)
class CounterState:
    """What is kept per (user, aggregate rule). `recent` holds the latest contributing events, for evidence."""

    count: int = 0
    sum: Decimal = Decimal(0)
    cycle: int = 0
    qualified: bool = False
    recent: tuple[Contribution, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplayResult:
    state: CounterState
    outcomes: tuple[Outcome, ...]


def replay(state: CounterState, rule: Rule, user_id: str, events: Iterable[Event]) -> ReplayResult:
    """Apply new, distinct, matching events in stream order; return the new state and what it caused.

    The caller guarantees each event is new (deduplicated by event_id) and matches the rule.
    """
    contributions = (Contribution(event.event_id, event.timestamp_ms, rule.value_of(event.metrics)) for event in events)
    return replay_contributions(state, rule, user_id, contributions)


def replay_contributions(
    state: CounterState, rule: Rule, user_id: str, contributions: Iterable[Contribution]
) -> ReplayResult:
    """The replay over events already reduced to their id, time and value for this rule."""
    if rule.type is not RuleType.AGGREGATE:
        raise ValueError(f"rule {rule.rule_id} is a {rule.type} rule; only aggregate rules replay per event")
    count, total, cycle, qualified, recent = state.count, state.sum, state.cycle, state.qualified, state.recent
    outcomes: list[Outcome] = []
    for contribution in contributions:
        count += 1
        total = add(total, contribution.value)
        recent = (*recent, contribution)[-EVIDENCE_EVENTS:]
        checks = rule.check(count, total)
        met = all(check.holds for check in checks)
        kind: OutcomeKind | None = None
        if met and rule.reset:
            cycle += 1
            kind = OutcomeKind.REACHED
        elif met and not qualified:
            qualified = True
            kind = OutcomeKind.QUALIFIED
        if kind is not None:
            outcomes.append(
                make_outcome(
                    rule,
                    user_id,
                    kind,
                    occasion=cycle if rule.reset else None,
                    occurred_at_ms=contribution.timestamp_ms,
                    checks=checks,
                    count=count,
                    total=total,
                    contributions=recent,
                )
            )
        if met and rule.reset:
            count, total, recent = 0, Decimal(0), ()
    new_state = replace(state, count=count, sum=total, cycle=cycle, qualified=qualified, recent=recent)
    return ReplayResult(new_state, tuple(outcomes))
