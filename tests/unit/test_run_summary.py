"""How `run` accounts for its lines (docs/run.md): rejected from the quarantine, dead-lettered from the parked
messages, the rest as the product reads them; a line is counted once, in one place."""

from __future__ import annotations

from incremental_analytics.domain.events import (
    Event,
    Ignored,
    IgnoreReason,
    Rejected,
    RejectReason,
)
from incremental_analytics_cli.runner import Positions, _summary, partition_key

EVENT = Event("e1", "u1", "tap", 1_612_130_400_000)


def test_dead_lettered_lines_are_neither_accepted_nor_ignored() -> None:
    classified = [
        EVENT,
        Ignored(IgnoreReason.SYSTEM_EVENT, "_session.start"),
        Event("e2", "u1", "tap", 1_612_130_400_001),
        Rejected(RejectReason.NOT_JSON, "x"),
        Ignored(IgnoreReason.OWN_OUTPUT, "trk_tap"),
    ]
    summary = _summary(classified, [(4, "not_json")], [2, 3], [], {}, {})
    assert (summary["accepted"], summary["ignored"], summary["rejected"], summary["dead_lettered"]) == (1, 1, 1, 2)
    assert summary["records"] == sum(summary[key] for key in ("accepted", "ignored", "rejected", "dead_lettered"))


def test_the_lines_of_a_parked_batch_are_found_by_shard_and_sequence_range() -> None:
    positions = Positions()
    positions.update({("s-0", "100"): 1, ("s-0", "205"): 2, ("s-1", "150"): 3, ("s-0", "300"): 4})
    parked = [{"shardId": "s-0", "startSequenceNumber": "100", "endSequenceNumber": "205", "batchSize": 2}]
    assert positions.lines_in(parked) == [1, 2]


def test_a_partition_key_is_what_kinesis_takes_or_the_line_number() -> None:
    deep = b'{"user_id": "d", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert partition_key(deep, Rejected(RejectReason.NOT_JSON, "deep"), 4) == "line-4"
    surrogate = b'{"user_id": "u\\ud800", "event_type": "tap", "timestamp": 1}'
    assert partition_key(surrogate, Rejected(RejectReason.BAD_TIMESTAMP, "old"), 5) == "line-5"
    long = b'{"user_id": "' + b"u" * 3000 + b'", "event_type": "tap"}'
    assert partition_key(long, Rejected(RejectReason.BAD_USER_ID, "long"), 6) == "u" * 256
    assert partition_key(b"{}", EVENT, 7) == "u1"
