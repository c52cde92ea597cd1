"""docs/periods.md: a batch's events are packed per time-series partition into few items; a redelivered batch
rewrites its own items, a bisected or regrouped one at worst stores an event twice, and the evaluation counts each
(user, event id) once. Items written one per event (before packing) are read alike."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.adapters import dynamodb_items as items
from incremental_analytics.adapters import period_store as store
from incremental_analytics.adapters.item_size import item_size
from incremental_analytics.adapters.spill import size_of
from incremental_analytics.domain.events import Event, Normalised, normalise
from incremental_analytics.domain.periods import evaluate_period
from incremental_analytics.domain.rules import Operator, Rule, RuleType, SumCondition
from incremental_analytics.handlers.match_and_evaluate import _timeseries_batches
from incremental_analytics.settings import Settings
from tests.unit.helpers import ENVIRONMENT

FIXTURES = Path(__file__).parent.parent / "fixtures" / "timeseries"
DAY_MS = 86_400_000
BASE_MS = 1_600_000_000_000  # 2020-09-13 12:26:40 UTC
SHARDS = 4
TTL = 400 * 86_400
# DynamoDB's item size limit ("Service, account, and table quotas in Amazon DynamoDB": 400 KB, names and values).
DYNAMODB_ITEM_LIMIT = 400 * 1024
SEPTEMBER = Rule(
    "september",
    RuleType.DATE,
    "x",
    sum=SumCondition(Operator.GREATER_OR_EQUAL, Decimal(3)),
    start_date=dt.date(2020, 9, 1),
    finish_date=dt.date(2020, 9, 30),
)
NOW = dt.datetime(2020, 10, 1, tzinfo=dt.UTC)


def _events(count: int, *, users: int = 50, event_type: str = "x", spread_ms: int = 60_000) -> list[Event]:
    return [
        Event(
            f"{n:032x}",
            f"user-{n % users:04d}",
            event_type,
            BASE_MS + n * spread_ms // max(count, 1),
            {"plan": "gold"} if n % 3 == 0 else {},
            {"price": Decimal(n) / 4} if n % 2 == 0 else {},
            f"ep-{n}" if n % 5 == 0 else None,
        )
        for n in range(count)
    ]


def _stored(event: Event) -> items.StoredEvent:
    return items.StoredEvent(
        event.user_id,
        event.event_id,
        event.timestamp_ms,
        dict(event.attributes),
        dict(event.metrics),
        event.endpoint_id,
    )


def _read(table: Sequence[dict[str, Any]]) -> list[items.StoredEvent]:
    return [event for item in table for event in items.timeseries_events(item)]


def _text(event: items.StoredEvent) -> str:
    """A stored event as text, metrics in their order: to compare sets of them."""
    metrics = [[name, str(value)] for name, value in event.metrics.items()]
    return json.dumps([*event[:3], event.attributes, metrics, event.endpoint_id], sort_keys=True)


def test_a_batch_is_one_item_per_partition_and_reads_back_whole() -> None:
    events = [*_events(100), *(Event(f"y{e.event_id}", e.user_id, "y", e.timestamp_ms) for e in _events(20))]

    def partition(event: Event) -> str:
        day = dt.datetime.fromtimestamp(event.timestamp_ms / 1000, dt.UTC).date()
        return items.timeseries_partition(event.event_type, day, items.timeseries_shard(event.user_id, SHARDS))

    packed = items.timeseries_items(events, shards=SHARDS, ttl_seconds=TTL)
    assert sorted(item["pk"]["S"] for item in packed) == sorted({partition(e) for e in events})  # one item each
    assert sorted(_read(packed)) == sorted(_stored(e) for e in events)
    for item in packed:
        inside = items.timeseries_events(item)
        assert sorted(inside) == sorted(_stored(e) for e in events if partition(e) == item["pk"]["S"])
        earliest, latest = min(e.timestamp_ms for e in inside), max(e.timestamp_ms for e in inside)
        assert item["sk"]["S"].startswith(f"{earliest:013d}#") and int(item["ts"]["N"]) == earliest
        assert int(item["expires_at"]["N"]) == latest // 1000 + TTL  # no event leaves before its retention


def test_what_an_event_carries_is_kept() -> None:
    """docs/events.md: attributes, metrics in the record's order (the first one is what a rule counts), the
    endpoint; exact numbers."""
    event = Event(
        "e1",
        "u1",
        "purchase",
        1_600_000_000_123,
        {"p": "x", "a": "€"},
        {
            "zeta": Decimal("2.5"),
            "alpha": Decimal("-1E+125"),
            "mid": Decimal("0.1234567890123456789012345678901234567"),
        },
        "ep-1",
    )
    ((item,),) = [items.timeseries_items([event], shards=SHARDS, ttl_seconds=TTL)]
    ((stored,),) = [items.timeseries_events(item)]
    assert stored == _stored(event)
    assert list(stored.metrics) == ["zeta", "alpha", "mid"]


def test_copies_of_a_record_are_kept_once_and_reused_ids_with_other_content_twice() -> None:
    event = _events(1)[0]
    reused = Event(event.event_id, event.user_id, "x", event.timestamp_ms + 5, {}, {"price": Decimal(9)})
    packed = items.timeseries_items([event, event, reused, event], shards=SHARDS, ttl_seconds=TTL)
    assert sorted(_read(packed)) == sorted([_stored(event), _stored(reused)])


def test_a_redelivered_batch_rewrites_its_own_items_in_any_order() -> None:
    events = _events(300, users=7)
    first = items.timeseries_items(events, shards=SHARDS, ttl_seconds=TTL)
    again = items.timeseries_items(list(reversed(events)), shards=SHARDS, ttl_seconds=TTL)
    assert sorted(json.dumps(item, sort_keys=True) for item in first) == sorted(
        json.dumps(item, sort_keys=True) for item in again
    )


def test_a_batch_larger_than_an_item_is_cut_into_items_in_time_order() -> None:
    events = _events(2_000, users=1)  # one user: one partition
    packed = items.timeseries_items(events, shards=SHARDS, ttl_seconds=TTL)
    assert len({item["pk"]["S"] for item in packed}) == 1 and len(packed) > 5
    assert all(item_size(item) <= items.TIMESERIES_ITEM_BYTES for item in packed)
    assert sum(item_size(item) for item in packed) > (len(packed) - 1) * (items.TIMESERIES_ITEM_BYTES - 200)  # full
    assert len({item["sk"]["S"] for item in packed}) == len(packed)
    spans = sorted(
        (min(e.timestamp_ms for e in inside), max(e.timestamp_ms for e in inside))
        for inside in map(items.timeseries_events, packed)
    )
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
    assert sorted(_read(packed)) == sorted(_stored(e) for e in events)


def _largest_record() -> bytes:
    """A generic record at docs/events.md's limits: 128 KiB of data, an identity and an event id of 256
    characters (three UTF-8 bytes each), attributes of 200 characters, metrics of 38 digits."""
    record: dict[str, Any] = {
        "user_id": "€" * 256,
        "event_id": "ü" * 256,
        "event_type": "x",
        "timestamp": BASE_MS,
        "endpoint_id": "e" * 256,
        "metrics": {f"m{n}": int("9" * 38) for n in range(20)},
        "attributes": {},
    }
    n = 0
    while True:
        record["attributes"][f"attribute-{n:04d}"] = "€" * 200
        if len(json.dumps(record, ensure_ascii=False).encode()) > 128 * 1024:
            del record["attributes"][f"attribute-{n:04d}"]
            return json.dumps(record, ensure_ascii=False).encode()
        n += 1


def test_an_event_of_the_largest_record_has_an_item_of_its_own_under_dynamodbs_limit() -> None:
    read: Normalised = normalise(_largest_record(), now_ms=BASE_MS)
    assert isinstance(read, Event), read
    small = _events(10, users=1)
    packed = items.timeseries_items([read, *small], shards=1, ttl_seconds=TTL)
    alone = [item for item in packed if _stored(read) in items.timeseries_events(item)]
    assert len(alone) == 1 and items.timeseries_events(alone[0]) == [_stored(read)]
    assert items.TIMESERIES_ITEM_BYTES < item_size(alone[0]) < DYNAMODB_ITEM_LIMIT
    assert len(alone[0]["sk"]["S"].encode()) < 1024
    assert sorted(_read(packed)) == sorted([_stored(read), *map(_stored, small)])


def test_an_item_written_one_per_event_is_still_read() -> None:
    """As the previous release stored it (its metrics map in the order DynamoDB may hand it back)."""
    old = json.loads((FIXTURES / "per_event_item.json").read_text())
    assert items.timeseries_events(old) == [
        items.StoredEvent(
            "u-42",
            "order-9911",
            1_611_846_000_000,
            {"product": "table", "color": "oak"},
            {"price": Decimal("189.99"), "quantity": Decimal(2)},
            "ep-7",
        )
    ]
    assert list(items.timeseries_events(old)[0].metrics) == ["price", "quantity"]  # the record's first metric first
    rule = Rule(
        "january",
        RuleType.DATE,
        "purchase",
        sum=SumCondition(Operator.GREATER_OR_EQUAL, Decimal(100)),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    # The same event also in a packed item (a batch stored again after an upgrade): counted once.
    event = Event(
        "order-9911",
        "u-42",
        "purchase",
        1_611_846_000_000,
        {"product": "table", "color": "oak"},
        {"price": Decimal("189.99"), "quantity": Decimal(2)},
        "ep-7",
    )
    (packed,) = items.timeseries_items([event], shards=4, ttl_seconds=TTL)
    assert packed["pk"] == old["pk"]
    found = store.frame(store.matching_rows([old, packed], rule))
    result = evaluate_period(rule, dt.datetime(2021, 2, 2, tzinfo=dt.UTC), found)
    assert {str(user): (int(row["count"]), row["sum"]) for user, row in result.totals.iterrows()} == {
        "u-42": (1, Decimal("189.99"))
    }


# -- redelivery, bisection and regrouping ----------------------------------------------------------------------


@st.composite
def _stream(draw: st.DrawFn) -> list[Event]:
    """Events of a few users over two days of September, some ids reused by one user for other content."""
    count = draw(st.integers(1, 60))
    events = []
    for n in range(count):
        user = draw(st.sampled_from(["ann", "bob", "cy", "dee", "€"]))
        event_id = str(draw(st.integers(0, count // 2 + 1)))  # apps numbering their events alike
        timestamp = BASE_MS + draw(st.integers(0, 2 * DAY_MS))
        value = Decimal(draw(st.integers(0, 5)))
        attributes = draw(st.sampled_from([{}, {"k": "v"}]))
        events.append(Event(event_id, user, "x", timestamp, attributes, {"price": value} if n % 4 else {}))
    return events


@st.composite
def _deliveries(draw: st.DrawFn, events: list[Event]) -> list[list[Event]]:
    """How the Pipe may hand the stream over: each batch whole, again (a redelivery), bisected (each half on its
    own, after the whole batch's writes may have landed), or regrouped with its neighbour."""
    size = draw(st.integers(1, 20))
    batches = [events[start : start + size] for start in range(0, len(events), size)]
    deliveries: list[list[Event]] = []
    for index, batch in enumerate(batches):
        deliveries.append(batch)
        how = draw(st.sampled_from(["once", "again", "bisected", "regrouped"]))
        if how == "again":
            deliveries.append(list(batch))
        elif how == "bisected":
            half = draw(st.integers(0, len(batch)))
            deliveries += [batch[:half], batch[half:]]
        elif how == "regrouped" and index + 1 < len(batches):
            deliveries.append(batch[draw(st.integers(0, len(batch))) :] + batches[index + 1])
    return deliveries


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_redelivery_or_bisection_evaluates_as_one_delivery(data: st.DataObject) -> None:
    events = data.draw(_stream())
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for delivery in data.draw(_deliveries(events)):
        for item in items.timeseries_items(delivery, shards=SHARDS, ttl_seconds=TTL):
            key = (item["pk"]["S"], item["sk"]["S"])
            assert table.get(key, item) == item  # a key written again is written with what it held
            table[key] = item
    # nothing lost, nothing made up: the events as the records had them, some stored more than once
    assert {_text(event) for event in _read(list(table.values()))} == {_text(_stored(event)) for event in events}
    one_each = [items.timeseries_items([event], shards=SHARDS, ttl_seconds=TTL)[0] for event in events]
    expected = evaluate_period(SEPTEMBER, NOW, store.frame(store.matching_rows(one_each, SEPTEMBER)))
    stored = evaluate_period(SEPTEMBER, NOW, store.frame(store.matching_rows(table.values(), SEPTEMBER)))
    assert stored.totals.equals(expected.totals)
    assert stored.outcomes == expected.outcomes


def test_write_requests_hold_at_most_25_items_and_fit_a_state() -> None:
    """BatchWriteItem takes at most 25 items ("BatchWriteItem", Amazon DynamoDB API Reference); a request and
    what DynamoDB hands back unprocessed beside it must fit a state's 256 KiB."""
    config = Settings.from_environment(ENVIRONMENT)
    many = [Event(str(n), "u", f"type-{n}", BASE_MS) for n in range(60)]  # 60 partitions, an item each
    wide = [Event(str(n), f"u{n % 3}", "x", BASE_MS + n, {f"a{k}": "v" * 200 for k in range(20)}) for n in range(90)]
    largest = normalise(_largest_record(), now_ms=BASE_MS)
    assert isinstance(largest, Event)
    for events in (many, wide, [*wide, largest]):
        requests = _timeseries_batches(config, events)
        writes = [request["RequestItems"]["ts"] for request in requests]
        assert all(1 <= len(batch) <= 25 for batch in writes)
        assert all(size_of(batch) <= items.TIMESERIES_REQUEST_BYTES or len(batch) == 1 for batch in writes)
        stored = [
            event
            for batch in writes
            for write in batch
            for event in items.timeseries_events(write["PutRequest"]["Item"])
        ]
        assert sorted(map(_text, stored)) == sorted(_text(_stored(event)) for event in events)
    assert len(_timeseries_batches(config, many)) == 3
    assert len(_timeseries_batches(config, wide)) > 1


def test_item_size_counts_as_dynamodb_does() -> None:
    """ "Item sizes and formats": names and strings in UTF-8 bytes, a number one byte per two significant digits
    plus one, a list or map 3 bytes plus 1 per element (and a map element's name)."""
    assert item_size({"pk": {"S": "a€"}}) == 2 + 4
    assert item_size({"n": {"N": "-0012300.4500"}}) == 1 + 5  # 12300.45: 7 significant digits, 4 bytes + 1
    assert item_size({"l": {"L": [{"S": "x"}, {"NULL": True}, {"M": {"k": {"BOOL": False}}}]}}) == 1 + 3 + 2 + 2 + 7
