"""docs/events.md: the three shapes, identity and time, every rejection code in its order, the ignore rules, event
identity, metric values."""

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
    MAX_RECORD_BYTES,
    Event,
    IdentityMode,
    Ignored,
    IgnoreReason,
    Rejected,
    RejectReason,
    endpoint_of_identity,
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


def _segment(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "click", "userId": "u1", "timestamp": "2021-01-31T23:00:00Z", **fields}


def _pinpoint(**fields: Any) -> dict[str, Any]:
    return {"event_type": "click", "event_timestamp": NOW_MS - 1000, "endpoint": {"Id": "e1"}, **fields}


def _read(document: Any, **kwargs: Any) -> Event | Rejected | Ignored:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return normalise(data, now_ms=NOW_MS, **kwargs)


def _event(document: Any, **kwargs: Any) -> Event:
    result = _read(document, **kwargs)
    assert isinstance(result, Event), result
    return result


def _hash(identifying: list[Any]) -> str:
    return hashlib.sha256(json.dumps(identifying, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _pinpoint_sample(samples: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((samples / "pinpoint_app_event.json").read_text())
    return document


# -- the shapes -------------------------------------------------------------------------------------------------


def test_the_pinpoint_sample_reads_as_an_app_event(samples: Path) -> None:
    event = _event(_pinpoint_sample(samples))
    assert event.user_id == "user-0001"
    assert event.event_type == "purchase"
    assert event.timestamp_ms == 1611849600123
    assert event.attributes == {"product": "table", "pagename": "checkout"}
    assert event.metrics == {"price": Decimal("189.99")}
    assert event.endpoint_id == "example-endpoint-1"
    assert event.app_id == "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"


# Every identity field of every shape at once: which one a record is read by names its shape.
_ALL_IDS = {"client": {"client_id": "p"}, "type": "track", "userId": "s", "event": "x", "user_id": "g"}
_ISO = "2021-01-31T23:00:00Z"


@pytest.mark.parametrize(
    ("document", "read_as"),
    [
        ({**_ALL_IDS, "event_type": "x", "event_timestamp": NOW_MS, "timestamp": _ISO}, "endpoint:p"),
        ({**_ALL_IDS, "event_type": "_email.open", "arrival_timestamp": NOW_MS, "timestamp": _ISO}, "endpoint:p"),
        # Pinpoint by its endpoint alone: its time is event_timestamp, which it lacks
        ({**_ALL_IDS, "event_type": "x", "endpoint": {}, "timestamp": NOW_MS}, "bad_timestamp"),
        ({**_ALL_IDS, "event_type": "x", "timestamp": _ISO}, "s"),
        ({**_ALL_IDS, "userId": None, "anonymousId": "a", "event_type": "x", "timestamp": _ISO}, "anonymous:a"),
        ({"type": "track", "messageId": "m", "event": "x", "user_id": "g", "timestamp": _ISO}, "missing_user_id"),
        ({**_ALL_IDS, "type": 3, "event_type": "x", "timestamp": NOW_MS}, "g"),
        ({"type": "track", "user_id": "g", "event_type": "x", "timestamp": NOW_MS}, "g"),
        ({"event_type": "x", "timestamp": NOW_MS}, "missing_user_id"),
        ({"userId": "s", "event": "x"}, "unknown_shape"),
        ({"hello": "world"}, "unknown_shape"),
    ],
)
def test_shape_detection(document: dict[str, Any], read_as: str) -> None:
    """docs/events.md: Pinpoint by its timestamps or endpoint, else Segment by a string type and one of its ids, else
    generic by user_id or timestamp, else unknown."""
    result = _read(document, ruled_system_events=("_email.open",))
    assert (result.user_id if isinstance(result, Event) else getattr(result, "reason", None)) == read_as, result


def test_a_pinpoint_record_reads_its_user_only_where_pinpoint_puts_it() -> None:
    """A `user_id` field is not where Pinpoint names a user: without endpoint or client, there is no identity."""
    result = _read({"event_timestamp": NOW_MS, "event_type": "x", "user_id": "u"})
    assert result == Rejected(RejectReason.MISSING_USER_ID, "no user id")


# -- identity ---------------------------------------------------------------------------------------------------

_ENDPOINT_TEXT = json.dumps({"ChannelType": "EMAIL", "User": {"UserId": "u-in-text"}})


@pytest.mark.parametrize(
    ("fields", "identity", "endpoint_id"),
    [
        ({"endpoint": {"Id": "e1", "User": {"UserId": "u1"}}}, "u1", "e1"),
        ({"endpoint": {"Id": "e1", "User": {"UserId": "  u 1 "}}}, "  u 1 ", "e1"),  # as it stands
        ({"endpoint": {"Id": "e1", "User": {}}}, "endpoint:e1", "e1"),
        ({"endpoint": {"Id": "e1", "User": {"UserId": ""}}}, "endpoint:e1", "e1"),
        ({"endpoint": {"Id": "e1", "User": {"UserId": 42}}}, "endpoint:e1", "e1"),
        ({"endpoint": {"User": {"UserId": "u1"}}, "client": {"client_id": "c1"}}, "u1", "c1"),
        ({"endpoint": {}, "client": {"client_id": "c1"}}, "endpoint:c1", "c1"),
        (
            {"endpoint": {}, "client": {"client_id": "c1"}, "client_context": {"custom": {"endpoint": _ENDPOINT_TEXT}}},
            "u-in-text",
            "c1",
        ),
        (
            {
                "endpoint": {"Id": "e1", "User": {"UserId": "u1"}},
                "client_context": {"custom": {"endpoint": _ENDPOINT_TEXT}},
            },
            "u1",
            "e1",
        ),
        (
            {"endpoint": {}, "client": {"client_id": "c1"}, "client_context": {"custom": {"endpoint": "{not json"}}},
            "endpoint:c1",
            "c1",
        ),
        (
            {
                "endpoint": {},
                "client": {"client_id": "c1"},
                "client_context": {"custom": {"endpoint": {"User": {"UserId": "u"}}}},
            },
            "endpoint:c1",
            "c1",
        ),
        ({"endpoint": {}, "client": {"client_id": "c1"}, "awsAccountId": "123456789012"}, "endpoint:c1", "c1"),
        (
            {"endpoint": {"Id": "e1"}, "client": {"client_id": "123456789012"}, "awsAccountId": "123456789012"},
            "endpoint:e1",
            "e1",
        ),
    ],
)
def test_pinpoint_identity(fields: dict[str, Any], identity: str, endpoint_id: str) -> None:
    """docs/events.md: endpoint.User.UserId, else the user in the endpoint's JSON text; else the endpoint, prefixed."""
    event = _event(_pinpoint(**fields))
    assert (event.user_id, event.endpoint_id) == (identity, endpoint_id)
    assert endpoint_of_identity(event.user_id) == (endpoint_id if identity.startswith("endpoint:") else None)


def test_an_sms_record_carries_the_account_where_the_endpoint_would_be() -> None:
    document = _pinpoint(endpoint=None, client={"client_id": "123456789012"}, awsAccountId="123456789012")
    assert _read(document, ruled_system_events=()) == Rejected(RejectReason.MISSING_USER_ID, "no user id")


@pytest.mark.parametrize(
    "document",
    [
        _pinpoint(endpoint={"Id": "e1"}),
        _pinpoint(endpoint=None, client={"client_id": "c1"}),
        _segment(userId=None, anonymousId="a1"),
    ],
)
def test_identity_user_mode_takes_user_ids_only(document: dict[str, Any]) -> None:
    assert isinstance(_read(document), Event)
    rejected = _read(document, identity=IdentityMode.USER)
    assert rejected == Rejected(RejectReason.MISSING_USER_ID, "no user id")


def test_identity_user_mode_still_reads_every_user_id() -> None:
    text = json.dumps({"User": {"UserId": "u9"}})
    document = _pinpoint(endpoint=None, client={"client_id": "c"}, client_context={"custom": {"endpoint": text}})
    assert _event(document, identity=IdentityMode.USER).user_id == "u9"
    assert _event(_segment(anonymousId="a1"), identity=IdentityMode.USER).user_id == "u1"


def test_segment_identity() -> None:
    assert _event(_segment(anonymousId="a1")).user_id == "u1"
    assert _event(_segment(userId=None, anonymousId="a1")).user_id == "anonymous:a1"
    assert _event(_segment(userId="", anonymousId="a1")).user_id == "anonymous:a1"
    assert _read(_segment(userId=None, messageId="m1")) == Rejected(RejectReason.MISSING_USER_ID, "no user id")


# -- time -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("_email.send", "event_timestamp"),
        ("_email.delivered", "arrival_timestamp"),
        ("_email.click", "arrival_timestamp"),
        ("_email.open", "arrival_timestamp"),
        ("_email.hardbounce", "arrival_timestamp"),
        ("_SMS.SUCCESS", "event_timestamp"),
        ("_campaign.send", "event_timestamp"),
        ("purchase", "event_timestamp"),
    ],
)
def test_the_time_of_a_pinpoint_event(event_type: str, field: str) -> None:
    """docs/events.md: an e-mail event's event_timestamp is its message's send time; its arrival is when it happened."""
    sent, arrived = NOW_MS - 90_000, NOW_MS - 1000
    document = _pinpoint(event_type=event_type, event_timestamp=sent, arrival_timestamp=arrived)
    event = _event(document, ruled_system_events=(event_type,))
    assert event.timestamp_ms == (arrived if field == "arrival_timestamp" else sent)


def test_an_email_event_without_its_arrival_has_no_time() -> None:
    document = _pinpoint(event_type="_email.click")
    rejected = _read(document, ruled_system_events=("_email.click",))
    assert isinstance(rejected, Rejected) and rejected.reason is RejectReason.BAD_TIMESTAMP


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
        (1612130400000.0, 1612130400000),  # a whole number written with a fraction
    ],
)
def test_generic_timestamps(timestamp: Any, expected_ms: int) -> None:
    assert _event(_generic(timestamp=timestamp)).timestamp_ms == expected_ms


