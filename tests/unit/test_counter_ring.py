"""A counter's evidence ring as the counter item keeps it (adapters/dynamodb_items.py `pack_ring`): read back exactly,
whatever the ids, times and values; a ring of slots written by earlier releases read alike and replaced by the
packed one at the next write; and small enough that a long-lived counter is one write unit."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from incremental_analytics.adapters.dynamodb_items import (
    RING,
    counter_change,
    counter_from_item,
    counter_write,
    item_to_dynamo,
    pack_ring,
    unpack_ring,
)
from incremental_analytics.adapters.item_size import item_size
from incremental_analytics.domain.commits import plan_commits
from incremental_analytics.domain.dedupe import record
from incremental_analytics.domain.events import MAX_EVENT_ID_LENGTH, Event, normalise
from incremental_analytics.domain.outcomes import EVIDENCE_EVENTS, Contribution
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, epoch_ms

RULE = Rule("opens", RuleType.AGGREGATE, "app_open", count=CountCondition(Operator.GREATER, 1000))
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)

event_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=40),
    st.text(max_size=60),
)
values = st.decimals(allow_nan=False, allow_infinity=False)
contributions = st.builds(Contribution, event_ids, st.integers(-(2**62), 2**62), values)


@given(st.lists(contributions, max_size=EVIDENCE_EVENTS))
@example(  # the worst named: ids like a UUID or hex but not in the packed forms, times either way, numbers' texts
    [
        Contribution("9F1C2A3B-1111-2222-3333-444455556666", -(2**70), Decimal("-0")),
        Contribution("abc", 2**70, Decimal("-0.00")),
        Contribution("ABCD", 0, Decimal("1E+5")),
        Contribution("00", -1, Decimal("1.20E-130")),
        Contribution(
            "00000000-0000-0000-0000-000000000000", 1, Decimal("-9.9999999999999999999999999999999999999E+125")
        ),
        Contribution("", 1, Decimal("12345678901234567890123456789012345678")),
    ]
)
def test_a_packed_ring_reads_back_exactly(recent: list[Contribution]) -> None:
    packed = pack_ring(recent)
    assert packed.startswith(RING) and '"' not in packed and "\\" not in packed
    back = unpack_ring(packed)
    assert back == tuple(recent)
    assert [str(c.value) for c in back] == [str(c.value) for c in recent]  # the value's text too: 1.50 stays 1.50


_any_text = st.characters(codec=None, categories=None)
_intake_ids = st.one_of(
    st.text(_any_text, max_size=40),
    st.text(_any_text, min_size=250, max_size=260),
    st.tuples(st.text(max_size=8), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.text(max_size=8)).map(
        "".join
    ),  # a lone surrogate
)


@given(_intake_ids, values)
def test_every_event_id_the_intake_accepts_packs_and_reads_back(event_id: str, value: Decimal) -> None:
    """An id reaches the ring only through the intake, which refuses text that is not valid Unicode (a lone
    surrogate: DynamoDB and UTF-8 refuse it too) and ids over 256 characters (docs/events.md): whatever it accepts,
    up to 256 characters of four UTF-8 bytes each, the ring keeps exactly."""
    record = {"user_id": "u", "event_type": "tap", "timestamp": epoch_ms(NOW), "event_id": event_id}
    judged = normalise(json.dumps(record).encode(), now_ms=epoch_ms(NOW))  # a lone surrogate travels escaped
    valid = not any(0xD800 <= ord(character) <= 0xDFFF for character in event_id)
    if not isinstance(judged, Event):
        assert not (valid and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH), judged
        return
    assert valid and judged.event_id == event_id
    recent = [Contribution(event_id, judged.timestamp_ms, value), Contribution("\U0001f600" * 256, 0, value)]
    assert unpack_ring(pack_ring(recent)) == tuple(recent)


def test_text_that_is_not_a_ring_is_refused() -> None:
    with pytest.raises(ValueError, match="not an evidence ring"):
        unpack_ring('{"s0": {}}')


def _item(recent: Any, *, count: int, cycle: int = 0, seen: dict[str, str] | None = None) -> dict[str, Any]:
    return item_to_dynamo(
        {
            "pk": "U#u1",
            "sk": f"R#{RULE.rule_id}",
            "rule_id": RULE.rule_id,
            "user_id": "u1",
            "identity": RULE.counting_identity,
            "st": {"count": count, "sum": Decimal(count), "cycle": cycle, "qualified": False},
            "version": 7,
            "updated_at": "2026-12-01T11:00:00.000Z",
            "recent": recent,
            "seen": seen or {},
        }
    )


def _written(stored: Any, events: list[Contribution]) -> dict[str, Any]:
    """The counter item after committing `events` on `stored`, as the transaction's Put or Update leaves it."""
    (chunk,) = plan_commits(stored.state, stored.version, RULE, "u1", events)
    change = counter_change(
        user_id="u1",
        rule_id=RULE.rule_id,
        identity=RULE.counting_identity,
        chunk=chunk,
        whole=True,
        exists=stored.exists,
        seen=record(stored.seen, [e.event_id for e in events], NOW, 7).seen,
        updated_at="2026-12-01T12:00:00.000Z",
    )
    put: dict[str, Any] = counter_write("counters", change)["Put"]["Item"]
    return put


def test_a_ring_of_slots_from_an_earlier_release_is_read_alike_then_replaced_by_the_packed_one() -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(25)]
    # Slots hold the n-th event of its cycle at s<n mod 20>: events 6..25 of cycle 1, but s0 still holds one of
    # cycle 0 (as a reset leaves it until the slot is taken again).
    slots = {f"s{n % 20}": {"i": ids[n - 1], "t": 1_000 * n, "v": "1", "n": n, "c": 1} for n in range(6, 26)}
    slots["s0"] = {"i": "old", "t": 5, "v": "1", "n": 20, "c": 0}
    stored = counter_from_item(_item(slots, count=25, cycle=1), RULE.counting_identity)
    expected = [Contribution(ids[n - 1], 1_000 * n, Decimal(1)) for n in range(6, 26) if n != 20]
    assert list(stored.state.recent) == expected  # in the order they were counted

    new = Contribution("e-new", 99_000, Decimal("2.50"))
    item = _written(stored, [new])
    assert item["recent"]["S"].startswith(RING)
    assert counter_from_item(item, RULE.counting_identity).state.recent == (*stored.state.recent, new)


def test_a_long_lived_counter_with_a_full_ring_of_uuids_is_one_write_unit() -> None:
    ids = [str(uuid.uuid4()) for _ in range(EVIDENCE_EVENTS)]
    recent = [Contribution(i, 1_764_000_000_000 + n * 3_600_000, Decimal("129.99")) for n, i in enumerate(ids)]
    seen = {"2026-11-28": "A" * 24, "2026-12-01": "B" * 12}  # a user active now and then: three ids in a week
    slots = {
        f"s{n % 20}": {"i": c.event_id, "t": c.timestamp_ms, "v": c.value, "n": 100 + n, "c": 3}
        for n, c in enumerate(recent)
    }
    before = _item(slots, count=120, cycle=3, seen=seen)
    assert item_size(before) > 1024  # two write units a statement, four in a transaction, as earlier releases kept it
    stored = counter_from_item(before, RULE.counting_identity)
    after = _written(stored, [Contribution(str(uuid.uuid4()), 1_764_100_000_000, Decimal("129.99"))])
    assert item_size(after) <= 1024
