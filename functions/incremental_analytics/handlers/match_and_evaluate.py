"""MatchAndEvaluate: match a batch's events to the rules, read every (user, rule) counter in the batch at
once, drop what each counter already counted, replay each group, write the counters that need no transaction
(25 conditional PartiQL statements a request, docs/design.md), and shape the other commits (claims, counters
and outbox outcomes, in transactions) and the time-series writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import RulesCache, batch_get, execute_statements
from incremental_analytics.adapters.spill import size_of, spill_largest, spill_writes
from incremental_analytics.domain.commits import plan_commits
from incremental_analytics.domain.dedupe import record
from incremental_analytics.domain.delivery import delivery_item
from incremental_analytics.domain.events import SYSTEM_EVENT_PREFIX, Event
from incremental_analytics.domain.matching import RuleIndex, TimeSeriesSelection, first_occurrences
from incremental_analytics.domain.outcomes import Contribution
from incremental_analytics.domain.rules import Rule, iso_instant
from incremental_analytics.logic.intake import handed_events
from incremental_analytics.models import contribution_from_task, contribution_to_task, event_from_task
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

TIMESERIES_BATCH = 25  # BatchWriteItem's limit
_rules = RulesCache()


def settings() -> Settings:
    return Settings.from_environment()


def group_payload(
    config: Settings,
    *,
    rule: Rule,
    user_id: str,
    events: Sequence[Contribution],
    endpoint_id: str | None,
    counter: items.StoredCounter,
    execution: str,
    now: dt.datetime,
    attempt: int = 0,
) -> dict[str, Any]:
    """One (user, rule) group's commit. A plain group (one chunk, no outcome, its ids remembered by the counter
    itself) carries `statement`, the one conditional write this function makes; any other carries `chunks`, the
    transactions CommitCounters runs in order, each putting its outcomes in the outbox (whose stream delivers
    them). ResolveConflict builds the same shape again from fresh reads."""
    chunks = plan_commits(counter.state, counter.version, rule, user_id, events)
    seen, claims = counter.seen, False
    transactions, changes = [], []
    for position, chunk in enumerate(chunks):
        ids = [event.event_id for event in chunk.events]
        dedupe = record(seen, ids, now, config.dedupe_retention_days)
        seen, claims = dedupe.seen, claims or dedupe.claims
        change = items.counter_change(
            user_id=user_id,
            rule_id=rule.rule_id,
            identity=rule.counting_identity,
            chunk=chunk,
            whole=counter.whole and position == 0,
            exists=counter.exists or position > 0,
            seen=seen,
            updated_at=iso_instant(now),
        )
        changes.append(change)
        chunk_deliveries = [
            delivery_item(
                outcome.with_execution(execution),
                endpoint_id=endpoint_id,
                profile_key=config.profiles_key_name,
                profile_endpoint_key=config.profiles_endpoint_key_name,
            )
            for outcome in chunk.outcomes
        ]
        transactions.append(
            items.chunk_transaction(
                counters_table=config.counters_table,
                audit_table=config.audit_table,
                user_id=user_id,
                rule_id=rule.rule_id,
                identity=rule.counting_identity,
                change=change,
                claimed=ids if dedupe.claims else [],
                deliveries=chunk_deliveries,
                now=now,
                claim_ttl_seconds=config.dedupe_retention_days * 86_400,
                pending_shards=config.pending_shards,
            )
        )
    payload: dict[str, Any] = {
        "user_id": user_id,
        "rule_id": rule.rule_id,
        "rule": rule.to_dict(),
        "endpoint_id": endpoint_id,
        "events": [contribution_to_task(event) for event in events],
        "chunks": transactions,
        "chunk_ranges": [],
        "spill_key": "",
        "spilled": False,
        "outcomes": sum(len(chunk.outcomes) for chunk in chunks),
        "position": {"index": 0},
        "count": len(transactions),
        "last": len(transactions) - 1,
        "attempt": attempt,
    }
    if len(chunks) == 1 and not chunks[0].outcomes and not claims:
        payload["statement"] = items.counter_statement(config.counters_table, changes[0])
    return payload


def fresh_events(
    config: Settings, counter: items.StoredCounter, events: Sequence[Contribution], now: dt.datetime
) -> list[Contribution]:
    """The events the counter has not counted yet: those it remembers from inside the dedupe retention
    (docs/design.md) are dropped."""
    seen = counter.seen.within(now, config.dedupe_retention_days)
    return [event for event in events if event.event_id not in seen]


PLAIN_ATTEMPTS = 3


def commit_plain(
    config: Settings, plain: Sequence[dict[str, Any]], execution: str, now: dt.datetime
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Write the plain groups' counters, 25 statements a request. A statement that met a conflict (another
    execution moved the counter) is planned again from a fresh read, dropping what the counter now remembers;
    a group that then needs a transaction (an outcome, claims), or still conflicts after PLAIN_ATTEMPTS, is
    handed back for CommitCounters, whose ResolveConflict and backoff take it from there."""
    dynamodb = client("dynamodb")
    handed: list[dict[str, Any]] = []
    figures = {"plain_committed": 0, "statement_conflicts": 0}
    pending = list(plain)
    for attempt in range(PLAIN_ATTEMPTS):
        if not pending:
            break
        results = execute_statements(dynamodb, [group["statement"] for group in pending])
        conflicted = [group for group, code in zip(pending, results, strict=True) if code]
        figures["plain_committed"] += len(pending) - len(conflicted)
        figures["statement_conflicts"] += len(conflicted)
        pending = []
        if not conflicted:
            break
        reread = {
            (item["pk"]["S"][2:], item["sk"]["S"][2:]): item
            for item in batch_get(
                dynamodb,
                config.counters_table,
                [items.counter_key(group["user_id"], group["rule_id"]) for group in conflicted],
            )
        }
        for group in conflicted:
            rule = Rule.from_dict(group["rule"])
            counter = items.counter_from_item(
                reread.get((group["user_id"], rule.rule_id)), rule.counting_identity, config.dedupe_retention_days
            )
            events = fresh_events(config, counter, [contribution_from_task(data) for data in group["events"]], now)
            if not events:
                continue
            again = group_payload(
                config,
                rule=rule,
                user_id=str(group["user_id"]),
                events=events,
                endpoint_id=group.get("endpoint_id"),
                counter=counter,
                execution=execution,
                now=now,
                attempt=attempt + 1,
            )
            (pending if "statement" in again else handed).append(again)
    handed += pending
    for group in handed:
        group.pop("statement", None)
    return handed, figures


