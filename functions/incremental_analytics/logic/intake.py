"""Intake: stream records in, what the ingest workflow counts out. The one piece of work of the Pipes'
enrichments (handlers/parse_records.py for the stream, handlers/drain_dead_letters.py for what was dead-lettered).

1. every record is judged once (domain.intake.read_batch, docs/events.md), whatever its size up to Kinesis' 1 MiB;
2. every rejected record is quarantined, once per record (adapters.quarantine), here, before any workflow
   starts: a record too large to travel through a workflow (Step Functions takes 256 KiB) is kept all the same;
3. the accepted events are handed to the workflow compactly (models.event_to_task), and in S3 when they would
   not fit its payload budget, so that no batch is too large for Step Functions whatever its events' size.
   Nothing to count hands over nothing: the Pipe then starts no execution ("Event enrichment in Amazon
   EventBridge Pipes": an empty answer does not invoke the target).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import RulesCache
from incremental_analytics.adapters.quarantine import keep_once
from incremental_analytics.adapters.spill import PAYLOAD_BUDGET_BYTES, size_of
from incremental_analytics.domain.events import IdentityMode, RejectReason
from incremental_analytics.domain.intake import BatchRead, read_batch, reasons
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.models import event_to_task
from incremental_analytics.observability import logger, metrics
from incremental_analytics.settings import Settings

HANDOFF_PREFIX = "spill/handoff/"


@dataclass
class Intake:
    read: BatchRead = field(default_factory=BatchRead)
    quarantined: Counter[str] = field(default_factory=Counter)  # reason -> records this call quarantined first
    handoff: list[dict[str, Any]] = field(default_factory=list)  # what the Pipe hands its target

    @property
    def spilled(self) -> bool:
        return any("events_key" in document for document in self.handoff)


_rules = RulesCache()


def take_in_and_publish(pages: Iterable[Sequence[Mapping[str, Any]]], source: str, config: Settings) -> Intake:
    """`take_in` with the deployment's settings and rules (cached), then `publish`: what both of the Pipes'
    enrichments (ParseRecords, DrainDeadLetters) do with their records."""
    rules = _rules.get(client("dynamodb"), config.rules_table, config.rules_cache_seconds)
    intake = take_in(
        pages,
        source=source,
        now_ms=int(time.time() * 1000),
        s3=client("s3"),
        bucket=config.data_bucket,
        ruled_system_events=RuleIndex(rules).system_event_types,
        identity=config.identity,
    )
    publish(intake, source)
    return intake


def take_in(
    pages: Iterable[Sequence[Mapping[str, Any]]],
    *,
    source: str,
    now_ms: int,
    s3: Any,
    bucket: str,
    ruled_system_events: Container[str] = (),
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT,
) -> Intake:
    """Read each page of records (a Pipe's batch, or the pages read back from the stream), quarantine what is
    rejected, and shape the hand-off. `source`: `stream` or `dead-letter`."""
    intake = Intake()
    for records in pages:
        page = read_batch(records, now_ms, ruled_system_events=ruled_system_events, identity=identity)
        for reject in page.rejects:
            if keep_once(s3, bucket, reject):
                intake.quarantined[reject.reason] += 1
        intake.read.add(page)
    if intake.read.events:
        intake.handoff = [_handoff(intake.read, source, s3, bucket)]
    return intake


def _handoff(read: BatchRead, source: str, s3: Any, bucket: str) -> dict[str, Any]:
    events = [event_to_task(event) for event in read.events]
    document: dict[str, Any] = {
        "source": source,
        "shards": sorted(read.shard_ids),
        "first_sequence": read.first_sequence,
        "last_sequence": read.last_sequence,
        "records": read.records,
        "ignored": read.ignored,
        "rejected": len(read.rejects),
        "reasons": reasons(read.rejects),
        "events": events,
    }
    if size_of(document) <= PAYLOAD_BUDGET_BYTES:
        return document
    text = json.dumps(events, separators=(",", ":"))
    key = f"{HANDOFF_PREFIX}{_digest(text)}.json"
    retrying.call(
        lambda: s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json"),
        "hand-off PutObject",
    )
    return {**document, "events": [], "events_key": key, "event_count": len(events)}


def _digest(text: str) -> str:
    """Named by the content: a retried batch that reads the same events writes the same object."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def handed_events(batch: Mapping[str, Any], s3: Any, bucket: str) -> list[dict[str, Any]]:
    """The events of a hand-off, from S3 when they were put there (what MatchAndEvaluate reads)."""
    key = batch.get("events_key")
    if not key:
        return list(batch["events"])  # a hand-off always has them: anything else is not one

    def read() -> bytes:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    events: list[dict[str, Any]] = json.loads(retrying.call(read, "hand-off GetObject"))
    return events


def publish(intake: Intake, source: str) -> None:
    """The batch's metrics (`Rejected_<code>` counts each record once: only the write that quarantined it) and
    one structured log line, without any record's content."""
    read = intake.read
    metrics.add_metric(name="Records", unit=MetricUnit.Count, value=read.records)
    metrics.add_metric(name="IgnoredRecords", unit=MetricUnit.Count, value=read.ignored)
    for reason in RejectReason:
        if count := intake.quarantined[reason.value]:
            metrics.add_metric(name=f"Rejected_{reason.value}", unit=MetricUnit.Count, value=count)
    if source == "dead-letter":
        metrics.add_metric(name="DeadLetteredRecordsReadBack", unit=MetricUnit.Count, value=read.records)
    logger.info(
        "took in a batch",
        extra={
            "source": source,
            "records": read.records,
            "events": len(read.events),
            "ignored": read.ignored,
            "rejected": reasons(read.rejects),
            "quarantined_now": dict(intake.quarantined),
            "handoff_in_s3": intake.spilled,
        },
    )
