"""ParseRecords, the ingest Pipe's enrichment: a batch of Kinesis records in (the Pipes event), the IngestBatch
hand-off out (logic/intake.py). It runs before the workflow, within Lambda's 6 MB payload, so that a record of
any size up to Kinesis' 1 MiB is judged and, when rejected, quarantined; the workflow gets only what it counts."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import RulesCache
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.logic.intake import publish, take_in
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

SOURCE = "stream"
_rules = RulesCache()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: list[dict[str, Any]], context: LambdaContext) -> list[dict[str, Any]]:
    config = Settings.from_environment()
    rules = _rules.get(client("dynamodb"), config.rules_table, config.rules_cache_seconds)
    intake = take_in(
        [event],
        source=SOURCE,
        now_ms=int(time.time() * 1000),
        s3=client("s3"),
        bucket=config.data_bucket,
        ruled_system_events=RuleIndex(rules).system_event_types,
        identity=config.identity,
    )
    publish(intake, SOURCE)
    return intake.handoff
