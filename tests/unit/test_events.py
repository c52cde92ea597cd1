"""SPEC section 2: both event shapes, every rejection code, the ignore rules, event identity, metric values."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics.domain.events import (
    Event,
    Ignored,
    IgnoreReason,
    Rejected,
    RejectReason,
    normalise,
)
from incremental_analytics.domain.rules import (
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
    epoch_ms,
)

NOW_MS = epoch_ms(dt.datetime(2021, 2, 1, tzinfo=dt.UTC))


def _generic(**fields: Any) -> dict[str, Any]:
    return {"user_id": "u1", "event_type": "click", "timestamp": NOW_MS - 1000, **fields}


def _read(document: Any, **kwargs: Any) -> Event | Rejected | Ignored:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return normalise(data, now_ms=NOW_MS, **kwargs)


def _pinpoint_sample(samples: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((samples / "pinpoint_app_event.json").read_text())
    return document


def test_the_pinpoint_sample_reads_as_an_app_event(samples: Path) -> None:
    event = _read(_pinpoint_sample(samples))
    assert isinstance(event, Event)
    assert event.user_id == "user-0001"
    assert event.event_type == "purchase"
    assert event.timestamp_ms == 1611849600123
    assert event.attributes == {"product": "table", "pagename": "checkout"}
    assert event.metrics == {"price": Decimal("189.99")}
    assert event.endpoint_id == "example-endpoint-1"
    assert event.app_id == "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"


def test_pinpoint_event_id_is_the_hash_of_the_identifying_fields(samples: Path) -> None:
    document = _pinpoint_sample(samples)
    event = _read(document)
    assert isinstance(event, Event)
    identity = [
        "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
        "user-0001",
        "m3n4o5p6-a1b2-c3d4-e5f6-g7h8i9j0k1l2",
        "f549dea9-1090-945d-c3d1-e4967example",
        "purchase",
        1611849600123,
        {"product": "table", "pagename": "checkout"},
        {"price": 189.99},
    ]
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert event.event_id == hashlib.sha256(canonical.encode()).hexdigest()[:32]


def test_event_id_is_stable_across_key_order_and_arrival_fields(samples: Path) -> None:
    document = _pinpoint_sample(samples)
    reordered = dict(reversed(list(copy.deepcopy(document).items())))
    reordered["attributes"] = dict(reversed(list(reordered["attributes"].items())))
    reordered["arrival_timestamp"] += 5000  # a redelivery arrives later: still the same event
    first, second = _read(document), _read(reordered)
    assert isinstance(first, Event) and isinstance(second, Event)
    assert first.event_id == second.event_id


def test_event_id_changes_with_any_identifying_field(samples: Path) -> None:
    base = _read(_pinpoint_sample(samples))
    assert isinstance(base, Event)
    changes = [
        ("event_type", "view"),
        ("event_timestamp", 1611849600124),
        ("attributes", {"product": "chair"}),
        ("metrics", {"price": 189.98}),
    ]
    for field, value in changes:
        document = _pinpoint_sample(samples)
        document[field] = value
        changed = _read(document)
        assert isinstance(changed, Event) and changed.event_id != base.event_id, field
    document = _pinpoint_sample(samples)
    document["session"]["session_id"] = "another"
    changed = _read(document)
    assert isinstance(changed, Event) and changed.event_id != base.event_id


def test_generic_event_id_is_given_or_derived() -> None:
    given = _read(_generic(event_id="order-17"))
    assert isinstance(given, Event) and given.event_id == "order-17"
    derived = _read(_generic())
    identity = [None, "u1", None, None, "click", NOW_MS - 1000, None, None]
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    assert isinstance(derived, Event) and derived.event_id == expected


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        ("2021-01-31T23:00:00Z", epoch_ms(dt.datetime(2021, 1, 31, 23, tzinfo=dt.UTC))),
        ("2021-02-01T00:30:00+01:00", epoch_ms(dt.datetime(2021, 1, 31, 23, 30, tzinfo=dt.UTC))),
        (
            "2021-01-31T23:00:00.250+00:00",
            epoch_ms(dt.datetime(2021, 1, 31, 23, 0, 0, 250000, tzinfo=dt.UTC)),
        ),
        (1612130400000, 1612130400000),
    ],
)
def test_generic_timestamps(timestamp: Any, expected_ms: int) -> None:
    event = _read(_generic(timestamp=timestamp))
    assert isinstance(event, Event) and event.timestamp_ms == expected_ms


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", RejectReason.NOT_JSON),
        (b"\xff\xfe\x00", RejectReason.NOT_JSON),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": NaN}}',
            RejectReason.NOT_JSON,
        ),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (b'"text"', RejectReason.NOT_AN_OBJECT),
        (b'{"hello": "world"}', RejectReason.UNKNOWN_SHAPE),
        (json.dumps(_generic(user_id="")).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps(_generic(user_id=42)).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps({"timestamp": NOW_MS, "event_type": "x"}).encode(), RejectReason.MISSING_USER_ID),
        (
            json.dumps({"event_timestamp": NOW_MS, "event_type": "x", "endpoint": {"Id": "e"}}).encode(),
            RejectReason.MISSING_USER_ID,
        ),
        (json.dumps(_generic(event_type=None)).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_generic(event_type=" ")).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_generic(timestamp=None)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp="yesterday")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp="2021-01-31T23:00:00")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=946684799999)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=NOW_MS + 86_400_001)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=True)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=1612130400000.5)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(metrics={"price": "12"})).encode(), RejectReason.BAD_METRIC),
        (json.dumps(_generic(metrics={"price": True})).encode(), RejectReason.BAD_METRIC),
        (json.dumps(_generic(metrics=[1])).encode(), RejectReason.BAD_METRIC),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1e999}}',
            RejectReason.BAD_METRIC,
        ),
        (json.dumps(_generic(attributes={"a": 1})).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_generic(attributes={"a": "x" * 201})).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_generic(attributes="a")).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_generic(padding="x" * (256 * 1024))).encode(), RejectReason.TOO_LARGE),
    ],
)
def test_rejection_codes(data: bytes, reason: RejectReason) -> None:
    result = _read(data)
    assert isinstance(result, Rejected), result
    assert result.reason is reason


def test_boundaries_that_are_accepted() -> None:
    assert isinstance(_read(_generic(timestamp=946684800000)), Event)  # 2000-01-01 exactly
    assert isinstance(_read(_generic(timestamp=NOW_MS + 86_400_000)), Event)  # one day ahead exactly
    assert isinstance(_read(_generic(attributes={"a": "x" * 200})), Event)
    assert isinstance(_read(_generic(metrics={"a": -3.5, "b": 0})), Event)


@pytest.mark.parametrize(
    ("event_type", "ruled", "expected"),
    [
        ("trk_click", (), IgnoreReason.OWN_OUTPUT),
        ("trk_date_purchase", ("trk_date_purchase",), IgnoreReason.OWN_OUTPUT),
        ("_session.start", (), IgnoreReason.SYSTEM_EVENT),
        ("_email.send", ("_session.start",), IgnoreReason.SYSTEM_EVENT),
        ("_session.start", ("_session.start",), None),
        ("click", (), None),
    ],
)
def test_ignore_rules(event_type: str, ruled: tuple[str, ...], expected: IgnoreReason | None) -> None:
    result = _read(_generic(event_type=event_type), ruled_system_events=ruled)
    if expected is None:
        assert isinstance(result, Event)
    else:
        assert result == Ignored(expected, event_type)


def test_own_outputs_are_ignored_even_without_a_user() -> None:
    assert _read({"event_type": "trk_redbutton", "timestamp": NOW_MS}) == Ignored(
        IgnoreReason.OWN_OUTPUT, "trk_redbutton"
    )


def test_metrics_keep_exact_decimals_and_key_order() -> None:
    data = b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"z": 19.99, "a": 1e2}}'
    event = normalise(data, now_ms=NOW_MS)
    assert isinstance(event, Event)
    assert list(event.metrics) == ["z", "a"]
    assert event.metrics["z"] == Decimal("19.99")
    assert event.metrics["a"] == 100


def _rule(sum_metric: str | None = None) -> Rule:
    return Rule(
        "r",
        RuleType.AGGREGATE,
        "x",
        count=CountCondition(Operator.GREATER, 0),
        sum=SumCondition(Operator.GREATER, Decimal(0), sum_metric),
    )


@pytest.mark.parametrize(
    ("metrics", "metric", "value"),
    [
        ({"price": Decimal("19.99"), "qty": Decimal(2)}, "qty", Decimal(2)),
        ({"price": Decimal("19.99")}, "qty", Decimal(0)),
        ({"price": Decimal("19.99")}, None, Decimal("19.99")),
        ({"qty": Decimal(2), "price": Decimal("19.99")}, None, Decimal(2)),
        ({}, None, Decimal(0)),
        ({"refund": Decimal("-5.5")}, None, Decimal("-5.5")),
    ],
)
def test_metric_value_for_a_rule(metrics: dict[str, Decimal], metric: str | None, value: Decimal) -> None:
    assert _rule(metric).value_of(metrics) == value


def test_a_rule_without_sum_still_takes_the_first_metric() -> None:
    rule = Rule("r", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0))
    assert rule.value_of({"b": Decimal("1.5"), "a": Decimal(3)}) == Decimal("1.5")
