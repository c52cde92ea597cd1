"""docs/periods.md: the state of a date or window rule's period, per user, with pandas.

Values stay exact: the `value` and `sum` columns hold `decimal.Decimal` objects, never floats, summed at
DynamoDB's 38 digits (domain/numbers.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

import pandas as pd

from incremental_analytics.domain import numbers
from incremental_analytics.domain.outcomes import (
    EVIDENCE_EVENTS,
    Contribution,
    Outcome,
    OutcomeKind,
    make_outcome,
)
from incremental_analytics.domain.rules import Period, Rule, RuleType, epoch_ms

EVENT_COLUMNS = ("user_id", "event_id", "timestamp_ms", "value")
EVENT_KEY = ["user_id", "event_id"]  # docs/events.md: an event id names an event only within its identity


@dataclass(frozen=True, slots=True)
class PeriodResult:
    period: Period
    totals: pd.DataFrame  # index user_id; columns count (int), sum (Decimal), met (bool)
    qualified: frozenset[str]
    outcomes: tuple[Outcome, ...]


def empty_events() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in EVENT_COLUMNS}).astype({"timestamp_ms": "int64"})


def totals_per_user(events: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Count and exact sum per user of the events inside the period (each (user, event_id) once)."""
    inside = distinct_events(
        events[(events["timestamp_ms"] >= period.start_ms) & (events["timestamp_ms"] < period.end_ms)]
    )
    grouped = inside.groupby("user_id", sort=True)["value"]
    totals = pd.DataFrame({"count": grouped.size().astype("int64"), "sum": grouped.agg(_exact_sum)})
    totals.index.name = "user_id"
    return totals


def distinct_events(events: pd.DataFrame) -> pd.DataFrame:
    """Each event, (user, event_id), once. Rows of one event are normally copies of one record; should a producer
    reuse an id for records that differ, the earliest (then the smallest value) is kept, whatever order the rows
    were read in, so that no reading or batching order changes a period's figures."""
    ordered = events.sort_values([*EVENT_KEY, "timestamp_ms", "value"], kind="stable")
    return ordered.drop_duplicates(EVENT_KEY)


def _exact_sum(values: pd.Series) -> Decimal:
    return numbers.total(values)


def evaluate_period(
    rule: Rule,
    now: dt.datetime,
    events: pd.DataFrame,
    previously_qualified: Iterable[str] = (),
    *,
    occasion: str | None = None,
) -> PeriodResult:
    """Who meets a date or window rule at `now`, and what changed against the previously qualified set.

    `events`: the rule's matching events (columns user_id, event_id, timestamp_ms, value), possibly beyond the
    period (they are filtered here); rolled-up closed days and raw open days together. `occasion` names this
    evaluation in outcome ids (default: `now`).
    Candidates are users with at least one matching event in the period; a previously qualified user who no
    longer meets the rule, or is no longer a candidate, is disqualified.
    """
    if rule.type is RuleType.AGGREGATE:
        raise ValueError(f"rule {rule.rule_id} is an aggregate rule; it has no period")
    period = rule.period_at(now)
    totals = totals_per_user(events, period)
    totals = totals[totals["count"] > 0].copy()
    totals["met"] = _met(rule, totals)

    qualified = frozenset(totals.index[totals["met"]])
    before = frozenset(previously_qualified)
    occasion = occasion or now.astimezone(dt.UTC).isoformat()
    now_ms = epoch_ms(now)
    changed = (qualified - before) | (before - qualified)
    by_user = _contributions_by_user(events, period, changed)
    of_changed = totals[totals.index.isin(changed)]
    figures: dict[str, tuple[int, Decimal]] = {
        str(user): (int(count), cast(Decimal, total))
        for user, count, total in zip(of_changed.index, of_changed["count"], of_changed["sum"], strict=True)
    }
    outcomes: list[Outcome] = []
    for user_id, kind in sorted(
        [(user, OutcomeKind.QUALIFIED) for user in qualified - before]
        + [(user, OutcomeKind.DISQUALIFIED) for user in before - qualified]
    ):
        count, total = figures.get(user_id, (0, Decimal(0)))
        outcomes.append(
            make_outcome(
                rule,
                user_id,
                kind,
                occasion=occasion,
                occurred_at_ms=now_ms,
                checks=rule.check(count, total),
                count=count,
                total=total,
                contributions=by_user.get(user_id, ()),
                period=period,
            )
        )
    return PeriodResult(period, totals, qualified, tuple(outcomes))