def test_segment_time_is_timestamp_else_original_timestamp() -> None:
    assert _event(_segment(originalTimestamp="2021-01-30T00:00:00Z")).timestamp_ms == epoch_ms(
        dt.datetime(2021, 1, 31, 23, tzinfo=dt.UTC)
    )
    document = _segment(timestamp=None, originalTimestamp="2021-01-30T00:00:00Z")
    assert _event(document).timestamp_ms == epoch_ms(dt.datetime(2021, 1, 30, tzinfo=dt.UTC))
    document = _segment(originalTimestamp="2021-01-30T00:00:00Z")
    del document["timestamp"]
    assert _event(document).timestamp_ms == epoch_ms(dt.datetime(2021, 1, 30, tzinfo=dt.UTC))


# -- Segment ------------------------------------------------------------------------------------------------------


def test_segment_properties_split_into_attributes_and_metrics() -> None:
    properties = {
        "plan": "pro",
        "trial": True,
        "renewed": False,
        "price": 19.99,
        "seats": 3,
        "coupon": None,
        "items": [1, 2],
        "address": {"city": "Paris"},
        "discount": -2.5,
    }
    event = _event(_segment(properties=properties, messageId="m-1"))
    assert event.event_type == "click" and event.event_id == "m-1"
    assert event.attributes == {"plan": "pro", "trial": "true", "renewed": "false"}
    assert list(event.metrics.items()) == [
        ("price", Decimal("19.99")),
        ("seats", Decimal(3)),
        ("discount", Decimal("-2.5")),
    ]


