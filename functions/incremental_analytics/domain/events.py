"""Event normalisation (docs/events.md): one stream record's bytes in, a typed event, a rejection or an ignore out.

Three shapes are read: Amazon Pinpoint's event stream (every kind of record it writes), Segment-Spec calls (as
Segment's and RudderStack's Kinesis destinations put them) and the product's generic shape. Whatever the bytes,
reading them is bounded in time and memory: numbers are kept as their literal (never `int()` of a huge digit
string, never arithmetic on a huge exponent) until a check has bounded them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from incremental_analytics.domain.numbers import (
    DYNAMODB_DIGITS,
    DYNAMODB_MAX_EXPONENT,
    DYNAMODB_MIN_EXPONENT,
    significant_digits,
)
from incremental_analytics.domain.rules import epoch_ms, short_hash

MAX_RECORD_BYTES = 128 * 1024
MAX_NESTING = 64
MAX_EVENT_TYPE_LENGTH = 256
MAX_IDENTITY_LENGTH = 256
MAX_EVENT_ID_LENGTH = 256
MAX_ATTRIBUTE_LENGTH = 200
MAX_ISO_LENGTH = 64
MAX_EPOCH_DIGITS = 16
EARLIEST_MS = epoch_ms(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
MAX_FUTURE_MS = 86_400_000
LOOP_GUARD_PREFIX = "trk_"
SYSTEM_EVENT_PREFIX = "_"
ENDPOINT_PREFIX = "endpoint:"
ANONYMOUS_PREFIX = "anonymous:"


# An integer literal longer than this is read as a Decimal: int() of a long digit string is quadratic.
_INT_LITERAL_CHARS = 40
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SEGMENT_IDS = ("userId", "anonymousId", "messageId")
_SEGMENT_NOT_EVENTS = frozenset({"identify", "group", "alias"})
_SEGMENT_NAMED_VIEWS = frozenset({"page", "screen"})
_EMAIL_PREFIX = "_email."
_EMAIL_SEND = "_email.send"


class IdentityMode(StrEnum):
    """Whom a record is about, when it names no user (docs/events.md, the `Identity` parameter)."""

    USER_OR_ENDPOINT = "user-or-endpoint"  # a user id, else the endpoint as `endpoint:<id>`
    USER = "user"  # user ids only, as in 2021


class RejectReason(StrEnum):
    """docs/events.md, in the order the checks run."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_SHAPE = "unknown_shape"
    MISSING_EVENT_TYPE = "missing_event_type"
    BAD_EVENT_TYPE = "bad_event_type"
    MISSING_USER_ID = "missing_user_id"
    BAD_USER_ID = "bad_user_id"
    BAD_EVENT_ID = "bad_event_id"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_METRIC = "bad_metric"
    BAD_ATTRIBUTE = "bad_attribute"


class IgnoreReason(StrEnum):
    OWN_OUTPUT = "own_output"  # trk_ events coming back through the stream
    SYSTEM_EVENT = "system_event"  # _session.start, _email.send and the like, when no rule names them
    NOT_AN_EVENT = "not_an_event"  # Segment identify, group and alias calls: who someone is, not what they did


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str  # the identity (docs/events.md): a user id as it stands, `endpoint:<id>` or `anonymous:<id>`
    event_type: str
    timestamp_ms: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Decimal] = field(default_factory=dict)  # in the record's key order
    endpoint_id: str | None = None
    app_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """docs/events.md: event ids are scoped to the identity; this pair names one event, ever."""
        return (self.user_id, self.event_id)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: IgnoreReason
    event_type: str


Normalised = Event | Rejected | Ignored


def endpoint_of_identity(identity: str) -> str | None:
    """The endpoint an `endpoint:<id>` identity addresses, or None for any other identity."""
    return identity.removeprefix(ENDPOINT_PREFIX) if identity.startswith(ENDPOINT_PREFIX) else None


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Context:
    now_ms: int
    ruled: Container[str]
    mode: IdentityMode


def normalise(
    data: bytes,
    *,
    now_ms: int,
    ruled_system_events: Container[str] = (),
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT,
) -> Normalised:
    """Read one stream record's data. `ruled_system_events`: the `_`-prefixed event types some rule names."""
    try:
        document = _read_document(data)
        return _reader(document)(document, _Context(now_ms, ruled_system_events, identity))
    except _Reject as rejection:
        return Rejected(rejection.reason, rejection.detail)


