"""The one-event-at-a-time replay of docs/rules.md over a list of events: what the workflows must equal."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from incremental_analytics.domain.events import Event, normalise
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import Rule, RuleType
from tests.conftest import ROOT


def events_of(documents: Iterable[Mapping[str, Any]], rules: Sequence[Rule]) -> list[Event]:
    system = RuleIndex(rules).system_event_types
    now_ms = int(time.time() * 1000)
    normalised = [normalise(json.dumps(doc).encode(), now_ms=now_ms, ruled_system_events=system) for doc in documents]
    return [event for event in normalised if isinstance(event, Event)]


def expected(rules: Sequence[Rule], documents: Iterable[Mapping[str, Any]]) -> tuple[dict[Any, Any], list[Any]]:
    """(user, rule) -> (count, sum, cycle, qualified), and the outcomes as (user, rule, kind, cycle, outcome_id)."""
    events = events_of(documents, rules)  # each rule counts an event (identity, event id) once: group_aggregate
    index = RuleIndex(rule for rule in rules if rule.type is RuleType.AGGREGATE)
    states: dict[Any, Any] = {}
    outcomes = []
    for (user, rule_id), group in index.group_aggregate(events).items():
        rule = next(rule for rule in rules if rule.rule_id == rule_id)
        state = CounterState()
        for event in group:
            result = replay(state, rule, user, [event])
            state = result.state
            outcomes += [(o.user_id, o.rule_id, o.kind.value, o.cycle, o.outcome_id) for o in result.outcomes]
        states[(user, rule_id)] = (state.count, state.sum, state.cycle, state.qualified)
    return states, sorted(outcomes)


def commit_tries() -> int:
    """How often IngestBatch tries a throttled commit before its execution fails (its first try and its Retry's)."""
    definition = json.loads((ROOT / "statemachines" / "ingest_batch.asl.json").read_text())
    commit = definition["States"]["Apply"]["Branches"][1]["States"]["CommitCounters"]["ItemProcessor"]
    (retrier,) = commit["States"]["CommitChunk"]["Retry"]
    return 1 + int(retrier["MaxAttempts"])


def actual(product: Any) -> tuple[dict[Any, Any], list[Any]]:
    states = {key: (c.count, c.sum, c.cycle, c.qualified) for key, c in product.counters().items()}
    outcomes = sorted((o["user_id"], o["rule_id"], o["kind"], o["cycle"], o["outcome_id"]) for o in product.outcomes())
    return states, outcomes


def pipes_batch(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as the ingest Pipe hands a Kinesis batch over (one shard, in order)."""
    return [
        {
            "eventSource": "aws:kinesis",
            "eventID": f"shardId-000000000000:{n}",
            "sequenceNumber": str(n),
            "partitionKey": event["user_id"],
            "data": base64.b64encode(json.dumps(event).encode()).decode(),
        }
        for n, event in enumerate(events)
    ]
