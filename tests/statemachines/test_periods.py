"""Date and window rules (docs/periods.md) through the real EvaluatePeriods and DeliverOutcomes ASL on the local AWS:
events go in through the Pipe and the ingest workflow, evaluations run as `run --now` or the schedule starts them,
and their outcomes reach the sinks through the outbox's stream."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pandas as pd

from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.dynamodb_items import timeseries_events, timeseries_items
from incremental_analytics.domain.events import Event
from incremental_analytics.domain.periods import evaluate_period
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition, epoch_ms
from incremental_analytics_local.engine import ExecutionResult, LocalAws
from incremental_analytics_local.product import LocalProduct, seed_endpoints, seed_profiles
from tests.unit.helpers import GREENBUTTON_DATE

UTC = dt.UTC


def at(*parts: int, zone: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def event(
    user: str, moment: dt.datetime, price: float | None = None, event_type: str = "greenbutton"
) -> dict[str, Any]:
    data: dict[str, Any] = {"user_id": user, "event_type": event_type, "timestamp": epoch_ms(moment)}
    if price is not None:
        data["metrics"] = {"price": price}
    return data


def ingest(product: LocalProduct, events: Iterable[dict[str, Any]]) -> None:
    product.put_events(events)
    report = product.ingest()
    assert {execution.status for execution in report.executions} <= {"SUCCEEDED"}


def evaluated(result: ExecutionResult) -> dict[str, Any]:
    """The one rule's summary from an EvaluatePeriods execution's output."""
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output is not None
    (rule,) = result.output["rules"]
    summary: dict[str, Any] = rule
    return summary


def attribute(product: LocalProduct, output: str) -> dict[str, str]:
    """{user: value} of one attribute, as both attribute sinks hold it (they must agree)."""
    sinks = product.sink_attributes()
    values = [
        {user: attributes[output] for user, attributes in held.items() if output in attributes}
        for held in sinks.values()
    ]
    assert values[0] == values[1], sinks
    return values[0]


def test_guide_case_3_sum_greater_500_in_january(aws: LocalAws, product: LocalProduct) -> None:
    users = ["big", "exactly500", "late", "split"]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    product.put_rules([GREENBUTTON_DATE])
    ingest(
        product,
        [
            *(event("big", at(2021, 1, day, 9), 120) for day in (3, 9, 17, 30, 31)),  # 600 inside
            *(event("exactly500", at(2021, 1, day, 9), 100) for day in (4, 5, 6, 7, 8)),  # 500 is not greater
            event("late", at(2021, 1, 20), 400),
            event("late", at(2021, 2, 2, 0, 0), 400),  # the instant after the period: not counted
            event("split", at(2021, 1, 15), 250.5),
            event("split", at(2021, 2, 1, 23, 59, 59), 250),  # the finish date is inclusive
        ],
    )
    summary = evaluated(product.evaluate_periods(at(2021, 2, 10)))
    product.deliver()

    assert summary["qualified"] == 2 and summary["candidates"] == 4 and summary["closed"] is True
    outcomes = product.outcomes()
    assert sorted((o["user_id"], o["kind"], o["output"]) for o in outcomes) == [
        ("big", "qualified", "trk_date_greenbutton"),
        ("split", "qualified", "trk_date_greenbutton"),
    ]
    split = next(o for o in outcomes if o["user_id"] == "split")
    assert split["evidence"]["sum"] == 500.5 and split["evidence"]["count"] == 2
    assert split["evidence"]["period"] == {
        "start": "2021-01-01T00:00:00.000Z",
        "end": "2021-02-02T00:00:00.000Z",
        "timezone": "UTC",
    }
    assert split["execution"].split(":")[-2].endswith(product.table("EvaluatePeriodsStateMachine").split(":")[-1])
    assert attribute(product, "trk_date_greenbutton") == {"big": "ready", "split": "ready"}
    assert {item["delivery"]["eventbridge"] for item in product.audit_items()} == {"delivered"}


def test_boundaries_are_the_rules_timezone_midnights(aws: LocalAws, product: LocalProduct) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    rule = Rule(
        "date-tokyo",
        RuleType.DATE,
        "greenbutton",
        count=CountCondition(Operator.EQUAL, 2),
        start_date=dt.date(2021, 3, 1),
        finish_date=dt.date(2021, 3, 31),
        timezone="Asia/Tokyo",
    )
    product.put_rules([rule])
    first = at(2021, 3, 1, zone=tokyo)
    last = at(2021, 3, 31, 23, 59, 59, 999_000, zone=tokyo)
    after = at(2021, 4, 1, zone=tokyo)
    before = first - dt.timedelta(milliseconds=1)
    ingest(
        product,
        [
            event("edges", first),
            event("edges", last),
            event("after", last),
            event("after", after),
            event("before", before),
            event("before", first + dt.timedelta(days=3)),
            event("outside", before),
            event("outside", after),
        ],
    )
    summary = evaluated(product.evaluate_periods(at(2021, 4, 20)))
    assert summary["candidates"] == 3  # "outside" has no event in the period
    assert [(o["user_id"], o["kind"]) for o in product.outcomes()] == [("edges", "qualified")]
    (outcome,) = product.outcomes()
    assert outcome["evidence"]["period"]["start"] == "2021-02-28T15:00:00.000Z"
    assert outcome["evidence"]["period"]["end"] == "2021-03-31T15:00:00.000Z"


def test_a_rolling_window_qualifies_then_disqualifies(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["u1", "u2"])
    seed_profiles(aws, ["u1", "u2"])
    rule = Rule("window-opens", RuleType.WINDOW, "app_open", count=CountCondition(Operator.GREATER_OR_EQUAL, 3), days=2)
    product.put_rules([rule])
    ingest(
        product,
        [
            *(event("u1", at(2021, 5, 10, hour), event_type="app_open") for hour in (1, 5, 9)),
            *(event("u2", at(2021, 5, 10, hour), event_type="app_open") for hour in (1, 5)),
        ],
    )
    first = evaluated(product.evaluate_periods(at(2021, 5, 11, 12)))
    product.deliver()
    assert first["qualified"] == 1
    assert attribute(product, "trk_window_app_open") == {"u1": "ready"}

    moved_on = evaluated(product.evaluate_periods(at(2021, 5, 12, 6)))  # the window starts 05-10 06:00 now
    product.deliver()
    assert moved_on["qualified"] == 0 and moved_on["outcomes"] == {"qualified": 0, "disqualified": 1}
    kinds = [(o["user_id"], o["kind"]) for o in product.outcomes()]
    assert sorted(kinds) == [("u1", "disqualified"), ("u1", "qualified")]
    assert attribute(product, "trk_window_app_open") == {"u1": "notready"}
    disqualified = next(o for o in product.outcomes() if o["kind"] == "disqualified")
    assert disqualified["evidence"]["count"] == 1  # the one event still inside the window
    audit = {item["outcome_id"]: item for item in product.audit_items()}
    assert audit[disqualified["outcome_id"]]["delivery"]["eventbridge"] == "delivered"


def test_a_second_run_reads_only_open_days_and_equals_a_full_recomputation(
    aws: LocalAws, product: LocalProduct
) -> None:
    rule = Rule(
        "date-spend",
        RuleType.DATE,
        "purchase",
        sum=SumCondition(Operator.GREATER_OR_EQUAL, Decimal(300)),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    product.put_rules([rule])
    history = [
        event(f"u{user}", at(2021, 1, day, user % 24), 20 + user * 3, event_type="purchase")
        for user in range(12)
        for day in range(5, 21, 2 + user % 3)
    ]
    ingest(product, history)
    now = at(2021, 1, 20, 12)
    first = evaluated(product.evaluate_periods(now))
    # Closed: up to 01-18 (its end plus a day's allowance has passed); open: 01-19, 01-20 and a day ahead.
    open_days = {dt.date(2021, 1, 19), dt.date(2021, 1, 20), dt.date(2021, 1, 21)}
    assert first["days_rolled_up"] == 18 * 4  # 01-01..01-18, four shards each
    late = event("u0", at(2021, 1, 19, 23), 500, event_type="purchase")  # late, inside the allowance
    ingest(product, [late])
    history.append(late)

    second = evaluated(product.evaluate_periods(now + dt.timedelta(hours=1)))
    in_open_days = [e for e in history if dt.datetime.fromtimestamp(e["timestamp"] / 1000, UTC).date() in open_days]
    assert second["days_rolled_up"] == 0
    in_open_partitions = [
        item
        for item in _stored_items(aws, product)
        if dt.date.fromisoformat(item["pk"]["S"].split("#")[1]) in open_days
    ]
    assert second["timeseries_items_read"] == len(in_open_partitions)  # their packed items, nothing else
    assert sum(len(timeseries_events(item)) for item in in_open_partitions) == len(in_open_days)
    assert second["rollups_read"] == 18 * 4

    expected = evaluate_period(rule, now + dt.timedelta(hours=1), _frame(rule, history))
    assert "u0" in expected.qualified and "u0" not in _qualified_after(product, first_only=True)
    assert _qualified_after(product) == set(expected.qualified)


def test_a_stack_updated_in_place_reads_the_four_shards_earlier_releases_wrote(
    aws: LocalAws, product: LocalProduct
) -> None:
    """Earlier releases spread an event type's day over four partitions by the user's hash; this one writes one.
    The evaluation reads both, so events stored before an update still count."""
    users = [f"u{n}" for n in range(12)]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    product.put_rules([OPENS_WINDOW])
    earlier = [Event(f"old-{user}", user, "app_open", epoch_ms(at(2021, 5, 10, 1))) for user in users]
    with aws.uncounted():
        for item in timeseries_items(earlier, shards=4, ttl_seconds=400 * 86_400):
            aws.client("dynamodb").put_item(TableName=product.table("TimeSeriesTable"), Item=item)
    assert len({item["pk"]["S"] for item in _stored_items(aws, product)}) == 4

    ingest(product, [event(user, at(2021, 5, 10, 5), event_type="app_open") for user in users[:8]])
    new = [
        (item["pk"]["S"], stored.user_id)
        for item in _stored_items(aws, product)
        for stored in timeseries_events(item)
        if not stored.event_id.startswith("old-")
    ]
    assert sorted(new) == [("app_open#2021-05-10#0", user) for user in sorted(users[:8])]  # one partition a day

    result = evaluated(product.evaluate_periods(at(2021, 5, 11, 1)))
    assert result["qualified"] == 8  # an earlier event and a new one each; the other four have one
    product.deliver()
    assert attribute(product, "trk_window_app_open") == dict.fromkeys(users[:8], "ready")


def test_a_rule_evaluated_across_the_update_counts_each_event_once(aws: LocalAws, product: LocalProduct) -> None:
    """Before the update, the earlier release stored 05-08 and 05-09 over four shards and rolled 05-08 up once it
    closed. After it, a batch re-sent across the update stores 05-09's events again in shard 0 (and one of 05-08's,
    a day already rolled up), and 05-10's are new. 05-09 closes and is rolled up from both releases' partitions,
    05-10 is read raw: each (user, event) counts once, so exactly three events a user is exactly three."""
    users = [f"u{n}" for n in range(8)]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    rule = Rule("window-three", RuleType.WINDOW, "app_open", count=CountCondition(Operator.EQUAL, 3), days=4)
    product.put_rules([rule])
    first_day = [Event(f"a-{user}", user, "app_open", epoch_ms(at(2021, 5, 8, 10))) for user in users]
    second_day = [Event(f"b-{user}", user, "app_open", epoch_ms(at(2021, 5, 9, 10))) for user in users]
    with aws.uncounted():
        for item in timeseries_items([*first_day, *second_day], shards=4, ttl_seconds=400 * 86_400):
            aws.client("dynamodb").put_item(TableName=product.table("TimeSeriesTable"), Item=item)
    before = evaluated(product.evaluate_periods(at(2021, 5, 10, 1)))  # 05-08 closed: rolled up over 0..3
    assert before["qualified"] == 0 and before["candidates"] == 8

    resent = [
        {"user_id": e.user_id, "event_type": e.event_type, "timestamp": e.timestamp_ms, "event_id": e.event_id}
        for e in [*second_day, first_day[0]]
    ]
    third_day = [
        {"user_id": user, "event_type": "app_open", "timestamp": epoch_ms(at(2021, 5, 10, 10)), "event_id": f"c-{user}"}
        for user in users[:6]
    ]
    ingest(product, [*resent, *third_day])
    copies = [stored.event_id for item in _stored_items(aws, product) for stored in timeseries_events(item)]
    assert all(copies.count(f"b-{user}") == 2 for user in users) and copies.count("a-u0") == 2

    after = evaluated(product.evaluate_periods(at(2021, 5, 11, 2)))  # 05-09 closed since; 05-10 open
    assert after["days_rolled_up"] == 4  # 05-09, shards 0..3: the earlier release's and this one's
    assert (after["candidates"], after["qualified"]) == (8, 6)
    product.deliver()
    qualified = [o for o in product.outcomes() if o["kind"] == "qualified"]
    assert sorted(o["user_id"] for o in qualified) == users[:6]
    assert {o["evidence"]["count"] for o in qualified} == {3}
    assert attribute(product, "trk_window_app_open") == dict.fromkeys(users[:6], "ready")


def test_a_closed_date_rule_is_not_evaluated_again(product: LocalProduct) -> None:
    product.put_rules([GREENBUTTON_DATE])
    ingest(product, [event("u1", at(2021, 1, 5), 900)])
    final = evaluated(product.evaluate_periods(at(2021, 2, 3)))  # finish 02-01, + 1 day allowance: closed
    assert final["closed"] is True and final["qualified"] == 1
    ingest(product, [event("u2", at(2021, 1, 6), 900)])  # too late: the rule is closed
    again = evaluated(product.evaluate_periods(at(2021, 2, 4)))
    assert again == {"rule_id": "date-greenbutton", "evaluated": False}
    assert [o["user_id"] for o in product.outcomes()] == ["u1"]


def test_a_still_open_date_rule_is_not_closed(product: LocalProduct) -> None:
    product.put_rules([GREENBUTTON_DATE])
    ingest(product, [event("u1", at(2021, 1, 5), 900)])
    assert evaluated(product.evaluate_periods(at(2021, 2, 2, 12)))["closed"] is False  # inside the allowance
    assert evaluated(product.evaluate_periods(at(2021, 2, 2, 13)))["evaluated"] is True


def test_two_starts_in_one_hour_are_one_evaluation(aws: LocalAws, product: LocalProduct) -> None:
    product.put_rules([GREENBUTTON_DATE])
    ingest(product, [event("u1", at(2021, 1, 5), 900)])
    first = product.fire_schedule(at(2021, 1, 20, 10, 0))
    second = product.fire_schedule(at(2021, 1, 20, 10, 40))
    assert evaluated(first)["evaluated"] is True
    assert evaluated(second) == {"rule_id": "date-greenbutton", "evaluated": False}
    assert "NotDue" in aws.entered_states(second.arn) and "EvaluateRule" not in aws.entered_states(second.arn)
    assert len(product.outcomes()) == 1
    changed = dataclasses.replace(GREENBUTTON_DATE, sum=SumCondition(Operator.GREATER, Decimal(1000)))
    product.put_rules([changed])  # a new definition is a new evaluation, even in the same hour
    third = evaluated(product.fire_schedule(at(2021, 1, 20, 10, 50)))
    assert third["evaluated"] is True and third["outcomes"] == {"qualified": 0, "disqualified": 1}


def test_a_pending_outcome_is_delivered_by_the_next_scheduled_run(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["u1"])
    seed_profiles(aws, ["u1"])
    greenbutton = Rule(
        "aggregate-greenbutton", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 2)
    )
    product.put_rules([greenbutton])
    aws.profiles.fail_next(1000, "InternalServerException")
    now = dt.datetime.now(UTC)
    ingest(product, [event("u1", now - dt.timedelta(minutes=5 + n)) for n in range(3)])
    product.deliver()
    (pending,) = product.audit_items()
    assert pending["delivery"]["profiles"] == "failed" and pending["undelivered"].startswith("P")

    product.fire_schedule(now + dt.timedelta(minutes=1))  # the first backoff (5 minutes) has not passed
    assert int(product.audit_items()[0]["delivery_attempts"]) == 1
    still_down = product.fire_schedule(now + dt.timedelta(minutes=10))
    assert still_down.status == "SUCCEEDED"
    assert int(product.audit_items()[0]["delivery_attempts"]) == 2

    aws.profiles.recover()
    healed = product.fire_schedule(now + dt.timedelta(minutes=70))
    assert healed.status == "SUCCEEDED"
    (delivered,) = product.audit_items()
    assert delivered["delivery"] == {"eventbridge": "delivered", "pinpoint": "delivered", "profiles": "delivered"}
    assert "undelivered" not in delivered and "claimed_by" not in delivered
    assert attribute(product, "trk_greenbutton") == {"u1": "ready"}
    assert product.sink_deliveries() == {"eventbridge": 1, "pinpoint": 1, "profiles": 1}


# -- helpers ---------------------------------------------------------------------------------------------------


def _frame(rule: Rule, events: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        (
            e["user_id"],
            f"{e['user_id']}-{e['timestamp']}",
            e["timestamp"],
            rule.value_of({"price": Decimal(str(e["metrics"]["price"]))}),
        )
        for e in events
    ]
    return pd.DataFrame.from_records(rows, columns=["user_id", "event_id", "timestamp_ms", "value"])


def _qualified_after(product: LocalProduct, *, first_only: bool = False) -> set[str]:
    """Users whose latest outcome is `qualified` (of the first evaluation only, when asked)."""
    outcomes = product.outcomes()
    if first_only:
        first = min(o["execution"] for o in outcomes)
        outcomes = [o for o in outcomes if o["execution"] == first]
    latest: dict[str, str] = {}
    for outcome in sorted(outcomes, key=lambda o: o["occurred_at"]):
        latest[outcome["user_id"]] = outcome["kind"]
    return {user for user, kind in latest.items() if kind == "qualified"}


def _stored_items(aws: LocalAws, product: LocalProduct) -> list[dict[str, Any]]:
    with aws.uncounted():
        return list(scan_all(aws.client("dynamodb"), product.table("TimeSeriesTable")))


def _stored_event_types(aws: LocalAws, product: LocalProduct) -> list[str]:
    """The event type of each stored event (a batch's events of one partition are packed in one item)."""
    return sorted(
        item["pk"]["S"].split("#")[0] for item in _stored_items(aws, product) for _ in timeseries_events(item)
    )


OPENS_WINDOW = Rule(
    "window-opens", RuleType.WINDOW, "app_open", count=CountCondition(Operator.GREATER_OR_EQUAL, 2), days=2
)
MIXED = [
    *(event("u1", at(2021, 5, 10, hour), event_type="app_open") for hour in (1, 5)),
    event("u1", at(2021, 5, 10, 2), price=20, event_type="purchase"),
    event("u2", at(2021, 5, 10, 3), event_type="pageview"),
]


def test_by_default_every_accepted_event_is_kept_for_rules_created_later(aws: LocalAws, product: LocalProduct) -> None:
    product.put_rules([OPENS_WINDOW])
    ingest(product, MIXED)
    assert _stored_event_types(aws, product) == ["app_open", "app_open", "pageview", "purchase"]


def test_time_series_for_named_events_only_when_the_stack_says_so(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"TimeSeriesForAllEvents": "false"})
    seed_endpoints(aws, ["u1", "u2"])
    seed_profiles(aws, ["u1", "u2"])
    product.put_rules([OPENS_WINDOW])
    ingest(product, MIXED)
    assert _stored_event_types(aws, product) == ["app_open", "app_open"]  # no period rule reads the others
    assert evaluated(product.evaluate_periods(at(2021, 5, 11, 1)))["qualified"] == 1

    # The documented narrowing: a rule created later counts only what arrives after it.
    later = Rule("window-buys", RuleType.WINDOW, "purchase", count=CountCondition(Operator.GREATER_OR_EQUAL, 1), days=2)
    product.put_rules([OPENS_WINDOW, later])
    ingest(product, [event("u2", at(2021, 5, 10, 4), price=5, event_type="purchase")])
    assert _stored_event_types(aws, product) == ["app_open", "app_open", "purchase"]
    buys = product.evaluate_periods(at(2021, 5, 11, 2))
    assert buys.status == "SUCCEEDED"
    product.deliver()
    assert attribute(product, "trk_window_purchase") == {"u2": "ready"}  # u1's earlier purchase was not kept