@pytest.mark.parametrize("call", ["page", "screen"])
def test_segment_views_are_their_call_with_their_name(call: str) -> None:
    event = _event(_segment(type=call, event="ignored", name="Home", properties={"url": "/"}))
    assert event.event_type == call and event.attributes == {"url": "/", "name": "Home"}
    assert _event(_segment(type=call, name=7)).attributes == {}


@pytest.mark.parametrize("call", ["identify", "group", "alias"])
def test_segment_calls_that_are_not_actions_are_ignored_whatever_else(call: str) -> None:
    assert _read(_segment(type=call, userId=None, timestamp="never")) == Ignored(IgnoreReason.NOT_AN_EVENT, call)


def test_a_segment_call_of_another_type_names_no_event() -> None:
    rejected = _read(_segment(type="batch"))
    assert isinstance(rejected, Rejected) and rejected.reason is RejectReason.MISSING_EVENT_TYPE


def test_segment_properties_must_be_an_object() -> None:
    rejected = _read(_segment(properties=["a"]))
    assert isinstance(rejected, Rejected) and rejected.reason is RejectReason.BAD_ATTRIBUTE


# -- nulls --------------------------------------------------------------------------------------------------------


def test_null_attributes_and_metrics_are_left_out_in_every_shape() -> None:
    for document in (
        _generic(attributes={"a": "x", "campaign_type": None}, metrics={"m": None, "n": 2}),
        _pinpoint(attributes={"a": "x", "campaign_type": None}, metrics={"m": None, "n": 2}),
        _segment(properties={"a": "x", "campaign_type": None, "m": None, "n": 2}),
    ):
        event = _event(document)
        assert event.attributes == {"a": "x"} and event.metrics == {"n": Decimal(2)}


