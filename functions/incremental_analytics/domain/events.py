"""Event normalisation (SPEC section 2): one stream record's bytes in, a typed event, a rejection or an ignore out."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from incremental_analytics.domain.rules import epoch_ms, short_hash

MAX_RECORD_BYTES = 256 * 1024
MAX_ATTRIBUTE_LENGTH = 200
EARLIEST_MS = epoch_ms(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
MAX_FUTURE_MS = 86_400_000
LOOP_GUARD_PREFIX = "trk_"
SYSTEM_EVENT_PREFIX = "_"


class RejectReason(StrEnum):
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_SHAPE = "unknown_shape"
    MISSING_USER_ID = "missing_user_id"
    MISSING_EVENT_TYPE = "missing_event_type"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_METRIC = "bad_metric"
    BAD_ATTRIBUTE = "bad_attribute"
    TOO_LARGE = "too_large"


class IgnoreReason(StrEnum):
    OWN_OUTPUT = "own_output"  # trk_ events coming back through the stream
    SYSTEM_EVENT = "system_event"  # _session.start and the like, when no rule names them


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    event_type: str
    timestamp_ms: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Decimal] = field(default_factory=dict)  # in the record's key order
    endpoint_id: str | None = None
    app_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: IgnoreReason
    event_type: str


Normalised = Event | Rejected | Ignored


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalise(data: bytes, *, now_ms: int, ruled_system_events: Container[str] = ()) -> Normalised:
    """Read one stream record's data. `ruled_system_events`: the `_`-prefixed event types some rule names."""
    try:
        return _normalise(data, now_ms, ruled_system_events)
    except _Reject as rejection:
        return Rejected(rejection.reason, rejection.detail)


