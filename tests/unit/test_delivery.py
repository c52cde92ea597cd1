"""The per-sink delivery state and the redelivery schedule (docs/delivery.md), as pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from incremental_analytics.domain.delivery import (
    CLAIM_EXPIRY,
    SINKS,
    DeliveryState,
    RetryPolicy,
    Undelivered,
    delivery_state,
    initial_delivery,
    plan_redelivery,
    redriven,
)
from incremental_analytics.domain.rules import iso_instant

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(first=dt.timedelta(minutes=5))


def test_every_sink_starts_pending() -> None:
    assert initial_delivery() == {"eventbridge": "pending", "pinpoint": "pending", "profiles": "pending"}
    assert delivery_state(initial_delivery()) is DeliveryState.PENDING


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        (("delivered", "delivered", "delivered"), DeliveryState.DELIVERED),
        (("delivered", "off", "no_profile"), DeliveryState.DELIVERED),
        (("delivered", "no_endpoint", "failed"), DeliveryState.PENDING),
        (("delivered", "abandoned", "delivered"), DeliveryState.ABANDONED),
        (("pending", "abandoned", "failed"), DeliveryState.ABANDONED),
    ],
)
def test_an_outcome_is_delivered_when_no_sink_lacks_it(statuses: tuple[str, ...], state: DeliveryState) -> None:
    assert delivery_state(dict(zip(SINKS, statuses, strict=True))) is state


def test_a_redrive_retries_only_the_sinks_that_gave_up() -> None:
    before = {"eventbridge": "delivered", "pinpoint": "abandoned", "profiles": "no_profile"}
    assert redriven(before) == {"eventbridge": "delivered", "pinpoint": "failed", "profiles": "no_profile"}


def test_the_backoff_doubles_from_the_first_and_stops_at_the_cap() -> None:
    waits = [POLICY.backoff(attempts) for attempts in range(1, 11)]
    minutes = [wait / dt.timedelta(minutes=1) for wait in waits]
    assert minutes == [5, 10, 20, 40, 80, 160, 320, 640, 720, 720]  # the cap: 12 hours
    assert POLICY.backoff(10_000) == dt.timedelta(hours=12)


def test_an_outcome_is_due_after_its_backoff() -> None:
    attempted = T0 + dt.timedelta(seconds=3)
    assert POLICY.due_at(0, None, T0) == T0 + dt.timedelta(minutes=5)  # the stream's delivery has this long
    assert POLICY.due_at(1, attempted, T0) == attempted + dt.timedelta(minutes=5)
    assert POLICY.due_at(3, attempted, T0) == attempted + dt.timedelta(minutes=20)


def _waiting(n: int, attempts: int, minutes_ago: int) -> Undelivered:
    committed = T0 - dt.timedelta(hours=1, minutes=n)
    attempted = T0 - dt.timedelta(minutes=minutes_ago) if attempts else None
    return Undelivered(f"u{n}", f"o{n}", committed, attempts, attempted)


def test_a_plan_takes_the_due_outcomes_oldest_first_in_pages() -> None:
    waiting = [
        _waiting(1, attempts=1, minutes_ago=6),  # due: 5 minutes after its first attempt
        _waiting(2, attempts=2, minutes_ago=6),  # not yet: 10 minutes after its second
        _waiting(3, attempts=0, minutes_ago=0),  # never attempted, committed over 5 minutes ago: due
        _waiting(4, attempts=4, minutes_ago=41),  # due: 40 minutes after its fourth
    ]
    plan = plan_redelivery(waiting, T0, POLICY, page_size=2, limit=10)
    assert (plan.due, plan.undelivered) == (3, 4)
    assert [[key["outcome_id"] for key in page] for page in plan.pages] == [["o4", "o3"], ["o1"]]
    assert plan.oldest_seconds == (T0 - waiting[3].committed_at).total_seconds()
    assert {key["stale_before"] for page in plan.pages for key in page} == {iso_instant(T0 - CLAIM_EXPIRY)}


def test_a_plan_stops_at_its_limit_and_an_empty_outbox_waits_for_nothing() -> None:
    waiting = [_waiting(n, attempts=1, minutes_ago=30) for n in range(7)]
    plan = plan_redelivery(waiting, T0, POLICY, page_size=3, limit=5)
    assert plan.due == 7 and [len(page) for page in plan.pages] == [3, 2]
    empty = plan_redelivery([], T0, POLICY, page_size=3, limit=5)
    assert (empty.pages, empty.due, empty.undelivered, empty.oldest_seconds) == ([], 0, 0, 0.0)
