"""PlanRedelivery: which outcomes of one pending shard of the outbox are due for another delivery attempt.

The scheduled run (EvaluatePeriods) calls it per shard; each page it returns is one DeliverOutcomes execution.
It also measures how long the oldest outcome has waited for a sink, the figure an alarm watches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.outbox import as_undelivered, undelivered_items
from incremental_analytics.domain.delivery import RetryPolicy, plan_redelivery
from incremental_analytics.domain.rules import parse_instant
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

# Outcomes per DeliverOutcomes execution, as many as the outbox Pipe's batches: an execution carries all its
# outcomes' items in one state (256 KiB at most), and claims them in one transaction.
PAGE_SIZE = 10
# Outcomes redelivered per shard and run: the state payload stays far below 256 KiB with the longest keys
# (user ids of 256 characters), and a recovering sink is not flooded; the rest wait for the next run.
PER_RUN = 400


def plan(event: Mapping[str, Any], config: Settings) -> dict[str, Any]:
    now = parse_instant(str(event["now"]))
    items = undelivered_items(client("dynamodb"), config.audit_table, str(event["shard"]))
    policy = RetryPolicy(first=dt.timedelta(seconds=config.redeliver_after_seconds))
    found = plan_redelivery(map(as_undelivered, items), now, policy, page_size=PAGE_SIZE, limit=PER_RUN)
    return {
        "shard": event["shard"],
        "pages": found.pages,
        "due": found.due,
        "undelivered": found.undelivered,
        "oldest_seconds": round(found.oldest_seconds, 3),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = plan(event, Settings.from_environment())
    # Emitted on every run, zero included: a missing figure means the schedule itself has stopped.
    metrics.add_metric(name="OldestUndeliveredSeconds", unit=MetricUnit.Seconds, value=result["oldest_seconds"])
    metrics.add_metric(name="UndeliveredOutcomes", unit=MetricUnit.Count, value=result["undelivered"])
    metrics.add_metric(name="RedeliveriesDue", unit=MetricUnit.Count, value=result["due"])
    logger.info(
        "planned a redelivery",
        extra={key: result[key] for key in ("shard", "due", "undelivered", "oldest_seconds")},
    )
    return result
