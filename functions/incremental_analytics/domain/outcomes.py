"""Outcomes (docs/delivery.md): what happened to a user on a rule, why, with an id a retry cannot duplicate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from incremental_analytics.domain.numbers import json_number
from incremental_analytics.domain.rules import ConditionCheck, Period, Rule, iso_ms, short_hash

EVIDENCE_EVENTS = 20


class OutcomeKind(StrEnum):
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    REACHED = "reached"


@dataclass(frozen=True, slots=True)
class Contribution:
    """One event's part in a count and sum."""

    event_id: str
    timestamp_ms: int
    value: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "timestamp": iso_ms(self.timestamp_ms),
            "value": json_number(self.value),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome_id: str
    kind: OutcomeKind
    user_id: str
    rule_id: str
    output: str
    cycle: int | None
    occurred_at: str
    evidence: Mapping[str, Any]
    execution: str | None = field(default=None, compare=False)

    def with_execution(self, execution: str) -> Outcome:
        return replace(self, execution=execution)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome_id": self.outcome_id,
            "kind": self.kind.value,
            "user_id": self.user_id,
            "rule_id": self.rule_id,
            "output": self.output,
            "cycle": self.cycle,
            "occurred_at": self.occurred_at,
            "evidence": dict(self.evidence),
            "execution": self.execution,
        }


def outcome_id(rule: Rule, user_id: str, kind: OutcomeKind, occasion: int | str | None) -> str:
    """Deterministic: the same rule (and counting identity), user, kind and cycle or period give the same id."""
    return short_hash([rule.rule_id, rule.counting_identity, user_id, kind.value, occasion])


def make_outcome(
    rule: Rule,
    user_id: str,
    kind: OutcomeKind,
    *,
    occasion: int | str | None,
    occurred_at_ms: int,
    checks: Sequence[ConditionCheck],
    count: int,
    total: Decimal,
    contributions: Sequence[Contribution],
    period: Period | None = None,
) -> Outcome:
    return Outcome(
        outcome_id=outcome_id(rule, user_id, kind, occasion),
        kind=kind,
        user_id=user_id,
        rule_id=rule.rule_id,
        output=rule.output,
        cycle=occasion if kind is OutcomeKind.REACHED and isinstance(occasion, int) else None,
        occurred_at=iso_ms(occurred_at_ms),
        evidence=evidence(rule, checks=checks, count=count, total=total, contributions=contributions, period=period),
    )


def evidence(
    rule: Rule,
    *,
    checks: Sequence[ConditionCheck],
    count: int,
    total: Decimal,
    contributions: Sequence[Contribution],
    period: Period | None,
) -> dict[str, Any]:
    """Why: the conditions against the figures that met them (or not), the period, the contributing events.

    `contributions` are the latest contributing events (at most EVIDENCE_EVENTS are kept); `count` is their total.
    """
    shown = contributions[-EVIDENCE_EVENTS:]
    return {
        "rule": {
            "type": rule.type.value,
            "event_type": rule.event_type,
            "attribute": None
            if rule.attribute is None
            else {"name": rule.attribute.name, "value": rule.attribute.value},
            "reset": rule.reset,
            "counting_identity": rule.counting_identity,
        },
        "conditions": [
            {
                "on": check.on,
                "operator": check.operator.value,
                "target": json_number(check.target),
                "actual": json_number(check.actual),
                "holds": check.holds,
            }
            for check in checks
        ],
        "count": count,
        "sum": json_number(total),
        "period": None
        if period is None
        else {"start": iso_ms(period.start_ms), "end": iso_ms(period.end_ms), "timezone": period.timezone},
        "events": [contribution.to_dict() for contribution in shown],
        "events_total": count,
        "events_truncated": count > len(shown),
    }
