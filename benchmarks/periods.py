"""What an hourly evaluation of a date/window rule reads, as the history grows: a 30-day window rule over N events
from 1000 users spread over 30 days, written straight into the local time-series table (as StoreTimeSeries
writes them), then EvaluatePeriods at the end of the 30 days (first run: every closed day rolled up) and an hour
later (steady state: rollups read from S3, only open days from DynamoDB). Figures, not pass/fail.

`python -m benchmarks.periods 10000 100000 1000000` measures the sizes given (the default is 10,000 and 100,000).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
from typing import Any

from moto.dynamodb.models import dynamodb_backends

from incremental_analytics.adapters.dynamodb_items import timeseries_items
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, epoch_ms
from incremental_analytics.settings import TIMESERIES_SHARDS
from incremental_analytics_local.engine import ACCOUNT_ID, LocalAws
from incremental_analytics_local.product import LocalProduct

RULE = Rule("window-opens", RuleType.WINDOW, "app_open", count=CountCondition(Operator.GREATER_OR_EQUAL, 40), days=30)
END = dt.datetime(2021, 6, 30, 23, 30, tzinfo=dt.UTC)
USERS = 1000


def _history(aws: LocalAws, product: LocalProduct, events: int) -> None:
    """N events over the 30 days before END, straight into moto's table (the API path costs minutes at 1M), packed
    as StoreTimeSeries packs them: in batches of 100 events in the order of their time, as a stream carries them."""
    table = dynamodb_backends[ACCOUNT_ID][aws.region].tables[product.table("TimeSeriesTable")]
    rng = random.Random(events)
    start_ms, span_ms = epoch_ms(END) - 30 * 86_400_000, 30 * 86_400_000
    history = sorted(
        (
            Event(
                event_id=f"e{n:08d}",
                user_id=f"user-{rng.randrange(USERS):04d}",
                event_type="app_open",
                timestamp_ms=start_ms + rng.randrange(span_ms),
            )
            for n in range(events)
        ),
        key=lambda event: event.timestamp_ms,
    )
    for start in range(0, len(history), 100):
        for item in timeseries_items(history[start : start + 100], shards=TIMESERIES_SHARDS, ttl_seconds=400 * 86_400):
            table.put_item(item)


def _evaluation(aws: LocalAws, product: LocalProduct, now: dt.datetime) -> dict[str, Any]:
    aws.reset_request_counts()
    started = time.monotonic()
    result = product.evaluate_periods(now, deadline_seconds=3600)
    seconds = time.monotonic() - started
    assert result.status == "SUCCEEDED" and result.output is not None, (result.error, result.cause)
    (rule,) = result.output["rules"]
    requests = aws.request_counts()
    return {
        "wall_s": round(seconds, 1),
        "dynamodb_items_read": _rollup_items_read(aws, result.arn) + rule["timeseries_items_read"],
        "days_rolled_up": rule["days_rolled_up"],
        "rollups_read": rule["rollups_read"],
        "open_day_items_read": rule["timeseries_items_read"],
        "queries": requests.get("dynamodb.Query", 0),
        "lambda_calls": requests.get("lambda.Invoke", 0),
        "qualified": rule["qualified"],
    }


def _rollup_items_read(aws: LocalAws, execution_arn: str) -> int:
    """What the RollupDay tasks read from the time series, from their outputs in the execution's history."""
    total = 0
    for event in aws.history(execution_arn):
        output = event.get("taskSucceededEventDetails", {}).get("output")
        if output and '"items_read"' in output:
            total += int(json.loads(output)["Payload"]["items_read"])
    return total


def measure(events: int) -> list[dict[str, Any]]:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"FunctionLogLevel": "WARNING"})
        product.put_rules([RULE])
        started = time.monotonic()
        _history(aws, product, events)
        loaded = time.monotonic() - started
        first = _evaluation(aws, product, END)
        steady = _evaluation(aws, product, END + dt.timedelta(hours=1))
    return [
        {"history_events": events, "run": "first", "history_load_s": round(loaded, 1), **first},
        {"history_events": events, "run": "steady", "history_load_s": "", **steady},
    ]


def main(sizes: tuple[int, ...] = (10_000, 100_000)) -> list[dict[str, Any]]:
    return [row for size in sizes for row in measure(size)]


if __name__ == "__main__":
    from benchmarks.run import table

    table(
        "EvaluatePeriods: a 30-day window rule, hourly evaluation, by history size",
        main(tuple(int(arg) for arg in sys.argv[1:]) or (10_000, 100_000)),
    )
