"""The intake's adapters against the local AWS: records read back from the stream by their place, and the
quarantine's conditional writes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.quarantine import keep_once
from incremental_analytics.adapters.stream_reader import BatchInfo, RecordsExpired, read_back
from incremental_analytics.domain.intake import Quarantined, quarantine_key
from incremental_analytics_local.engine import LocalAws


def _stream(aws: LocalAws, records: int) -> tuple[str, str, list[str]]:
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName="s", ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"]
    answers = [kinesis.put_record(StreamName="s", PartitionKey="p", Data=f"r{n}".encode()) for n in range(records)]
    return arn, answers[0]["ShardId"], [answer["SequenceNumber"] for answer in answers]


def test_a_dead_lettered_batch_is_read_back_first_to_last_in_the_pipes_shape(aws: LocalAws) -> None:
    arn, shard, sequences = _stream(aws, 12)
    info = {"shardId": shard, "startSequenceNumber": sequences[3], "endSequenceNumber": sequences[9]}
    batch = BatchInfo.of_message({"KinesisBatchInfo": {**info, "batchSize": 7, "streamArn": arn}})
    pages = list(read_back(aws.client("kinesis"), batch, page_size=3))
    assert [len(page) for page in pages] == [3, 3, 1]
    records = [record for page in pages for record in page]
    assert [base64.b64decode(record["data"]) for record in records] == [f"r{n}".encode() for n in range(3, 10)]
    assert records[0]["eventID"] == f"{shard}:{sequences[3]}" and records[0]["partitionKey"] == "p"


def test_a_batch_whose_first_record_the_stream_no_longer_holds_is_reported(aws: LocalAws) -> None:
    arn, shard, sequences = _stream(aws, 3)
    gone = str(int(sequences[0]) - 1)  # before the first record the stream holds: trimmed
    batch = BatchInfo(arn, shard, gone, sequences[2], 4)
    with pytest.raises(RecordsExpired):
        list(read_back(aws.client("kinesis"), batch))


def test_a_message_that_names_no_kinesis_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="KinesisBatchInfo"):
        BatchInfo.of_message({"DDBStreamBatchInfo": {}})


REJECT = Quarantined("shardId-000000000000", "4960", "p", "not_json", "the record: JSONDecodeError", "e29vcHM=")


def test_a_record_is_quarantined_once(aws: LocalAws) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="data")
    assert keep_once(s3, "data", REJECT) is True
    assert keep_once(s3, "data", REJECT) is False  # S3 answered 412: it is there already
    kept = json.loads(s3.get_object(Bucket="data", Key=quarantine_key(REJECT))["Body"].read())
    assert kept == REJECT.document()
    assert quarantine_key(REJECT) == "quarantine/shardId-000000000000/4960.json"


class _Answers:
    """An S3 client whose PutObject answers the given error codes in turn, then succeeds: S3's 409 (a concurrent
    conditional write) and throttling cannot be provoked in moto."""

    def __init__(self, *codes: str) -> None:
        self.codes = list(codes)
        self.calls: list[dict[str, Any]] = []

    def put_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")
        return {}


def test_a_conflicting_write_is_tried_again_and_throttling_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrying, "sleep", lambda seconds: None)
    answers = _Answers("ConditionalRequestConflict", "SlowDown", "ConditionalRequestConflict")
    assert keep_once(answers, "data", REJECT) is True
    assert len(answers.calls) == 4 and all(call["IfNoneMatch"] == "*" for call in answers.calls)
    assert keep_once(_Answers("ConditionalRequestConflict", "PreconditionFailed"), "data", REJECT) is False
    with pytest.raises(retrying.Throttled):
        keep_once(_Answers(*["SlowDown"] * retrying.ATTEMPTS), "data", REJECT)