def _put(config: Settings) -> Callable[[str, str], None]:
    def put(key: str, body: str) -> None:
        retrying.call(
            lambda: client("s3").put_object(
                Bucket=config.data_bucket, Key=key, Body=body.encode(), ContentType="application/json"
            ),
            "spill PutObject",
        )

    return put


def spill_if_large(config: Settings, groups: list[dict[str, Any]], other: Any, execution: str) -> int:
    """Keep the state payload under Step Functions' limit: the largest groups' transactions go to S3."""
    return spill_largest(groups, size_of(other), _put(config), execution.rsplit(":", 1)[-1])


def evaluate_batch(
    config: Settings, rules: Sequence[Rule], task_events: Sequence[dict[str, Any]], execution: str, now: dt.datetime
) -> dict[str, Any]:
    index = RuleIndex(rules)
    ruled = index.system_event_types
    parsed = [event_from_task(data) for data in task_events]
    kept = [e for e in parsed if not e.event_type.startswith(SYSTEM_EVENT_PREFIX) or e.event_type in ruled]
    events = first_occurrences(kept)  # the distinct events, for the summary
    groups = index.group_aggregate(kept)
    by_id = {rule.rule_id: rule for rule in rules}
    counters = {
        (item["pk"]["S"][2:], item["sk"]["S"][2:]): item
        for item in batch_get(
            client("dynamodb"), config.counters_table, [items.counter_key(user, rule) for user, rule in groups]
        )
    }
    payloads = []
    already_counted = 0
    for (user_id, rule_id), group_events in groups.items():
        rule = by_id[rule_id]
        counter = items.counter_from_item(
            counters.get((user_id, rule_id)), rule.counting_identity, config.dedupe_retention_days
        )
        contributions = [Contribution(e.event_id, e.timestamp_ms, rule.value_of(e.metrics)) for e in group_events]
        fresh = fresh_events(config, counter, contributions, now)
        already_counted += len(contributions) - len(fresh)
        if fresh:
            payloads.append(
                group_payload(
                    config,
                    rule=rule,
                    user_id=user_id,
                    events=fresh,
                    endpoint_id=_latest_endpoint(kept, user_id),
                    counter=counter,
                    execution=execution,
                    now=now,
                )
            )
    transactional, figures = commit_plain(config, [p for p in payloads if "statement" in p], execution, now)
    transactional = [p for p in payloads if "statement" not in p] + transactional
    selection = TimeSeriesSelection(rules, for_all_events=config.timeseries_for_all_events)
    timeseries = _timeseries_batches(config, [event for event in kept if selection.keeps(event)])
    timeseries_items = sum(len(request["RequestItems"][config.timeseries_table]) for request in timeseries)
    spilled = spill_if_large(config, transactional, timeseries, execution)
    spilled_writes = spill_writes(timeseries, size_of(transactional), _put(config), execution.rsplit(":", 1)[-1])
    return {
        "groups": transactional,
        "timeseries": timeseries,
        "summary": {
            "events": len(parsed),
            "timeseries_items": timeseries_items,
            "ignored_system": len(parsed) - len(kept),
            "duplicates": len(kept) - len(events),
            "accepted": len(events),
            "already_counted": already_counted,
            "groups": len(payloads),
            "transactions": sum(len(payload["chunks"]) for payload in transactional),
            **figures,
            "outcomes": sum(payload["outcomes"] for payload in transactional),
            "spilled_groups": spilled,
            "spilled_writes": spilled_writes,
        },
    }


