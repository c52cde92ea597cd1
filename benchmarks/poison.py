"""Poison records: how long reading each kind takes, and what the largest ones cost through the real Pipe,
enrichment and workflow. Figures, not pass/fail (medians of several runs on a shared machine)."""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

from incremental_analytics.domain.events import Rejected, normalise
from incremental_analytics.domain.intake import read_batch
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local.aws_rules import KINESIS_RECORD_DATA_BYTES, payload_bytes
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

NOW_MS = int(time.time() * 1000)
RUNS = 5


def _raw(fields: str) -> bytes:
    return f'{{"user_id": "u3", "event_type": "tap", "timestamp": {NOW_MS - 60_000}, {fields}}}'.encode()


def _padded(size: int, filler: str = "x") -> bytes:
    head = _raw('"pad": "')
    count = (size - len(head) - 2) // len(filler.encode())
    return head + (filler * count).encode() + b'"}'


def poison_records() -> dict[str, bytes]:
    """Issue 14's inputs and the extremes of each kind the checks bound."""
    return {
        "user id of 3,000 characters": _raw('"x": 1').replace(b'"u3"', b'"' + b"u" * 3000 + b'"'),
        "event type of 2,100 characters": _raw('"x": 1').replace(b'"tap"', b'"' + b"t" * 2100 + b'"'),
        "metric 1e200": _raw('"metrics": {"m": 1e200}'),
        "metric of 40 digits": _raw('"metrics": {"m": ' + "9" * 40 + "}"),
        "lone surrogate in user": _raw('"x": 1').replace(b'"u3"', b'"u\\ud800"'),
        "JSON nested 1,000 deep (2 KB)": _raw('"d": ' + "[" * 999 + "]" * 999),
        "JSON nested 65,000 deep (128 KiB)": _raw('"d": ' + "[" * 65_000 + "]" * 65_000),
        "timestamp 1e800000": _raw('"y": 1').replace(str(NOW_MS - 60_000).encode(), b"1e800000"),
        "timestamp 1e1200000": _raw('"y": 1').replace(str(NOW_MS - 60_000).encode(), b"1e1200000"),
        "timestamp of 130,000 digits": _raw('"y": 1').replace(str(NOW_MS - 60_000).encode(), b"9" * 130_000),
        "metric of 130,000 digits": _raw('"metrics": {"m": ' + "7" * 130_000 + "}"),
        "128 KiB of surrogate escapes": _padded(131_000, "\\ud800"),
        "128 KiB of 4-byte characters": _padded(131_000, "😀"),
        "record of 200 KB": _padded(200_000),
        "record of 1 MiB": _padded(KINESIS_RECORD_DATA_BYTES),
    }


def parse_times() -> list[dict[str, object]]:
    rows = []
    for name, data in poison_records().items():
        seconds = []
        for _ in range(RUNS):
            started = time.perf_counter()
            result = normalise(data, now_ms=NOW_MS)
            seconds.append(time.perf_counter() - started)
        reason = result.reason.value if isinstance(result, Rejected) else type(result).__name__
        rows.append(
            {
                "record": name,
                "bytes": len(data),
                "result": reason,
                "median_ms": round(statistics.median(seconds) * 1000, 3),
                "max_ms": round(max(seconds) * 1000, 3),
            }
        )
    return rows


def enrichment_batch() -> dict[str, object]:
    """ParseRecords' pure work on the largest batch Lambda hands it: four records of 1 MiB (5.6 MB of base64)."""
    records = [
        {"eventID": f"shardId-0:{n}", "sequenceNumber": str(n), "partitionKey": "p", "data": data}
        for n, data in enumerate([base64.b64encode(_padded(KINESIS_RECORD_DATA_BYTES)).decode()] * 4)
    ]
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        read = read_batch(records, NOW_MS)
        seconds.append(time.perf_counter() - started)
    return {
        "batch_bytes": payload_bytes(records),
        "rejected": len(read.rejects),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
    }


def through_the_workflows() -> list[dict[str, object]]:
    """A batch with one poison record among 99 good ones, through the real Pipe, enrichment and IngestBatch."""
    rule = Rule("taps", RuleType.AGGREGATE, "tap", count=CountCondition(Operator.GREATER, 2))
    rows = []
    for name in ("record of 1 MiB", "record of 200 KB", "JSON nested 1,000 deep (2 KB)"):
        with LocalAws(time_scale=0.001) as aws:
            product = LocalProduct(aws, parameters={"BatchSize": "100"})
            product.put_rules([rule])
            good = [
                json.dumps({"user_id": f"u{n % 10}", "event_type": "tap", "timestamp": NOW_MS - 60_000 + n}).encode()
                for n in range(99)
            ]
            records: list[tuple[str, bytes]] = [("p", data) for data in good]
            records.insert(50, ("p", poison_records()[name]))
            product.put_records(records)
            started = time.perf_counter()
            report = product.ingest()
            elapsed = time.perf_counter() - started
            (execution,) = report.executions
            handed: Any = json.loads(aws.describe(execution.arn)["input"])
            rows.append(
                {
                    "poison": name,
                    # base64 data and about 300 bytes of Pipes fields a record
                    "pipe_batch_bytes": sum(4 * ((len(data) + 2) // 3) + 300 for _, data in records),
                    "handoff_bytes": payload_bytes(handed),
                    "quarantined": len(product.quarantined()),
                    "counted": sum(counter.count for counter in product.counters().values()),
                    "dead_lettered": report.dead_lettered_records,
                    "seconds": round(elapsed, 2),
                }
            )
    return rows


def main() -> dict[str, list[dict[str, object]]]:
    return {"parse": parse_times(), "enrichment": [enrichment_batch()], "workflows": through_the_workflows()}


if __name__ == "__main__":
    for title, rows in main().items():
        print(title)
        for row in rows:
            print(" ", row)