def test_a_null_field_is_an_absent_one() -> None:
    assert _event(_generic(attributes=None, metrics=None, event_id=None, endpoint_id=None)).attributes == {}


# -- event identity -----------------------------------------------------------------------------------------------


def test_pinpoint_event_id_is_the_hash_of_the_identifying_fields(samples: Path) -> None:
    event = _event(_pinpoint_sample(samples))
    identifying = [
        "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
        "user-0001",
        "m3n4o5p6-a1b2-c3d4-e5f6-g7h8i9j0k1l2",
        "f549dea9-1090-945d-c3d1-e4967example",
        "purchase",
        1611849600123,
        {"product": "table", "pagename": "checkout"},
        {"price": 189.99},
    ]
    assert event.event_id == _hash(identifying)


def test_the_event_id_holds_the_identity_and_an_email_events_facets() -> None:
    facets = {"email_channel": {"mail_event": {"click": {"link": "https://example.com/a"}}}}
    document = {
        "event_type": "_email.click",
        "event_timestamp": NOW_MS - 90_000,
        "arrival_timestamp": NOW_MS - 1000,
        "client": {"client_id": "c1"},
        "attributes": {"feedback": "https://example.com/a"},
        "awsAccountId": "123456789012",
        "facets": facets,
    }
    event = _event(document, ruled_system_events=("_email.click",))
    identifying = [
        None,
        "endpoint:c1",
        "c1",
        None,
        "_email.click",
        NOW_MS - 1000,
        {"feedback": "https://example.com/a"},
    ]
    assert event.event_id == _hash([*identifying, None, facets])


def test_two_clicks_on_one_email_are_two_events() -> None:
    """The issue's defect: every e-mail event of a message carries its send time; clicks differ by arrival and
    by the click in their facets."""

    def click(arrival_ms: int, link: str) -> dict[str, Any]:
        return {
            "event_type": "_email.click",
            "event_timestamp": NOW_MS - 90_000,
            "arrival_timestamp": arrival_ms,
            "client": {"client_id": "c1"},
            "attributes": {"feedback": link},
            "facets": {"email_channel": {"mail_event": {"click": {"link": link}}}},
        }

    ruled = ("_email.click",)
    first = _event(click(NOW_MS - 5000, "https://example.com/a"), ruled_system_events=ruled)
    second = _event(click(NOW_MS - 4000, "https://example.com/a"), ruled_system_events=ruled)
    other_link = _event(click(NOW_MS - 5000, "https://example.com/b"), ruled_system_events=ruled)
    assert len({first.event_id, second.event_id, other_link.event_id}) == 3


def test_event_id_is_stable_across_key_order_and_arrival_fields(samples: Path) -> None:
    document = _pinpoint_sample(samples)
    reordered = dict(reversed(list(copy.deepcopy(document).items())))
    reordered["attributes"] = dict(reversed(list(reordered["attributes"].items())))
    reordered["arrival_timestamp"] += 5000  # a redelivery arrives later: still the same event
    assert _event(document).event_id == _event(reordered).event_id


