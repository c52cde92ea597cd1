"""The fixture's state machines run on the local AWS, fed through the emulated Pipe from a Kinesis stream."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from typing import Any

from incremental_analytics_local.deploy import Stack
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.pipes import PipeDriver, Scheduler


def _put(aws: LocalAws, stack: Stack, *records: tuple[str, dict[str, Any]]) -> None:
    with aws.uncounted():
        for user, data in records:
            aws.client("kinesis").put_record(
                StreamName=stack.ref("Stream"), PartitionKey=user, Data=json.dumps(data).encode()
            )


def _counters(aws: LocalAws, stack: Stack) -> dict[str, int]:
    with aws.uncounted():
        items = aws.client("dynamodb").scan(TableName=stack.ref("Counters"))["Items"]
    return {
        item["pk"]["S"]: int((item.get("hits") or item.get("deliveries"))["N"])
        for item in items
        if not item["pk"]["S"].startswith("claim#")
    }


def _events(count: int, users: int = 3) -> list[tuple[str, dict[str, Any]]]:
    return [(f"u{n % users}", {"id": f"e{n}"}) for n in range(count)]


def test_batches_run_through_every_kind_of_task(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, *_events(10))
    aws.reset_request_counts()
    report = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain()

    assert report.records_read == 10
    assert [execution.status for execution in report.executions] == ["SUCCEEDED"] * report.batches
    assert _counters(aws, fixture_stack) == {"user#u0": 4, "user#u1": 3, "user#u2": 3, "batches": report.batches}
    first = report.executions[0]
    states = aws.entered_states(first.arn)
    assert states[:3] == ["Greet", "CheckMode", "Fanout"]
    assert {"Commit", "CountBatch"} <= set(states[3:])  # the Parallel's branches start in either order
    assert states[-2:] == ["Announce", "StartWorker"]
    assert states.count("ClaimAndCount") == len(json.loads(_input(aws, first.arn)))
    assert aws.request_counts() == {
        "dynamodb.TransactWriteItems": 10,
        "dynamodb.UpdateItem": report.batches,
        "events.PutEvents": report.batches,
        "lambda.Invoke": report.batches,
        "stepfunctions.StartExecution": report.batches,
        "stepfunctions.StartSyncExecution": report.batches,
    }
    workers = aws.client("stepfunctions").list_executions(stateMachineArn=fixture_stack.ref("Worker"))["executions"]
    assert len(workers) == report.batches
    assert first.output["greeting"] == f"hello from {fixture_stack.ref('GreetFunction')}"


def test_batches_keep_shard_order_and_size(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, *[("same-user", {"id": f"e{n}"}) for n in range(7)])
    report = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain()
    assert report.batches == 3  # batch size 3 (a template parameter): 3 + 3 + 1
    batches = [
        [json.loads(_decode(record["data"]))["id"] for record in json.loads(_input(aws, execution.arn))]
        for execution in report.executions
    ]
    assert batches == [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e6"]]


def _decode(data: str) -> bytes:
    return base64.b64decode(data)


def _input(aws: LocalAws, execution_arn: str) -> str:
    # The ingest workflow is Express: DescribeExecution refuses it (as on AWS); the engine knows its input.
    return str(aws.describe(execution_arn)["input"])


def test_the_pipes_event_shape(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, ("u1", {"id": "e1"}))
    (execution,) = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain().executions
    (record,) = json.loads(_input(aws, execution.arn))
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["partitionKey"] == "u1"
    assert record["eventSourceARN"] == fixture_stack.attribute("Stream", "Arn")
    assert record["eventID"] == f"shardId-{record['eventID'].split('-')[1].split(':')[0]}:{record['sequenceNumber']}"
    assert json.loads(_decode(record["data"])) == {"id": "e1"}
    assert isinstance(record["approximateArrivalTimestamp"], float)


def test_redelivered_batches_are_caught_as_conditional_failures(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, *_events(12))
    report = PipeDriver(aws, fixture_stack.pipes["StreamPipe"], redeliver=1.0, seed=3).drain()
    assert report.redeliveries == report.batches
    assert all(execution.status == "SUCCEEDED" for execution in report.executions)
    counters = _counters(aws, fixture_stack)
    assert {key: value for key, value in counters.items() if key != "batches"} == {
        "user#u0": 4,
        "user#u1": 4,
        "user#u2": 4,
    }
    redelivered = report.executions[1]
    assert "AlreadyCounted" in aws.entered_states(redelivered.arn)


def test_a_custom_error_is_caught_by_name_after_a_retry_storm_in_scaled_time(
    aws: LocalAws, fixture_stack: Stack
) -> None:
    # Two retries 60 s and 120 s apart would take 3 minutes in real time; the engine's deadline is 60 s.
    _put(aws, fixture_stack, ("u1", {"id": "storm-1", "mode": "raise"}))
    (execution,) = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain().executions
    assert execution.status == "SUCCEEDED"
    assert execution.output["caught"]["Error"] == "FixtureConflict"
    assert json.loads(execution.output["caught"]["Cause"])["errorMessage"] == "conflict"
    history = aws.history(execution.arn)
    failures = [event for event in history if event["type"] == "LambdaFunctionFailed" or event["type"] == "TaskFailed"]
    assert len(failures) == 3


def test_a_failing_batch_is_retried_bisected_and_dead_lettered(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, ("u1", {"id": "a"}), ("u1", {"poison": True}), ("u1", {"id": "c"}))
    report = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain()
    assert report.dead_lettered_records == 1
    assert report.bisections == 2  # [a, poison, c] -> [a] + [poison, c] -> [poison] + [c]
    failed = [execution for execution in report.executions if execution.status == "FAILED"]
    assert {execution.error for execution in failed} == {"PoisonRecord"}
    # A failing batch of several records is split before it is retried; a single record is retried
    # (MaximumRetryAttempts 1) and then dead-lettered: [a, poison, c], [poison, c], [poison] twice.
    assert len(failed) == 4
    assert _counters(aws, fixture_stack)["user#u1"] == 2
    queue = aws.client("sqs").get_queue_url(QueueName=fixture_stack.attribute("DeadLetters", "QueueName"))
    (message,) = aws.client("sqs").receive_message(QueueUrl=queue["QueueUrl"], MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["context"]["condition"] == "RetryAttemptsExhausted"
    # The Lambda developer guide's Kinesis failure record: where the records are, never the records.
    info = body["KinesisBatchInfo"]
    assert set(info) == {
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    }
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == fixture_stack.attribute("Stream", "Arn") and body["version"] == "1.0"
    iterator = aws.client("kinesis").get_shard_iterator(
        StreamARN=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    (record, *_) = aws.client("kinesis").get_records(ShardIterator=iterator, Limit=1, StreamARN=info["streamArn"])[
        "Records"
    ]
    assert json.loads(record["Data"]) == {"poison": True}


def test_an_enrichment_hands_the_target_its_answer_and_an_empty_answer_starts_nothing(
    aws: LocalAws, fixture_stack: Stack
) -> None:
    _put(aws, fixture_stack, ("u1", {"id": "a"}), ("u1", {"id": "b", "skip": True}), ("u1", {"id": "c"}))
    _put(aws, fixture_stack, *[("u1", {"id": f"s{n}", "skip": True}) for n in range(3)])
    report = PipeDriver(aws, fixture_stack.pipes["EnrichedPipe"]).drain()
    assert (report.batches, report.enrichments, report.nothing_to_deliver) == (2, 2, 1)
    (execution,) = report.executions
    assert [json.loads(_decode(record["data"]))["id"] for record in json.loads(_input(aws, execution.arn))] == [
        "a",
        "c",
    ]
    assert aws.request_counts()["lambda.Invoke"] >= 2  # the enrichment's invocations are the product's requests


def test_a_failing_enrichment_fails_its_batch_which_is_bisected_and_dead_lettered(
    aws: LocalAws, fixture_stack: Stack
) -> None:
    _put(aws, fixture_stack, ("u1", {"id": "a"}), ("u1", {"enrichment_fails": True}), ("u1", {"id": "c"}))
    report = PipeDriver(aws, fixture_stack.pipes["EnrichedPipe"]).drain()
    assert report.dead_lettered_records == 1 and report.bisections == 2
    assert report.failed_enrichments == 4  # [a, x, c], [x, c], then [x] twice (MaximumRetryAttempts 1)
    assert {execution.status for execution in report.executions} == {"SUCCEEDED"}
    assert _counters(aws, fixture_stack)["user#u1"] == 2


def test_a_queue_pipe_deletes_what_it_delivered_and_its_redrive_parks_what_keeps_failing(
    aws: LocalAws, fixture_stack: Stack
) -> None:
    sqs = aws.client("sqs")
    queue = sqs.get_queue_url(QueueName=fixture_stack.attribute("Replays", "QueueName"))["QueueUrl"]
    for body in ({"user": "u7", "id": "r1"}, {"user": "u7", "id": "r2"}, {"user": "u8", "id": "r3", "fails": True}):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    report = PipeDriver(aws, fixture_stack.pipes["ReplayPipe"]).drain()
    # [r1, r2] delivered and deleted; [r3] failed, back in the queue, failed again: after its third receive the
    # queue's redrive policy (maxReceiveCount 3) moves it to Parked instead of handing it out a fourth time.
    assert (report.batches, report.failed_enrichments, report.returned_to_queue) == (4, 3, 3)
    (execution,) = report.executions
    assert execution.status == "SUCCEEDED"
    sent = json.loads(_input(aws, execution.arn))
    assert [(record["partitionKey"], json.loads(_decode(record["data"]))) for record in sent] == [
        ("u7", {"id": "r1"}),
        ("u7", {"id": "r2"}),
    ]
    assert _counters(aws, fixture_stack)["user#u7"] == 2
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    parked = sqs.get_queue_url(QueueName=fixture_stack.attribute("Parked", "QueueName"))["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=parked, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"])["id"] == "r3"


def test_a_dynamodb_stream_pipe_with_a_filter_starts_the_standard_workflow(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, *_events(4, users=2))
    PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain()
    sfn = aws.client("stepfunctions")
    before = len(sfn.list_executions(stateMachineArn=fixture_stack.ref("Worker"))["executions"])
    report = PipeDriver(aws, fixture_stack.pipes["CountersPipe"]).drain()
    # Only the INSERTs of user# counters pass the filter: claims, the batch counter and updates do not.
    assert report.records_filtered_out == report.records_read - 2
    assert all(execution.status == "SUCCEEDED" for execution in report.executions)
    records = [json.loads(_input(aws, execution.arn)) for execution in report.executions]
    keys = sorted(record["dynamodb"]["Keys"]["pk"]["S"] for batch in records for record in batch)
    assert keys == ["user#u0", "user#u1"]
    after = len(sfn.list_executions(stateMachineArn=fixture_stack.ref("Worker"))["executions"])
    assert after == before + len(report.executions)


def test_the_schedule_fires_its_target_with_the_scheduled_time(aws: LocalAws, fixture_stack: Stack) -> None:
    result = Scheduler(aws).fire(fixture_stack.schedules["Hourly"], dt.datetime(2021, 2, 1, 13, tzinfo=dt.UTC))
    assert result.status == "SUCCEEDED"
    assert result.output == {"scheduled_for": "2021-02-01T13:00:00Z"}


def test_a_wait_state_passes_in_scaled_time(aws: LocalAws, fixture_stack: Stack) -> None:
    started = aws.client("stepfunctions").start_execution(
        stateMachineArn=fixture_stack.ref("Worker"), name="waits-an-hour", input=json.dumps({"wait": True})
    )
    result = aws.wait_for_execution(started["executionArn"], deadline_seconds=60)
    assert result.status == "SUCCEEDED"
    assert aws.entered_states(result.arn) == ["Decide", "Pause", "Done"]


def test_another_process_can_use_the_local_aws_over_http(aws: LocalAws, fixture_stack: Stack) -> None:
    endpoint = aws.serve()
    script = f"""
import boto3, json, time
kwargs = dict(endpoint_url="{endpoint}", region_name="{aws.region}",
              aws_access_key_id="k", aws_secret_access_key="s")
print(json.dumps(boto3.client("dynamodb", **kwargs).list_tables()["TableNames"]))
sfn = boto3.client("stepfunctions", **kwargs)
worker = "{fixture_stack.ref("Worker")}"
arn = sfn.start_execution(stateMachineArn=worker, name="over-http", input="{{}}")["executionArn"]
deadline = time.monotonic() + 30
while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
    time.sleep(0.05)
print(sfn.describe_execution(executionArn=arn)["status"])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    tables, status = done.stdout.strip().splitlines()
    assert json.loads(tables) == [fixture_stack.ref("Counters")]
    assert status == "SUCCEEDED"
