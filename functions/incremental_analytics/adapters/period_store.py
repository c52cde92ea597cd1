"""Where date and window rules keep their state: the time-series table (raw events of days still open), Parquet
rollups in S3 (a rule's matching events of a closed day, written once), and the qualified set of each evaluation.

S3 layout, under the data bucket:
  rollups/<rule_id>/<identity>/<yyyy-mm-dd>/<shard>.parquet     columns of periods.EVENT_COLUMNS + endpoint_id
  periods/<rule_id>/<identity>/qualified/<run>.json             the users qualified after that evaluation
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.domain.periods import EVENT_COLUMNS, empty_events
from incremental_analytics.domain.rules import Rule

ROLLUP_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_id", pa.string()),
        ("timestamp_ms", pa.int64()),
        ("value", pa.string()),  # exact decimal text
        ("endpoint_id", pa.string()),
    ]
)
COLUMNS = (*EVENT_COLUMNS, "endpoint_id")


@dataclass(frozen=True, slots=True)
class DayEvents:
    """A rule's matching events of one (day, shard) partition, and how many time-series items were read."""

    rows: list[tuple[str, str, int, Decimal, str | None]]
    items_read: int


def rollup_prefix(rule: Rule) -> str:
    return f"rollups/{rule.rule_id}/{rule.counting_identity}/"


def rollup_key(rule: Rule, day: dt.date, shard: int) -> str:
    return f"{rollup_prefix(rule)}{day.isoformat()}/{shard}.parquet"


def qualified_prefix(rule: Rule) -> str:
    return f"periods/{rule.rule_id}/{rule.counting_identity}/qualified/"


def qualified_key(rule: Rule, run: str) -> str:
    return f"{qualified_prefix(rule)}{run}.json"


def read_day(client: Any, table: str, rule: Rule, day: dt.date, shard: int) -> DayEvents:
    """Every item of one time-series partition, the rule's matching events kept."""
    partition = items.timeseries_partition(rule.event_type, day, shard)
    read = 0
    paginator = client.get_paginator("query")
    pages = paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
    )

    def each_item() -> Iterator[dict[str, Any]]:
        nonlocal read
        for page in pages:
            read += int(page.get("Count", 0))
            yield from page.get("Items", [])

    rows = matching_rows(each_item(), rule)
    return DayEvents(rows, read)


def matching_rows(found: Iterable[dict[str, Any]], rule: Rule) -> list[tuple[str, str, int, Decimal, str | None]]:
    """The rule's matching events among time-series items, packed or not (the evaluation counts each
    (user, event_id) once)."""
    return [
        (event.user_id, event.event_id, event.timestamp_ms, rule.value_of(event.metrics), event.endpoint_id)
        for item in found
        for event in items.timeseries_events(item)
        if rule.matches(rule.event_type, event.attributes)
    ]


def frame(rows: Sequence[tuple[str, str, int, Decimal, str | None]]) -> pd.DataFrame:
    if not rows:
        events = empty_events()
        events["endpoint_id"] = pd.Series([], dtype=object)
        return events
    events = pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))
    return events.astype({"timestamp_ms": "int64"})


def write_rollup(client: Any, bucket: str, key: str, rows: Sequence[tuple[str, str, int, Decimal, str | None]]) -> None:
    columns: list[Sequence[Any]] = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * len(COLUMNS)
    table = pa.Table.from_arrays(
        [
            pa.array(columns[0], pa.string()),
            pa.array(columns[1], pa.string()),
            pa.array(columns[2], pa.int64()),
            pa.array([str(value) for value in columns[3]], pa.string()),
            pa.array(columns[4], pa.string()),
        ],
        schema=ROLLUP_SCHEMA,
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue(), ContentType="application/vnd.apache.parquet")


def read_rollups(client: Any, bucket: str, keys: Iterable[str]) -> pd.DataFrame:
    frames = []
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        frames.append(pq.read_table(io.BytesIO(body), schema=ROLLUP_SCHEMA).to_pandas())
    frames = [part for part in frames if not part.empty]
    if not frames:
        return frame([])
    events = pd.concat(frames, ignore_index=True)
    events["value"] = [Decimal(text) for text in events["value"]]
    typed: pd.DataFrame = events.astype(
        {"timestamp_ms": "int64", "user_id": object, "event_id": object, "endpoint_id": object}
    )
    return typed


def combine(*parts: pd.DataFrame) -> pd.DataFrame:
    kept = [part for part in parts if not part.empty]
    return pd.concat(kept, ignore_index=True) if len(kept) > 1 else (kept[0] if kept else frame([]))


def existing_keys(client: Any, bucket: str, prefix: str) -> set[str]:
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update(entry["Key"] for entry in page.get("Contents", []))
    return found


def read_qualified(client: Any, bucket: str, key: str | None) -> list[str]:
    if not key:
        return []
    qualified: list[str] = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return qualified


def write_json(client: Any, bucket: str, key: str, value: Any) -> None:
    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def delete_keys(client: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
