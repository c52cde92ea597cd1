"""Rules as data: the typed model of docs/rules.md, and the small pure functions over it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from incremental_analytics.domain.numbers import json_number, to_decimal


class RuleType(StrEnum):
    AGGREGATE = "aggregate"
    DATE = "date"
    WINDOW = "window"


class Operator(StrEnum):
    EQUAL = "equal"
    NOT_EQUAL = "not_equal"
    GREATER = "greater"
    GREATER_OR_EQUAL = "greater_or_equal"
    LESS = "less"
    LESS_OR_EQUAL = "less_or_equal"

    def holds(self, actual: Decimal | int, target: Decimal | int) -> bool:
        return _COMPARE[self](actual, target)


_COMPARE: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.EQUAL: operator.eq,
    Operator.NOT_EQUAL: operator.ne,
    Operator.GREATER: operator.gt,
    Operator.GREATER_OR_EQUAL: operator.ge,
    Operator.LESS: operator.lt,
    Operator.LESS_OR_EQUAL: operator.le,
}


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class CountCondition:
    operator: Operator
    target: int


@dataclass(frozen=True, slots=True)
class SumCondition:
    operator: Operator
    target: Decimal
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """One condition of a rule checked against actual figures: the evidence of why a rule held or not."""

    on: str  # "count" or "sum"
    operator: Operator
    target: Decimal | int
    actual: Decimal | int
    holds: bool


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval of event time, [start, end), in epoch milliseconds."""

    start_ms: int
    end_ms: int
    timezone: str

    def contains(self, timestamp_ms: int) -> bool:
        return self.start_ms <= timestamp_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    type: RuleType
    event_type: str
    count: CountCondition | None = None
    sum: SumCondition | None = None
    attribute: AttributeFilter | None = None
    reset: bool = False
    start_date: dt.date | None = None
    finish_date: dt.date | None = None
    timezone: str = "UTC"
    days: int | None = None
    output: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.output:
            object.__setattr__(self, "output", default_output(self.type, self.event_type, self.attribute))

    # -- matching and values -------------------------------------------------------------------------------

    def matches(self, event_type: str, attributes: Mapping[str, str]) -> bool:
        if event_type != self.event_type:
            return False
        return self.attribute is None or attributes.get(self.attribute.name) == self.attribute.value

    def value_of(self, metrics: Mapping[str, Decimal]) -> Decimal:
        """docs/events.md: the named metric (0 when absent), else the event's first metric in key order, else 0."""
        if self.sum is not None and self.sum.metric is not None:
            return metrics.get(self.sum.metric, Decimal(0))
        return next(iter(metrics.values()), Decimal(0))

    # -- conditions ----------------------------------------------------------------------------------------

    def check(self, count: int, total: Decimal) -> tuple[ConditionCheck, ...]:
        checks: list[ConditionCheck] = []
        if self.count is not None:
            c = self.count
            checks.append(ConditionCheck("count", c.operator, c.target, count, c.operator.holds(count, c.target)))
        if self.sum is not None:
            s = self.sum
            checks.append(ConditionCheck("sum", s.operator, s.target, total, s.operator.holds(total, s.target)))
        return tuple(checks)

    def is_met(self, count: int, total: Decimal) -> bool:
        """Every configured condition holds (count AND sum)."""
        return all(check.holds for check in self.check(count, total))

    # -- periods -------------------------------------------------------------------------------------------

    def period_at(self, now: dt.datetime) -> Period:
        """The event-time period this date or window rule covers when evaluated at `now` (an aware datetime)."""
        if self.type is RuleType.DATE:
            assert self.start_date is not None and self.finish_date is not None
            zone = ZoneInfo(self.timezone)
            start = dt.datetime.combine(self.start_date, dt.time(), zone)
            end = dt.datetime.combine(self.finish_date + dt.timedelta(days=1), dt.time(), zone)
            return Period(epoch_ms(start), epoch_ms(end), self.timezone)
        if self.type is RuleType.WINDOW:
            assert self.days is not None
            end_ms = epoch_ms(now)
            return Period(end_ms - self.days * 86_400_000, end_ms, "UTC")
        raise ValueError(f"an {self.type} rule has no period")

    # -- identity ------------------------------------------------------------------------------------------

    @property
    def counting_identity(self) -> str:
        """docs/rules.md: a fingerprint of what the counters mean. Changing it purges the rule's counters."""
        identity = {
            "type": self.type.value,
            "event_type": self.event_type,
            "attribute": None if self.attribute is None else [self.attribute.name, self.attribute.value],
            "metric": None if self.sum is None else self.sum.metric,
            "reset": self.reset,
            "start_date": None if self.start_date is None else self.start_date.isoformat(),
            "finish_date": None if self.finish_date is None else self.finish_date.isoformat(),
            "days": self.days,
            "timezone": self.timezone if self.type is RuleType.DATE else None,
        }
        return short_hash(identity, 16)

    def to_dict(self) -> dict[str, Any]:
        """The rule in the rules-file form (docs/rules.md), with every default written out."""
        data: dict[str, Any] = {
            "rule_id": self.rule_id,
            "type": self.type.value,
            "event_type": self.event_type,
        }
        if self.attribute is not None:
            data["attribute"] = {"name": self.attribute.name, "value": self.attribute.value}
        if self.count is not None:
            data["count"] = {"operator": self.count.operator.value, "target": self.count.target}
        if self.sum is not None:
            data["sum"] = {"operator": self.sum.operator.value, "target": json_number(self.sum.target)}
            if self.sum.metric is not None:
                data["sum"]["metric"] = self.sum.metric
        if self.type is RuleType.AGGREGATE:
            data["reset"] = self.reset
        if self.type is RuleType.DATE:
            assert self.start_date is not None and self.finish_date is not None
            data["start_date"] = self.start_date.isoformat()
            data["finish_date"] = self.finish_date.isoformat()
            data["timezone"] = self.timezone
        if self.type is RuleType.WINDOW:
            data["days"] = self.days
        data["output"] = self.output
        data["enabled"] = self.enabled
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Build a rule from an already validated rules-file entry (see rules_loading for validation)."""
        attribute = data.get("attribute")
        count = data.get("count")
        total = data.get("sum")
        start, finish = data.get("start_date"), data.get("finish_date")
        return cls(
            rule_id=data["rule_id"],
            type=RuleType(data["type"]),
            event_type=data["event_type"],
            attribute=None if attribute is None else AttributeFilter(attribute["name"], attribute["value"]),
            count=None if count is None else CountCondition(Operator(count["operator"]), int(count["target"])),
            sum=None
            if total is None
            else SumCondition(Operator(total["operator"]), to_decimal(total["target"]), total.get("metric")),
            reset=bool(data.get("reset", False)),
            start_date=None if start is None else dt.date.fromisoformat(start),
            finish_date=None if finish is None else dt.date.fromisoformat(finish),
            timezone=data.get("timezone", "UTC"),
            days=data.get("days"),
            output=data.get("output", ""),
            enabled=bool(data.get("enabled", True)),
        )


_OUTPUT_PREFIX = {RuleType.AGGREGATE: "trk_", RuleType.DATE: "trk_date_", RuleType.WINDOW: "trk_window_"}


def default_output(rule_type: RuleType, event_type: str, attribute: AttributeFilter | None) -> str:
    name = _OUTPUT_PREFIX[rule_type] + event_type
    return name if attribute is None else f"{name}_{attribute.value}"


def epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no instant; give it a timezone")
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_epoch_ms(timestamp_ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=timestamp_ms)


def iso_ms(timestamp_ms: int) -> str:
    """An epoch-ms instant as ISO-8601 UTC with milliseconds, e.g. 2021-01-28T16:00:00.123Z."""
    return from_epoch_ms(timestamp_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_instant(moment: dt.datetime) -> str:
    """An aware datetime in the same form as iso_ms."""
    return iso_ms(epoch_ms(moment))


def parse_instant(text: str) -> dt.datetime:
    """ISO-8601 text with a UTC offset (or Z), as an aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(dt.UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    # Decimals come from JSON number literals with a fraction or exponent: hash them as the float they read as.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def short_hash(value: Any, length: int = 32) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
