"""docs/events.md: event ids are scoped to the identity. Users whose apps number their events alike ("1", "2", ...) are
counted apart, whatever the batching and redelivery: the ingest path's pure steps (normalise, batch dedupe, the
per-user claims, the time-series keys, the period evaluation's reads) equal the one-at-a-time answer."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.adapters import period_store as store
from incremental_analytics.domain.events import Event, normalise
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.domain.periods import evaluate_period
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition

NOW = dt.datetime(2020, 10, 1, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
BASE_MS = 1_600_000_000_000  # 2020-09-13
SHARDS = 4

AGGREGATE = Rule("every-3", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER_OR_EQUAL, 3), reset=True)
SPENDER = Rule("spender", RuleType.AGGREGATE, "x", sum=SumCondition(Operator.GREATER, Decimal(10)))
SEPTEMBER = Rule(
    "september",
    RuleType.DATE,
    "x",
    count=CountCondition(Operator.GREATER_OR_EQUAL, 2),
    start_date=dt.date(2020, 9, 1),
    finish_date=dt.date(2020, 9, 30),
)
WHYS = Rule("whys", RuleType.AGGREGATE, "y", count=CountCondition(Operator.GREATER_OR_EQUAL, 2))
RULES = (AGGREGATE, SPENDER, WHYS, SEPTEMBER)


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Records of three users whose event ids come from one small pool, so that users share ids; about one
    record in five is followed by a copy of an earlier one (a producer's retry), and now and then a producer
    reuses an id of its user for a record that differs (another type, time or value)."""
    records: list[bytes] = []
    for n in range(draw(st.integers(0, 40))):
        document = {
            "user_id": draw(st.sampled_from(["ann", "bob", "cyd"])),
            "event_type": draw(st.sampled_from(["x", "x", "x", "y"])),
            "event_id": draw(st.sampled_from(["1", "2", "3", "4", "5", "6"])),
            "timestamp": BASE_MS + draw(st.integers(0, n)) * 60_000,
            "metrics": {"v": draw(st.integers(0, 9))},
        }
        records.append(json.dumps(document).encode())
        if draw(st.integers(0, 4)) == 0:
            records.append(records[draw(st.integers(0, len(records) - 1))])
    return records


def _events(records: list[bytes]) -> list[Event]:
    read = [normalise(data, now_ms=NOW_MS) for data in records]
    return [event for event in read if isinstance(event, Event)]


def _one_at_a_time(records: list[bytes]) -> tuple[dict[Any, Any], list[Any], dict[str, tuple[int, Decimal]]]:
    """The reference, one record at a time in stream order: a rule counts the first record of each (user, id)
    that matches it (docs/design.md's claims, per rule); a period counts each (user, id) once, the earliest record."""
    states: dict[Any, CounterState] = {}
    outcomes = []
    claimed: set[tuple[str, str, str]] = set()
    events = _events(records)
    for event in events:
        for rule in RuleIndex(RULES).rules_for(event):
            if rule.type is RuleType.AGGREGATE and (rule.rule_id, *event.key) not in claimed:
                claimed.add((rule.rule_id, *event.key))
                result = replay(states.get((event.user_id, rule.rule_id), CounterState()), rule, event.user_id, [event])
                states[(event.user_id, rule.rule_id)] = result.state
                outcomes += [(o.user_id, o.rule_id, o.kind.value, o.cycle, o.outcome_id) for o in result.outcomes]
    earliest: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for event in events:
        if SEPTEMBER.matches(event.event_type, event.attributes):
            seen = (event.timestamp_ms, SEPTEMBER.value_of(event.metrics))
            earliest[event.key] = min(earliest.get(event.key, seen), seen)
    totals: dict[str, tuple[int, Decimal]] = {}
    for (user, _), (_, value) in earliest.items():
        count, total = totals.get(user, (0, Decimal(0)))
        totals[user] = (count + 1, total + value)
    figures = {key: (s.count, s.sum, s.cycle, s.qualified) for key, s in states.items()}
    return figures, sorted(outcomes), totals


def _in_deliveries(deliveries: list[list[bytes]]) -> tuple[dict[Any, Any], list[Any], dict[str, tuple[int, Decimal]]]:
    """What the workflows do with each delivery: group the batch's events per (user, rule), each id once, drop
    those a user's claims already hold (ResolveConflict), replay each group on its stored counter and claim;
    pack the delivery's events into time-series items (a delivery made again puts the same items)."""
    index = RuleIndex(RULES)
    claims: set[str] = set()
    counters: dict[tuple[str, str], CounterState] = {}
    timeseries: dict[tuple[str, str], dict[str, Any]] = {}
    outcomes = []
    for delivery in deliveries:
        events = _events(delivery)
        for (user, rule_id), group in index.group_aggregate(events).items():
            rule = next(rule for rule in RULES if rule.rule_id == rule_id)

            def claim(event: Event, rule: Rule = rule, user: str = user) -> str:
                key = items.claim_key(user, rule.rule_id, rule.counting_identity, event.event_id)
                return f"{key['pk']['S']}|{key['sk']['S']}"

            fresh = [event for event in group if claim(event) not in claims]
            result = replay(counters.get((user, rule_id), CounterState()), rule, user, fresh)
            counters[(user, rule_id)] = result.state
            claims.update(claim(event) for event in fresh)
            outcomes += [(o.user_id, o.rule_id, o.kind.value, o.cycle, o.outcome_id) for o in result.outcomes]
        for put in items.timeseries_items(events, shards=SHARDS, ttl_seconds=86_400):
            timeseries[(put["pk"]["S"], put["sk"]["S"])] = put
    partitions = [put for (pk, _), put in timeseries.items() if pk.startswith(f"{SEPTEMBER.event_type}#")]
    period = evaluate_period(SEPTEMBER, NOW, store.frame(store.matching_rows(partitions, SEPTEMBER)))
    totals = {str(user): (int(row["count"]), row["sum"]) for user, row in period.totals.iterrows()}
    figures = {key: (s.count, s.sum, s.cycle, s.qualified) for key, s in counters.items()}
    return figures, sorted(outcomes), totals


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_any_batching_and_redelivery_of_shared_ids_equals_one_at_a_time(
    records: list[bytes], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=8)))
    deliveries: list[list[bytes]] = []
    for start, end in itertools.pairwise([0, *cuts, len(records)]):
        deliveries.append(records[start:end])
        if end and data.draw(st.booleans()):
            deliveries.append(records[data.draw(st.integers(0, end)) : end])  # a batch again, whole or split
    assert _in_deliveries(deliveries) == _one_at_a_time(records)


def test_twenty_users_numbering_their_events_alike_are_counted_apart() -> None:
    """The issue's case: 20 users whose events are numbered "1".."30" are 600 events, at any batch size."""
    records = [
        json.dumps({"user_id": f"u{u:02d}", "event_type": "x", "event_id": str(n), "timestamp": BASE_MS + n}).encode()
        for n in range(1, 31)
        for u in range(20)
    ]
    for size in (1, 10, 100, 600):
        batches = [records[start : start + size] for start in range(0, len(records), size)]
        figures, _, totals = _in_deliveries(batches + batches)  # every batch delivered twice
        every_3 = Counter((count, cycle) for (_, rule), (count, _, cycle, _) in figures.items() if rule == "every-3")
        assert every_3 == Counter({(0, 10): 20})  # 30 events each: ten cycles of three
        assert sum(count for (_, rule), (count, _, _, _) in figures.items() if rule == "spender") == 600
        assert sum(count for count, _ in totals.values()) == 600
        assert figures == _one_at_a_time(records)[0]
