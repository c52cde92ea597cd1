"""The product's DynamoDB items and keys, in DynamoDB's JSON, for the state machines' transactions and the
functions' PartiQL statements.

Counters table (one table, two kinds of item under each user's partition):
  counter   pk=U#<user>  sk=R#<rule_id>                              the state of one (user, aggregate rule):
            `st` {count, sum, cycle, qualified}, `version`, `recent`, the evidence ring of the latest events (packed:
            `pack_ring`; a map of slots `s<n mod 20>` in earlier releases, read alike), and `seen` (with
            `claims_until` once it was too busy), the ids it counted (domain/dedupe.py)
  claim     pk=U#<user>  sk=D#<rule_id>#<identity>#<event_id>        "this event was counted", with a TTL, for a
            counter too busy to remember its ids itself (an event id longer than 256 UTF-8 bytes is claimed by its
            hash, `#<sha256>`: a sort key holds 1024 bytes)
  period    pk=P#<rule_id>  sk=I#<identity>                         a date/window rule's evaluation state
Counter items carry `rule_id`, by which the purge of a rule's state finds them (a scan: no index by rule).

Audit table (the outbox): pk=user_id, sk=outcome_id; `rule_id`, `kind`, `output`; `request`, packed; `delivery`,
each sink's status (domain.delivery.SinkStatus), and `delivery_attempts`; and, while some sink lacks the outcome,
`undelivered` (a shard `P<n>` of the pending outcomes, or `ABANDONED`) with `committed_at`, for the sparse
`undelivered` GSI that the scheduled redelivery and `outcomes pending|abandoned` read. Its stream (keys only)
feeds the Pipe that delivers each new outcome.

Time-series table: pk=<event_type>#<yyyy-mm-dd>#<shard>, sk=<epoch ms, 13 digits>#<hash>, with a TTL. An item
packs a batch's events of one partition (`events`, a list of [user, event id, ms after `ts`, attributes, metrics in
the record's order, endpoint]); its sort key is its earliest event's time and a hash of what it holds, so writing the
same events again writes the same item. Items written before packing hold one event each (`user_id`, `event_id`,
`ts`, `attributes`, `metrics` and `metric_order`, `endpoint_id`, sk=<epoch ms>#<hash of the event>); they are read
alike (`timeseries_events`) until their TTL ends them. Two users' events with one id are two events
(docs/events.md), and so are two records that reuse an id for other content, of which the period evaluation counts
one (domain.periods.distinct_events).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from incremental_analytics.adapters.item_size import value_size
from incremental_analytics.domain.commits import Chunk
from incremental_analytics.domain.dedupe import Seen
from incremental_analytics.domain.delivery import ITEM_FIELDS, initial_delivery, pack_request, request_of_item
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import EVIDENCE_EVENTS, Contribution
from incremental_analytics.domain.replay import CounterState
from incremental_analytics.domain.rules import iso_instant, parse_instant, short_hash

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
    """A counter as read: its figures, the version a write must expect, whether the item exists, whether it must
    be written whole (new, or kept under another counting identity), and what it counted."""

    state: CounterState = field(default_factory=CounterState)
    version: int = 0
    exists: bool = False
    whole: bool = True
    seen: Seen = field(default_factory=Seen)


def counter_from_item(item: Mapping[str, Any] | None, identity: str, retention_days: int = 0) -> StoredCounter:
    """The counter of a stored item. Counters kept under another counting identity are stale (the rule's meaning
    changed): the state and its memory start afresh, the version stays for the conditional write.

    A counter written before counters remembered their ids has no `seen`: its events were claimed, one claim item
    each, and those claims stand for the retention after its last write. It goes on claiming until then."""
    if not item:
        return StoredCounter()
    plain = item_from_dynamo(item)
    version = int(plain.get("version", 0))
    if plain.get("identity") != identity or "recent" not in plain:
        return StoredCounter(version=version, exists=True)
    figures = plain.get("st", {})
    cycle = int(figures.get("cycle", 0))
    if isinstance(plain["recent"], str):
        recent = unpack_ring(plain["recent"])
    else:  # a ring of slots, as earlier releases wrote it
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
    claims_until = int(plain.get("claims_until", 0))
    if "seen" not in plain and plain.get("updated_at"):
        claims_until = int(parse_instant(str(plain["updated_at"])).timestamp()) + retention_days * 86_400
    seen = Seen({str(day): str(text) for day, text in plain.get("seen", {}).items()}, claims_until)
    return StoredCounter(state, version, exists=True, whole=False, seen=seen)


# The evidence ring, packed: "r1:", then base 85 of each contribution in order, as its id (a lowercase UUID or an
# even run of lowercase hex digits as the bytes it spells, anything else as UTF-8), its time as the difference
# from the one before, and its value as text. A full ring of 20 UUIDs is about 700 characters where a map of
# slots took 1,300 bytes, so a long-lived counter's write stays at one write unit. The format is kept forever:
# a new one takes another prefix.
RING = "r1:"
_RAW, _HEX, _UUID = 0, 1, 2
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_TEXT = re.compile(r"(?:[0-9a-f]{2})+")


def _varint(number: int, out: bytearray) -> None:
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        byte = data[at]
        at += 1
        number |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return number, at


def pack_ring(recent: Sequence[Contribution]) -> str:
    """A counter's latest contributing events (`CounterState.recent`) as the counter item keeps them."""
    out, previous = bytearray(), 0
    for contribution in recent:
        event_id = contribution.event_id
        if _UUID_TEXT.fullmatch(event_id):
            kind, data = _UUID, uuid.UUID(event_id).bytes
        elif _HEX_TEXT.fullmatch(event_id):
            kind, data = _HEX, bytes.fromhex(event_id)
        else:
            kind, data = _RAW, event_id.encode()
        _varint(len(data) << 2 | kind, out)
        out += data
        delta = contribution.timestamp_ms - previous
        _varint(delta << 1 if delta >= 0 else (-delta << 1) - 1, out)  # zigzag: small either way
        previous = contribution.timestamp_ms
        value = str(contribution.value).encode()
        _varint(len(value), out)
        out += value
    return RING + base64.b85encode(bytes(out)).decode("ascii")