def _met(rule: Rule, totals: pd.DataFrame) -> pd.Series:
    """Every configured condition, per user (count AND sum), compared exactly."""
    met = pd.Series(True, index=totals.index, dtype=bool)
    for column, condition in (("count", rule.count), ("sum", rule.sum)):
        if condition is not None:
            op, target = condition.operator, condition.target
            met &= totals[column].map(lambda value, op=op, target=target: op.holds(value, target)).astype(bool)
    return met


def _contributions_by_user(
    events: pd.DataFrame, period: Period, users: frozenset[str]
) -> dict[str, tuple[Contribution, ...]]:
    """The latest contributing events of the given users, for evidence."""
    if not users:
        return {}
    inside = distinct_events(
        events[
            events["user_id"].isin(users)
            & (events["timestamp_ms"] >= period.start_ms)
            & (events["timestamp_ms"] < period.end_ms)
        ]
    )
    latest = inside.sort_values(["user_id", "timestamp_ms", "event_id"]).groupby("user_id").tail(EVIDENCE_EVENTS)
    return {
        str(user_id): tuple(
            Contribution(str(event_id), int(timestamp_ms), cast(Decimal, value))
            for event_id, timestamp_ms, value in zip(rows["event_id"], rows["timestamp_ms"], rows["value"], strict=True)
        )
        for user_id, rows in latest.groupby("user_id")
    }


# -- which days an evaluation reads, and how ----------------------------------------------------------------

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The UTC days (of the time-series layout) an evaluation of a rule at `now` covers.

    `closed` days are past the lateness allowance: their events are rolled up once per rule into Parquet and
    read from there; `open` days may still receive late events and are read from the time-series table.
    `closes`: this is a date rule's final evaluation (its finish date plus the allowance has passed).
    """

    closed: tuple[dt.date, ...]
    open: tuple[dt.date, ...]
    closes: bool


def utc_day(timestamp_ms: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=timestamp_ms // DAY_MS)


def plan_days(rule: Rule, now: dt.datetime, lateness: dt.timedelta) -> DayPlan:
    """Events are accepted up to a day ahead of processing time, so a period is read up to a day past `now`."""
    period = rule.period_at(now)
    now_ms = epoch_ms(now)
    lateness_ms = lateness // dt.timedelta(milliseconds=1)
    last_ms = min(period.end_ms, now_ms + DAY_MS) - 1
    closed: list[dt.date] = []
    opened: list[dt.date] = []
    day = utc_day(period.start_ms)
    while last_ms >= period.start_ms and day <= utc_day(last_ms):
        day_end_ms = epoch_ms(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC))
        (closed if day_end_ms + lateness_ms <= now_ms else opened).append(day)
        day += dt.timedelta(days=1)
    closes = rule.type is RuleType.DATE and period.end_ms + lateness_ms <= now_ms
    return DayPlan(tuple(closed), tuple(opened), closes)


def latest_endpoints(events: pd.DataFrame, users: Iterable[str]) -> dict[str, str | None]:
    """The endpoint on each user's latest event (the Pinpoint sink's first choice), or None."""
    wanted = events[events["user_id"].isin(set(users))]
    if wanted.empty or "endpoint_id" not in wanted:
        return {}
    latest = wanted.sort_values(["timestamp_ms", "event_id"]).groupby("user_id").tail(1)
    return {
        str(user): (None if pd.isna(endpoint) else str(endpoint))
        for user, endpoint in zip(latest["user_id"], latest["endpoint_id"], strict=True)
    }
