"""The product's DynamoDB items and keys, in DynamoDB's JSON, for the state machines' transactions.

Counters table (one table, two kinds of item under each user's partition):
  counter   pk=U#<user>  sk=R#<rule_id>                              the state of one (user, aggregate rule):
            `st` {count, sum, cycle, qualified}, `version`, and `recent`, the evidence ring of the latest events
  claim     pk=U#<user>  sk=D#<rule_id>#<identity>#<event_id>        "this event was counted", with a TTL (an
            event id longer than 256 UTF-8 bytes is claimed by its hash, `#<sha256>`: a sort key holds 1024 bytes)
  period    pk=P#<rule_id>  sk=I#<identity>                         a date/window rule's evaluation state
Counter items carry `rule_id`, which a sparse GSI (`by-rule`) indexes for purging a rule's state.

Audit table (the outbox): pk=user_id, sk=outcome_id; `rule_id`/`occurred_at` for the `by-rule` GSI; `delivery`,
each sink's status (domain.delivery.SinkStatus), and `delivery_attempts`; and, while some sink lacks the outcome,
`undelivered` (a shard `P<n>` of the pending outcomes, or `ABANDONED`) with `committed_at`, for the sparse
`undelivered` GSI that the scheduled redelivery and `outcomes pending|abandoned` read. Its stream (keys only)
feeds the Pipe that delivers each new outcome.

Time-series table: pk=<event_type>#<yyyy-mm-dd>#<shard>, sk=<epoch ms, 13 digits>#<hash of the event>, with a
TTL. The hash covers the user, the event id, the attributes and the metrics: copies of a record are one item
(puts are idempotent), two users' events with one id are two (docs/events.md), and so are two records that reuse an
id for other content, of which the period evaluation counts one (domain.periods.distinct_events).
A map keeps no key order, so an event with several metrics also carries `metric_order` (docs/events.md's first metric).
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
from incremental_analytics.domain.delivery import initial_delivery
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import EVIDENCE_EVENTS, Contribution
from incremental_analytics.domain.replay import CounterState
from incremental_analytics.domain.rules import iso_instant, short_hash

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


CLAIMED_ID_BYTES = 256  # with `D#<rule_id>#<identity>#` (at most 84 bytes), well inside a 1024-byte sort key


def claim_key(user_id: str, rule_id: str, identity: str, event_id: str) -> dict[str, Any]:
    """The claim of one event of one user for one rule (its counting identity): per user, so ids never collide
    across users. A given event id may be 256 characters of up to 4 bytes each: a long one is claimed by its hash."""
    claimed = event_id
    if len(event_id.encode()) > CLAIMED_ID_BYTES:
        claimed = "#" + hashlib.sha256(event_id.encode()).hexdigest()
    return {"pk": {"S": f"U#{user_id}"}, "sk": {"S": f"D#{rule_id}#{identity}#{claimed}"}}


def counter_from_item(item: Mapping[str, Any] | None, identity: str) -> tuple[CounterState, int, bool]:
    """The counters and version of a stored counter item, and whether its evidence ring must be written whole.

    Counters kept under another counting identity are stale (the rule's meaning changed): the state starts
    afresh, the version stays for the conditional write.
    """
    if not item:
        return CounterState(), 0, True
    plain = item_from_dynamo(item)
    version = int(plain.get("version", 0))
    if plain.get("identity") != identity or "recent" not in plain:
        return CounterState(), version, True
    figures = plain.get("st", {})
    cycle = int(figures.get("cycle", 0))
    ring = sorted(
        (entry for entry in plain["recent"].values() if int(entry["c"]) == cycle), key=lambda entry: int(entry["n"])
    )
    recent = tuple(Contribution(str(e["i"]), int(e["t"]), Decimal(e["v"])) for e in ring)[-EVIDENCE_EVENTS:]
    state = CounterState(
        count=int(figures.get("count", 0)),
        sum=Decimal(figures.get("sum", 0)),
        cycle=cycle,
        qualified=bool(figures.get("qualified", False)),
        recent=recent,
    )
    return state, version, False


def _ring_entries(chunk: Chunk) -> dict[str, dict[str, Any]]:
    """The evidence ring: slot `s<n mod 20>` holds the n-th event of its cycle; later events overwrite."""
    entries: dict[str, dict[str, Any]] = {}
    for placed in chunk.placed:
        c = placed.contribution
        entries[f"s{placed.position % EVIDENCE_EVENTS}"] = {
            "i": c.event_id,
            "t": c.timestamp_ms,
            "v": c.value,
            "n": placed.position,
            "c": placed.cycle,
        }
    return entries


def counter_write(
    *,
    table: str,
    user_id: str,
    rule_id: str,
    identity: str,
    chunk: Chunk,
    whole: bool,
    updated_at: str,
) -> dict[str, Any]:
    """The counter's write in a chunk's transaction, conditioned on the version read: a Put of the whole item
    for a new counter (or one kept under another counting identity), else an Update of the figures and of
    the evidence-ring slots the chunk's events take. Few clauses keep it cheap to evaluate and to carry."""
    state = chunk.state
    figures = {"count": state.count, "sum": state.sum, "cycle": state.cycle, "qualified": state.qualified}
    condition = "#v = :e" if chunk.expected_version else "attribute_not_exists(pk) OR #v = :e"
    common = {
        "TableName": table,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#v": "version"},
    }
    ring = _ring_entries(chunk)
    if whole:
        item = {
            **counter_key(user_id, rule_id),
            **item_to_dynamo(
                {
                    "rule_id": rule_id,
                    "user_id": user_id,
                    "identity": identity,
                    "version": chunk.version,
                    "st": figures,
                    "recent": ring,
                    "updated_at": updated_at,
                }
            ),
        }
        return {"Put": {**common, "Item": item, "ExpressionAttributeValues": {":e": to_dynamo(chunk.expected_version)}}}
    values: dict[str, Any] = {":st": figures, ":v": chunk.version, ":e": chunk.expected_version, ":u": updated_at}
    sets = ["st = :st", "#v = :v", "updated_at = :u"]
    for slot, entry in sorted(ring.items()):
        values[f":{slot}"] = entry
        sets.append(f"recent.{slot} = :{slot}")
    return {
        "Update": {
            **common,
            "Key": counter_key(user_id, rule_id),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeValues": {key: to_dynamo(value) for key, value in values.items()},
        }
    }


def chunk_transaction(
    *,
    counters_table: str,
    audit_table: str,
    user_id: str,
    rule_id: str,
    identity: str,
    chunk: Chunk,
    whole_ring: bool,
    deliveries: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    claim_ttl_seconds: int,
    pending_shards: int,
) -> list[dict[str, Any]]:
    """The TransactItems of one chunk: claims, the versioned counter, the outbox outcomes."""
    committed_at = iso_instant(now)
    expires_at = {"N": str(int(now.timestamp()) + claim_ttl_seconds)}
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": counters_table,
                "Item": {**claim_key(user_id, rule_id, identity, event.event_id), "expires_at": expires_at},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for event in chunk.events
    ]
    items.append(
        counter_write(
            table=counters_table,
            user_id=user_id,
            rule_id=rule_id,
            identity=identity,
            chunk=chunk,
            whole=whole_ring,
            updated_at=committed_at,
        )
    )
    items += [
        {
            "Put": {
                "TableName": audit_table,
                "Item": outbox_item(delivery, committed_at, pending_shards),
                "ConditionExpression": "attribute_not_exists(outcome_id)",
            }
        }
        for delivery in deliveries
    ]
    return items


