"""Delivery of outcomes to the sinks (docs/delivery.md): what each sink is sent, and the per-sink delivery state.

The outbox keeps each outcome once, with whom the sinks address (`delivery_item`); what each sink is sent is
derived from it here when it is sent (by DeliverOutcomes' ShapeDelivery steps, domain/delivery_batch.py).

Each outbox item records, per sink, where the outcome stands. The DeliverOutcomes workflow sends an outcome only
to the sinks that still lack it (`pending` or `failed`); the scheduled redelivery takes up outcomes some sink
still lacks, after an exponential backoff, until `MaxDeliveryAttempts` is reached and the sink is `abandoned`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from incremental_analytics.domain.events import endpoint_of_identity
from incremental_analytics.domain.outcomes import Outcome, OutcomeKind
from incremental_analytics.domain.rules import iso_instant

SOURCE = "incremental-analytics"
DETAIL_TYPES = {
    OutcomeKind.QUALIFIED: "UserQualified",
    OutcomeKind.DISQUALIFIED: "UserDisqualified",
    OutcomeKind.REACHED: "TargetReached",
}
_ATTRIBUTE_VALUE = {OutcomeKind.QUALIFIED: "ready", OutcomeKind.DISQUALIFIED: "notready"}
# An endpoint id goes into a JSON text built by the workflow (States.Format): only plain ids are used.
_SAFE_ENDPOINT = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}$")

# The sinks, in the order of DeliverOutcomes' Parallel branches (its results are read by position).
SINKS = ("eventbridge", "pinpoint", "profiles")


class SinkStatus(StrEnum):
    PENDING = "pending"  # committed, not tried yet
    DELIVERED = "delivered"
    FAILED = "failed"  # tried and failed: the scheduled redelivery tries again after a backoff
    ABANDONED = "abandoned"  # failed MaxDeliveryAttempts times: listed for an operator to redrive
    OFF = "off"  # the sink is not configured in this deployment
    NO_ENDPOINT = "no_endpoint"  # Pinpoint: the user has no endpoint to mark
    NO_PROFILE = "no_profile"  # Customer Profiles: no profile holds the user's key


# A sink "lacks" an outcome while it is pending or failed; every other status is final until a redrive.
LACKING = frozenset({SinkStatus.PENDING, SinkStatus.FAILED})


class DeliveryState(StrEnum):
    """Where an outcome stands as a whole."""

    DELIVERED = "delivered"  # no sink lacks it
    PENDING = "pending"  # some sink lacks it: (re)delivery will try again
    ABANDONED = "abandoned"  # some sink gave up on it


def initial_delivery() -> dict[str, str]:
    return dict.fromkeys(SINKS, SinkStatus.PENDING.value)


def delivery_state(delivery: Mapping[str, str]) -> DeliveryState:
    statuses = {SinkStatus(delivery.get(sink, SinkStatus.PENDING)) for sink in SINKS}
    if SinkStatus.ABANDONED in statuses:
        return DeliveryState.ABANDONED
    if statuses & LACKING:
        return DeliveryState.PENDING
    return DeliveryState.DELIVERED


def redriven(delivery: Mapping[str, str]) -> dict[str, str]:
    """An operator's redrive: every abandoned sink is tried again; a sink that took the outcome is left alone."""
    return {
        sink: SinkStatus.FAILED.value if delivery.get(sink) == SinkStatus.ABANDONED else delivery.get(sink, "pending")
        for sink in SINKS
    }


# -- when to try again -----------------------------------------------------------------------------------------

