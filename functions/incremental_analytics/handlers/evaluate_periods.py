"""The EvaluatePeriods workflow's functions (docs/periods.md): plan an evaluation, plan a rule's days, roll up a closed
day, evaluate a rule. Each reads and writes through adapters.period_store; the workflow does the rest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.adapters import period_store as store
from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.outbox import record_outcomes
from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.delivery import delivery_item
from incremental_analytics.domain.periods import evaluate_period, latest_endpoints, plan_days
from incremental_analytics.domain.rules import Rule, RuleType, iso_instant, iso_ms, parse_instant, short_hash
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings


def occasion_of(now: dt.datetime) -> str:
    """The evaluation slot: the UTC hour. Starts in the same hour are one evaluation per rule definition."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


def run_of(rule: Rule, occasion: str) -> str:
    """One evaluation of one definition of a rule in one slot; a changed target is a new run in the same hour."""
    return f"{occasion}-{short_hash(rule.to_dict(), 12)}"


def _rule(event: Mapping[str, Any]) -> Rule:
    return Rule.from_dict(event["rule"])


# -- PlanEvaluation ----------------------------------------------------------------------------------------------


def plan_evaluation(event: Mapping[str, Any], config: Settings, current: dt.datetime) -> dict[str, Any]:
    """The rules to evaluate (enabled date and window rules, or the named ones; none when the input says
    `"evaluate": false`, a redelivery alone) and the outbox shards whose pending outcomes are redelivered."""
    given = event.get("now") or event.get("scheduled_time")
    now = parse_instant(str(given)) if given else current
    occasion = occasion_of(now)
    wanted = set(event.get("rule_ids") or ())
    rules = [
        rule
        for rule in rules_from_items(scan_all(client("dynamodb"), config.rules_table))
        if rule.type is not RuleType.AGGREGATE and rule.enabled and (not wanted or rule.rule_id in wanted)
    ]
    if event.get("evaluate") is False:
        rules = []
    return {
        "now": iso_instant(now),
        "occasion": occasion,
        "rules": [
            {
                "rule": rule.to_dict(),
                "state_key": items.period_key(rule.rule_id, rule.counting_identity),
                "run": run_of(rule, occasion),
            }
            for rule in rules
        ],
        "redelivery": [{"shard": shard} for shard in items.pending_partitions(config.pending_shards)],
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def plan_evaluation_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = plan_evaluation(event, Settings.from_environment(), dt.datetime.now(dt.UTC))
    logger.info("planned an evaluation", extra={"occasion": plan["occasion"], "rules": len(plan["rules"])})
    return plan


# -- PlanRule ----------------------------------------------------------------------------------------------------


def plan_rule(event: Mapping[str, Any], config: Settings) -> dict[str, Any]:
    """Which closed (day, shard) partitions still need a rollup, which days are read raw, and the previous set."""
    rule = _rule(event)
    now = parse_instant(str(event["now"]))
    days = plan_days(rule, now, dt.timedelta(hours=config.lateness_hours))
    rolled = store.existing_keys(client("s3"), config.data_bucket, store.rollup_prefix(rule))
    roll = [
        {"day": day.isoformat(), "shard": shard}
        for day in days.closed
        for shard in config.timeseries_read_shards
        if store.rollup_key(rule, day, shard) not in rolled
    ]
    found = client("dynamodb").get_item(
        TableName=config.counters_table, Key=items.period_key(rule.rule_id, rule.counting_identity), ConsistentRead=True
    )
    previous = found.get("Item", {}).get("qualified_key", {}).get("S")
    return {
        "roll": roll,
        "closed_days": [day.isoformat() for day in days.closed],
        "open_days": [day.isoformat() for day in days.open],
        "closes": days.closes,
        "previous": previous,
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def plan_rule_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = plan_rule(event, Settings.from_environment())
    logger.info(
        "planned a rule's days",
        extra={
            "rule_id": event["rule"]["rule_id"],
            "to_roll_up": len(plan["roll"]),
            "closed_days": len(plan["closed_days"]),
            "open_days": len(plan["open_days"]),
            "closes": plan["closes"],
        },
    )
    return plan


# -- RollupDay ---------------------------------------------------------------------------------------------------


def rollup_day(event: Mapping[str, Any], config: Settings) -> dict[str, Any]:
    """A closed day's matching events of one shard, read once from the time series, kept as Parquet."""
    rule = _rule(event)
    day = dt.date.fromisoformat(str(event["day"]))
    shard = int(event["shard"])
    found = store.read_day(client("dynamodb"), config.timeseries_table, rule, day, shard)
    store.write_rollup(client("s3"), config.data_bucket, store.rollup_key(rule, day, shard), found.rows)
    return {"items_read": found.items_read, "events": len(found.rows)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def rollup_day_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = rollup_day(event, Settings.from_environment())
    metrics.add_metric(name="TimeSeriesItemsRead", unit=MetricUnit.Count, value=result["items_read"])
    logger.info("rolled up a day", extra={"rule_id": event["rule"]["rule_id"], "day": event["day"], **result})
    return result


# -- EvaluateRule ------------------------------------------------------------------------------------------------


def evaluate_rule(event: Mapping[str, Any], config: Settings) -> dict[str, Any]:
    """Totals per user over the period (rollups of closed days, raw open days), against the previous qualified
    set; the outcomes go into the outbox (its stream delivers them), the new set beside the rule's other sets."""
    rule = _rule(event)
    now = parse_instant(str(event["now"]))
    run, execution = str(event["run"]), str(event["execution"])
    s3, bucket = client("s3"), config.data_bucket
    closed = [dt.date.fromisoformat(day) for day in event["closed_days"]]
    shards = config.timeseries_read_shards
    rollups = [store.rollup_key(rule, day, shard) for day in closed for shard in shards]
    rows, items_read = [], 0
    for day in (dt.date.fromisoformat(text) for text in event["open_days"]):
        for shard in shards:
            found = store.read_day(client("dynamodb"), config.timeseries_table, rule, day, shard)
            rows.extend(found.rows)
            items_read += found.items_read
    events = store.frame(rows)
    if rollups:
        events = store.combine(store.read_rollups(s3, bucket, rollups), events)
    previous_key = event.get("previous")
    result = evaluate_period(rule, now, events, store.read_qualified(s3, bucket, previous_key), occasion=run)
    endpoints = latest_endpoints(events, (outcome.user_id for outcome in result.outcomes))
    deliveries = [
        delivery_item(
            outcome.with_execution(execution),
            endpoint_id=endpoints.get(outcome.user_id),
            profile_key=config.profiles_key_name,
            profile_endpoint_key=config.profiles_endpoint_key_name,
        )
        for outcome in result.outcomes
    ]
    # Before the new qualified set is kept: a retried evaluation finds these outcomes there and leaves them be.
    recorded = record_outcomes(
        client("dynamodb"), config.audit_table, deliveries, iso_instant(dt.datetime.now(dt.UTC)), config.pending_shards
    )
    qualified_key = store.qualified_key(rule, run)
    store.write_json(s3, bucket, qualified_key, sorted(result.qualified))
    superseded = store.existing_keys(s3, bucket, store.qualified_prefix(rule)) - {qualified_key, previous_key}
    store.delete_keys(s3, bucket, sorted(superseded))
    kinds = [outcome.kind.value for outcome in result.outcomes]
    return {
        "qualified_key": qualified_key,
        "previous": previous_key,
        "candidates": len(result.totals),
        "qualified": len(result.qualified),
        "outcomes": {"qualified": kinds.count("qualified"), "disqualified": kinds.count("disqualified")},
        "recorded": recorded,
        "period": {"start": iso_ms(result.period.start_ms), "end": iso_ms(result.period.end_ms)},
        "timeseries_items_read": items_read,
        "rollups_read": len(rollups),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def evaluate_rule_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = evaluate_rule(event, Settings.from_environment())
    metrics.add_metric(name="TimeSeriesItemsRead", unit=MetricUnit.Count, value=result["timeseries_items_read"])
    metrics.add_metric(name="PeriodOutcomes", unit=MetricUnit.Count, value=sum(result["outcomes"].values()))
    logger.info(
        "evaluated a rule",
        extra={
            "rule_id": event["rule"]["rule_id"],
            "candidates": result["candidates"],
            "qualified": result["qualified"],
            "outcomes": result["outcomes"],
            "timeseries_items_read": result["timeseries_items_read"],
            "rollups_read": result["rollups_read"],
        },
    )
    return result
