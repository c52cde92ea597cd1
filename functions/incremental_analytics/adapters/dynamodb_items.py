"""The product's DynamoDB items and keys, in DynamoDB's JSON, for the state machines' transactions.

Counters table (one table, two kinds of item under each user's partition):
  counter   pk=U#<user>  sk=R#<rule_id>                              the state of one (user, aggregate rule)
  claim     pk=U#<user>  sk=D#<rule_id>#<identity>#<event_id>        "this event was counted", with a TTL
Counter items carry `rule_id`, which a sparse GSI (`by-rule`) indexes for purging a rule's state.

Audit table (the outbox): pk=user_id, sk=outcome_id; `rule_id`/`occurred_at` for the `by-rule` GSI, and
`pending`/`pending_since` while some sink has not taken the outcome, for the sparse `pending` GSI.

Time-series table: pk=<event_type>#<yyyy-mm-dd>#<shard>, sk=<epoch ms, 13 digits>#<event_id>, with a TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from incremental_analytics.domain.commits import Chunk
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import Contribution, Outcome
from incremental_analytics.domain.replay import CounterState

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamo(value: Any) -> dict[str, Any]:
    """A plain value as DynamoDB's attribute JSON; floats go through their shortest repr to exact decimals."""
    return _serializer.serialize(_exact(value))  # type: ignore[no-any-return]


def item_to_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: to_dynamo(value) for key, value in item.items() if value is not None}


def item_from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(item) for item in value]
    return value


# -- counters and claims --------------------------------------------------------------------------------------


def counter_key(user_id: str, rule_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"U#{user_id}"}, "sk": {"S": f"R#{rule_id}"}}


def claim_key(user_id: str, rule_id: str, identity: str, event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"U#{user_id}"}, "sk": {"S": f"D#{rule_id}#{identity}#{event_id}"}}


def counter_from_item(item: Mapping[str, Any] | None, identity: str) -> tuple[CounterState, int]:
    """The counters and version of a stored counter item. Counters kept under another counting identity are
    stale (the rule's meaning changed): the state starts afresh, the version stays for the conditional write."""
    if not item:
        return CounterState(), 0
    plain = item_from_dynamo(item)
    version = int(plain.get("version", 0))
    if plain.get("identity") != identity:
        return CounterState(), version
    recent = tuple(
        Contribution(str(entry["event_id"]), int(entry["ts"]), Decimal(entry["value"]))
        for entry in plain.get("recent", [])
    )
    state = CounterState(
        count=int(plain.get("count", 0)),
        sum=Decimal(plain.get("sum", 0)),
        cycle=int(plain.get("cycle", 0)),
        qualified=bool(plain.get("qualified", False)),
        recent=recent,
    )
    return state, version


def counter_item(
    user_id: str, rule_id: str, *, identity: str, state: CounterState, version: int, updated_at: str
) -> dict[str, Any]:
    return {
        **counter_key(user_id, rule_id),
        **item_to_dynamo(
            {
                "rule_id": rule_id,
                "user_id": user_id,
                "identity": identity,
                "version": version,
                "count": state.count,
                "sum": state.sum,
                "cycle": state.cycle,
                "qualified": state.qualified,
                "recent": [{"event_id": c.event_id, "ts": c.timestamp_ms, "value": c.value} for c in state.recent],
                "updated_at": updated_at,
            }
        ),
    }


def chunk_transaction(
    *,
    counters_table: str,
    audit_table: str,
    user_id: str,
    rule_id: str,
    identity: str,
    chunk: Chunk,
    deliveries: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    claim_ttl_seconds: int,
    pending_shards: int,
) -> list[dict[str, Any]]:
    """The TransactItems of one chunk: claims, the versioned counter, the outbox outcomes."""
    committed_at = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    expires_at = int(now.timestamp()) + claim_ttl_seconds
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": counters_table,
                "Item": {**claim_key(user_id, rule_id, identity, event.event_id), "expires_at": {"N": str(expires_at)}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for event in chunk.events
    ]
    counter: dict[str, Any] = {
        "TableName": counters_table,
        "Item": counter_item(
            user_id, rule_id, identity=identity, state=chunk.state, version=chunk.version, updated_at=committed_at
        ),
    }
    if chunk.expected_version == 0:
        counter["ConditionExpression"] = "attribute_not_exists(pk) OR version = :expected"
    else:
        counter["ConditionExpression"] = "version = :expected"
    counter["ExpressionAttributeValues"] = {":expected": {"N": str(chunk.expected_version)}}
    items.append({"Put": counter})
    for delivery in deliveries:
        items.append(
            {
                "Put": {
                    "TableName": audit_table,
                    "Item": outbox_item(delivery, committed_at, pending_shards),
                    "ConditionExpression": "attribute_not_exists(outcome_id)",
                }
            }
        )
    return items


# -- the outbox -----------------------------------------------------------------------------------------------


def pending_shard(outcome_id: str, shards: int) -> str:
    return f"P{int(hashlib.sha256(outcome_id.encode()).hexdigest(), 16) % max(shards, 1)}"


def outbox_item(delivery: Mapping[str, Any], committed_at: str, pending_shards: int) -> dict[str, Any]:
    """An outcome as the audit table keeps it: the outcome's fields, what the sinks are sent, delivery state."""
    outcome = delivery["outcome"]
    return item_to_dynamo(
        {
            **{key: value for key, value in outcome.items() if key != "cycle" or value is not None},
            "committed_at": committed_at,
            "request": json.dumps(delivery, sort_keys=True),
            "pending": pending_shard(outcome["outcome_id"], pending_shards),
            "pending_since": committed_at,
        }
    )


def outcome_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An audit item as the SPEC 5 outcome (numbers as JSON numbers)."""
    plain = _json_ready(item_from_dynamo(item))
    fields = ("outcome_id", "kind", "user_id", "rule_id", "output", "cycle", "occurred_at", "evidence", "execution")
    return {key: plain.get(key) for key in fields}


def _json_ready(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_json_ready(item) for item in value]
    return value


def outcomes_with_execution(outcomes: Sequence[Outcome], execution: str) -> list[Outcome]:
    return [outcome.with_execution(execution) for outcome in outcomes]


# -- time series ----------------------------------------------------------------------------------------------


def timeseries_shard(user_id: str, shards: int) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % max(shards, 1)


def timeseries_partition(event_type: str, day: dt.date, shard: int) -> str:
    return f"{event_type}#{day.isoformat()}#{shard}"


def timeseries_item(event: Event, *, shards: int, ttl_seconds: int) -> dict[str, Any]:
    day = dt.datetime.fromtimestamp(event.timestamp_ms / 1000, dt.UTC).date()
    return {
        "pk": {"S": timeseries_partition(event.event_type, day, timeseries_shard(event.user_id, shards))},
        "sk": {"S": f"{event.timestamp_ms:013d}#{event.event_id}"},
        **item_to_dynamo(
            {
                "user_id": event.user_id,
                "event_id": event.event_id,
                "ts": event.timestamp_ms,
                "attributes": dict(event.attributes) or None,
                "metrics": dict(event.metrics) or None,
                "endpoint_id": event.endpoint_id,
                "expires_at": event.timestamp_ms // 1000 + ttl_seconds,
            }
        ),
    }