MAX_BACKOFF = dt.timedelta(hours=12)
# A DeliverOutcomes execution holds its outcome for at most its TimeoutSeconds (5 minutes); a claim older than
# this was left by an execution that died, and the scheduled redelivery may take it over.
CLAIM_EXPIRY = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between delivery attempts: after the n-th failed attempt, wait first * 2^(n-1),
    at most MAX_BACKOFF. An outcome the stream has not delivered yet waits `first` after its commit."""

    first: dt.timedelta
    cap: dt.timedelta = MAX_BACKOFF

    def backoff(self, attempts: int) -> dt.timedelta:
        if attempts < 1:
            return self.first
        return min(self.first * (1 << min(attempts - 1, 32)), self.cap)

    def due_at(self, attempts: int, attempted_at: dt.datetime | None, committed_at: dt.datetime) -> dt.datetime:
        if attempts < 1 or attempted_at is None:
            return committed_at + self.first
        return attempted_at + self.backoff(attempts)


@dataclass(frozen=True, slots=True)
class Undelivered:
    """An outbox outcome some sink still lacks, as the `undelivered` index shows it."""

    user_id: str
    outcome_id: str
    committed_at: dt.datetime
    attempts: int
    attempted_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class RedeliveryPlan:
    pages: list[list[dict[str, Any]]]  # each one DeliverOutcomes execution's input
    due: int
    undelivered: int
    oldest_seconds: float  # how long the longest-waiting outcome has been undelivered (0 with none)


def plan_redelivery(
    outcomes: Iterable[Undelivered],
    now: dt.datetime,
    policy: RetryPolicy,
    *,
    page_size: int,
    limit: int,
) -> RedeliveryPlan:
    """The outcomes due again at `now`, oldest first, in pages; at most `limit` (the rest wait for the next run)."""
    waiting = sorted(outcomes, key=lambda o: (o.committed_at, o.outcome_id))
    due = [o for o in waiting if policy.due_at(o.attempts, o.attempted_at, o.committed_at) <= now]
    stale_before = iso_instant(now - CLAIM_EXPIRY)
    keys: list[dict[str, Any]] = [
        {"user_id": o.user_id, "outcome_id": o.outcome_id, "attempts": o.attempts, "stale_before": stale_before}
        for o in due[:limit]
    ]
    oldest = max(0.0, (now - waiting[0].committed_at).total_seconds()) if waiting else 0.0
    return RedeliveryPlan(
        pages=[keys[start : start + page_size] for start in range(0, len(keys), page_size)],
        due=len(due),
        undelivered=len(waiting),
        oldest_seconds=oldest,
    )


# -- what each sink is sent ------------------------------------------------------------------------------------


def safe_endpoint(endpoint_id: str | None) -> str | None:
    return endpoint_id if endpoint_id is not None and _SAFE_ENDPOINT.match(endpoint_id) else None


def delivery_item(
    outcome: Outcome, *, endpoint_id: str | None, profile_key: str, profile_endpoint_key: str
) -> dict[str, Any]:
    """One outcome's delivery request, as the outbox keeps it: the outcome and whom the sinks address. What each
    sink is sent is derived from it when it is sent (the functions below), so the outbox holds the outcome once.

    An `endpoint:<id>` identity (docs/events.md) is addressed by that endpoint, whatever an event named: Pinpoint
    updates that endpoint (its user attributes, never its user id) or puts the event to it, and Customer Profiles
    finds the profile by `profile_endpoint_key`. Any other identity is a user id: `endpoint_id` is then the
    endpoint its latest event named, which the Pinpoint sink uses only when GetUserEndpoints says it is one of
    this user's (an event must never move another user's endpoint), and the profile is found by `profile_key`.
    """
    addressed = endpoint_of_identity(outcome.user_id)
    item: dict[str, Any] = {
        "outcome": outcome.to_dict(),
        "endpoint_id": safe_endpoint(endpoint_id if addressed is None else addressed),
        "profile_search": {"key_name": profile_key, "value": outcome.user_id}
        if addressed is None
        else {"key_name": profile_endpoint_key, "value": addressed},
    }
    if addressed is not None:
        item["endpoint_identity"] = True
    return item


# -- a request as the outbox stores it ---------------------------------------------------------------------------

# The outcome's fields that the outbox item keeps as attributes of their own (its keys, and what the `undelivered`
# index projects): a packed request leaves them out and takes them from the item when it is read.
ITEM_FIELDS = ("user_id", "outcome_id", "rule_id", "kind", "output")
# A packed request: this prefix, then its JSON deflated with a preset dictionary, in base 85 (ASCII, JSON-safe).
# Deflating a text of about 1 KB alone gains little (its names are each said once); with a dictionary of the
# names and values every request repeats, an outcome's item stays under 1 KB, 1 write unit instead of 2 for each
# of its commit, claim and record. The dictionary is part of the stored format: "z1" items are read with exactly
# this text forever; another dictionary would be another prefix.
PACKED = "z1:"
_DICTIONARY = json.dumps(
    {
        "endpoint_id": None,
        "endpoint_identity": True,
        "outcome": {
            "cycle": None,
            "evidence": {
                "conditions": [
                    {"actual": 0, "holds": True, "on": "count", "operator": "greater", "target": 0},
                    {"actual": "0", "holds": False, "on": "sum", "operator": "greater_or_equal", "target": "0"},
                ],
                "count": 0,
                "events": [{"event_id": "", "timestamp": "2026-01-01T00:00:00.000Z", "value": 0}],
                "events_total": 0,
                "events_truncated": False,
                "period": None,
                "rule": {
                    "attribute": None,
                    "counting_identity": "",
                    "event_type": "",
                    "reset": False,
                    "type": "aggregate",
                },
                "sum": "0",
            },
            "execution": "arn:aws:states:us-east-1:000000000000:execution:IngestBatchStateMachine-:IngestPipe-",
            "occurred_at": "2026-01-01T00:00:00.000Z",
        },
        "profile_search": {"key_name": "_profileId", "value": ""},
    },
    sort_keys=True,
    separators=(",", ":"),
).encode()


def pack_request(request: Mapping[str, Any]) -> str:
    """A request (`delivery_item`) as the outbox stores it: without the fields the item keeps itself, deflated."""
    slim = dict(request)
    slim["outcome"] = {name: value for name, value in request["outcome"].items() if name not in ITEM_FIELDS}
    text = json.dumps(slim, sort_keys=True, separators=(",", ":")).encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
    return PACKED + base64.b85encode(packer.compress(text) + packer.flush()).decode("ascii")


def request_of_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox item's request as `delivery_item` made it, from the item as DynamoDB gives it. A request stored as
    plain JSON (before requests were packed) reads as it was written."""
    stored: str = item["request"]["S"]
    if not stored.startswith(PACKED):
        plain: dict[str, Any] = json.loads(stored)
        return plain
    unpacker = zlib.decompressobj(-15, _DICTIONARY)
    packed = base64.b85decode(stored[len(PACKED) :])
    request: dict[str, Any] = json.loads(unpacker.decompress(packed) + unpacker.flush())
    fields = {name: item[name]["S"] for name in ITEM_FIELDS}
    request["outcome"] = dict(sorted((request["outcome"] | fields).items()))
    return request