# -- bytes to a JSON object ---------------------------------------------------------------------------------------


def _read_document(data: bytes) -> dict[str, Any]:
    """The record's JSON object; numbers as int (short integer literals) or exact Decimal, never float."""
    if len(data) > MAX_RECORD_BYTES:
        raise _Reject(RejectReason.TOO_LARGE, f"{len(data)} bytes, over {MAX_RECORD_BYTES}")
    document = _parse(data, "the record")
    if not isinstance(document, dict):
        raise _Reject(RejectReason.NOT_AN_OBJECT, type(document).__name__)
    return document


def _parse(data: bytes | str, what: str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data  # Python's codec refuses surrogates
        document = json.loads(text, parse_float=Decimal, parse_int=_integer, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _Reject(RejectReason.NOT_JSON, f"{what}: {type(error).__name__}") from None
    _check_well_formed(document, text, what)
    return document


def _integer(literal: str) -> int | Decimal:
    return int(literal) if len(literal) <= _INT_LITERAL_CHARS else Decimal(literal)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_well_formed(document: Any, text: str, what: str) -> None:
    """At most MAX_NESTING levels of arrays and objects, and no lone surrogate (an escape such as \\ud800 that
    pairs with nothing) in any key or string. The cheap tests on the text skip the walk for ordinary records."""
    deep = text.count("[") + text.count("{") > MAX_NESTING
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if not deep and not surrogates:
        return
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = ((None, item) for item in value)
        else:
            if surrogates and isinstance(value, str):
                _valid_unicode(value, what)
            continue
        if depth > MAX_NESTING:
            raise _Reject(RejectReason.NOT_JSON, f"{what}: nested deeper than {MAX_NESTING}")
        for key, item in items:
            if surrogates and key is not None:
                _valid_unicode(key, what)
            stack.append((item, depth + 1))


def _valid_unicode(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Reject(RejectReason.NOT_JSON, f"{what}: a string is not valid Unicode") from None


# -- shapes ---------------------------------------------------------------------------------------------------------

_Reader = Callable[[dict[str, Any], _Context], Normalised]


def _reader(document: dict[str, Any]) -> _Reader:
    """docs/events.md's shape detection."""
    if "event_timestamp" in document or "arrival_timestamp" in document or "endpoint" in document:
        return _pinpoint
    if isinstance(document.get("type"), str) and any(key in document for key in _SEGMENT_IDS):
        return _segment
    if "user_id" in document or "timestamp" in document:
        return _generic
    raise _Reject(RejectReason.UNKNOWN_SHAPE, "not a Pinpoint event-stream record, a Segment call or a generic event")


def _pinpoint(document: dict[str, Any], context: _Context) -> Normalised:
    event_type = _event_type(document.get("event_type"))
    if (ignored := _ignored(event_type, context.ruled)) is not None:
        return ignored
    endpoint = _object(document.get("endpoint"))
    endpoint_id = _text(endpoint.get("Id")) or _client_endpoint(document)
    user_id = _text(_object(endpoint.get("User")).get("UserId")) or _context_user(document)
    identity = _identity(user_id, endpoint_id if context.mode is IdentityMode.USER_OR_ENDPOINT else None)
    emailed = event_type.startswith(_EMAIL_PREFIX) and event_type != _EMAIL_SEND
    # The event_timestamp of an e-mail event is the message's send time; when the event happened is its arrival.
    timestamp_ms = _epoch_ms(document.get("arrival_timestamp" if emailed else "event_timestamp"), context.now_ms)
    metrics, read_metrics = _metrics(document.get("metrics"))
    attributes = _attributes(document.get("attributes"))
    app_id = _text(_object(document.get("application")).get("app_id")) or _text(endpoint.get("ApplicationId"))
    identifying = [
        app_id,
        identity,
        _text(_object(document.get("client")).get("client_id")),
        _text(_object(document.get("session")).get("session_id")),
        event_type,
        timestamp_ms,
        None if document.get("attributes") is None else attributes,
        read_metrics,
    ]
    if event_type.startswith(_EMAIL_PREFIX):
        identifying.append(document.get("facets"))  # two clicks on one message differ only there
    return Event(
        event_id=derived_event_id(identifying),
        user_id=identity,
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        attributes=attributes,
        metrics=metrics,
        endpoint_id=endpoint_id,
        app_id=app_id,
    )


def _client_endpoint(document: dict[str, Any]) -> str | None:
    """`client.client_id` is the endpoint's id, except on SMS and voice records, which carry the account there."""
    client_id = _text(_object(document.get("client")).get("client_id"))
    return None if client_id is None or client_id == document.get("awsAccountId") else client_id


def _context_user(document: dict[str, Any]) -> str | None:
    """Campaign and journey records carry the endpoint as a JSON text in `client_context.custom.endpoint`."""
    text = _object(_object(document.get("client_context")).get("custom")).get("endpoint")
    if not isinstance(text, str):
        return None
    try:
        endpoint = _parse(text, "client_context.custom.endpoint")
    except _Reject:
        return None  # unreadable: no user named there
    return _text(_object(_object(endpoint).get("User")).get("UserId"))


def _segment(document: dict[str, Any], context: _Context) -> Normalised:
    call = document["type"]
    if call in _SEGMENT_NOT_EVENTS:
        return Ignored(IgnoreReason.NOT_AN_EVENT, call)
    if call == "track":
        event_type = _event_type(document.get("event"))
    elif call in _SEGMENT_NAMED_VIEWS:
        event_type = call
    else:
        raise _Reject(RejectReason.MISSING_EVENT_TYPE, f"a Segment {call[:64]!r} call names no event")
    if (ignored := _ignored(event_type, context.ruled)) is not None:
        return ignored
    anonymous = _text(document.get("anonymousId"))
    identity = _identity(
        _text(document.get("userId")),
        None,
        anonymous=anonymous if context.mode is IdentityMode.USER_OR_ENDPOINT else None,
    )
    given_id = _given_event_id(document.get("messageId"), "messageId")
    when = document.get("timestamp")
    timestamp_ms = _iso_ms(document.get("originalTimestamp") if when is None else when, context.now_ms)
    properties = document.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise _Reject(RejectReason.BAD_ATTRIBUTE, "properties is not an object")
    texts: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    for name, value in (properties or {}).items():
        if isinstance(value, bool):
            texts[name] = "true" if value else "false"
        elif isinstance(value, str):
            texts[name] = value
        elif isinstance(value, int | Decimal):
            numbers[name] = value
        # nulls, objects and arrays are left out
    if call in _SEGMENT_NAMED_VIEWS and isinstance(document.get("name"), str):
        texts["name"] = document["name"]
    metrics, read_metrics = _metrics(numbers)
    attributes = _attributes(texts)
    identifying = [None, identity, None, None, event_type, timestamp_ms, attributes, read_metrics]
    return Event(
        event_id=given_id or derived_event_id(identifying),
        user_id=identity,
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        attributes=attributes,
        metrics=metrics,
    )


def _generic(document: dict[str, Any], context: _Context) -> Normalised:
    event_type = _event_type(document.get("event_type"))
    if (ignored := _ignored(event_type, context.ruled)) is not None:
        return ignored
    identity = _identity(_text(document.get("user_id")), None)
    given_id = _given_event_id(document.get("event_id"), "event_id")
    timestamp_ms = _timestamp(document.get("timestamp"), context.now_ms)
    metrics, read_metrics = _metrics(document.get("metrics"))
    attributes = _attributes(document.get("attributes"))
    identifying = [
        None,
        identity,
        None,
        None,
        event_type,
        timestamp_ms,
        None if document.get("attributes") is None else attributes,
        read_metrics,
    ]
    return Event(
        event_id=given_id or derived_event_id(identifying),
        user_id=identity,
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        attributes=attributes,
        metrics=metrics,
        endpoint_id=_text(document.get("endpoint_id")),
    )


# -- the checks -----------------------------------------------------------------------------------------------------


def _event_type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Reject(RejectReason.MISSING_EVENT_TYPE, "no event type")
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        raise _Reject(RejectReason.BAD_EVENT_TYPE, f"an event type of {len(value)} characters")
    return value


def _ignored(event_type: str, ruled: Container[str]) -> Ignored | None:
    if event_type.startswith(LOOP_GUARD_PREFIX):
        return Ignored(IgnoreReason.OWN_OUTPUT, event_type)
    if event_type.startswith(SYSTEM_EVENT_PREFIX) and event_type not in ruled:
        return Ignored(IgnoreReason.SYSTEM_EVENT, event_type)
    return None


def _identity(user_id: str | None, endpoint_id: str | None, *, anonymous: str | None = None) -> str:
    """docs/events.md: the user id as it stands, else the endpoint (or Segment's anonymous id), prefixed."""
    if user_id is not None:
        identity = user_id
    elif endpoint_id is not None:
        identity = ENDPOINT_PREFIX + endpoint_id
    elif anonymous is not None:
        identity = ANONYMOUS_PREFIX + anonymous
    else:
        raise _Reject(RejectReason.MISSING_USER_ID, "no user id")
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise _Reject(RejectReason.BAD_USER_ID, f"an identity of {len(identity)} characters")
    return identity


def _given_event_id(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_EVENT_ID_LENGTH:
        raise _Reject(RejectReason.BAD_EVENT_ID, f"{name} must be a non-empty string of at most 256 characters")
    return value


def _timestamp(value: Any, now_ms: int) -> int:
    return _iso_ms(value, now_ms) if isinstance(value, str) else _epoch_ms(value, now_ms)


def _iso_ms(value: Any, now_ms: int) -> int:
    if not isinstance(value, str):
        raise _Reject(RejectReason.BAD_TIMESTAMP, "missing or not an ISO-8601 text")
    if len(value) > MAX_ISO_LENGTH:
        raise _Reject(RejectReason.BAD_TIMESTAMP, f"an ISO-8601 text of {len(value)} characters")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "an ISO-8601 timestamp needs an offset, e.g. Z or +02:00")
    return _in_range(epoch_ms(moment), now_ms)


def _epoch_ms(value: Any, now_ms: int) -> int:
    """Epoch milliseconds: an integer of at most 16 digits (a whole decimal such as 1612130400000.0 too)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Reject(RejectReason.BAD_TIMESTAMP, "missing or not epoch milliseconds")
    number = Decimal(value) if isinstance(value, int) else value
    if number.is_zero():
        return _in_range(0, now_ms)
    if number.adjusted() >= MAX_EPOCH_DIGITS:  # bounds the number before any conversion
        raise _Reject(RejectReason.BAD_TIMESTAMP, f"epoch milliseconds of more than {MAX_EPOCH_DIGITS} digits")
    if number != number.to_integral_value():
        raise _Reject(RejectReason.BAD_TIMESTAMP, "epoch milliseconds must be whole")
    return _in_range(int(number), now_ms)


def _in_range(timestamp_ms: int, now_ms: int) -> int:
    if timestamp_ms < EARLIEST_MS:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "before 2000-01-01")
    if timestamp_ms > now_ms + MAX_FUTURE_MS:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "more than 1 day in the future")
    return timestamp_ms


def _metrics(value: Any) -> tuple[dict[str, Decimal], dict[str, Any] | None]:
    """The metrics as exact decimals in key order, and as read (for the event id); nulls left out."""
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        raise _Reject(RejectReason.BAD_METRIC, "metrics must be an object")
    read = {name: item for name, item in value.items() if item is not None}
    return {name: _storable_number(item) for name, item in read.items()}, read


def _storable_number(value: Any) -> Decimal:
    """A JSON number that DynamoDB stores exactly, as a Decimal; anything else is a bad metric."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Reject(RejectReason.BAD_METRIC, "a metric is not a number")
    number = Decimal(value) if isinstance(value, int) else value
    if not number.is_finite():
        raise _Reject(RejectReason.BAD_METRIC, "a metric is not finite")
    if number.is_zero():
        return number
    if not DYNAMODB_MIN_EXPONENT <= number.adjusted() <= DYNAMODB_MAX_EXPONENT:
        raise _Reject(RejectReason.BAD_METRIC, "a metric's magnitude is outside 1e-130 to 1e125")
    significant = significant_digits(number)
    if significant > DYNAMODB_DIGITS:
        raise _Reject(RejectReason.BAD_METRIC, f"a metric of {significant} significant digits, over 38")
    return number


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Reject(RejectReason.BAD_ATTRIBUTE, "attributes must be an object")
    attributes: dict[str, str] = {}
    for name, item in value.items():
        if item is None:
            continue  # Pinpoint itself writes "campaign_type": null
        if not isinstance(item, str):
            raise _Reject(RejectReason.BAD_ATTRIBUTE, "an attribute value is not a string")
        if len(item) > MAX_ATTRIBUTE_LENGTH:
            raise _Reject(RejectReason.BAD_ATTRIBUTE, f"attribute value of {len(item)} characters")
        attributes[name] = item
    return attributes


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def derived_event_id(identifying: list[Any]) -> str:
    """docs/events.md: the first 32 hex digits of SHA-256 over the canonical JSON of the identifying fields."""
    return short_hash(identifying, 32)
