"""ParseRecords, the ingest Pipe's enrichment: a batch of Kinesis records in (the Pipes event), the IngestBatch
hand-off out (logic/intake.py). It runs before the workflow, within Lambda's 6 MB payload, so that a record of
any size up to Kinesis' 1 MiB is judged and, when rejected, quarantined; the workflow gets only what it counts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.logic.intake import take_in_and_publish
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

SOURCE = "stream"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: list[dict[str, Any]], context: LambdaContext) -> list[dict[str, Any]]:
    intake = take_in_and_publish([event], SOURCE, Settings.from_environment())
    return intake.handoff