def detail_type(outcome: Mapping[str, Any]) -> str:
    """EventBridge's detail type of an outcome (docs/delivery.md)."""
    return DETAIL_TYPES[OutcomeKind(outcome["kind"])]


def pinpoint_event(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """A reached outcome's Pinpoint event: its output as the event type, at the time the target was reached."""
    return {
        "EventType": outcome["output"],
        "Timestamp": outcome["occurred_at"],
        "Attributes": {
            "rule_id": outcome["rule_id"],
            "outcome_id": outcome["outcome_id"],
            "cycle": str(outcome["cycle"]),
        },
    }


def user_attribute(outcome: Mapping[str, Any]) -> str:
    """What a qualified or disqualified outcome sets its output attribute to: "ready" or "notready"."""
    return _ATTRIBUTE_VALUE[OutcomeKind(outcome["kind"])]


def profile_object(outcome: Mapping[str, Any], search: Mapping[str, str]) -> str:
    """A reached outcome's Customer Profiles object (JSON text), carrying the key that finds its profile."""
    return json.dumps(
        {
            search["key_name"]: search["value"],
            "event_type": outcome["output"],
            "rule_id": outcome["rule_id"],
            "outcome_id": outcome["outcome_id"],
            "cycle": outcome["cycle"],
            "occurred_at": outcome["occurred_at"],
        },
        sort_keys=True,
    )