def _normalise(data: bytes, now_ms: int, ruled_system_events: Container[str]) -> Normalised:
    if len(data) > MAX_RECORD_BYTES:
        raise _Reject(RejectReason.TOO_LARGE, f"{len(data)} bytes, over {MAX_RECORD_BYTES}")
    try:
        document = json.loads(data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise _Reject(RejectReason.NOT_JSON, type(error).__name__) from None
    if not isinstance(document, dict):
        raise _Reject(RejectReason.NOT_AN_OBJECT, type(document).__name__)
    if "event_timestamp" in document or "endpoint" in document:
        return _pinpoint(document, now_ms, ruled_system_events)
    if "user_id" in document or "timestamp" in document:
        return _generic(document, now_ms, ruled_system_events)
    raise _Reject(RejectReason.UNKNOWN_SHAPE, "neither a Pinpoint event-stream record nor a generic event")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _pinpoint(document: dict[str, Any], now_ms: int, ruled: Container[str]) -> Normalised:
    endpoint = _object(document.get("endpoint"))
    user_id = _object(endpoint.get("User")).get("UserId")
    event_type = _required_text(document.get("event_type"), user_id)
    if isinstance(event_type, Ignored):
        return event_type
    ignored = _ignored(event_type, ruled)
    if ignored is not None:
        return ignored
    timestamp_ms = _epoch_ms_value(document.get("event_timestamp"), now_ms)
    attributes = _attributes(document.get("attributes"))
    metrics = _metrics(document.get("metrics"))
    app_id = _text(_object(document.get("application")).get("app_id")) or _text(endpoint.get("ApplicationId"))
    identity = [
        app_id,
        user_id,
        _text(_object(document.get("client")).get("client_id")),
        _text(_object(document.get("session")).get("session_id")),
        event_type,
        timestamp_ms,
        document.get("attributes"),
        document.get("metrics"),
    ]
    return Event(
        event_id=_derived_event_id(identity),
        user_id=_text(user_id) or "",
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        attributes=attributes,
        metrics=metrics,
        endpoint_id=_text(endpoint.get("Id")),
        app_id=app_id,
    )


def _generic(document: dict[str, Any], now_ms: int, ruled: Container[str]) -> Normalised:
    user_id = document.get("user_id")
    event_type = _required_text(document.get("event_type"), user_id)
    if isinstance(event_type, Ignored):
        return event_type
    ignored = _ignored(event_type, ruled)
    if ignored is not None:
        return ignored
    timestamp_ms = _timestamp(document.get("timestamp"), now_ms)
    attributes = _attributes(document.get("attributes"))
    metrics = _metrics(document.get("metrics"))
    given_id = document.get("event_id")
    if given_id is not None and (not isinstance(given_id, str) or not given_id):
        raise _Reject(RejectReason.UNKNOWN_SHAPE, "event_id must be a non-empty string when given")
    identity = [
        None,
        user_id,
        None,
        None,
        event_type,
        timestamp_ms,
        document.get("attributes"),
        document.get("metrics"),
    ]
    return Event(
        event_id=given_id or _derived_event_id(identity),
        user_id=str(user_id),
        event_type=event_type,
        timestamp_ms=timestamp_ms,
        attributes=attributes,
        metrics=metrics,
        endpoint_id=_text(document.get("endpoint_id")),
    )


def _required_text(event_type: Any, user_id: Any) -> str | Ignored:
    """The user and the event type must be non-empty strings; the user is checked first."""
    if not isinstance(user_id, str) or not user_id.strip():
        # Our own outputs may come back without a user; they are ignored, not rejected.
        if isinstance(event_type, str) and event_type.startswith(LOOP_GUARD_PREFIX):
            return Ignored(IgnoreReason.OWN_OUTPUT, event_type)
        raise _Reject(RejectReason.MISSING_USER_ID, "no user id")
    if not isinstance(event_type, str) or not event_type.strip():
        raise _Reject(RejectReason.MISSING_EVENT_TYPE, "no event type")
    return event_type


def _ignored(event_type: str, ruled: Container[str]) -> Ignored | None:
    if event_type.startswith(LOOP_GUARD_PREFIX):
        return Ignored(IgnoreReason.OWN_OUTPUT, event_type)
    if event_type.startswith(SYSTEM_EVENT_PREFIX) and event_type not in ruled:
        return Ignored(IgnoreReason.SYSTEM_EVENT, event_type)
    return None


def _timestamp(value: Any, now_ms: int) -> int:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Reject(RejectReason.BAD_TIMESTAMP, "not an ISO-8601 timestamp") from None
        if moment.tzinfo is None:
            raise _Reject(RejectReason.BAD_TIMESTAMP, "an ISO-8601 timestamp needs an offset, e.g. Z or +02:00")
        return _in_range(epoch_ms(moment), now_ms)
    return _epoch_ms_value(value, now_ms)


def _epoch_ms_value(value: Any, now_ms: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Reject(RejectReason.BAD_TIMESTAMP, "missing or not epoch milliseconds")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise _Reject(RejectReason.BAD_TIMESTAMP, "epoch milliseconds must be whole")
    return _in_range(int(value), now_ms)


def _in_range(timestamp_ms: int, now_ms: int) -> int:
    if timestamp_ms < EARLIEST_MS:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "before 2000-01-01")
    if timestamp_ms > now_ms + MAX_FUTURE_MS:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "more than 1 day in the future")
    return timestamp_ms


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Reject(RejectReason.BAD_ATTRIBUTE, "attributes must be an object")
    for item in value.values():
        if not isinstance(item, str):
            raise _Reject(RejectReason.BAD_ATTRIBUTE, "an attribute value is not a string")
        if len(item) > MAX_ATTRIBUTE_LENGTH:
            raise _Reject(RejectReason.BAD_ATTRIBUTE, f"attribute value of {len(item)} characters")
    return dict(value)


def _metrics(value: Any) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Reject(RejectReason.BAD_METRIC, "metrics must be an object")
    metrics: dict[str, Decimal] = {}
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | Decimal):
            raise _Reject(RejectReason.BAD_METRIC, "a metric is not a number")
        number = Decimal(item)
        if not number.is_finite() or math.isinf(float(number)):
            raise _Reject(RejectReason.BAD_METRIC, "a metric is not finite")
        metrics[name] = number
    return metrics


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _derived_event_id(identity: list[Any]) -> str:
    """SPEC 2.4: the first 32 hex digits of SHA-256 over the canonical JSON of the identifying fields."""
    return short_hash(identity, 32)
