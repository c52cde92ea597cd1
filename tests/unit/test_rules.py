"""Operators, conditions, outputs and counting identity: rules are data and small pure functions."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from incremental_analytics.domain.matching import RuleIndex, first_occurrences
from incremental_analytics.domain.rules import (
    AttributeFilter,
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
    epoch_ms,
)
from tests.unit.helpers import event


@pytest.mark.parametrize(
    ("operator", "actual", "target", "holds"),
    [
        (Operator.EQUAL, 3, 3, True),
        (Operator.EQUAL, 4, 3, False),
        (Operator.NOT_EQUAL, 4, 3, True),
        (Operator.NOT_EQUAL, 3, 3, False),
        (Operator.GREATER, 3, 3, False),  # strict, as in 2021: "greater 3" holds from the 4th event
        (Operator.GREATER, 4, 3, True),
        (Operator.GREATER_OR_EQUAL, 3, 3, True),
        (Operator.GREATER_OR_EQUAL, 2, 3, False),
        (Operator.LESS, 2, 3, True),
        (Operator.LESS, 3, 3, False),
        (Operator.LESS_OR_EQUAL, 3, 3, True),
        (Operator.LESS_OR_EQUAL, 4, 3, False),
        (Operator.GREATER, Decimal("19.99"), Decimal(19), True),  # exact decimals: 19.99 is not 19
        (Operator.EQUAL, Decimal("19.99"), Decimal(19), False),
        (Operator.EQUAL, Decimal("0.1") + Decimal("0.2"), Decimal("0.3"), True),
        (Operator.LESS, Decimal("-0.5"), Decimal(0), True),
    ],
)
def test_operators(operator: Operator, actual: Decimal | int, target: Decimal | int, holds: bool) -> None:
    assert operator.holds(actual, target) is holds


@pytest.mark.parametrize(
    ("count", "total", "met"),
    [(4, Decimal(501), True), (3, Decimal(501), False), (4, Decimal(500), False), (1, Decimal(0), False)],
)
def test_count_and_sum_must_both_hold(count: int, total: Decimal, met: bool) -> None:
    rule = Rule(
        "r",
        RuleType.AGGREGATE,
        "purchase",
        count=CountCondition(Operator.GREATER, 3),
        sum=SumCondition(Operator.GREATER, Decimal(500)),
    )
    assert rule.is_met(count, total) is met
    checks = rule.check(count, total)
    assert [(c.on, c.actual) for c in checks] == [("count", count), ("sum", total)]


@pytest.mark.parametrize(
    ("rule_type", "attribute", "output"),
    [
        (RuleType.AGGREGATE, None, "trk_purchase"),
        (RuleType.AGGREGATE, AttributeFilter("product", "table"), "trk_purchase_table"),
        (RuleType.DATE, None, "trk_date_purchase"),
        (RuleType.WINDOW, AttributeFilter("product", "table"), "trk_window_purchase_table"),
    ],
)
def test_default_output_names(rule_type: RuleType, attribute: AttributeFilter | None, output: str) -> None:
    rule = Rule("r", rule_type, "purchase", attribute=attribute, count=CountCondition(Operator.GREATER, 1))
    assert rule.output == output
    assert replace(rule, output="vip").output == "vip"


def test_counting_identity_ignores_targets_operators_output_and_enabled() -> None:
    rule = Rule("r", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 3))
    same = [
        replace(rule, count=CountCondition(Operator.LESS, 9)),
        replace(rule, output="other"),
        replace(rule, enabled=False),
        replace(rule, sum=SumCondition(Operator.GREATER, Decimal(5))),
    ]
    different = [
        replace(rule, event_type="y"),
        replace(rule, attribute=AttributeFilter("a", "b")),
        replace(rule, reset=True),
        replace(rule, sum=SumCondition(Operator.GREATER, Decimal(5), "price")),
        replace(rule, type=RuleType.WINDOW, days=7),
    ]
    assert {r.counting_identity for r in same} == {rule.counting_identity}
    assert rule.counting_identity not in {r.counting_identity for r in different}
    assert len({r.counting_identity for r in different}) == len(different)
    window = Rule("w", RuleType.WINDOW, "x", count=CountCondition(Operator.GREATER, 3), days=7)
    assert replace(window, days=8).counting_identity != window.counting_identity
    date = Rule(
        "d",
        RuleType.DATE,
        "x",
        count=CountCondition(Operator.GREATER, 3),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    assert replace(date, timezone="Europe/Paris").counting_identity != date.counting_identity
    assert replace(date, finish_date=dt.date(2021, 2, 1)).counting_identity != date.counting_identity


def test_date_period_is_inclusive_in_the_rule_timezone() -> None:
    rule = Rule(
        "d",
        RuleType.DATE,
        "x",
        count=CountCondition(Operator.GREATER, 0),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 2, 1),
        timezone="America/New_York",
    )
    period = rule.period_at(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert period.start_ms == epoch_ms(dt.datetime(2021, 1, 1, 5, tzinfo=dt.UTC))
    assert period.end_ms == epoch_ms(dt.datetime(2021, 2, 2, 5, tzinfo=dt.UTC))


def test_window_period_is_the_last_n_days() -> None:
    rule = Rule("w", RuleType.WINDOW, "x", count=CountCondition(Operator.GREATER, 0), days=7)
    now = dt.datetime(2021, 2, 8, 12, tzinfo=dt.UTC)
    period = rule.period_at(now)
    assert (period.start_ms, period.end_ms) == (epoch_ms(now - dt.timedelta(days=7)), epoch_ms(now))
    assert period.contains(period.start_ms) and not period.contains(period.end_ms)


def test_an_aggregate_rule_has_no_period() -> None:
    with pytest.raises(ValueError, match="no period"):
        Rule("a", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0)).period_at(dt.datetime.now(dt.UTC))


def test_matching_goes_through_the_event_type_index_and_the_attribute_filter() -> None:
    tables = Rule(
        "t",
        RuleType.AGGREGATE,
        "purchase",
        attribute=AttributeFilter("product", "table"),
        count=CountCondition(Operator.GREATER, 0),
    )
    purchases = Rule("p", RuleType.AGGREGATE, "purchase", count=CountCondition(Operator.GREATER, 0))
    disabled = Rule("x", RuleType.AGGREGATE, "purchase", count=CountCondition(Operator.GREATER, 0), enabled=False)
    clicks = Rule(
        "c",
        RuleType.DATE,
        "click",
        count=CountCondition(Operator.GREATER, 0),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 2),
    )
    sessions = Rule("s", RuleType.AGGREGATE, "_session.start", count=CountCondition(Operator.GREATER, 0))
    index = RuleIndex([tables, purchases, disabled, clicks, sessions])
    table = event(1, event_type="purchase", attributes={"product": "table"})
    chair = event(2, event_type="purchase", attributes={"product": "Table"})  # exact, case-sensitive
    assert [r.rule_id for r in index.rules_for(table)] == ["t", "p"]
    assert [r.rule_id for r in index.rules_for(chair)] == ["p"]
    assert [r.rule_id for r in index.rules_for(event(3, event_type="Purchase"))] == []
    assert index.system_event_types == frozenset({"_session.start"})
    click = event(4, event_type="click")
    groups = index.group_aggregate([table, chair, click, event(5, user="u2", event_type="purchase")])
    assert {key: [e.event_id for e in found] for key, found in groups.items()} == {
        ("u1", "t"): [table.event_id],
        ("u1", "p"): [table.event_id, chair.event_id],
        ("u2", "p"): ["u2-purchase-5"],
    }


def test_first_occurrences_keeps_the_first_copy_in_order() -> None:
    a, b, c = event(1), event(2), event(3)
    assert first_occurrences([a, b, a, c, b]) == [a, b, c]
    assert first_occurrences([a, b, c], already_seen=[b.key]) == [a, c]


def test_a_batch_groups_each_event_once_per_rule_as_the_claims_do() -> None:
    """Claims are per (rule, identity, event_id) (docs/events.md): a batch dedupes the same way, so batching
    never matters."""
    taps = Rule("taps", RuleType.AGGREGATE, "tap", count=CountCondition(Operator.GREATER, 0))
    views = Rule("views", RuleType.AGGREGATE, "view", count=CountCondition(Operator.GREATER, 0))
    index = RuleIndex([taps, views])
    tap = replace(event(1, user="ann", event_type="tap"), event_id="1")
    bobs = replace(tap, user_id="bob")  # another user's event with the same id
    view = replace(tap, event_type="view")  # ann's id reused for another record
    later_tap = replace(tap, timestamp_ms=tap.timestamp_ms + 1)  # and for another tap
    groups = index.group_aggregate([tap, bobs, tap, view, later_tap])
    assert groups == {("ann", "taps"): [tap], ("bob", "taps"): [bobs], ("ann", "views"): [view]}


def test_first_occurrences_never_merges_two_users_events() -> None:
    """docs/events.md: event ids are scoped to the identity."""
    ann = replace(event(1, user="ann"), event_id="1")
    bob = replace(event(1, user="bob"), event_id="1")
    assert first_occurrences([ann, bob, ann, bob]) == [ann, bob]
    assert first_occurrences([ann, bob], already_seen=[("ann", "1")]) == [bob]