def unpack_ring(text: str) -> tuple[Contribution, ...]:
    """The contributions `pack_ring` packed, in their order."""
    if not text.startswith(RING):
        raise ValueError(f"not an evidence ring: {text[:8]!r}")
    data, at, previous, found = base64.b85decode(text[len(RING) :]), 0, 0, []
    while at < len(data):
        tag, at = _read_varint(data, at)
        raw, at = data[at : at + (tag >> 2)], at + (tag >> 2)
        kind = tag & 3
        event_id = str(uuid.UUID(bytes=raw)) if kind == _UUID else raw.hex() if kind == _HEX else raw.decode()
        zigzag, at = _read_varint(data, at)
        previous += zigzag >> 1 if not zigzag & 1 else -((zigzag + 1) >> 1)
        size, at = _read_varint(data, at)
        found.append(Contribution(event_id, previous, Decimal(data[at : at + size].decode())))
        at += size
    return tuple(found)


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
    """The figures, the version, the evidence ring and the memory of counted ids, each whole (a write is billed by
    the size of the item, not of the change; the memory is pruned as days leave the retention)."""
    state = chunk.state
    figures = {"count": state.count, "sum": state.sum, "cycle": state.cycle, "qualified": state.qualified}
    memory: list[tuple[tuple[str, ...], Any]] = [(("seen",), dict(seen.days))]
    if seen.claims_until or whole:  # written whole: whatever an older item held is replaced, by Put or UPDATE
        memory.append((("claims_until",), seen.claims_until))
    sets: list[tuple[tuple[str, ...], Any]] = [
        (("st",), figures),
        (("version",), chunk.version),
        (("updated_at",), updated_at),
        (("recent",), pack_ring(state.recent)),
    ]
    if whole:
        sets = [(("rule_id",), rule_id), (("user_id",), user_id), (("identity",), identity), *sets]
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
    """An outcome as the audit table keeps it: the outcome with its evidence and whom the sinks address
    (`request`, domain/delivery.py's `delivery_item`, packed), the fields that keys and the `undelivered` index
    need, and the delivery state: every sink pending, no attempt yet."""
    outcome = delivery["outcome"]
    return item_to_dynamo(
        {
            **{name: outcome[name] for name in ITEM_FIELDS},  # what the packed request leaves out
            "committed_at": committed_at,
            "request": pack_request(delivery),
            "delivery": initial_delivery(),
            "delivery_attempts": 0,
            "undelivered": pending_shard(outcome["outcome_id"], shards),
        }
    )