def period_key(rule_id: str, identity: str) -> dict[str, Any]:
    """The evaluation state of a date or window rule: the run that holds it, the qualified set's S3 key."""
    return {"pk": {"S": f"P#{rule_id}"}, "sk": {"S": f"I#{identity}"}}


# -- the outbox -----------------------------------------------------------------------------------------------

UNDELIVERED_INDEX = "undelivered"
ABANDONED = "ABANDONED"  # the `undelivered` partition of outcomes some sink gave up on


def pending_shard(outcome_id: str, shards: int) -> str:
    """The `undelivered` partition of a pending outcome: writes spread over `shards` partitions."""
    return f"P{int(hashlib.sha256(outcome_id.encode()).hexdigest(), 16) % max(shards, 1)}"


def pending_partitions(shards: int) -> list[str]:
    return [f"P{shard}" for shard in range(max(shards, 1))]


def outbox_item(delivery: Mapping[str, Any], committed_at: str, shards: int) -> dict[str, Any]:
    """An outcome as the audit table keeps it: the outcome with its evidence and whom the sinks address
    (`request`, domain/delivery.py's `delivery_item`) as one JSON text, the fields that keys and indexes need, and
    the delivery state: every sink pending, no attempt yet."""
    outcome = delivery["outcome"]
    return item_to_dynamo(
        {
            "user_id": outcome["user_id"],
            "outcome_id": outcome["outcome_id"],
            "rule_id": outcome["rule_id"],
            "kind": outcome["kind"],
            "output": outcome["output"],
            "cycle": outcome["cycle"],
            "occurred_at": outcome["occurred_at"],
            "committed_at": committed_at,
            "request": json.dumps(delivery, sort_keys=True, separators=(",", ":")),
            "delivery": initial_delivery(),
            "delivery_attempts": 0,
            "undelivered": pending_shard(outcome["outcome_id"], shards),
        }
    )


