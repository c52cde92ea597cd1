"""What the time series costs: the time-series table's write units and requests while IngestBatch stores the
three workloads of benchmarks/ingest_cost.py (10,000 events, batches of 100), then what EvaluatePeriods reads to
evaluate a 7-day window rule on `purchase` over them (the heavy workload's; created after the events for the
other two, as a rule created later counts the events before it). Figures, not pass/fail."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from decimal import Decimal
from typing import Any

from benchmarks import ingest_cost
from incremental_analytics.adapters.dynamodb_items import timeseries_items
from incremental_analytics.adapters.item_size import item_size
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.rules import RuleType
from incremental_analytics_local import botocore_hooks
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

EVENTS = 10_000
WINDOW = next(rule for rule in ingest_cost.HEAVY_RULES if rule.type is RuleType.WINDOW)


def measure(workload: ingest_cost.Workload) -> dict[str, Any]:
    events = ingest_cost.synthetic_events(EVENTS, 500, users_per_batch=workload.users_per_batch)
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"BatchSize": "100", **dict(workload.parameters)})
        product.put_rules(workload.rules)
        product.put_events(events)
        meter = ingest_cost.CapacityMeter()
        meter.install(aws.region)
        try:
            aws.reset_request_counts()
            botocore_hooks.observe(meter)
            product.ingest()
            ingest_requests = aws.request_counts()
            stored = meter.by_table.get("TimeSeriesTable", 0.0)
            if WINDOW not in workload.rules:
                product.put_rules([WINDOW])
            read_before = meter.read_units
            aws.reset_request_counts()
            started = time.monotonic()
            result = product.evaluate_periods(dt.datetime.now(dt.UTC), deadline_seconds=600)
            seconds = time.monotonic() - started
            evaluation_requests = aws.request_counts()
            read = meter.read_units - read_before
        finally:
            meter.uninstall()
    assert result.status == "SUCCEEDED" and result.output is not None, (result.error, result.cause)
    (rule,) = [rule for rule in result.output["rules"] if rule["rule_id"] == WINDOW.rule_id]
    return {
        "workload": workload.name,
        "timeseries_wru_per_event": round(stored / EVENTS, 3),
        "batch_write_requests_per_event": round(ingest_requests.get("dynamodb.BatchWriteItem", 0) / EVENTS, 4),
        "requests_per_event": round(sum(ingest_requests.values()) / EVENTS, 3),
        "evaluation_rru": round(read, 1),
        "evaluation_items_read": rule["timeseries_items_read"],
        "evaluation_queries": evaluation_requests.get("dynamodb.Query", 0),
        "evaluation_qualified": rule["qualified"],
        "evaluation_wall_s": round(seconds, 1),
    }


def packing(
    shard_counts: tuple[int, ...] = (1, 2, 4), batch_sizes: tuple[int, ...] = (100, 500)
) -> list[dict[str, Any]]:
    """Write units and items a packed time series costs per event, by the number of shards of a partition and the
    batch size, for the issue workload's events, in process (items sized as DynamoDB counts them)."""
    events = [
        Event(
            hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32],  # a generated id's length
            record["user_id"],
            record["event_type"],
            record["timestamp"],
            {},
            {name: Decimal(str(value)) for name, value in record.get("metrics", {}).items()},
        )
        for record in ingest_cost.synthetic_events(EVENTS, 500)
    ]
    rows = []
    for shards in shard_counts:
        for size in batch_sizes:
            packed = [
                item
                for start in range(0, len(events), size)
                for item in timeseries_items(events[start : start + size], shards=shards, ttl_seconds=400 * 86_400)
            ]
            units = sum(max(1, math.ceil(item_size(item) / 1024)) for item in packed)
            rows.append(
                {
                    "shards": shards,
                    "batch_size": size,
                    "wru_per_event": round(units / len(events), 3),
                    "items_per_event": round(len(packed) / len(events), 3),
                    "bytes_per_event": round(sum(item_size(item) for item in packed) / len(events), 1),
                }
            )
    return rows


def main(names: tuple[str, ...] = ("issue", "dense", "heavy")) -> list[dict[str, Any]]:
    return [measure(workload) for workload in ingest_cost.WORKLOADS if workload.name in names]


if __name__ == "__main__":
    from benchmarks.run import table

    table("The time series packed, by shards and batch size, in process (benchmarks/timeseries.py)", packing())
    table("The time series: IngestBatch's writes, EvaluatePeriods' reads (benchmarks/timeseries.py)", main())
