"""Emulators for what moto records but does not move: EventBridge Pipes and EventBridge Scheduler.

A Pipe from a Kinesis stream (or a DynamoDB stream) to a state machine is driven here as the service would:
batches of up to `BatchSize` records in shard order, in the Pipes event shape, through the pipe's enrichment
(a Lambda function, invoked synchronously with the whole batch: its answer is what the target gets, and an empty
answer, `[]`, `{}` or `""`, invokes no target), then `REQUEST_RESPONSE` through a synchronous start; a failed
batch (its enrichment or its execution failed) retried up to `MaximumRetryAttempts`, or, when
`OnPartialBatchItemFailure` is `AUTOMATIC_BISECT` and it holds several records, split in two halves that are
delivered in turn; a single record that still fails is described on the dead-letter queue, in the shape the
Lambda developer guide documents for a Kinesis failure record (shard and sequence numbers, never the records).
A batch whose payload is over Step Functions' 262144 bytes is refused by StartExecution (no execution runs), and
one over Lambda's 6 MB by Invoke: a failed attempt like any other ("Amazon EventBridge Pipes batching and
concurrency": a Step Functions target is limited by the total payload size, 262144, a Lambda function by 6 MB,
not by the batch size).

A Pipe from an SQS queue receives up to `BatchSize` (at most 10) messages at a time, in the Pipes SQS event
shape; a batch that succeeds is deleted, one that fails goes back to the queue once its visibility timeout has
passed (at once, here), so the queue's own redrive policy moves a message that keeps failing to its dead-letter
queue after `maxReceiveCount` receives.
`redeliver` re-sends that fraction of successful batches (whole or split), as at-least-once delivery may.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics_local.aws_rules import PAYLOAD_LIMIT_BYTES, payload_bytes
from incremental_analytics_local.deploy import Pipe, Schedule
from incremental_analytics_local.engine import ExecutionResult, LocalAws
from incremental_analytics_local.event_patterns import matches

ROLE_ARN = "arn:aws:iam::123456789012:role/local-pipe"


@dataclass
class PipeReport:
    """What a drain of a pipe did."""

    records_read: int = 0
    records_filtered_out: int = 0
    batches: int = 0
    redeliveries: int = 0
    retries: int = 0
    bisections: int = 0
    dead_lettered_records: int = 0
    refused_too_large: int = 0  # attempts StartExecution refused: the batch's payload was over 262144 bytes
    enrichments: int = 0  # invocations of the pipe's enrichment
    failed_enrichments: int = 0  # ... that failed, or that Lambda refused (a batch over 6 MB)
    nothing_to_deliver: int = 0  # batches whose enrichment answered with nothing: no target invoked
    returned_to_queue: int = 0  # SQS source: messages of a failed batch, visible again after their timeout
    executions: list[ExecutionResult] = field(default_factory=list)
    drained: PipeReport | None = None  # the pipe that drained this one's dead-letter queue afterwards, if any

    @property
    def all_executions(self) -> list[ExecutionResult]:
        return [*self.executions, *(self.drained.all_executions if self.drained else [])]

    @property
    def succeeded(self) -> int:
        return sum(1 for execution in self.executions if execution.status == "SUCCEEDED")


@dataclass(frozen=True)
class _Batch:
    shard_id: str
    records: tuple[dict[str, Any], ...]


class PipeDriver:
    """Drives one pipe: `drain()` delivers everything its source holds now, then returns what happened."""

    def __init__(
        self,
        aws: LocalAws,
        pipe: Pipe,
        *,
        redeliver: float = 0.0,
        seed: int = 0,
        wait_for_fire_and_forget: bool = True,
    ) -> None:
        self.aws = aws
        self.pipe = pipe
        self.redeliver = redeliver
        self.random = random.Random(seed)
        self.wait_for_fire_and_forget = wait_for_fire_and_forget
        self._iterators: dict[str, str | None] = {}
        self._executions = 0
        parameters = pipe.source_parameters
        self._source_kind = next(
            (kind for kind in ("kinesis", "sqs", "dynamodb") if f":{kind}:" in pipe.source), "dynamodb"
        )
        self._settings: Mapping[str, Any] = (
            parameters.get(
                {
                    "kinesis": "KinesisStreamParameters",
                    "sqs": "SqsQueueParameters",
                    "dynamodb": "DynamoDBStreamParameters",
                }[self._source_kind]
            )
            or {}
        )
        self._filters = [
            json.loads(item["Pattern"]) for item in (parameters.get("FilterCriteria") or {}).get("Filters") or []
        ]
        target = pipe.target_parameters.get("StepFunctionStateMachineParameters") or {}
        self._invocation = target.get("InvocationType", "FIRE_AND_FORGET")

    @property
    def batch_size(self) -> int:
        return int(self._settings.get("BatchSize", 10 if self._source_kind == "sqs" else 100))

    @property
    def max_retries(self) -> int:
        # Pipes' default for stream sources is -1 (infinite); locally that would never end: treat it as 3.
        value = int(self._settings.get("MaximumRetryAttempts", -1))
        return 3 if value < 0 else value

    def drain(self, on_batch: Callable[[int], None] | None = None) -> PipeReport:
        """Deliver everything the source holds now; `on_batch(records)` is told of each batch delivered."""
        report = PipeReport()
        if self._source_kind == "sqs":
            self._drain_queue(report, on_batch)
            return report
        for batch in self._batches(report):
            report.batches += 1
            self._deliver(batch, report)
            if on_batch is not None:
                on_batch(len(batch.records))
            if report.executions and report.executions[-1].status == "SUCCEEDED" and self._redeliver_now():
                report.redeliveries += 1
                if len(batch.records) > 1 and self.random.random() < 0.5:
                    half = len(batch.records) // 2
                    self._deliver(_Batch(batch.shard_id, batch.records[:half]), report)
                    self._deliver(_Batch(batch.shard_id, batch.records[half:]), report)
                else:
                    self._deliver(batch, report)
        return report

    def _redeliver_now(self) -> bool:
        return self.redeliver > 0 and self.random.random() < self.redeliver

    # -- reading the source --------------------------------------------------------------------------------

    def _batches(self, report: PipeReport) -> Iterator[_Batch]:
        """Round-robin over the shards, one batch of one shard at a time, each shard in sequence order."""
        with self.aws.uncounted():
            shards = self._shards()
        active = list(shards)
        while active:
            for shard_id in list(active):
                with self.aws.uncounted():
                    records = self._read(shard_id)
                if not records:
                    active.remove(shard_id)
                    continue
                report.records_read += len(records)
                kept = tuple(record for record in records if self._passes(record))
                report.records_filtered_out += len(records) - len(kept)
                if kept:
                    yield _Batch(shard_id, kept)

    def _shards(self) -> list[str]:
        if self._source_kind == "kinesis":
            kinesis = self.aws.client("kinesis")
            shards = kinesis.list_shards(StreamARN=self.pipe.source)["Shards"]
        else:
            streams = self.aws.client("dynamodbstreams")
            shards = streams.describe_stream(StreamArn=self.pipe.source)["StreamDescription"]["Shards"]
        return [shard["ShardId"] for shard in shards]

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        if self._source_kind == "kinesis":
            return self._read_kinesis(shard_id)
        return self._read_dynamodb(shard_id)

    def _read_kinesis(self, shard_id: str) -> list[dict[str, Any]]:
        kinesis = self.aws.client("kinesis")
        iterator = self._iterators.get(shard_id)
        if shard_id not in self._iterators:
            iterator = kinesis.get_shard_iterator(
                StreamARN=self.pipe.source, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        if iterator is None:
            return []
        answer = kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size, StreamARN=self.pipe.source)
        self._iterators[shard_id] = answer.get("NextShardIterator")
        return [self._kinesis_record(shard_id, record) for record in answer["Records"]]

    def _kinesis_record(self, shard_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        arrival: dt.datetime = record["ApproximateArrivalTimestamp"]
        return {
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": ROLE_ARN,
            "awsRegion": self.aws.region,
            "eventSourceARN": self.pipe.source,
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": arrival.timestamp(),
        }

    def _read_dynamodb(self, shard_id: str) -> list[dict[str, Any]]:
        streams = self.aws.client("dynamodbstreams")
        iterator = self._iterators.get(shard_id)
        if shard_id not in self._iterators:
            iterator = streams.get_shard_iterator(
                StreamArn=self.pipe.source, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        if iterator is None:
            return []
        answer = streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        self._iterators[shard_id] = answer.get("NextShardIterator")  # a later drain goes on from here
        records = []
        for record in answer["Records"]:
            change = dict(record["dynamodb"])
            if isinstance(change.get("ApproximateCreationDateTime"), dt.datetime):
                change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
            records.append(
                {
                    "eventID": record["eventID"],
                    "eventName": record["eventName"],
                    "eventVersion": record.get("eventVersion", "1.1"),
                    "eventSource": "aws:dynamodb",
                    "awsRegion": self.aws.region,
                    "dynamodb": change,
                    "eventSourceARN": self.pipe.source,
                }
            )
        return records

    def _passes(self, record: Mapping[str, Any]) -> bool:
        """Pipes' FilterCriteria: a record passes when any filter matches (Kinesis data matched as JSON)."""
        if not self._filters:
            return True
        subject = dict(record)
        if self._source_kind == "kinesis":
            with contextlib.suppress(ValueError):
                subject["data"] = json.loads(base64.b64decode(record["data"]))
        return any(matches(pattern, subject) for pattern in self._filters)

    # -- delivering ----------------------------------------------------------------------------------------

    def _deliver(self, batch: _Batch, report: PipeReport) -> None:
        for attempt in range(self.max_retries + 1):
            if attempt:
                report.retries += 1
            if self._attempt(batch, attempt, report):
                return
            bisect = self._settings.get("OnPartialBatchItemFailure") == "AUTOMATIC_BISECT"
            if bisect and len(batch.records) > 1:
                report.bisections += 1
                half = len(batch.records) // 2
                self._deliver(_Batch(batch.shard_id, batch.records[:half]), report)
                self._deliver(_Batch(batch.shard_id, batch.records[half:]), report)
                return
        report.dead_lettered_records += len(batch.records)
        self._dead_letter(batch, attempts=self.max_retries + 1)

    def _attempt(self, batch: _Batch, attempt: int, report: PipeReport) -> bool:
        """One delivery of the batch, through the enrichment to the target: whether it succeeded."""
        payload: Any = list(batch.records)
        if self.pipe.enrichment is not None:
            report.enrichments += 1
            enriched = self._enrich(payload)
            if enriched is _FAILED:
                report.failed_enrichments += 1
                return False
            if enriched in ("", {}, [], None):
                report.nothing_to_deliver += 1
                return True
            payload = enriched
        result = self._invoke(payload, attempt)
        if result is None:
            report.refused_too_large += 1
            return False
        report.executions.append(result)
        return result.status == "SUCCEEDED"

    def _enrich(self, payload: Any) -> Any:
        """The enrichment's answer, or _FAILED when the function failed or Lambda refused the call (a batch over
        6 MB, throttling, a service error): the Pipe then retries the batch, split when it bisects, as it does when
        its target fails (EventBridge Pipes user guide, "Error handling and troubleshooting")."""
        try:
            answer = self.aws.client("lambda").invoke(
                FunctionName=self.pipe.enrichment, InvocationType="RequestResponse", Payload=json.dumps(payload)
            )
        except ClientError:
            return _FAILED
        body = answer["Payload"].read()
        if answer.get("FunctionError"):
            return _FAILED
        return json.loads(body) if body.strip() else ""

    def _invoke(self, payload: Any, attempt: int) -> ExecutionResult | None:
        """The execution the batch started, or None when StartExecution refused its payload as too large."""
        self._executions += 1
        # Unique across drivers and redeliveries, readable in a listing: pipe, delivery number, attempt.
        name = f"{self.pipe.name[:36]}-{self._executions:06d}-{attempt}-{uuid.uuid4().hex[:16]}"
        try:
            if self._invocation == "REQUEST_RESPONSE":
                return self.aws.start_sync_execution(self.pipe.target, payload, name=name)
            execution_arn = self.aws.client("stepfunctions").start_execution(
                stateMachineArn=self.pipe.target, name=name, input=json.dumps(payload)
            )["executionArn"]
        except ClientError as error:
            if (
                error.response["Error"]["Code"] == "ValidationException"
                and payload_bytes(payload) > PAYLOAD_LIMIT_BYTES
            ):
                return None
            raise
        if self.wait_for_fire_and_forget:
            return self.aws.wait_for_execution(execution_arn)
        return ExecutionResult(execution_arn, "SUCCEEDED", None, None, None, 0.0)

    def _dead_letter(self, batch: _Batch, attempts: int) -> None:
        dead_letter = (self._settings.get("DeadLetterConfig") or {}).get("Arn")
        if not dead_letter:
            return
        records = batch.records
        info_key = "KinesisBatchInfo" if self._source_kind == "kinesis" else "DDBStreamBatchInfo"
        message = {
            "context": {
                "partnerResourceArn": self.pipe.target,
                "condition": "RetryAttemptsExhausted",
                "pipeArn": f"arn:aws:pipes:{self.aws.region}:123456789012:pipe/{self.pipe.name}",
                "approximateInvokeCount": attempts,
            },
            "version": "1.0",
            "timestamp": _iso(dt.datetime.now(dt.UTC)),
            info_key: {
                "shardId": batch.shard_id,
                "startSequenceNumber": _sequence(records[0]),
                "endSequenceNumber": _sequence(records[-1]),
                "approximateArrivalOfFirstRecord": _arrival(records[0]),
                "approximateArrivalOfLastRecord": _arrival(records[-1]),
                "batchSize": len(records),
                "streamArn": self.pipe.source,
            },
        }
        with self.aws.uncounted():
            sqs = self.aws.client("sqs")
            name = dead_letter.rsplit(":", 1)[1]
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))

    # -- an SQS source ----------------------------------------------------------------------------------------

    def _drain_queue(self, report: PipeReport, on_batch: Callable[[int], None] | None) -> None:
        """Receive until the queue is empty; a failed batch's messages come back (the queue's redrive policy, if
        any, moves a message received `maxReceiveCount` times to its dead-letter queue)."""
        sqs = self.aws.client("sqs")
        with self.aws.uncounted():
            url = sqs.get_queue_url(QueueName=self.pipe.source.rsplit(":", 1)[1])["QueueUrl"]
        for _ in range(MAX_QUEUE_RECEIVES):
            with self.aws.uncounted():
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(self.batch_size, 10),
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            if not messages:
                return
            report.records_read += len(messages)
            report.batches += 1
            delivered = self._attempt(_Batch("", tuple(self._sqs_record(m) for m in messages)), 0, report)
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
            with self.aws.uncounted():
                if delivered:
                    sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                else:
                    report.returned_to_queue += len(messages)
                    sqs.change_message_visibility_batch(
                        QueueUrl=url, Entries=[{**entry, "VisibilityTimeout": 0} for entry in entries]
                    )
            if on_batch is not None:
                on_batch(len(messages))
        raise RuntimeError(f"{self.pipe.name}: the queue still holds messages after {MAX_QUEUE_RECEIVES} receives")

    def _sqs_record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """A message as Pipes hands it to an enrichment or target ("Amazon SQS as a source": the event shape)."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": dict(message.get("MessageAttributes") or {}),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.pipe.source,
            "awsRegion": self.aws.region,
        }


# A queue that keeps failing without a redrive policy would be received for ever: a drain gives up after this.
MAX_QUEUE_RECEIVES = 10_000
_FAILED: Any = object()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _arrival(record: Mapping[str, Any]) -> str | None:
    arrival = record.get("approximateArrivalTimestamp")
    return _iso(dt.datetime.fromtimestamp(float(arrival), dt.UTC)) if arrival is not None else None


def _sequence(record: Mapping[str, Any]) -> str:
    if "sequenceNumber" in record:
        return str(record["sequenceNumber"])
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


class Scheduler:
    """EventBridge Scheduler, on demand: `fire(schedule, at)` does what the schedule would do at that time."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self._fired = 0

    def fire(self, schedule: Schedule, at: dt.datetime, *, wait: bool = True) -> ExecutionResult:
        if schedule.state != "ENABLED":
            raise ValueError(f"schedule {schedule.name} is {schedule.state}")
        self._fired += 1
        scheduled = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        execution_id = hashlib.sha256(f"{schedule.name}/{scheduled}/{self._fired}".encode()).hexdigest()[:32]
        text = str(schedule.target.get("Input", "{}"))
        for name, value in {
            "<aws.scheduler.scheduled-time>": scheduled,
            "<aws.scheduler.execution-id>": execution_id,
            "<aws.scheduler.attempt-number>": "1",
            "<aws.scheduler.schedule-arn>": f"arn:aws:scheduler:{self.aws.region}:123456789012:schedule/default/"
            f"{schedule.name}",
        }.items():
            text = text.replace(name, value)
        target = str(schedule.target["Arn"])
        if ":states:" not in target:
            raise ValueError(f"schedule {schedule.name}: only Step Functions targets are emulated, not {target}")
        execution_arn = self.aws.client("stepfunctions").start_execution(
            stateMachineArn=target, name=execution_id, input=text
        )["executionArn"]
        if wait:
            return self.aws.wait_for_execution(execution_arn)
        return ExecutionResult(execution_arn, "RUNNING", None, None, None, 0.0)


