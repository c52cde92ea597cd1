"""ParseRecords: decode and normalise every record of a Pipes batch; bad records become rejects with reasons."""

from __future__ import annotations

import base64
import binascii
import time
from collections import Counter
from collections.abc import Container
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import RulesCache
from incremental_analytics.domain.events import Event, IdentityMode, Ignored, Rejected, RejectReason, normalise
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.models import event_to_task
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

_rules = RulesCache()


def parse_batch(
    records: list[dict[str, Any]],
    now_ms: int,
    *,
    ruled_system_events: Container[str] = (),
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT,
) -> dict[str, Any]:
    """SPEC 2.2's checks need the rules: an unruled `_` event is ignored before its user or time is checked."""
    events: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    ignored = 0
    for record in records:
        try:
            data = base64.b64decode(record["data"], validate=True)
        except (binascii.Error, KeyError, TypeError):
            data = b"\xff"  # not decodable: rejected as not_json like any unreadable payload
        result = normalise(data, now_ms=now_ms, ruled_system_events=ruled_system_events, identity=identity)
        if isinstance(result, Event):
            events.append(event_to_task(result))
        elif isinstance(result, Ignored):
            ignored += 1
        else:
            rejects.append(_reject(record, result))
    return {"records": len(records), "events": events, "rejects": rejects, "ignored": ignored}


def _reject(record: dict[str, Any], rejection: Rejected) -> dict[str, Any]:
    """A rejected record as quarantined: where it was, why, and its data (to inspect or replay)."""
    event_id = str(record.get("eventID", ""))
    return {
        "shard_id": event_id.split(":", 1)[0],
        "sequence_number": record.get("sequenceNumber"),
        "partition_key": record.get("partitionKey"),
        "reason": rejection.reason.value,
        "detail": rejection.detail,
        "data": record.get("data"),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = Settings.from_environment()
    rules = _rules.get(client("dynamodb"), config.rules_table, config.rules_cache_seconds)
    result = parse_batch(
        list(event["records"]),
        now_ms=int(time.time() * 1000),
        ruled_system_events=RuleIndex(rules).system_event_types,
        identity=config.identity,
    )
    reasons = Counter(reject["reason"] for reject in result["rejects"])
    metrics.add_metric(name="Records", unit=MetricUnit.Count, value=result["records"])
    metrics.add_metric(name="IgnoredRecords", unit=MetricUnit.Count, value=result["ignored"])
    for reason in RejectReason:
        if reasons[reason.value]:
            metrics.add_metric(name=f"Rejected_{reason.value}", unit=MetricUnit.Count, value=reasons[reason.value])
    logger.info(
        "parsed batch",
        extra={"records": result["records"], "events": len(result["events"]), "rejected": dict(reasons)},
    )
    return result
