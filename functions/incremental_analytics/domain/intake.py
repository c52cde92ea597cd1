"""A batch of stream records, read (docs/events.md): every record judged once, the rejected ones kept with where they
came from and why, the ignored ones counted, the accepted events in stream order."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incremental_analytics.domain.events import Event, IdentityMode, Ignored, Rejected, normalise


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A rejected record as it is kept: where it was on the stream, why, and its data as the stream gave it."""

    shard_id: str
    sequence_number: str
    partition_key: str | None
    reason: str
    detail: str
    data: str  # base64, as in the Pipes event

    def document(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "partition_key": self.partition_key,
            "reason": self.reason,
            "detail": self.detail,
            "data": self.data,
        }


@dataclass
class BatchRead:
    records: int = 0
    events: list[Event] = field(default_factory=list)  # in stream order
    rejects: list[Quarantined] = field(default_factory=list)
    ignored: int = 0
    first_sequence: str | None = None
    last_sequence: str | None = None
    shard_ids: set[str] = field(default_factory=set)

    def add(self, other: BatchRead) -> None:
        self.records += other.records
        self.events += other.events
        self.rejects += other.rejects
        self.ignored += other.ignored
        self.first_sequence = self.first_sequence or other.first_sequence
        self.last_sequence = other.last_sequence or self.last_sequence
        self.shard_ids |= other.shard_ids


def read_batch(
    records: Sequence[Mapping[str, Any]],
    now_ms: int,
    *,
    ruled_system_events: Container[str] = (),
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT,
) -> BatchRead:
    """Judge every record of a Pipes Kinesis batch. docs/events.md's checks need the rules: an unruled `_` event is
    ignored before its user or time is checked."""
    read = BatchRead(records=len(records))
    for record in records:
        shard_id, sequence = position(record)
        read.shard_ids.add(shard_id)
        read.first_sequence = read.first_sequence or sequence
        read.last_sequence = sequence
        result = normalise(_data(record), now_ms=now_ms, ruled_system_events=ruled_system_events, identity=identity)
        if isinstance(result, Event):
            read.events.append(result)
        elif isinstance(result, Ignored):
            read.ignored += 1
        else:
            read.rejects.append(_quarantined(record, result))
    return read


def position(record: Mapping[str, Any]) -> tuple[str, str]:
    """(shard id, sequence number) of a record in the Pipes Kinesis event shape (`eventID` is `shard:sequence`)."""
    sequence = str(record.get("sequenceNumber", ""))
    shard_id = str(record.get("eventID", "")).split(":", 1)[0]
    return shard_id, sequence


def _data(record: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(record["data"], validate=True)
    except (binascii.Error, KeyError, TypeError, ValueError):
        return b"\xff"  # not decodable: rejected as not_json like any unreadable payload


def _quarantined(record: Mapping[str, Any], rejection: Rejected) -> Quarantined:
    shard_id, sequence = position(record)
    partition_key = record.get("partitionKey")
    return Quarantined(
        shard_id=shard_id,
        sequence_number=sequence,
        partition_key=partition_key if isinstance(partition_key, str) else None,
        reason=rejection.reason.value,
        detail=rejection.detail,
        data=str(record.get("data", "")),
    )


def reasons(rejects: Sequence[Quarantined]) -> dict[str, int]:
    return dict(sorted(Counter(reject.reason for reject in rejects).items()))


def quarantine_key(reject: Quarantined) -> str:
    """One object per record, named by its place on the stream: a record delivered again maps to the same key."""
    return f"quarantine/{_safe(reject.shard_id)}/{_safe(reject.sequence_number)}.json"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"
