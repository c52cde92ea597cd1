"""Which accepted events the time-series table keeps (domain.matching.TimeSeriesSelection, docs/periods.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from incremental_analytics.domain.events import Event
from incremental_analytics.domain.matching import TimeSeriesSelection
from incremental_analytics.domain.rules import AttributeFilter, CountCondition, Operator, Rule, RuleType

COUNT = CountCondition(Operator.GREATER, 1)
RULES = [
    Rule("buys", RuleType.AGGREGATE, "purchase", count=COUNT),
    Rule("tables", RuleType.WINDOW, "purchase", attribute=AttributeFilter("product", "table"), count=COUNT, days=7),
    Rule(
        "opens",
        RuleType.DATE,
        "app_open",
        count=COUNT,
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    ),
    Rule("paused", RuleType.WINDOW, "share", count=COUNT, days=3, enabled=False),
]


def event(event_type: str, **attributes: str) -> Event:
    return Event("e1", "u1", event_type, 1_600_000_000_000, attributes=attributes)


@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        (event("purchase", product="table"), True),  # the window rule's type and filter
        (event("purchase", product="chair"), False),  # only an aggregate rule counts it
        (event("purchase"), False),
        (event("app_open"), True),  # a date rule without a filter: every event of its type
        (event("app_open", screen="home"), True),
        (event("share"), True),  # a disabled rule may be enabled again: its events are kept
        (event("pageview"), False),  # no rule names it
    ],
)
def test_only_what_a_date_or_window_rule_names_is_kept(candidate: Event, kept: bool) -> None:
    assert TimeSeriesSelection(RULES, for_all_events=False).keeps(candidate) is kept


@pytest.mark.parametrize("event_type", ["purchase", "app_open", "pageview", "share"])
def test_for_all_events_keeps_every_event(event_type: str) -> None:
    assert TimeSeriesSelection(RULES, for_all_events=True).keeps(event(event_type, product="chair"))
    assert TimeSeriesSelection([], for_all_events=True).keeps(event(event_type))


def test_without_period_rules_nothing_is_kept() -> None:
    assert not TimeSeriesSelection(RULES[:1], for_all_events=False).keeps(event("purchase", product="table"))