def _latest_endpoint(events: Sequence[Event], user_id: str) -> str | None:
    """docs/delivery.md: the endpoint on the user's latest event (in this batch)."""
    return next((e.endpoint_id for e in reversed(events) if e.user_id == user_id and e.endpoint_id), None)


def _timeseries_batches(config: Settings, events: Sequence[Event]) -> list[dict[str, Any]]:
    """The events packed into time-series items (dynamodb_items.timeseries_items: each key once, as BatchWriteItem
    requires), as BatchWriteItem requests of at most 25 items and TIMESERIES_REQUEST_BYTES."""
    packed = items.timeseries_items(
        events, shards=config.timeseries_shards, ttl_seconds=config.timeseries_retention_days * 86_400
    )
    requests: list[list[dict[str, Any]]] = []
    size = 0
    for item in packed:
        write = {"PutRequest": {"Item": item}}
        if (
            not requests
            or len(requests[-1]) == TIMESERIES_BATCH
            or size + size_of(write) > items.TIMESERIES_REQUEST_BYTES
        ):
            requests.append([])
            size = 0
        requests[-1].append(write)
        size += size_of(write)
    return [{"RequestItems": {config.timeseries_table: writes}} for writes in requests]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """`batch`: the hand-off of the Pipe's enrichment (logic/intake.py), its events inline or in S3."""
    config = settings()
    batch = event["batch"]
    rules = _rules.get(client("dynamodb"), config.rules_table, config.rules_cache_seconds)
    events = handed_events(batch, client("s3"), config.data_bucket)
    result = evaluate_batch(config, rules, events, str(event["execution"]), dt.datetime.now(dt.UTC))
    summary = result["summary"]
    summary |= {key: batch.get(key) for key in ("source", "records", "rejected", "ignored")}
    metrics.add_metric(name="AcceptedEvents", unit=MetricUnit.Count, value=summary["accepted"])
    metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=summary["duplicates"])
    metrics.add_metric(name="IgnoredSystemEvents", unit=MetricUnit.Count, value=summary["ignored_system"])
    metrics.add_metric(name="Outcomes", unit=MetricUnit.Count, value=summary["outcomes"])
    metrics.add_metric(name="SpilledGroups", unit=MetricUnit.Count, value=summary["spilled_groups"])
    metrics.add_metric(name="CommitConflicts", unit=MetricUnit.Count, value=summary["statement_conflicts"])
    logger.info("evaluated batch", extra={**summary, "rules": len(rules)})
    return result
