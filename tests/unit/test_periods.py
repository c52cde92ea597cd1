"""docs/periods.md: date and window rules, evaluated per user over their period with pandas."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from incremental_analytics.adapters.dynamodb_items import timeseries_events, timeseries_items
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.periods import (
    DayPlan,
    empty_events,
    evaluate_period,
    latest_endpoints,
    plan_days,
    totals_per_user,
)
from incremental_analytics.domain.rules import (
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
    epoch_ms,
)
from tests.unit.helpers import GREENBUTTON_DATE

UTC = dt.UTC
LATER = dt.datetime(2021, 3, 1, tzinfo=UTC)


def _events(*rows: tuple[str, dt.datetime, str]) -> pd.DataFrame:
    if not rows:
        return empty_events()
    return pd.DataFrame(
        {
            "user_id": [user for user, _, _ in rows],
            "event_id": [f"{user}-{n}" for n, (user, _, _) in enumerate(rows)],
            "timestamp_ms": [epoch_ms(at) for _, at, _ in rows],
            "value": [Decimal(value) for _, _, value in rows],
        }
    )


def test_guide_case_3_date_rule_includes_both_end_dates_and_excludes_the_day_after() -> None:
    events = _events(
        ("start", dt.datetime(2021, 1, 1, tzinfo=UTC), "501"),
        ("finish", dt.datetime(2021, 2, 1, 23, 59, 59, 999000, tzinfo=UTC), "300"),
        ("finish", dt.datetime(2021, 1, 15, tzinfo=UTC), "201"),
        ("after", dt.datetime(2021, 2, 2, tzinfo=UTC), "1000"),
        ("before", dt.datetime(2020, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "1000"),
        ("exactly", dt.datetime(2021, 1, 20, tzinfo=UTC), "500"),
    )
    result = evaluate_period(GREENBUTTON_DATE, LATER, events)
    assert result.qualified == {"start", "finish"}
    assert sorted(result.totals.index) == ["exactly", "finish", "start"]
    assert [(o.user_id, o.kind, o.output) for o in result.outcomes] == [
        ("finish", OutcomeKind.QUALIFIED, "trk_date_greenbutton"),
        ("start", OutcomeKind.QUALIFIED, "trk_date_greenbutton"),
    ]
    finish = result.outcomes[0]
    assert finish.evidence["period"] == {
        "start": "2021-01-01T00:00:00.000Z",
        "end": "2021-02-02T00:00:00.000Z",
        "timezone": "UTC",
    }
    assert finish.evidence["sum"] == 501 and finish.evidence["count"] == 2
    assert [e["timestamp"] for e in finish.evidence["events"]] == [
        "2021-01-15T00:00:00.000Z",
        "2021-02-01T23:59:59.999Z",
    ]


def test_boundaries_follow_the_rule_timezone() -> None:
    paris = ZoneInfo("Europe/Paris")
    rule = Rule(
        "d",
        RuleType.DATE,
        "x",
        count=CountCondition(Operator.GREATER_OR_EQUAL, 1),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 2, 1),
        timezone="Europe/Paris",
    )
    events = _events(
        ("first-instant", dt.datetime(2021, 1, 1, tzinfo=paris), "1"),
        ("last-instant", dt.datetime(2021, 2, 1, 23, 59, 59, 999000, tzinfo=paris), "1"),
        ("instant-after", dt.datetime(2021, 2, 2, tzinfo=paris), "1"),
        ("instant-before", dt.datetime(2020, 12, 31, 23, 59, 59, 999000, tzinfo=paris), "1"),
        # 2021-02-01T23:30Z is already 2 February in Paris: outside.
        ("utc-last-day", dt.datetime(2021, 2, 1, 23, 30, tzinfo=UTC), "1"),
    )
    assert evaluate_period(rule, LATER, events).qualified == {"first-instant", "last-instant"}


def test_a_rolling_window_qualifies_then_disqualifies_as_it_moves_on() -> None:
    rule = Rule("w", RuleType.WINDOW, "app_open", count=CountCondition(Operator.GREATER_OR_EQUAL, 3), days=7)
    start = dt.datetime(2021, 1, 1, 12, tzinfo=UTC)
    events = _events(*[("u1", start + dt.timedelta(days=n), "0") for n in range(3)], ("u2", start, "0"))
    day_3 = evaluate_period(rule, start + dt.timedelta(days=3), events)
    assert day_3.qualified == {"u1"}
    assert [(o.user_id, o.kind) for o in day_3.outcomes] == [("u1", OutcomeKind.QUALIFIED)]
    day_8 = evaluate_period(rule, start + dt.timedelta(days=8), events, day_3.qualified)
    assert day_8.qualified == frozenset()  # the first event left the window: 2 of 3
    (lost,) = day_8.outcomes
    assert (lost.user_id, lost.kind, lost.evidence["count"]) == ("u1", OutcomeKind.DISQUALIFIED, 2)
    assert [c["holds"] for c in lost.evidence["conditions"]] == [False]
    day_30 = evaluate_period(rule, start + dt.timedelta(days=30), events, {"u1"})
    assert [(o.user_id, o.kind, o.evidence["count"]) for o in day_30.outcomes] == [("u1", OutcomeKind.DISQUALIFIED, 0)]


def test_less_operators_and_negative_metrics_can_disqualify() -> None:
    rule = Rule(
        "d",
        RuleType.DATE,
        "refund",
        sum=SumCondition(Operator.LESS, Decimal(0)),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    first = _events(("u1", dt.datetime(2021, 1, 2, tzinfo=UTC), "-19.99"))
    assert evaluate_period(rule, LATER, first).qualified == {"u1"}
    more = _events(
        ("u1", dt.datetime(2021, 1, 2, tzinfo=UTC), "-19.99"),
        ("u1", dt.datetime(2021, 1, 3, tzinfo=UTC), "19.99"),
    )
    result = evaluate_period(rule, LATER, more, {"u1"})
    assert result.qualified == frozenset()
    assert [(o.kind, o.evidence["sum"]) for o in result.outcomes] == [(OutcomeKind.DISQUALIFIED, 0)]


def test_only_users_with_an_event_in_the_period_are_candidates() -> None:
    rule = Rule(
        "d",
        RuleType.DATE,
        "x",
        count=CountCondition(Operator.LESS, 5),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    events = _events(
        ("in", dt.datetime(2021, 1, 5, tzinfo=UTC), "1"), ("out", dt.datetime(2021, 3, 5, tzinfo=UTC), "1")
    )
    assert evaluate_period(rule, LATER, events).qualified == {"in"}


def test_already_qualified_users_get_no_second_outcome() -> None:
    events = _events(("u1", dt.datetime(2021, 1, 5, tzinfo=UTC), "600"))
    assert evaluate_period(GREENBUTTON_DATE, LATER, events, {"u1"}).outcomes == ()


def test_sums_are_exact() -> None:
    rule = Rule(
        "d",
        RuleType.DATE,
        "x",
        sum=SumCondition(Operator.EQUAL, Decimal("0.3")),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    events = _events(
        ("u1", dt.datetime(2021, 1, 5, tzinfo=UTC), "0.1"), ("u1", dt.datetime(2021, 1, 6, tzinfo=UTC), "0.2")
    )
    result = evaluate_period(rule, LATER, events)
    assert result.qualified == {"u1"} and result.totals.at["u1", "sum"] == Decimal("0.3")


def test_duplicate_events_count_once() -> None:
    events = _events(("u1", dt.datetime(2021, 1, 5, tzinfo=UTC), "300"))
    doubled = pd.concat([events, events], ignore_index=True)
    period = GREENBUTTON_DATE.period_at(LATER)
    assert totals_per_user(doubled, period).loc["u1", "count"] == 1
    assert evaluate_period(GREENBUTTON_DATE, LATER, doubled).qualified == frozenset()


def test_users_sharing_event_ids_count_apart() -> None:
    """docs/events.md: an event id names an event of its user only (rolled-up days and open days read together)."""
    events = _events(*[(user, dt.datetime(2021, 1, 5, tzinfo=UTC), "300") for user in ("u1", "u2")])
    events["event_id"] = "1"
    doubled = pd.concat([events, events], ignore_index=True)
    totals = totals_per_user(doubled, GREENBUTTON_DATE.period_at(LATER))
    assert totals["count"].to_dict() == {"u1": 1, "u2": 1}
    assert evaluate_period(GREENBUTTON_DATE, LATER, doubled).qualified == frozenset()  # 300 each, not 600
    (dropped,) = evaluate_period(GREENBUTTON_DATE, LATER, doubled, previously_qualified=["u1"]).outcomes
    assert dropped.kind is OutcomeKind.DISQUALIFIED and len(dropped.evidence["events"]) == 1


def test_outcome_ids_name_the_evaluation() -> None:
    rule = Rule("w", RuleType.WINDOW, "x", count=CountCondition(Operator.GREATER_OR_EQUAL, 1), days=1)
    events = _events(("u1", dt.datetime(2021, 1, 5, tzinfo=UTC), "1"))
    now = dt.datetime(2021, 1, 5, 12, tzinfo=UTC)
    first = evaluate_period(rule, now, events)
    again = evaluate_period(rule, now, events)
    later = evaluate_period(rule, now + dt.timedelta(hours=1), events)
    assert first.outcomes[0].outcome_id == again.outcomes[0].outcome_id
    assert first.outcomes[0].outcome_id != later.outcomes[0].outcome_id
    assert first.outcomes[0].occurred_at == "2021-01-05T12:00:00.000Z"


def test_nothing_to_evaluate() -> None:
    result = evaluate_period(GREENBUTTON_DATE, LATER, empty_events(), {"gone"})
    assert result.qualified == frozenset()
    assert [(o.user_id, o.kind) for o in result.outcomes] == [("gone", OutcomeKind.DISQUALIFIED)]


def test_aggregate_rules_have_no_period_evaluation() -> None:
    rule = Rule("a", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0))
    with pytest.raises(ValueError, match="aggregate"):
        evaluate_period(rule, LATER, empty_events())


DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("now", "closed", "opened", "closes"),
    [
        # before the period: nothing to read
        (dt.datetime(2020, 12, 20, tzinfo=UTC), (), (), False),
        # inside: days whose end plus the allowance has passed are closed; the rest, a day ahead included, open
        (dt.datetime(2021, 1, 4, 12, tzinfo=UTC), ((1, 1), (1, 2)), ((1, 3), (1, 4), (1, 5)), False),
        # the day after the finish date, inside the allowance: the last days still open, not closed
        (dt.datetime(2021, 2, 2, 12, tzinfo=UTC), ((1, 1), (1, 31)), ((2, 1),), False),
        # finish + the allowance has passed: every day closed, the final evaluation
        (dt.datetime(2021, 2, 3, tzinfo=UTC), ((1, 1), (2, 1)), (), True),
    ],
)
def test_plan_days_of_a_date_rule(
    now: dt.datetime, closed: tuple[tuple[int, int], ...], opened: tuple[tuple[int, int], ...], closes: bool
) -> None:
    plan = plan_days(GREENBUTTON_DATE, now, DAY)
    span = lambda days: (days[0], days[-1]) if len(days) > 2 else days  # noqa: E731 - first and last of a run
    assert span(plan.closed) == tuple(dt.date(2021, m, d) for m, d in closed)
    assert plan.open == tuple(dt.date(2021, m, d) for m, d in opened)
    assert plan.closes is closes
    assert not set(plan.closed) & set(plan.open)


def test_plan_days_of_a_window_and_a_zone_that_spans_two_utc_days() -> None:
    window = Rule("w", RuleType.WINDOW, "open", count=CountCondition(Operator.GREATER, 1), days=3)
    plan = plan_days(window, dt.datetime(2021, 5, 10, 6, tzinfo=UTC), DAY)
    assert plan == DayPlan(
        closed=(dt.date(2021, 5, 7), dt.date(2021, 5, 8)),
        open=(dt.date(2021, 5, 9), dt.date(2021, 5, 10)),
        closes=False,
    )
    tokyo = Rule(
        "t",
        RuleType.DATE,
        "open",
        count=CountCondition(Operator.GREATER, 1),
        start_date=dt.date(2021, 3, 1),
        finish_date=dt.date(2021, 3, 1),
        timezone="Asia/Tokyo",
    )
    assert plan_days(tokyo, dt.datetime(2021, 4, 1, tzinfo=UTC), DAY).closed == (
        dt.date(2021, 2, 28),
        dt.date(2021, 3, 1),
    )


def test_latest_endpoint_per_user() -> None:
    events = _events(
        ("u1", dt.datetime(2021, 1, 5, tzinfo=UTC), "1"),
        ("u1", dt.datetime(2021, 1, 7, tzinfo=UTC), "1"),
        ("u2", dt.datetime(2021, 1, 6, tzinfo=UTC), "1"),
    )
    events["endpoint_id"] = ["old", "new", None]
    assert latest_endpoints(events, ["u1", "u2"]) == {"u1": "new", "u2": None}


def test_a_stored_event_keeps_its_first_metric() -> None:
    event = Event("e1", "u1", "purchase", 1_600_000_000_000, {"p": "x"}, {"zeta": Decimal("2.5"), "alpha": Decimal(1)})
    (item,) = timeseries_items([event], shards=4, ttl_seconds=86_400)
    ((user, event_id, timestamp_ms, attributes, metrics, endpoint),) = timeseries_events(item)
    assert (user, event_id, timestamp_ms, attributes, endpoint) == ("u1", "e1", 1_600_000_000_000, {"p": "x"}, None)
    assert list(metrics) == ["zeta", "alpha"]  # docs/events.md: the first in the record, which a map would lose
    rule = Rule(
        "r",
        RuleType.DATE,
        "purchase",
        sum=SumCondition(Operator.GREATER, Decimal(1)),
        start_date=dt.date(2020, 1, 1),
        finish_date=dt.date(2020, 12, 31),
    )
    assert rule.value_of(metrics) == Decimal("2.5")
