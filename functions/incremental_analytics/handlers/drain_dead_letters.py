"""DrainDeadLetters, the dead-letter Pipe's enrichment: what the ingest Pipe gave up on, read back from the
stream and handed to IngestBatch like any batch.

Each message of the ingest Pipe's dead-letter queue names a batch by shard and sequence numbers (never the
records); the records are read back from the stream (adapters/stream_reader.py), judged, quarantined or handed
over (logic/intake.py). When this or the execution fails, the message goes back to the queue and is tried again
after its visibility timeout, until the queue's redrive policy parks it (docs/ingest.md: retention).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.stream_reader import BatchInfo, read_back
from incremental_analytics.logic.intake import take_in_and_publish
from incremental_analytics.observability import logger, metrics, tracer
from incremental_analytics.settings import Settings

SOURCE = "dead-letter"


def dead_lettered_batches(messages: list[dict[str, Any]]) -> list[BatchInfo]:
    """The batches the Pipes SQS event's messages name (their `body` is the dead-letter message)."""
    return [BatchInfo.of_message(json.loads(message["body"])) for message in messages]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: list[dict[str, Any]], context: LambdaContext) -> list[dict[str, Any]]:
    config = Settings.from_environment()
    batches = dead_lettered_batches(event)

    def pages() -> Iterator[list[dict[str, Any]]]:
        for batch in batches:
            yield from read_back(client("kinesis"), batch)

    intake = take_in_and_publish(pages(), SOURCE, config)
    expected = sum(batch.size for batch in batches)
    if intake.read.records != expected:
        logger.warning(
            "read back a different number of records", extra={"expected": expected, "read": intake.read.records}
        )
    return intake.handoff
