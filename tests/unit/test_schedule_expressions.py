"""When an emulated EventBridge Scheduler schedule fires next (pipes.next_fire), per "Schedule types on
EventBridge Scheduler": rate(), at() and cron() with six fields, day-of-week 1-7 = SUN-SAT."""

from __future__ import annotations

import datetime as dt

import pytest

from incremental_analytics_local.pipes import ScheduleExpressionError, next_fire

START = dt.datetime(2021, 3, 1, 10, 17, 30, tzinfo=dt.UTC)  # a Monday


def _at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(1 hour)", _at(2021, 3, 1, 11, 17, 30)),
        ("rate(5 minutes)", _at(2021, 3, 1, 10, 22, 30)),
        ("rate(2 days)", _at(2021, 3, 3, 10, 17, 30)),
        ("at(2021-03-02T00:00:00)", _at(2021, 3, 2)),
        ("at(2021-03-01T10:00:00)", None),  # passed: it never fires again
        ("cron(0 * * * ? *)", _at(2021, 3, 1, 11)),
        ("cron(15,45 * * * ? *)", _at(2021, 3, 1, 10, 45)),
        ("cron(0/20 8-17 ? * MON-FRI *)", _at(2021, 3, 1, 10, 20)),
        ("cron(0 9 ? * SAT *)", _at(2021, 3, 6, 9)),
        ("cron(0 9 ? * 1 *)", _at(2021, 3, 7, 9)),  # 1 is Sunday
        ("cron(30 0 1 * ? *)", _at(2021, 4, 1, 0, 30)),
        ("cron(0 12 29 FEB ? *)", _at(2024, 2, 29, 12)),
        ("cron(0 0 1 1 ? 2020)", None),
    ],
)
def test_the_next_time_a_schedule_fires(expression: str, expected: dt.datetime | None) -> None:
    assert next_fire(expression, START) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("cron(0 12 L * ? *)", "L, W and # are not emulated"),
        ("cron(0 12 ? * 6#3 *)", "L, W and # are not emulated"),
        ("cron(0 12 1 * MON *)", "day-of-month or day-of-week must be ?"),
        ("cron(0 12 * * * *)", "day-of-month or day-of-week must be ?"),
        ("cron(0 25 * * ? *)", "out of range"),
        ("cron(0 12 * *)", "6 fields"),
        ("rate(0 minutes)", "at least 1"),
        ("every hour", "not a rate(), at() or cron() expression"),
    ],
)
def test_an_expression_it_cannot_run_is_refused_with_the_reason(expression: str, problem: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        next_fire(expression, START)
