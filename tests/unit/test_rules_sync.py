"""docs/rules.md: what a rules file changes, and what each change sets off."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from incremental_analytics.domain.rules import (
    AttributeFilter,
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
)
from incremental_analytics.domain.rules_sync import classify_change, diff_rules

CLICKS = Rule("clicks", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 3))
SPEND = Rule(
    "spend",
    RuleType.DATE,
    "purchase",
    sum=SumCondition(Operator.GREATER, Decimal(500)),
    start_date=dt.date(2021, 1, 1),
    finish_date=dt.date(2021, 1, 31),
)


def test_a_file_is_the_whole_rule_set() -> None:
    raised = dataclasses.replace(CLICKS, count=CountCondition(Operator.GREATER, 5))
    opens = Rule("opens", RuleType.WINDOW, "app_open", count=CountCondition(Operator.GREATER, 1), days=7)
    found = diff_rules([CLICKS, SPEND], [raised, opens])
    assert found.created == (opens,) and found.changed == (raised,) and found.deleted == ("spend",)
    assert found.unchanged == () and found.changes_anything
    same = diff_rules([CLICKS, SPEND], [SPEND, CLICKS])
    assert same.unchanged == ("spend", "clicks") and not same.changes_anything


@pytest.mark.parametrize(
    ("change", "purge"),
    [
        ({"count": CountCondition(Operator.GREATER_OR_EQUAL, 9)}, False),
        ({"output": "vip"}, False),
        ({"enabled": False}, False),
        ({"attribute": AttributeFilter("product", "table")}, True),
        ({"event_type": "tap"}, True),
        ({"reset": True}, True),
        ({"sum": SumCondition(Operator.GREATER, Decimal(1), "price")}, True),  # a metric changes what is summed
    ],
)
def test_only_a_new_counting_identity_purges(change: dict[str, object], purge: bool) -> None:
    result = classify_change("clicks", CLICKS, dataclasses.replace(CLICKS, **change))  # type: ignore[arg-type]
    assert result is not None and result.kind == "changed" and result.purge is purge and not result.evaluate


def test_deleted_created_and_rewritten_rules() -> None:
    deleted = classify_change("clicks", CLICKS, None)
    assert deleted is not None and (deleted.kind, deleted.purge, deleted.kept_identity) == ("deleted", True, None)
    created = classify_change("spend", None, SPEND)
    assert created is not None and (created.kind, created.purge, created.evaluate) == ("created", False, True)
    assert classify_change("spend", SPEND, SPEND) is None
    new_dates = dataclasses.replace(SPEND, finish_date=dt.date(2021, 2, 28))
    moved = classify_change("spend", SPEND, new_dates)
    assert moved is not None and moved.purge and moved.evaluate
    disabled = classify_change("spend", SPEND, dataclasses.replace(SPEND, enabled=False))
    assert disabled is not None and not disabled.evaluate and not disabled.purge


def test_a_sync_is_planned_as_pages_of_table_writes_and_a_bounded_summary() -> None:
    from incremental_analytics.adapters.rules_files import WRITES_PER_PAGE
    from incremental_analytics.handlers.rules_sync import RULE_IDS_LISTED, plan_sync

    current = [dataclasses.replace(CLICKS, rule_id=f"old-{n:03d}") for n in range(130)] + [CLICKS]
    wanted = [dataclasses.replace(CLICKS, rule_id=f"new-{n:03d}") for n in range(120)] + [CLICKS]
    pages, summary = plan_sync(current, wanted, dt.datetime(2021, 1, 1, tzinfo=dt.UTC), "Rules")
    requests = [request for page in pages for request in page["Rules"]]
    assert [len(page["Rules"]) for page in pages] == [WRITES_PER_PAGE] * 10
    assert [r["PutRequest"]["Item"]["rule_id"]["S"] for r in requests[:120]] == [f"new-{n:03d}" for n in range(120)]
    assert [r["DeleteRequest"]["Key"] for r in requests[120:]] == [
        {"rule_id": {"S": f"old-{n:03d}"}} for n in range(130)
    ]
    assert summary["counts"] == {"created": 120, "changed": 0, "deleted": 130, "unchanged": 1}
    assert len(summary["created"]) == len(summary["deleted"]) == RULE_IDS_LISTED and summary["unchanged"] == 1
    assert plan_sync([CLICKS], [CLICKS], dt.datetime(2021, 1, 1, tzinfo=dt.UTC), "Rules")[0] == []
