"""The product's DynamoDB items and keys, in DynamoDB's JSON, for the state machines' transactions and the
functions' PartiQL statements.

Counters table (one table, two kinds of item under each user's partition):
  counter   pk=U#<user>  sk=R#<rule_id>                              the state of one (user, aggregate rule):
            `st` {count, sum, cycle, qualified}, `version`, `recent`, the evidence ring of the latest events, and
            `seen` (with `claims_until` once it was too busy), the ids it counted (domain/dedupe.py)
  claim     pk=U#<user>  sk=D#<rule_id>#<identity>#<event_id>        "this event was counted", with a TTL, for a
            counter too busy to remember its ids itself (an event id longer than 256 UTF-8 bytes is claimed by its
            hash, `#<sha256>`: a sort key holds 1024 bytes)
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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from incremental_analytics.domain.commits import Chunk
from incremental_analytics.domain.dedupe import Seen
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


@dataclass(frozen=True, slots=True)
class StoredCounter:
    """A counter as read: its figures, the version a write must expect, whether the item exists, whether its
    evidence ring must be written whole (new, or kept under another counting identity), and what it counted."""

    state: CounterState = field(default_factory=CounterState)
    version: int = 0
    exists: bool = False
    whole: bool = True
    seen: Seen = field(default_factory=Seen)


def counter_from_item(item: Mapping[str, Any] | None, identity: str) -> StoredCounter:
    """The counter of a stored item. Counters kept under another counting identity are stale (the rule's meaning
    changed): the state and its memory start afresh, the version stays for the conditional write."""
    if not item:
        return StoredCounter()
    plain = item_from_dynamo(item)
    version = int(plain.get("version", 0))
    if plain.get("identity") != identity or "recent" not in plain:
        return StoredCounter(version=version, exists=True)
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
    seen = Seen({str(day): str(text) for day, text in plain.get("seen", {}).items()}, int(plain.get("claims_until", 0)))
    return StoredCounter(state, version, exists=True, whole=False, seen=seen)


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


@dataclass(frozen=True, slots=True)
class CounterChange:
    """One chunk's change of a counter item, as the attribute paths it sets, conditioned on the version read:
    the one definition both a transaction's Put/Update and a PartiQL INSERT/UPDATE are written from."""

    key: dict[str, Any]
    sets: tuple[tuple[tuple[str, ...], Any], ...]  # (attribute path, plain value)
    expected_version: int
    exists: bool  # the item is there to update; else it is created


def counter_change(
    *, user_id: str, rule_id: str, identity: str, chunk: Chunk, whole: bool, exists: bool, seen: Seen, updated_at: str
) -> CounterChange:
    """The figures, the version, the evidence ring (the slots the chunk's events take, or whole) and the memory
    of counted ids (whole: it is small, and pruned as days leave the retention)."""
    state = chunk.state
    figures = {"count": state.count, "sum": state.sum, "cycle": state.cycle, "qualified": state.qualified}
    memory: list[tuple[tuple[str, ...], Any]] = [(("seen",), dict(seen.days))]
    if seen.claims_until or whole:  # written whole: whatever an older item held is replaced, by Put or UPDATE
        memory.append((("claims_until",), seen.claims_until))
    ring = _ring_entries(chunk)
    sets: list[tuple[tuple[str, ...], Any]] = [
        (("st",), figures),
        (("version",), chunk.version),
        (("updated_at",), updated_at),
    ]
    if whole:
        sets = [
            (("rule_id",), rule_id),
            (("user_id",), user_id),
            (("identity",), identity),
            *sets,
            (("recent",), ring),
        ]
    else:
        sets += [(("recent", slot), entry) for slot, entry in sorted(ring.items())]
    return CounterChange(counter_key(user_id, rule_id), (*sets, *memory), chunk.expected_version, exists)


def counter_write(table: str, change: CounterChange) -> dict[str, Any]:
    """The counter's write in a transaction: a Put of the whole item for a new counter (or one kept under another
    counting identity), else an Update of the paths that change, conditioned on the version read."""
    condition = "#v = :e" if change.expected_version else "attribute_not_exists(pk) OR #v = :e"
    common: dict[str, Any] = {
        "TableName": table,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#v": "version"},
    }
    expected = to_dynamo(change.expected_version)
    if any(path == ("identity",) for path, _ in change.sets):  # written whole
        item = {**change.key, **item_to_dynamo({path[0]: value for path, value in change.sets})}
        return {"Put": {**common, "Item": item, "ExpressionAttributeValues": {":e": expected}}}
    names: dict[str, str] = {"#v": "version"}
    values: dict[str, Any] = {":e": expected}
    clauses = []
    for number, (path, value) in enumerate(change.sets):
        placeholders = []
        for part in path:
            name = "#v" if part == "version" else f"#{part}"
            if part != "version":
                names[name] = part
            placeholders.append(name)
        values[f":p{number}"] = to_dynamo(value)
        clauses.append(f"{'.'.join(placeholders)} = :p{number}")
    return {
        "Update": {
            **common,
            "ExpressionAttributeNames": names,
            "Key": change.key,
            "UpdateExpression": "SET " + ", ".join(clauses),
            "ExpressionAttributeValues": values,
        }
    }


def counter_statement(table: str, change: CounterChange) -> dict[str, Any]:
    """The counter's write as a PartiQL statement for BatchExecuteStatement (one write unit per KB, no
    transaction): INSERT of a new item (refused as DuplicateItem if one appeared), else an UPDATE whose WHERE
    names the key and the version read (ConditionalCheckFailed if the version moved or the item went)."""
    if not change.exists:
        fields = [*change.key.items(), *((path[0], to_dynamo(value)) for path, value in change.sets)]
        tuple_text = ", ".join(f"'{name}': ?" for name, _ in fields)
        return {
            "Statement": f'INSERT INTO "{table}" VALUE {{{tuple_text}}}',
            "Parameters": [value for _, value in fields],
        }
    clauses = " ".join(f"SET {'.'.join(chr(34) + part + chr(34) for part in path)} = ?" for path, _ in change.sets)
    return {
        "Statement": f'UPDATE "{table}" {clauses} WHERE "pk" = ? AND "sk" = ? AND "version" = ?',
        "Parameters": [
            *(to_dynamo(value) for _, value in change.sets),
            change.key["pk"],
            change.key["sk"],
            to_dynamo(change.expected_version),
        ],
    }


def chunk_transaction(
    *,
    counters_table: str,
    audit_table: str,
    user_id: str,
    rule_id: str,
    identity: str,
    change: CounterChange,
    claimed: Sequence[str],
    deliveries: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    claim_ttl_seconds: int,
    pending_shards: int,
) -> list[dict[str, Any]]:
    """The TransactItems of one chunk: the claims of `claimed` event ids (a counter too busy to remember its ids
    itself, domain/dedupe.py), the versioned counter, the outbox outcomes."""
    committed_at = iso_instant(now)
    expires_at = {"N": str(int(now.timestamp()) + claim_ttl_seconds)}
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": counters_table,
                "Item": {**claim_key(user_id, rule_id, identity, event_id), "expires_at": expires_at},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for event_id in claimed
    ]
    items.append(counter_write(counters_table, change))
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
    """An outcome as the audit table keeps it: what the sinks are sent (`request`, which holds the outcome
    and its evidence) as one JSON text, the fields that keys and indexes need, and the delivery state: every
    sink pending, no attempt yet."""
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
            "execution": outcome["execution"],
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