# -- running in the background (`serve`) -------------------------------------------------------------------------

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_AT = re.compile(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    name: n
    for n, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_WEEKDAYS = {name: n for n, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
# (low, high, names) of a cron expression's fields: minutes, hours, day-of-month, month, day-of-week, year.
_CRON_FIELDS: tuple[tuple[int, int, Mapping[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (1, 7, _WEEKDAYS),
    (1970, 2199, {}),
)


class ScheduleExpressionError(ValueError):
    """A schedule expression the emulated Scheduler does not run (the message says which part)."""


def next_fire(expression: str, after: dt.datetime) -> dt.datetime | None:
    """When a schedule fires next, strictly after `after` (UTC), per EventBridge Scheduler's expressions
    ("Schedule types on EventBridge Scheduler"): `rate(value unit)` every period from `after`, `at(yyyy-mm-ddThh:mm:ss)`
    once, `cron(minutes hours day-of-month month day-of-week year)` with `*`, `?`, lists, ranges, steps and
    names (L, W and # are refused). None: it never fires again."""
    after = after.astimezone(dt.UTC)
    rate = _RATE.fullmatch(expression.strip())
    if rate:
        value = int(rate.group(1))
        if value < 1:
            raise ScheduleExpressionError(f"{expression}: the rate must be at least 1")
        return after + dt.timedelta(seconds=value * _UNITS[rate.group(2).removesuffix("s")])
    at = _AT.fullmatch(expression.strip())
    if at:
        moment = dt.datetime.fromisoformat(at.group(1)).replace(tzinfo=dt.UTC)
        return moment if moment > after else None
    if expression.strip().startswith("cron(") and expression.strip().endswith(")"):
        return _next_cron(expression, after)
    raise ScheduleExpressionError(f"{expression}: not a rate(), at() or cron() expression")


def _cron_values(text: str, low: int, high: int, names: Mapping[str, int], expression: str) -> set[int] | None:
    if text in ("*", "?"):
        return None
    values: set[int] = set()

    def number(token: str) -> int:
        found = names.get(token.upper()) if not token.isdigit() else int(token)
        if found is None or not low <= found <= high:
            raise ScheduleExpressionError(f"{expression}: {token!r} is out of range")
        return found

    for part in text.split(","):
        if any(mark in part for mark in "LW#"):
            raise ScheduleExpressionError(f"{expression}: {part!r}: L, W and # are not emulated locally")
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit():
            raise ScheduleExpressionError(f"{expression}: {part!r} has a bad step")
        if base in ("*", ""):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return values


def _next_cron(expression: str, after: dt.datetime) -> dt.datetime | None:
    fields = expression.strip()[5:-1].split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"{expression}: a cron expression has 6 fields")
    minutes, hours, days, months, weekdays, years = (
        _cron_values(text, low, high, names, expression)
        for text, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True)
    )
    if "?" not in (fields[2], fields[4]) or (days is not None and weekdays is not None):
        raise ScheduleExpressionError(f"{expression}: day-of-month or day-of-week must be ?")
    moment = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    limit = after + dt.timedelta(days=366 * 10)
    while moment <= limit:
        weekday = (moment.weekday() + 1) % 7 + 1  # SUN=1 ... SAT=7
        if (years is not None and moment.year not in years) or (months is not None and moment.month not in months):
            moment = (moment.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
        elif (days is not None and moment.day not in days) or (weekdays is not None and weekday not in weekdays):
            moment = moment.replace(hour=0, minute=0) + dt.timedelta(days=1)
        elif hours is not None and moment.hour not in hours:
            moment = moment.replace(minute=0) + dt.timedelta(hours=1)
        elif minutes is not None and moment.minute not in minutes:
            moment += dt.timedelta(minutes=1)
        else:
            return moment
    return None


class Background:
    """What EventBridge Pipes and Scheduler do on AWS, all the time: every pipe of the stack polls its source and
    delivers what arrives (each in a thread of its own, one batch at a time, as a pipe does), and every enabled
    schedule fires when it is due. `pump` and `fire_due` do one round of each, for tests that step the clock."""

    def __init__(
        self,
        aws: LocalAws,
        pipes: Mapping[str, Pipe],
        schedules: Mapping[str, Schedule],
        *,
        poll_seconds: float = 0.2,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        report: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.aws = aws
        self.drivers = {
            logical_id: PipeDriver(aws, pipe, wait_for_fire_and_forget=False) for logical_id, pipe in pipes.items()
        }
        self.schedules = {logical_id: found for logical_id, found in schedules.items() if found.state == "ENABLED"}
        self.clock = clock
        self.report = report
        self.poll_seconds = poll_seconds
        started = clock()
        self.due = {logical_id: next_fire(found.expression, started) for logical_id, found in self.schedules.items()}
        self._scheduler = Scheduler(aws)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def pump(self, logical_id: str) -> PipeReport:
        """Deliver what the pipe's source holds now; report what it did."""
        driver = self.drivers[logical_id]
        report = driver.drain()
        if report.batches:
            statuses = Counter(execution.status for execution in report.executions)
            self.report(
                f"{logical_id}: {report.records_read} record(s), {report.batches} batch(es) -> "
                + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
                + (f"; {report.dead_lettered_records} dead-lettered" if report.dead_lettered_records else "")
            )
        return report

    def fire_due(self) -> list[ExecutionResult]:
        """Fire every schedule whose time has come, once each; return the executions started."""
        now = self.clock()
        started = []
        for logical_id, due in list(self.due.items()):
            if due is None or due > now:
                continue
            schedule = self.schedules[logical_id]
            started.append(self._scheduler.fire(schedule, due, wait=False))
            self.due[logical_id] = next_fire(schedule.expression, due)
            self.report(f"{logical_id}: fired for {due:%Y-%m-%dT%H:%M:%SZ} -> {started[-1].arn.rsplit(':', 1)[-1]}")
        return started

    def start(self) -> Background:
        for logical_id in self.drivers:
            self._loop(f"pipe {logical_id}", functools.partial(self.pump, logical_id))
        if self.schedules:
            self._loop("scheduler", self.fire_due)
        return self

    def _loop(self, name: str, work: Callable[[], object]) -> None:
        def run() -> None:
            while not self._stopping.is_set():
                try:
                    work()
                except Exception as error:  # a failed round is reported; the next one tries again
                    self.report(f"{name}: {type(error).__name__}: {error}")
                self._stopping.wait(self.poll_seconds)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop polling; wait (bounded) for the rounds under way to end."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
