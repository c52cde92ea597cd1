"""Small builders shared by the pure tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import Outcome, OutcomeKind, make_outcome
from incremental_analytics.domain.rules import Operator, Rule, RuleType, SumCondition

BASE_MS = 1_612_130_400_000  # 2021-01-31T22:00:00Z

# A function's environment with what Settings requires and nothing else.
ENVIRONMENT = {
    "RULES_TABLE": "rules",
    "COUNTERS_TABLE": "counters",
    "AUDIT_TABLE": "audit",
    "TIMESERIES_TABLE": "ts",
    "DATA_BUCKET": "bucket",
    "EVENT_BUS_NAME": "bus",
}


def first_outcome(rule: Rule, user: str, kind: OutcomeKind) -> Outcome:
    """The outcome a rule's first event causes (count 1, no evidence events)."""
    return make_outcome(
        rule,
        user,
        kind,
        occasion=1 if kind is OutcomeKind.REACHED else None,
        occurred_at_ms=1_600_000_000_000,
        checks=rule.check(1, Decimal(0)),
        count=1,
        total=Decimal(0),
        contributions=(),
    )


# The 2021 guide's case 3: greenbutton events whose metric sums over 500 from 2021-01-01 to 2021-02-01.
GREENBUTTON_DATE = Rule(
    "date-greenbutton",
    RuleType.DATE,
    "greenbutton",
    sum=SumCondition(Operator.GREATER, Decimal(500)),
    start_date=dt.date(2021, 1, 1),
    finish_date=dt.date(2021, 2, 1),
)


def event(
    n: int,
    *,
    user: str = "u1",
    event_type: str = "click",
    value: str | None = None,
    attributes: dict[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> Event:
    return Event(
        event_id=f"{user}-{event_type}-{n}",
        user_id=user,
        event_type=event_type,
        timestamp_ms=BASE_MS + n * 1000 if timestamp_ms is None else timestamp_ms,
        attributes=attributes or {},
        metrics={} if value is None else {"price": Decimal(value)},
    )