def outcome_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An audit item as the docs/delivery.md outcome."""
    outcome: dict[str, Any] = request_of_item(item)["outcome"]
    return outcome


# -- time series ----------------------------------------------------------------------------------------------

# A packed item holds at most this many bytes (as DynamoDB counts them, so at most 8 write units), unless one event
# alone is larger: the item then holds that event only (an event is at most 128 KiB of record, docs/events.md,
# well under DynamoDB's 400 KB). Items of a few KB leave each write's rounding up to the next KB a small part of
# it, and keep a BatchWriteItem request of them small enough for a state's payload (see match_and_evaluate).
TIMESERIES_ITEM_BYTES = 8 * 1024
# A BatchWriteItem request of time-series items at most this large in a state's JSON (unless one item alone is
# larger): with what WriteEvents keeps beside it while BatchWriteItem hands items back unprocessed (the same items,
# twice), it fits one state's payload (256 KiB).
TIMESERIES_REQUEST_BYTES = 64_000
# pk, sk (13 digits, "#", 32 hex), `ts` and `expires_at` (numbers of at most 21 bytes each), `events` (a list)
_PACKED_ITEM_BYTES = len("pk") + len("sk") + 46 + len("ts") + 21 + len("expires_at") + 21 + len("events") + 3


class StoredEvent(NamedTuple):
    """One event as the time series keeps it."""

    user_id: str
    event_id: str
    timestamp_ms: int
    attributes: dict[str, str]
    metrics: dict[str, Decimal]  # in the record's order: the first one is what a rule without a metric counts
    endpoint_id: str | None


def timeseries_shard(user_id: str, shards: int) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % max(shards, 1)


def timeseries_partition(event_type: str, day: dt.date, shard: int) -> str:
    return f"{event_type}#{day.isoformat()}#{shard}"


def timeseries_items(events: Iterable[Event], *, shards: int, ttl_seconds: int) -> list[dict[str, Any]]:
    """The events packed into time-series items, per partition, each key once.

    A partition's events (copies of a record once; records that reuse an id for other content each kept) are put
    in the order of (timestamp, content hash) and cut into items of at most TIMESERIES_ITEM_BYTES. An item's sort
    key is its earliest timestamp and a hash of what it holds: the same events make the same items, so a batch
    delivered again rewrites its own items; a batch cut or grouped otherwise makes other items, which store some
    events twice, and the period evaluation counts each (user, event id) once (domain.periods.distinct_events).
    The item expires `ttl_seconds` after its latest event."""
    partitions: dict[str, dict[tuple[int, str], Event]] = {}
    for event in events:
        day = dt.datetime.fromtimestamp(event.timestamp_ms / 1000, dt.UTC).date()
        pk = timeseries_partition(event.event_type, day, timeseries_shard(event.user_id, shards))
        partitions.setdefault(pk, {})[(event.timestamp_ms, _content_hash(event))] = event
    packed = []
    for pk, found in partitions.items():
        for base, latest, pack in _packs([found[key] for key in sorted(found)], len("pk") + len(pk.encode())):
            packed.append(
                {
                    "pk": {"S": pk},
                    "sk": {"S": f"{base:013d}#{short_hash([pk, base, pack], 32)}"},
                    "ts": {"N": str(base)},
                    "events": {"L": pack},
                    "expires_at": {"N": str(latest // 1000 + ttl_seconds)},
                }
            )
    return packed


def _packs(events: Sequence[Event], key_bytes: int) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
    """The events, in order, as consecutive items of at most TIMESERIES_ITEM_BYTES each: (earliest timestamp,
    latest timestamp, entries)."""
    pack: list[dict[str, Any]] = []
    size, base, latest = key_bytes + _PACKED_ITEM_BYTES, 0, 0
    for event in events:
        entry = _entry(event, base if pack else event.timestamp_ms)
        if pack and size + 1 + value_size(entry) > TIMESERIES_ITEM_BYTES:
            yield base, latest, pack
            pack, size = [], key_bytes + _PACKED_ITEM_BYTES
            entry = _entry(event, event.timestamp_ms)
        if not pack:
            base = event.timestamp_ms
        pack.append(entry)
        size += 1 + value_size(entry)
        latest = event.timestamp_ms
    if pack:
        yield base, latest, pack


def _entry(event: Event, base_ms: int) -> dict[str, Any]:
    """[user, event id, ms after the item's earliest event, attributes, [[metric, value], ...], endpoint], the
    trailing empty ones left out."""
    fields: list[dict[str, Any]] = [
        {"S": event.user_id},
        {"S": event.event_id},
        {"N": str(event.timestamp_ms - base_ms)},
        {"M": {name: {"S": value} for name, value in sorted(event.attributes.items())}},
        {"L": [{"L": [{"S": name}, to_dynamo(value)]} for name, value in event.metrics.items()]},
        {"S": event.endpoint_id} if event.endpoint_id is not None else {"NULL": True},
    ]
    while len(fields) > 3 and fields[-1] in ({"M": {}}, {"L": []}, {"NULL": True}):
        fields.pop()
    return {"L": fields}


def _content_hash(event: Event) -> str:
    metrics = [[name, str(value)] for name, value in event.metrics.items()]  # in order: the first one counts
    return short_hash([event.user_id, event.event_id, dict(event.attributes), metrics], 32)


def timeseries_events(item: Mapping[str, Any]) -> list[StoredEvent]:
    """An item's events: a packed item's, in their order, or the one event of an item written one per event
    (before events were packed; such items stay until their TTL)."""
    if "events" in item:
        base = int(item["ts"]["N"])
        return [_stored(entry["L"], base) for entry in item["events"]["L"]]
    attributes = {name: value["S"] for name, value in item.get("attributes", {}).get("M", {}).items()}
    stored = {name: Decimal(value["N"]) for name, value in item.get("metrics", {}).get("M", {}).items()}
    order = [entry["S"] for entry in item.get("metric_order", {}).get("L", [])]
    metrics = {name: stored[name] for name in order if name in stored} | stored
    endpoint = item.get("endpoint_id", {}).get("S")
    return [
        StoredEvent(item["user_id"]["S"], item["event_id"]["S"], int(item["ts"]["N"]), attributes, metrics, endpoint)
    ]


def _stored(fields: Sequence[Mapping[str, Any]], base_ms: int) -> StoredEvent:
    attributes = {name: value["S"] for name, value in fields[3]["M"].items()} if len(fields) > 3 else {}
    metrics = {pair["L"][0]["S"]: Decimal(pair["L"][1]["N"]) for pair in fields[4]["L"]} if len(fields) > 4 else {}
    endpoint = fields[5].get("S") if len(fields) > 5 else None
    return StoredEvent(fields[0]["S"], fields[1]["S"], base_ms + int(fields[2]["N"]), attributes, metrics, endpoint)
