"""Events per second through the pure core in-process: normalise + match + replay, with 1, 10 and 100 rules.

Figures, not pass/fail: the median of several runs on the same synthetic stream.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from decimal import Decimal

from incremental_analytics.domain.events import Event, normalise
from incremental_analytics.domain.matching import RuleIndex, first_occurrences
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import AttributeFilter, CountCondition, Operator, Rule, RuleType, SumCondition

EVENT_TYPES = [f"event{n}" for n in range(20)]
PRODUCTS = ["table", "chair", "lamp", "desk"]
NOW_MS = 1_700_000_000_000


def synthetic_records(count: int, users: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [
        json.dumps(
            {
                "user_id": f"user-{rng.randrange(users):05d}",
                "event_type": rng.choice(EVENT_TYPES),
                "timestamp": NOW_MS - rng.randrange(86_400_000),
                "attributes": {"product": rng.choice(PRODUCTS)},
                "metrics": {"price": round(rng.uniform(1, 200), 2)},
            }
        ).encode()
        for _ in range(count)
    ]


def synthetic_rules(count: int) -> list[Rule]:
    rules = []
    for n in range(count):
        event_type = EVENT_TYPES[n % len(EVENT_TYPES)]
        product = PRODUCTS[(n // len(EVENT_TYPES)) % len(PRODUCTS)] if n >= len(EVENT_TYPES) else None
        rules.append(
            Rule(
                f"rule-{n}",
                RuleType.AGGREGATE,
                event_type,
                attribute=None if product is None else AttributeFilter("product", product),
                count=CountCondition(Operator.GREATER, 3 + n % 5),
                sum=SumCondition(Operator.GREATER, Decimal(100)) if n % 2 else None,
                reset=n % 3 == 0,
            )
        )
    return rules


def process(records: list[bytes], rules: list[Rule], batch_size: int = 100) -> int:
    """The ingest path's pure work, batch by batch, carrying per-(user, rule) state; returns outcomes."""
    states: dict[tuple[str, str], CounterState] = {}
    claimed: dict[str, set[tuple[str, str]]] = {}
    index = RuleIndex(rules)
    by_id = {rule.rule_id: rule for rule in rules}
    system = index.system_event_types
    outcomes = 0
    for start in range(0, len(records), batch_size):
        events = [
            item
            for item in (
                normalise(data, now_ms=NOW_MS, ruled_system_events=system)
                for data in records[start : start + batch_size]
            )
            if isinstance(item, Event)
        ]
        for (user_id, rule_id), group in index.group_aggregate(events).items():
            seen = claimed.setdefault(rule_id, set())
            fresh = first_occurrences(group, seen)
            seen.update(event.key for event in fresh)
            result = replay(states.get((user_id, rule_id), CounterState()), by_id[rule_id], user_id, fresh)
            states[(user_id, rule_id)] = result.state
            outcomes += len(result.outcomes)
    return outcomes


def measure(rule_count: int, records: list[bytes], runs: int = 5) -> tuple[float, int]:
    rules = synthetic_rules(rule_count)
    timings, outcomes = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        outcomes = process(records, rules)
        timings.append(time.perf_counter() - started)
    return len(records) / statistics.median(timings), outcomes


def main() -> list[dict[str, object]]:
    records = synthetic_records(20_000, users=500)
    rows = []
    for rule_count in (1, 10, 100):
        rate, outcomes = measure(rule_count, records)
        rows.append({"rules": rule_count, "events_per_second": round(rate), "outcomes": outcomes})
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
