"""docs/rules.md, the per-event replay of aggregate rules, with the 2021 guide's cases."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition
from tests.unit.helpers import event

GREENBUTTON = Rule(
    "aggregate-greenbutton", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 5)
)
REDBUTTON = Rule(
    "aggregate-redbutton",
    RuleType.AGGREGATE,
    "redbutton",
    count=CountCondition(Operator.GREATER, 3),
    reset=True,
)


def test_guide_case_1_greenbutton_qualifies_at_the_sixth_event_and_never_again() -> None:
    events = [event(n, event_type="greenbutton") for n in range(1, 13)]
    first = replay(CounterState(), GREENBUTTON, "u1", events[:5])
    assert first.outcomes == () and first.state.count == 5
    sixth = replay(first.state, GREENBUTTON, "u1", events[5:6])
    assert [o.kind for o in sixth.outcomes] == [OutcomeKind.QUALIFIED]
    (qualified,) = sixth.outcomes
    assert qualified.output == "trk_greenbutton" and qualified.cycle is None
    assert qualified.evidence["count"] == 6
    assert qualified.evidence["conditions"] == [
        {"on": "count", "operator": "greater", "target": 5, "actual": 6, "holds": True}
    ]
    assert [e["event_id"] for e in qualified.evidence["events"]] == [e.event_id for e in events[:6]]
    later = replay(sixth.state, GREENBUTTON, "u1", events[6:])
    assert later.outcomes == ()
    assert later.state.count == 12 and later.state.qualified  # counters keep accumulating after qualification


def test_guide_case_2_redbutton_with_reset_fires_at_the_fourth_and_eighth() -> None:
    events = [event(n, event_type="redbutton") for n in range(1, 9)]
    result = replay(CounterState(), REDBUTTON, "u1", events)
    assert [(o.kind, o.cycle) for o in result.outcomes] == [
        (OutcomeKind.REACHED, 1),
        (OutcomeKind.REACHED, 2),
    ]
    assert [o.occurred_at for o in result.outcomes] == [
        "2021-01-31T22:00:04.000Z",
        "2021-01-31T22:00:08.000Z",
    ]
    assert result.state.count == 0 and result.state.sum == 0 and result.state.cycle == 2
    assert result.state.recent == ()
    second = result.outcomes[1]
    assert [e["event_id"] for e in second.evidence["events"]] == [e.event_id for e in events[4:]]


def test_reset_with_both_count_and_sum_needs_both() -> None:
    rule = Rule(
        "spend",
        RuleType.AGGREGATE,
        "purchase",
        count=CountCondition(Operator.GREATER_OR_EQUAL, 2),
        sum=SumCondition(Operator.GREATER, Decimal(100)),
        reset=True,
    )
    values = ["99.99", "0.01", "0.01", "150", "1", "200"]
    events = [event(n, event_type="purchase", value=v) for n, v in enumerate(values, start=1)]
    result = replay(CounterState(), rule, "u1", events)
    # 99.99 (1 event) no; 100.00 (2) no: not greater; 100.01 (3) yes -> reset; 150 (1) no; 151 (2) yes; 200 (1) no.
    assert [(o.cycle, o.evidence["count"], o.evidence["sum"]) for o in result.outcomes] == [
        (1, 3, 100.01),
        (2, 2, 151),
    ]
    assert result.state.count == 1 and result.state.sum == Decimal(200)


def test_sums_are_exact_decimals_and_negative_metrics_count() -> None:
    rule = Rule("r", RuleType.AGGREGATE, "purchase", sum=SumCondition(Operator.GREATER, Decimal(19)))
    result = replay(CounterState(), rule, "u1", [event(1, event_type="purchase", value="19.99")])
    assert result.state.sum == Decimal("19.99")
    assert [o.kind for o in result.outcomes] == [OutcomeKind.QUALIFIED]
    refund = Rule("refund", RuleType.AGGREGATE, "refund", sum=SumCondition(Operator.LESS, Decimal("-10")))
    values = ["-4.5", "-5.5", "-0.01"]
    events = [event(n, event_type="refund", value=v) for n, v in enumerate(values, start=1)]
    result = replay(CounterState(), refund, "u1", events)
    assert result.state.sum == Decimal("-10.01")
    assert [o.evidence["count"] for o in result.outcomes] == [3]


def test_qualification_is_latched_even_when_the_condition_stops_holding() -> None:
    rule = Rule("few", RuleType.AGGREGATE, "x", count=CountCondition(Operator.LESS, 2))
    result = replay(CounterState(), rule, "u1", [event(n, event_type="x") for n in range(1, 5)])
    assert [o.kind for o in result.outcomes] == [OutcomeKind.QUALIFIED]
    assert result.state.qualified and result.state.count == 4


def test_outcome_ids_are_deterministic_and_distinct() -> None:
    events = [event(n, event_type="redbutton") for n in range(1, 9)]
    first = replay(CounterState(), REDBUTTON, "u1", events)
    again = replay(CounterState(), REDBUTTON, "u1", events)
    assert [o.outcome_id for o in first.outcomes] == [o.outcome_id for o in again.outcomes]
    assert len({o.outcome_id for o in first.outcomes}) == 2
    other_user = replay(CounterState(), REDBUTTON, "u2", [replace(e, user_id="u2") for e in events])
    assert not {o.outcome_id for o in other_user.outcomes} & {o.outcome_id for o in first.outcomes}
    moved = replace(REDBUTTON, count=CountCondition(Operator.GREATER, 3), reset=True, event_type="redbutton2")
    moved_events = [replace(e, event_type="redbutton2") for e in events]
    changed_identity = replay(CounterState(), moved, "u1", moved_events)
    assert not {o.outcome_id for o in changed_identity.outcomes} & {o.outcome_id for o in first.outcomes}


def test_evidence_keeps_the_last_twenty_events_and_the_total() -> None:
    rule = Rule("many", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER_OR_EQUAL, 25))
    events = [event(n, event_type="x", value="1.5") for n in range(1, 26)]
    (outcome,) = replay(CounterState(), rule, "u1", events).outcomes
    assert outcome.evidence["events_total"] == 25 and outcome.evidence["events_truncated"] is True
    assert [e["event_id"] for e in outcome.evidence["events"]] == [e.event_id for e in events[5:]]
    assert outcome.evidence["events"][0] == {
        "event_id": "u1-x-6",
        "timestamp": "2021-01-31T22:00:06.000Z",
        "value": 1.5,
    }
    assert outcome.evidence["sum"] == 37.5


def test_only_aggregate_rules_replay() -> None:
    window = Rule("w", RuleType.WINDOW, "x", count=CountCondition(Operator.GREATER, 0), days=3)
    with pytest.raises(ValueError, match="only aggregate"):
        replay(CounterState(), window, "u1", [])
