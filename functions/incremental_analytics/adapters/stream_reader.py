"""Records read back from the Kinesis stream by their place: what the ingest Pipe gave up on.

A Pipe's dead-letter message for a Kinesis source carries the shard and the first and last sequence numbers of
the batch it gave up on, never the records (the Lambda developer guide's failure record for Kinesis:
`KinesisBatchInfo` with `shardId`, `startSequenceNumber`, `endSequenceNumber`, `batchSize`, `streamArn`; "you must
... retrieve them from the stream before they expire"). GetShardIterator `AT_SEQUENCE_NUMBER` at the first, then
GetRecords until the last, gives them back in the Pipes event shape, page by page (GetRecords answers at most
10 MB or 10,000 records a call).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from incremental_analytics.adapters import retrying

# GetRecords may answer an empty page while records follow (a shard's gaps): read on, up to this many pages.
MAX_EMPTY_PAGES = 20


class NotADeadLetter(ValueError):
    """A dead-letter message that does not describe a Kinesis batch."""


class RecordsExpired(RuntimeError):
    """The stream no longer holds the first record: its retention passed before the batch was read back."""


@dataclass(frozen=True, slots=True)
class BatchInfo:
    stream_arn: str
    shard_id: str
    first: str
    last: str
    size: int

    @classmethod
    def of_message(cls, body: Mapping[str, Any]) -> BatchInfo:
        info = body.get("KinesisBatchInfo")
        if not isinstance(info, Mapping):
            raise NotADeadLetter("no KinesisBatchInfo in the dead-letter message")
        try:
            return cls(
                stream_arn=str(info["streamArn"]),
                shard_id=str(info["shardId"]),
                first=str(info["startSequenceNumber"]),
                last=str(info["endSequenceNumber"]),
                size=int(info["batchSize"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise NotADeadLetter(f"KinesisBatchInfo lacks {error}") from None


def read_back(kinesis: Any, batch: BatchInfo, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """The batch's records, first to last inclusive, page by page, in the Pipes Kinesis event shape."""
    iterator = retrying.call(
        lambda: kinesis.get_shard_iterator(
            StreamARN=batch.stream_arn,
            ShardId=batch.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=batch.first,
        )["ShardIterator"],
        "Kinesis GetShardIterator",
    )
    first, last = int(batch.first), int(batch.last)
    started = False
    empty_pages = 0
    while iterator:
        answer = retrying.call(
            functools.partial(kinesis.get_records, ShardIterator=iterator, Limit=page_size, StreamARN=batch.stream_arn),
            "Kinesis GetRecords",
        )
        records = answer.get("Records", [])
        page, done = [], False
        for record in records:
            sequence = int(record["SequenceNumber"])
            if not started and sequence != first:
                raise RecordsExpired(f"{batch.shard_id}: record {batch.first} is no longer in the stream")
            started = True
            done = sequence >= last
            if sequence > last:
                break
            page.append(_pipes_record(batch, record))
            if done:
                break
        if page:
            yield page
        if done:
            return
        empty_pages = 0 if records else empty_pages + 1
        if not records and (empty_pages >= MAX_EMPTY_PAGES or answer.get("MillisBehindLatest") == 0):
            break
        iterator = answer.get("NextShardIterator")
    if not started:
        raise RecordsExpired(f"{batch.shard_id}: record {batch.first} is no longer in the stream")


def _pipes_record(batch: BatchInfo, record: Mapping[str, Any]) -> dict[str, Any]:
    arrival = record.get("ApproximateArrivalTimestamp")
    return {
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{batch.shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": batch.stream_arn,
        "kinesisSchemaVersion": "1.0",
        "partitionKey": record["PartitionKey"],
        "sequenceNumber": record["SequenceNumber"],
        "data": base64.b64encode(record["Data"]).decode(),
        "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, dt.datetime) else arrival,
    }