def test_event_id_changes_with_any_identifying_field(samples: Path) -> None:
    base = _event(_pinpoint_sample(samples))
    changes: list[tuple[str, Any]] = [
        ("event_type", "view"),
        ("event_timestamp", 1611849600124),
        ("attributes", {"product": "chair"}),
        ("metrics", {"price": 189.98}),
    ]
    for name, value in changes:
        document = _pinpoint_sample(samples)
        document[name] = value
        assert _event(document).event_id != base.event_id, name
    for path, value in ((("session", "session_id"), "another"), (("endpoint", "User"), {"UserId": "user-0002"})):
        document = _pinpoint_sample(samples)
        document[path[0]][path[1]] = value
        assert _event(document).event_id != base.event_id, path


def test_generic_event_id_is_given_or_derived() -> None:
    assert _event(_generic(event_id="order-17")).event_id == "order-17"
    derived = _event(_generic())
    assert derived.event_id == _hash([None, "u1", None, None, "click", NOW_MS - 1000, None, None])
    assert derived.key == ("u1", derived.event_id)


def test_segment_event_id_is_the_message_id_or_derived() -> None:
    assert _event(_segment(messageId="m-9")).event_id == "m-9"
    when = epoch_ms(dt.datetime(2021, 1, 31, 23, tzinfo=dt.UTC))
    assert _event(_segment(properties={"a": "x", "n": 1})).event_id == _hash(
        [None, "u1", None, None, "click", when, {"a": "x"}, {"n": 1}]
    )


def test_event_ids_are_scoped_to_the_identity() -> None:
    ann, bob = _event(_generic(user_id="ann", event_id="1")), _event(_generic(user_id="bob", event_id="1"))
    assert ann.event_id == bob.event_id and ann.key != bob.key


# -- the checks, and their order ----------------------------------------------------------------------------------

