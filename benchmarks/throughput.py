"""Throughput of one Kinesis shard through the ingest path, on paper (docs/design.md).

The exact part is computed here, in-process, on the benchmark's events replayed in stream order: per batch, how
many (user, rule) groups need no transaction (no outcome: MatchAndEvaluate writes them with BatchExecuteStatement,
25 a request, one request after the other) and how many do (an outcome for the outbox: one TransactWriteItems
each, in IngestBatch's CommitCounters Map of `MaxConcurrency` read from the ASL). The rest are AWS's published
latencies and quotas, named below; the result is the events/s one shard sustains and the first limit it meets.
Figures, not pass/fail.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.ingest_cost import RULES, synthetic_events
from incremental_analytics.adapters.dynamodb_io import BATCH_STATEMENT_LIMIT
from incremental_analytics.domain.commits import plan_commits
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.domain.outcomes import Contribution
from incremental_analytics.domain.replay import CounterState

ROOT = Path(__file__).resolve().parents[1]
KINESIS_SHARD_RECORDS_PER_SECOND = 1_000  # Kinesis Data Streams quotas: 1 MB or 1,000 records/s written per shard

# Assumed AWS latencies (p50, warm, same Region), in seconds: DynamoDB documents single-digit milliseconds for
# single-item operations and more for transactions (two phases); Lambda's warm invoke overhead and a Step Functions
# Express state transition are a few to tens of ms. They are assumptions: the model shows how the result moves.
PIPE_POLL_AND_HANDOFF = 0.050  # the Pipe's GetRecords + StartSyncExecution round trips
ENRICHMENT = 0.080  # ParseRecords: a Lambda invoke reading 100-500 records
MATCH_AND_EVALUATE = 0.120  # a Lambda invoke: rules (cached), one BatchGetItem, replay
STATEMENT_BATCH = 0.030  # BatchExecuteStatement of 25 single-item conditional writes (run in parallel by DynamoDB)
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


@dataclass(frozen=True)
class BatchCommits:
    statements: int  # groups written by BatchExecuteStatement
    transactions: int  # TransactWriteItems (a group with an outcome; more than one past 100 items)


def commits_per_batch(batch_size: int, events: int = 10_000, users: int = 500) -> list[BatchCommits]:
    """The issue workload's commits, batch by batch, from the counters as they stand when each batch comes."""
    index = RuleIndex(RULES)
    by_id = {rule.rule_id: rule for rule in RULES}
    states: dict[tuple[str, str], CounterState] = {}
    data = synthetic_events(events, users)
    found = []
    for start in range(0, len(data), batch_size):
        batch = [
            Event(
                f"e{start + n}",
                d["user_id"],
                d["event_type"],
                d["timestamp"],
                metrics={k: Decimal(str(v)) for k, v in d.get("metrics", {}).items()},
            )
            for n, d in enumerate(data[start : start + batch_size])
        ]
        statements = transactions = 0
        for (user, rule_id), group in index.group_aggregate(batch).items():
            rule = by_id[rule_id]
            chunks = plan_commits(
                states.get((user, rule_id), CounterState()),
                0,
                rule,
                user,
                [Contribution(e.event_id, e.timestamp_ms, rule.value_of(e.metrics)) for e in group],
            )
            states[(user, rule_id)] = chunks[-1].state
            if len(chunks) == 1 and not chunks[0].outcomes:
                statements += 1
            else:
                transactions += len(chunks)
        found.append(BatchCommits(statements, transactions))
    return found


def batch_seconds(commits: BatchCommits, concurrency: int) -> float:
    requests = math.ceil(commits.statements / BATCH_STATEMENT_LIMIT)
    rounds = math.ceil(commits.transactions / concurrency)
    return (
        PIPE_POLL_AND_HANDOFF
        + ENRICHMENT
        + MATCH_AND_EVALUATE
        + requests * STATEMENT_BATCH
        + rounds * (TRANSACTION + STATES_PER_GROUP * STATE)
    )


def median_batch(batch_size: int) -> BatchCommits:
    commits = commits_per_batch(batch_size)
    return BatchCommits(
        int(statistics.median(c.statements for c in commits)), int(statistics.median(c.transactions for c in commits))
    )


def model() -> list[dict[str, Any]]:
    concurrency = commit_concurrency()
    rows = []
    for batch_size in (100, 500):
        commits = median_batch(batch_size)
        seconds = batch_seconds(commits, concurrency)
        for factor in (1, 5, 10):
            sustained = batch_size * factor / seconds
            rows.append(
                {
                    "batch_size": batch_size,
                    "parallelization": factor,
                    "statement_groups_per_batch": commits.statements,
                    "statement_requests": math.ceil(commits.statements / BATCH_STATEMENT_LIMIT),
                    "transactions_per_batch": commits.transactions,
                    "transaction_rounds": math.ceil(commits.transactions / concurrency),
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
