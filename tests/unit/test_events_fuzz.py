"""normalise, fuzzed (docs/events.md: never crash, never block the stream): random bytes, random JSON, and records of
each shape whose fields are drawn from hostile values (numbers of any magnitude and length, lone surrogates,
deep nesting, long texts). Whatever comes in, normalise answers an Event, an Ignored or a Rejected with one of
the reason codes, never raises, and an Event it answers is one every later step can store (the limits below).

Time is measured by `make bench` (benchmarks/poison.py: the slowest parse), not asserted here."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from incremental_analytics.domain.events import (
    EARLIEST_MS,
    MAX_ATTRIBUTE_LENGTH,
    MAX_EVENT_ID_LENGTH,
    MAX_EVENT_TYPE_LENGTH,
    MAX_FUTURE_MS,
    MAX_IDENTITY_LENGTH,
    Event,
    IdentityMode,
    Ignored,
    Rejected,
    RejectReason,
    normalise,
)
from incremental_analytics.domain.numbers import is_storable

NOW_MS = int(time.time() * 1000)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _judge(data: bytes, ruled: tuple[str, ...] = (), identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT) -> Any:
    result = normalise(data, now_ms=NOW_MS, ruled_system_events=ruled, identity=identity)
    assert isinstance(result, Event | Ignored | Rejected)
    event(type(result).__name__ if not isinstance(result, Rejected) else result.reason.value)
    if isinstance(result, Rejected):
        assert result.reason in RejectReason
    if isinstance(result, Event):
        _storable(result)
    return result


def _storable(event: Event) -> None:
    """What the counters, the claims, the time series and the sinks rely on of an accepted event."""
    for text, limit in (
        (event.user_id, MAX_IDENTITY_LENGTH),
        (event.event_type, MAX_EVENT_TYPE_LENGTH),
        (event.event_id, MAX_EVENT_ID_LENGTH),
    ):
        assert 0 < len(text) <= limit
        text.encode("utf-8")  # valid Unicode: no lone surrogate
    assert EARLIEST_MS <= event.timestamp_ms <= NOW_MS + MAX_FUTURE_MS
    for name, value in event.attributes.items():
        name.encode("utf-8")
        assert len(value) <= MAX_ATTRIBUTE_LENGTH
        value.encode("utf-8")
    for name, number in event.metrics.items():
        name.encode("utf-8")
        assert isinstance(number, Decimal) and is_storable(number)


# -- hostile values -------------------------------------------------------------------------------------------------

# Number literals as JSON text: any exponent, any length, signs, fractions: the parser must judge them unconverted.
_number_literals = st.one_of(
    st.integers().map(str),
    st.text("0123456789", min_size=1, max_size=3000).map(lambda digits: "7" + digits),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-9, 9), st.integers(-2_000_000, 2_000_000)),
    st.builds(
        lambda i, f, e: f"{i}.{f}E{e:+d}",
        st.integers(0, 99),
        st.text("0123456789", min_size=1, max_size=60),
        st.integers(-400, 400),
    ),
    st.sampled_from(["1e800000", "1e1200000", "-1e-800000", "0.0", "-0", "1612130400000.0", "1E+2", "1e125"]),
)
_surrogates = st.sampled_from(["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b", "\\ud83d\\ude00"])
_texts = st.one_of(
    st.text(max_size=40),
    st.text(min_size=190, max_size=3200),
    st.sampled_from(["", " ", "_session.start", "trk_tap", "_email.click", "tap", "2021-01-31T23:00:00Z"]),
)


class _Raw:
    """A JSON text written as drawn (a number literal, a surrogate escape, a deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _literal(value: Any) -> str:
    if isinstance(value, _Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value)


_raw_values = st.one_of(
    _number_literals.map(_Raw),
    _surrogates.map(lambda escape: _Raw(f'"{escape}"')),
    st.integers(1, 1200).map(lambda depth: _Raw("[" * depth + "]" * depth)),
    st.sampled_from(["null", "true", "false", "NaN", "Infinity", "[]", "{}"]).map(_Raw),
)
_values = st.one_of(_texts, _raw_values, st.none(), st.booleans())
_maps = st.dictionaries(st.one_of(st.text(max_size=12), st.just("price")), _values, max_size=4)

_BASES: dict[str, dict[str, Any]] = {
    "generic": {
        "user_id": "u-1",
        "event_type": "tap",
        "timestamp": NOW_MS - 60_000,
        "event_id": "e-1",
        "attributes": {"colour": "green"},
        "metrics": {"price": 12.5},
        "endpoint_id": "ep-1",
    },
    "pinpoint": {
        "event_type": "_email.click",
        "event_timestamp": NOW_MS - 120_000,
        "arrival_timestamp": NOW_MS - 60_000,
        "endpoint": {"Id": "ep-1", "User": {"UserId": "u-1"}},
        "client": {"client_id": "ep-1"},
        "client_context": {"custom": {"endpoint": json.dumps({"User": {"UserId": "u-2"}})}},
        "attributes": {"link": "https://example.com"},
        "metrics": {"price": 3},
        "awsAccountId": "123456789012",
        "facets": {"email_channel": {"click_event": {"link": "https://example.com"}}},
    },
    "segment": {
        "type": "track",
        "event": "tap",
        "userId": "u-1",
        "anonymousId": "a-1",
        "messageId": "m-1",
        "timestamp": "2021-01-31T23:00:00+01:00",
        "properties": {"colour": "green", "price": 4, "member": True},
        "name": "Home",
    },
}


@st.composite
def _records(draw: st.DrawFn) -> bytes:
    """A valid record of one of the three shapes with up to three of its fields (or fields inside them) replaced
    by hostile values or removed: most checks pass, and the changed field decides."""
    shape = draw(st.sampled_from(sorted(_BASES)))
    record: dict[str, Any] = json.loads(json.dumps(_BASES[shape]))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(record)))
        target, key = record, name
        if isinstance(record[name], dict) and record[name] and draw(st.booleans()):
            target, key = record[name], draw(st.sampled_from(sorted(record[name])))
        if draw(st.integers(0, 9)) == 0:
            del target[key]
        else:
            target[key] = draw(st.one_of(_values, _maps, _number_literals.map(_Raw)))
    return _literal(record).encode()


# -- the properties -------------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_judged(data: bytes) -> None:
    _judge(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(_json)
def test_random_json_is_judged(document: Any) -> None:
    _judge(json.dumps(document).encode())
    _judge(json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@FUZZ
@given(_records(), st.sampled_from([(), ("_session.start", "_email.click")]), st.sampled_from(list(IdentityMode)))
def test_records_of_every_shape_with_hostile_fields_are_judged(
    data: bytes, ruled: tuple[str, ...], identity: IdentityMode
) -> None:
    _judge(data, ruled, identity)


@FUZZ
@given(_records(), st.data())
def test_a_record_cut_or_spliced_anywhere_is_judged(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    splice = draw.draw(st.binary(max_size=16))
    _judge(data[:cut] + splice + data[cut:])
    _judge(data[:cut])