_OVER = MAX_RECORD_BYTES + 1
_LEVELS_63 = json.loads("[" * 63 + "]" * 63)  # in a record, whose object is the first level: 64 levels


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x" * _OVER, RejectReason.TOO_LARGE),
        (json.dumps(_generic(padding="x" * MAX_RECORD_BYTES)).encode(), RejectReason.TOO_LARGE),
        (b"{not json", RejectReason.NOT_JSON),
        (b"\xff\xfe\x00", RejectReason.NOT_JSON),
        (b'{"user_id": "u\xed\xa0\x80", "event_type": "x", "timestamp": 1612130400000}', RejectReason.NOT_JSON),
        (b'{"user_id": "u\\ud800", "event_type": "x", "timestamp": 1612130400000}', RejectReason.NOT_JSON),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "z": {"\\udfff": 1}}',
            RejectReason.NOT_JSON,
        ),
        (b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "z": ["\\ude00"]}', RejectReason.NOT_JSON),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": NaN}}',
            RejectReason.NOT_JSON,
        ),
        (b'{"user_id": "u", "event_type": "x", "timestamp": Infinity}', RejectReason.NOT_JSON),
        (json.dumps(_generic(z=[_LEVELS_63])).encode(), RejectReason.NOT_JSON),  # 65 levels
        (b'{"a": ' + b"[" * 60_000 + b"]" * 60_000 + b"}", RejectReason.NOT_JSON),
        (b"\xef\xbb\xbf" + json.dumps(_generic()).encode(), RejectReason.NOT_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (b'"text"', RejectReason.NOT_AN_OBJECT),
        (b"null", RejectReason.NOT_AN_OBJECT),
        (b'{"hello": "world"}', RejectReason.UNKNOWN_SHAPE),
        (json.dumps(_generic(event_type=None)).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_generic(event_type=" ")).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_generic(event_type=7)).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_segment(event=None)).encode(), RejectReason.MISSING_EVENT_TYPE),
        (json.dumps(_generic(event_type="x" * 257)).encode(), RejectReason.BAD_EVENT_TYPE),
        (json.dumps(_generic(event_type="trk_" + "x" * 253)).encode(), RejectReason.BAD_EVENT_TYPE),
        (json.dumps(_generic(user_id="")).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps(_generic(user_id=" ")).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps(_generic(user_id=42)).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps({"timestamp": NOW_MS, "event_type": "x"}).encode(), RejectReason.MISSING_USER_ID),
        (json.dumps(_generic(user_id="u" * 257)).encode(), RejectReason.BAD_USER_ID),
        (json.dumps(_pinpoint(endpoint={"Id": "e" * 248})).encode(), RejectReason.BAD_USER_ID),
        (json.dumps(_segment(userId=None, anonymousId="a" * 247)).encode(), RejectReason.BAD_USER_ID),
        (json.dumps(_generic(event_id="")).encode(), RejectReason.BAD_EVENT_ID),
        (json.dumps(_generic(event_id=17)).encode(), RejectReason.BAD_EVENT_ID),
        (json.dumps(_generic(event_id="e" * 257)).encode(), RejectReason.BAD_EVENT_ID),
        (json.dumps(_segment(messageId=["m"])).encode(), RejectReason.BAD_EVENT_ID),
        (json.dumps(_generic(timestamp=None)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp="yesterday")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp="2021-01-31T23:00:00")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp="2021-01-31T23:00:00" + "0" * 40 + "Z")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=946684799999)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=NOW_MS + 86_400_001)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=True)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=1612130400000.5)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=-1612130400000)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(timestamp=10**16)).encode(), RejectReason.BAD_TIMESTAMP),
        (b'{"user_id": "u", "event_type": "x", "timestamp": 1e800000}', RejectReason.BAD_TIMESTAMP),
        (b'{"user_id": "u", "event_type": "x", "timestamp": 1e-800000}', RejectReason.BAD_TIMESTAMP),
        (b'{"user_id": "u", "event_type": "x", "timestamp": ' + b"9" * 100_000 + b"}", RejectReason.BAD_TIMESTAMP),
        (json.dumps(_segment(timestamp=1612130400000)).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_pinpoint(event_timestamp="2021-01-31T23:00:00Z")).encode(), RejectReason.BAD_TIMESTAMP),
        (json.dumps(_generic(metrics={"price": "12"})).encode(), RejectReason.BAD_METRIC),
        (json.dumps(_generic(metrics={"price": True})).encode(), RejectReason.BAD_METRIC),
        (json.dumps(_generic(metrics=[1])).encode(), RejectReason.BAD_METRIC),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1e999}}',
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1e126}}',
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": -1e126}}',
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1e-131}}',
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1e800000}}',
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": '
            + b"7" * 100_000
            + b"}}",
            RejectReason.BAD_METRIC,
        ),
        (
            b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": 1.' + b"1" * 38 + b"}}",
            RejectReason.BAD_METRIC,
        ),
        (json.dumps(_segment(properties={"big": 10**130})).encode(), RejectReason.BAD_METRIC),
        (json.dumps(_generic(attributes={"a": 1})).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_generic(attributes={"a": "x" * 201})).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_generic(attributes="a")).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_segment(properties={"url": "x" * 201})).encode(), RejectReason.BAD_ATTRIBUTE),
        (json.dumps(_segment(type="page", name="n" * 201)).encode(), RejectReason.BAD_ATTRIBUTE),
    ],
)
def test_rejection_codes(data: bytes, reason: RejectReason) -> None:
    result = _read(data)
    assert isinstance(result, Rejected), result
    assert result.reason is reason, result