def outcome_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An audit item as the docs/delivery.md outcome."""
    outcome: dict[str, Any] = json.loads(item["request"]["S"])["outcome"]
    return outcome


# -- time series ----------------------------------------------------------------------------------------------


def timeseries_shard(user_id: str, shards: int) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % max(shards, 1)


def timeseries_partition(event_type: str, day: dt.date, shard: int) -> str:
    return f"{event_type}#{day.isoformat()}#{shard}"


def timeseries_item(event: Event, *, shards: int, ttl_seconds: int) -> dict[str, Any]:
    day = dt.datetime.fromtimestamp(event.timestamp_ms / 1000, dt.UTC).date()
    return {
        "pk": {"S": timeseries_partition(event.event_type, day, timeseries_shard(event.user_id, shards))},
        "sk": {"S": f"{event.timestamp_ms:013d}#{_content_hash(event)}"},
        **item_to_dynamo(
            {
                "user_id": event.user_id,
                "event_id": event.event_id,
                "ts": event.timestamp_ms,
                "attributes": dict(event.attributes) or None,
                "metrics": dict(event.metrics) or None,
                "metric_order": list(event.metrics) if len(event.metrics) > 1 else None,
                "endpoint_id": event.endpoint_id,
                "expires_at": event.timestamp_ms // 1000 + ttl_seconds,
            }
        ),
    }


def _content_hash(event: Event) -> str:
    metrics = [[name, str(value)] for name, value in event.metrics.items()]  # in order: the first one counts
    return short_hash([event.user_id, event.event_id, dict(event.attributes), metrics], 32)


def timeseries_event(item: Mapping[str, Any]) -> tuple[str, int, dict[str, str], dict[str, Decimal], str | None]:
    """(user_id, timestamp_ms, attributes, metrics in the record's order, endpoint_id) of a time-series item."""
    attributes = {name: value["S"] for name, value in item.get("attributes", {}).get("M", {}).items()}
    stored = {name: Decimal(value["N"]) for name, value in item.get("metrics", {}).get("M", {}).items()}
    order = [entry["S"] for entry in item.get("metric_order", {}).get("L", [])]
    metrics = {name: stored[name] for name in order if name in stored} | stored
    endpoint = item.get("endpoint_id", {}).get("S")
    return item["user_id"]["S"], int(item["ts"]["N"]), attributes, metrics, endpoint
