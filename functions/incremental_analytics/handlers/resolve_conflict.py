"""ResolveConflict: a group's transaction was cancelled. Re-read the counter and the group's claims, drop the
events already counted (claimed, or remembered by the counter), replay the rest on the counter as it now stands,
and hand back the commits to retry (always as transactions: CommitCounters runs them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import batch_get
from incremental_analytics.domain.rules import Rule
from incremental_analytics.handlers.match_and_evaluate import fresh_events, group_payload, settings, spill_if_large
from incremental_analytics.models import contribution_from_task
from incremental_analytics.observability import logger, metrics, tracer


def resolve(group: dict[str, Any], execution: str, now: dt.datetime) -> dict[str, Any]:
    config = settings()
    rule = Rule.from_dict(group["rule"])
    user_id = str(group["user_id"])
    identity = rule.counting_identity
    events = [contribution_from_task(data) for data in group["events"]]
    keys = [items.counter_key(user_id, rule.rule_id)]
    keys += [items.claim_key(user_id, rule.rule_id, identity, event.event_id) for event in events]
    found = batch_get(client("dynamodb"), config.counters_table, keys)
    counter = next((item for item in found if item["sk"]["S"].startswith("R#")), None)
    claimed = {item["sk"]["S"] for item in found if item["sk"]["S"].startswith("D#")}
    stored = items.counter_from_item(counter, identity, config.dedupe_retention_days)
    fresh = [
        event
        for event in fresh_events(config, stored, events, now)
        if items.claim_key(user_id, rule.rule_id, identity, event.event_id)["sk"]["S"] not in claimed
    ]
    resolved = group_payload(
        config,
        rule=rule,
        user_id=user_id,
        events=fresh,
        endpoint_id=group.get("endpoint_id"),
        counter=stored,
        execution=execution,
        now=now,
        attempt=int(group["attempt"]) + 1,
    )
    resolved.pop("statement", None)
    spill_if_large(config, [resolved], {}, execution)
    return resolved


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    group = event["group"]
    metrics.add_metric(name="CommitConflicts", unit=MetricUnit.Count, value=1)
    resolved = resolve(group, str(event["execution"]), dt.datetime.now(dt.UTC))
    logger.info(
        "resolved a commit conflict",
        extra={
            "rule_id": group["rule_id"],
            "attempt": resolved["attempt"],
            "events": len(group["events"]),
            "events_still_new": len(resolved["events"]),
        },
    )
    return resolved