def test_boundaries_that_are_accepted() -> None:
    assert isinstance(_read(_generic(timestamp=946684800000)), Event)  # 2000-01-01 exactly
    assert isinstance(_read(_generic(timestamp=NOW_MS + 86_400_000)), Event)  # one day ahead exactly
    assert isinstance(_read(_generic(attributes={"a": "x" * 200})), Event)
    assert isinstance(_read(_generic(metrics={"a": -3.5, "b": 0})), Event)
    assert isinstance(_read(_generic(user_id="u" * 256, event_type="x" * 256, event_id="e" * 256)), Event)
    assert _event(_pinpoint(endpoint={"Id": "e" * 247})).user_id == "endpoint:" + "e" * 247  # 256 in all
    assert isinstance(_read(_generic(z=_LEVELS_63)), Event)  # 64 levels
    assert _event(b'{"user_id": "u\\ud83d\\ude00", "event_type": "x", "timestamp": 1612130400000}').user_id == "u😀"
    padded = json.dumps(_generic(padding=""))
    exactly = padded.replace('"padding": ""', '"padding": "' + "x" * (MAX_RECORD_BYTES - len(padded)) + '"')
    assert len(exactly.encode()) == MAX_RECORD_BYTES and isinstance(_read(exactly.encode()), Event)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("1." + "1" * 37, Decimal("1." + "1" * 37)),  # 38 significant digits
        ("1" + "0" * 125, Decimal("1e125")),  # trailing zeros are not significant
        ("9.9999999999999999999999999999999999999e125", Decimal("9.9999999999999999999999999999999999999e125")),
        ("1e-130", Decimal("1e-130")),
        ("-1e-130", Decimal("-1e-130")),
        ("0.000", Decimal(0)),
        ("0e-900", Decimal(0)),
        ("1.50", Decimal("1.5")),
    ],
)
def test_metrics_dynamodb_stores_exactly_are_accepted(literal: str, expected: Decimal) -> None:
    """https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html"""
    data = b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"a": ' + literal.encode()
    event = _event(data + b"}}")
    assert event.metrics["a"] == expected


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        # the first check that applies decides: a record wrong in several ways gets the earliest reason
        (_generic(event_type="x" * 257, user_id=None, timestamp="never"), RejectReason.BAD_EVENT_TYPE),
        (_generic(user_id=None, event_id="", timestamp="never"), RejectReason.MISSING_USER_ID),
        (_generic(user_id="u" * 300, event_id="", timestamp="never"), RejectReason.BAD_USER_ID),
        (_generic(event_id="", timestamp="never", metrics={"a": "x"}), RejectReason.BAD_EVENT_ID),
        (_generic(timestamp="never", metrics={"a": "x"}, attributes={"b": 1}), RejectReason.BAD_TIMESTAMP),
        (_generic(metrics={"a": "x"}, attributes={"b": 1}), RejectReason.BAD_METRIC),
        (_segment(userId=None, messageId=5, timestamp="never"), RejectReason.MISSING_USER_ID),
        (_pinpoint(endpoint=None, event_timestamp=None, metrics="x"), RejectReason.MISSING_USER_ID),
    ],
)
def test_checks_run_in_order(document: dict[str, Any], reason: RejectReason) -> None:
    result = _read(document)
    assert isinstance(result, Rejected) and result.reason is reason, result


def test_reject_reasons_are_listed_in_the_order_they_are_checked() -> None:
    assert [reason.value for reason in RejectReason] == [
        "too_large",
        "not_json",
        "not_an_object",
        "unknown_shape",
        "missing_event_type",
        "bad_event_type",
        "missing_user_id",
        "bad_user_id",
        "bad_event_id",
        "bad_timestamp",
        "bad_metric",
        "bad_attribute",
    ]


# -- ignored ------------------------------------------------------------------------------------------------------


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
    for document in (_generic(event_type=event_type), _pinpoint(event_type=event_type), _segment(event=event_type)):
        result = _read(document, ruled_system_events=ruled)
        if expected is None:
            assert isinstance(result, Event)
        else:
            assert result == Ignored(expected, event_type)


@pytest.mark.parametrize(
    "document",
    [
        {"event_type": "trk_redbutton", "timestamp": NOW_MS},
        _generic(event_type="trk_redbutton", user_id=None, timestamp="never", metrics={"a": "x"}),
        _generic(event_type="_email.delivered", user_id="u" * 300, event_id="", attributes={"a": 1}),
        _pinpoint(event_type="_email.delivered", endpoint=None, arrival_timestamp=None),
        _pinpoint(event_type="_SMS.SUCCESS", endpoint=None, client={"client_id": "1"}, awsAccountId="1"),
        _segment(event="_session.start", userId=None, timestamp=None),
    ],
)
def test_an_ignored_record_is_ignored_whatever_else_is_wrong(document: dict[str, Any]) -> None:
    """docs/events.md: ignoring comes before every user, id, time and value check (no quarantine flood)."""
    for mode in IdentityMode:
        result = _read(document, identity=mode)
        assert isinstance(result, Ignored), (mode, result)


# -- values -------------------------------------------------------------------------------------------------------


def test_metrics_keep_exact_decimals_and_key_order() -> None:
    data = b'{"user_id": "u", "event_type": "x", "timestamp": 1612130400000, "metrics": {"z": 19.99, "a": 1e2}}'
    event = _event(data)
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
