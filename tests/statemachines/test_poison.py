"""No record can fail a batch, none is lost (docs/events.md, 6; docs/ingest.md): every poison record of issue 14, each
among good ones, through the real Pipes, enrichments and workflows on the local AWS; batches of large events;
throttling storms on every DynamoDB operation of the counting path; and the retention the template aligns."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition
from incremental_analytics_local.aws_rules import KINESIS_RECORD_DATA_BYTES, PAYLOAD_LIMIT_BYTES, payload_bytes
from incremental_analytics_local.cfn import read_template
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.pipes import PipeReport
from incremental_analytics_local.product import LocalProduct
from tests.conftest import ROOT
from tests.statemachines.expected import actual, expected

NOW_MS = int(time.time() * 1000) - 3_600_000
TAPS = Rule("taps", RuleType.AGGREGATE, "tap", count=CountCondition(Operator.GREATER_OR_EQUAL, 2))
SPEND = Rule("spend", RuleType.AGGREGATE, "purchase", sum=SumCondition(Operator.GREATER, Decimal(100), "price"))
RULES = [TAPS, SPEND]


def good(user: str, n: int, event_type: str = "tap", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": NOW_MS + n, **extra}


GOOD = [good("u1", n) for n in range(3)] + [good("u2", n, "purchase", metrics={"price": 60}) for n in range(3)]


def _line(document: Any) -> bytes:
    return json.dumps(document).encode()


def _raw(fields: str) -> bytes:
    """A record whose JSON text matters as written (a number literal, an escape)."""
    return f'{{"user_id": "u3", "event_type": "tap", "timestamp": {NOW_MS}, {fields}}}'.encode()


def _nested(depth: int) -> bytes:
    return _raw(f'"deep": {"[" * (depth - 1)}{"]" * (depth - 1)}')


def _padded_to(size: int) -> bytes:
    """A generic event of exactly `size` bytes."""
    head = _raw('"pad": "')
    return head + b"x" * (size - len(head) - 2) + b'"}'


# issue 14's poison records: each passed validation once, then failed its batch (or cost 15 s of CPU).
POISON = [
    pytest.param(_line(good("u" * 3000, 9)), "bad_user_id", id="user id of 3,000 characters matching a rule"),
    pytest.param(_line(good("u3", 9, "t" * 2100)), "bad_event_type", id="event type of 2,100 characters"),
    pytest.param(_line(good("u3", 9, event_id="e" * 1100)), "bad_event_id", id="event id of 1,100 characters"),
    pytest.param(_raw('"metrics": {"price": 1e200}'), "bad_metric", id="metric 1e200"),
    pytest.param(_raw('"metrics": {"price": 1e-200}'), "bad_metric", id="metric 1e-200"),
    pytest.param(_raw('"metrics": {"price": ' + "1234567890" * 4 + "}"), "bad_metric", id="metric of 40 digits"),
    pytest.param(
        _raw('"metrics": {"price": 1.' + "1" * 39 + "}").replace(b'"tap"', b'"unruled"'),
        "bad_metric",
        id="metric of 40 digits on an event type no rule uses",
    ),
    pytest.param(_raw('"user": 1').replace(b'"u3"', b'"u\\ud800"'), "not_json", id="lone surrogate in user"),
    pytest.param(_raw('"x": 1').replace(b'"tap"', b'"t\\udc00"'), "not_json", id="lone surrogate in type"),
    pytest.param(_raw('"attributes": {"a": "\\ud83d"}'), "not_json", id="lone surrogate in an attribute"),
    pytest.param(_raw('"x": 1').replace(b'"u3"', b'"u\xed\xa0\x80"'), "not_json", id="surrogate bytes in user"),
    pytest.param(_nested(1000), "not_json", id="JSON nested 1,000 deep"),
    pytest.param(_padded_to(200_000), "too_large", id="a record of 200 KB"),
    pytest.param(_padded_to(KINESIS_RECORD_DATA_BYTES), "too_large", id="a record of 1 MiB"),
    pytest.param(_raw('"y": 1').replace(str(NOW_MS).encode(), b"1e800000"), "bad_timestamp", id="timestamp 1e800000"),
    pytest.param(_raw('"y": 1').replace(str(NOW_MS).encode(), b"1e1200000"), "bad_timestamp", id="timestamp 1e1200000"),
]


def _succeeded(report: PipeReport) -> None:
    failed = [(e.error, e.cause) for e in report.all_executions if e.status != "SUCCEEDED"]
    assert not failed, failed


def _nothing_lost(product: LocalProduct, report: PipeReport) -> None:
    assert product.parked() == [] and product.dead_letters_waiting() == 0


@pytest.mark.parametrize(("poison", "reason"), POISON)
def test_a_poison_record_among_good_ones_is_quarantined_once_and_the_rest_counted(
    aws: LocalAws, poison: bytes, reason: str
) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "10"})
    product.put_rules(RULES)
    records = [("p", _line(event)) for event in GOOD]
    records.insert(3, ("p", poison))  # one partition key: one shard, one batch
    product.put_records(records)
    report = product.ingest(redeliver=1.0, seed=1)  # and the batch delivered a second time, whole or split
    _succeeded(report)
    assert report.batches == 1 and report.redeliveries == 1
    assert report.retries == report.bisections == report.dead_lettered_records == report.refused_too_large == 0
    assert report.drained is not None and report.drained.batches == 0  # nothing was dead-lettered
    _nothing_lost(product, report)
    assert actual(product) == expected(RULES, GOOD)
    (kept,) = product.quarantined()
    assert (kept["reason"], kept["partition_key"]) == (reason, "p")
    assert base64.b64decode(kept["data"]) == poison
    assert product.metrics("ParseRecordsFunction")[f"Rejected_{reason}"] == 1  # once, though delivered twice


def test_events_of_2_3_kb_in_batches_of_100_stay_within_256_kib_everywhere(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "100"})
    product.put_rules(RULES)
    wide = {f"a{n}": "v" * 190 for n in range(11)}
    events = [good(f"u{n % 10}", n, attributes=wide) for n in range(200)]
    assert 2_200 < len(_line(events[0])) < 2_400
    product.put_records(("p", _line(event)) for event in events)
    report = product.ingest()
    _succeeded(report)
    assert (report.batches, len(report.executions)) == (2, 2)
    assert report.retries == report.bisections == report.refused_too_large == 0
    assert actual(product) == expected(RULES, events)
    # What crossed a state boundary, measured from the executions' histories: the hand-off and every state's
    # input and output. Each batch of 100 records is 307 KB of base64; none of that reaches the workflow.
    sizes = [
        len(str(details[field]).encode())
        for execution in report.executions
        for event in product.aws.history(execution.arn)
        for key in ("executionStartedEventDetails", "stateEnteredEventDetails", "stateExitedEventDetails")
        if (details := event.get(key))
        for field in ("input", "output")
        if field in details
    ]
    assert max(sizes) < PAYLOAD_LIMIT_BYTES
    summaries = [execution.output["summary"] for execution in report.executions]
    assert all(summary["spilled_writes"] > 0 for summary in summaries)  # the writes went through S3


def test_a_batch_of_large_events_hands_its_events_over_through_s3(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "100"})
    product.put_rules(RULES)
    wide = {f"a{n}": "v" * 199 for n in range(15)}
    events = [good(f"u{n % 7}", n, attributes=wide) for n in range(90)]
    product.put_records(("p", _line(event)) for event in events)
    report = product.ingest()
    _succeeded(report)
    (execution,) = report.executions
    handed = json.loads(product.aws.describe(execution.arn)["input"])
    assert handed[0]["events"] == [] and handed[0]["events_key"].startswith("spill/handoff/")
    assert payload_bytes(handed) < 1_000
    assert actual(product) == expected(RULES, events)


# -- throttling ---------------------------------------------------------------------------------------------------

# Each storm outlasts the workflow's retries and the Pipe's (the test checks it reached the dead-letter queue).
STORMS = [
    pytest.param("Scan", 400, id="Scan of the rules"),
    pytest.param("BatchGetItem", 1500, id="BatchGetItem of counters and claims"),
    pytest.param("TransactWriteItems", 400, id="TransactWriteItems of the commits"),
    pytest.param("BatchWriteItem", 400, id="BatchWriteItem of the time series"),
]


@pytest.mark.parametrize(("operation", "storm"), STORMS)
def test_a_long_throttling_storm_delays_counting_and_loses_nothing(aws: LocalAws, operation: str, storm: int) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "4"})
    product.put_rules(RULES)
    events = [good(f"u{user}", 10 * n + user) for n in range(4) for user in range(3)]
    records = [(event["user_id"], _line(event)) for event in events]
    records.insert(5, ("u1", b"{not json"))
    product.put_records(records)
    aws.fail_next("dynamodb", operation, storm, "ProvisionedThroughputExceededException")
    report = product.ingest()
    assert report.dead_lettered_records > 0, "the storm ended before the Pipe gave up: make it longer"
    assert report.drained is not None and report.drained.batches > 0
    assert all(execution.status == "SUCCEEDED" for execution in report.drained.executions[-1:])
    _nothing_lost(product, report)
    assert actual(product) == expected(RULES, events)  # the one-at-a-time replay
    assert [item["reason"] for item in product.quarantined()] == ["not_json"]
    rejected = sum(
        product.metrics(f).get("Rejected_not_json", 0) for f in ("ParseRecordsFunction", "DrainDeadLettersFunction")
    )
    assert rejected == 1


def test_a_batch_that_cannot_be_counted_for_hours_is_parked_then_redriven(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "1"})
    product.put_rules(RULES)
    events = [good("u1", 0), good("u1", 1)]
    product.put_events(events)
    for writes in ("TransactWriteItems", "BatchExecuteStatement"):  # the counters' writes, whichever way
        aws.fail_next("dynamodb", writes, 10**6, "ProvisionedThroughputExceededException")
    report = product.ingest()
    parked = product.parked()
    assert len(parked) == 2 and {batch["batchSize"] for batch in parked} == {1}
    assert report.drained is not None and report.drained.returned_to_queue == 2 * _max_receives()
    assert product.counters() == {}
    for writes in ("TransactWriteItems", "BatchExecuteStatement"):  # it ends
        aws.fail_next("dynamodb", writes, 0, "ProvisionedThroughputExceededException")
    assert product.redrive_parked() == 2
    _succeeded(product.drain_dead_letters())
    _nothing_lost(product, report)
    assert actual(product) == expected(RULES, events)


# -- the template ---------------------------------------------------------------------------------------------------

TEMPLATE = read_template(ROOT / "infra" / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _max_receives() -> int:
    return int(RESOURCES["IngestDeadLetterQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


def test_a_dead_lettered_record_is_read_back_within_the_streams_retention() -> None:
    """docs/ingest.md, "Retention, aligned": the Pipe gives up by MaximumRecordAgeSeconds, the dead-letter queue
    retries for VisibilityTimeout x maxReceiveCount, and both end before any Kinesis stream drops the record."""
    kinesis_least_retention_hours = 24  # Kinesis Data Streams: retention from 24 hours (the default) up
    stream = RESOURCES["EventStream"]["Properties"]
    assert stream["RetentionPeriodHours"] >= kinesis_least_retention_hours
    record_age = TEMPLATE["Parameters"]["MaximumRecordAgeSeconds"]
    queue = RESOURCES["IngestDeadLetterQueue"]["Properties"]
    drain_seconds = queue["VisibilityTimeout"] * _max_receives()
    assert record_age["MaxValue"] + drain_seconds < kinesis_least_retention_hours * 3600
    assert record_age["Default"] <= record_age["MaxValue"]
    assert queue["MessageRetentionPeriod"] > drain_seconds
    parking = RESOURCES["IngestDeadLetterParking"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterParking", "Arn"]}
    assert parking["MessageRetentionPeriod"] == 1_209_600  # SQS' longest: 14 days


def test_both_pipes_reach_the_ingest_workflow_through_an_enrichment() -> None:
    ingest, drain = RESOURCES["IngestPipe"]["Properties"], RESOURCES["DrainPipe"]["Properties"]
    assert ingest["Enrichment"] == {"Fn::GetAtt": ["ParseRecordsFunction", "Arn"]}
    assert drain["Enrichment"] == {"Fn::GetAtt": ["DrainDeadLettersFunction", "Arn"]}
    assert ingest["Target"] == drain["Target"] == {"Ref": "IngestBatchStateMachine"}
    dead_letters = ingest["SourceParameters"]["KinesisStreamParameters"]["DeadLetterConfig"]["Arn"]
    assert dead_letters == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert drain["Source"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    for pipe in (ingest, drain):
        assert pipe["TargetParameters"]["StepFunctionStateMachineParameters"]["InvocationType"] == "REQUEST_RESPONSE"
