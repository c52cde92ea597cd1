"""Throughput of one Kinesis shard through the ingest path, on paper (docs/design.md).

The exact part is measured here, in-process, on the benchmark's events: per batch, how many (user, rule) groups
IngestBatch commits (each one TransactWriteItems, in a Map of `MaxConcurrency` read from the ASL), so how many
rounds of transactions run one after the other. The rest are AWS's published latencies and quotas, named below;
the result is the events/s one shard sustains and the first limit it meets. Figures, not pass/fail.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.ingest_cost import RULES, synthetic_events
from incremental_analytics.domain.commits import MAX_TRANSACTION_ITEMS
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.matching import RuleIndex

ROOT = Path(__file__).resolve().parents[1]
KINESIS_SHARD_RECORDS_PER_SECOND = 1_000  # Kinesis Data Streams quotas: 1 MB or 1,000 records/s written per shard

# Assumed AWS latencies (p50, warm, same Region), in seconds: DynamoDB documents single-digit milliseconds for
# single-item operations and more for transactions (two phases); Lambda's warm invoke overhead and a Step Functions
# Express state transition are a few to tens of ms. They are assumptions: the model shows how the result moves.
PIPE_POLL_AND_HANDOFF = 0.050  # the Pipe's GetRecords + StartSyncExecution round trips
ENRICHMENT = 0.080  # ParseRecords: a Lambda invoke reading 100-500 records
MATCH_AND_EVALUATE = 0.120  # a Lambda invoke: rules (cached), one BatchGetItem, replay
TRANSACTION = 0.025  # TransactWriteItems of a few items
STATE = 0.005  # a Pass/Choice/Map-iteration transition in an Express workflow
STATES_PER_GROUP = 4  # measured: a CommitCounters iteration enters about 4 states besides its transaction


def commit_concurrency() -> int:
    definition = json.loads((ROOT / "statemachines" / "ingest_batch.asl.json").read_text())
    for branch in definition["States"]["Apply"]["Branches"]:
        for state in branch["States"].values():
            if state["Type"] == "Map" and state["ItemsPath"] == "$.groups":
                return int(state["MaxConcurrency"])
    raise LookupError("IngestBatch has no CommitCounters Map")


def groups_per_batch(batch_size: int, events: int = 10_000, users: int = 500) -> list[int]:
    """(user, rule) groups in each batch of the issue's workload: each is one transaction (or more if > 100 items)."""
    index = RuleIndex(RULES)
    data = synthetic_events(events, users)
    counts = []
    for start in range(0, len(data), batch_size):
        batch = [
            Event(f"e{start + n}", d["user_id"], d["event_type"], d["timestamp"])
            for n, d in enumerate(data[start : start + batch_size])
        ]
        groups = index.group_aggregate(batch)
        counts.append(sum(math.ceil((len(g) * 2 + 1) / MAX_TRANSACTION_ITEMS) for g in groups.values()))
    return counts


def batch_seconds(transactions: int, concurrency: int) -> float:
    rounds = math.ceil(transactions / concurrency)
    return PIPE_POLL_AND_HANDOFF + ENRICHMENT + MATCH_AND_EVALUATE + rounds * (TRANSACTION + STATES_PER_GROUP * STATE)


def model() -> list[dict[str, Any]]:
    concurrency = commit_concurrency()
    rows = []
    for batch_size in (100, 500):
        transactions = statistics.median(groups_per_batch(batch_size))
        seconds = batch_seconds(int(transactions), concurrency)
        for factor in (1, 5, 10):
            sustained = batch_size * factor / seconds
            rows.append(
                {
                    "batch_size": batch_size,
                    "parallelization": factor,
                    "transactions_per_batch": transactions,
                    "sequential_rounds": math.ceil(transactions / concurrency),
                    "seconds_per_batch": round(seconds, 2),
                    "events_per_second": round(sustained),
                    "keeps_up_with_a_full_shard": sustained >= KINESIS_SHARD_RECORDS_PER_SECOND,
                    "express_starts_per_second": round(factor / seconds, 1),
                    "lambda_concurrency": 2 * factor,
                }
            )
    return rows


if __name__ == "__main__":
    print(json.dumps(model(), indent=2))
