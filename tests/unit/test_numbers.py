"""docs/events.md: values and sums are exact while they fit DynamoDB's 38 digits, and never an error beyond."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from decimal import Decimal

import pandas as pd
import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from incremental_analytics.adapters.dynamodb_items import counter_from_item, item_to_dynamo
from incremental_analytics.domain import numbers
from incremental_analytics.domain.numbers import LARGEST, SMALLEST, add, is_storable, json_number, storable, total
from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.periods import evaluate_period
from incremental_analytics.domain.replay import CounterState, replay
from incremental_analytics.domain.rules import Operator, Rule, RuleType, SumCondition, epoch_ms
from tests.unit.helpers import event

BIG = "1000000000000000000000000000000.5"  # 31 significant digits
SPEND = Rule("spend", RuleType.AGGREGATE, "purchase", sum=SumCondition(Operator.GREATER, Decimal("1e30")))


def test_the_issue_case_is_exact_where_the_default_context_rounds() -> None:
    assert Decimal(BIG) + Decimal("0.25") == Decimal("1E+30")  # Python's 28-digit default: the bug
    assert add(Decimal(BIG), Decimal("0.25")) == Decimal("1000000000000000000000000000000.75")
    assert decimal.getcontext().prec == 28  # nothing here changes the thread's context


def test_exact_up_to_38_significant_digits_then_rounded_half_even() -> None:
    nines = Decimal("9" * 37)  # 37 digits
    assert add(nines, Decimal("0.9")) == Decimal("9" * 37 + ".9")  # 38 digits: exact
    assert add(nines, Decimal("0.95")) == Decimal("1" + "0" * 37)  # 39 digits: rounded to 38
    assert add(Decimal("1" + "0" * 37), Decimal("0.5")) == Decimal("1" + "0" * 37)  # half to even
    assert add(Decimal("1" + "0" * 36 + "1"), Decimal("0.5")) == Decimal("1" + "0" * 36 + "2")  # 1.5 to 2


def test_beyond_dynamodbs_magnitudes_a_sum_saturates_and_a_tiny_one_becomes_zero() -> None:
    assert add(LARGEST, LARGEST) == LARGEST
    assert add(LARGEST.copy_negate(), Decimal("-1e125")) == LARGEST.copy_negate()
    assert add(LARGEST, Decimal(-1)) == LARGEST  # 38 digits cannot show the 1
    assert add(LARGEST, Decimal("-1e125")) == Decimal("8.9999999999999999999999999999999999999E+125")
    tiny = Decimal("1.000000000000000000000000000000000001E-130")
    assert add(tiny, Decimal("-1E-130")) == 0  # 1E-166: below what DynamoDB stores
    assert storable(Decimal("Infinity")) == LARGEST and storable(Decimal("-Infinity")) == LARGEST.copy_negate()
    assert is_storable(LARGEST) and is_storable(SMALLEST) and is_storable(Decimal(0))
    assert not is_storable(Decimal("1e126")) and not is_storable(Decimal("1e-131"))
    assert not is_storable(Decimal("1" * 39)) and is_storable(Decimal("1" * 38 + "0" * 50))


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False, places=None), max_size=30))
def test_every_sum_of_finite_values_is_storable_by_dynamodb(values: list[Decimal]) -> None:
    result = total(storable(numbers.CONTEXT.plus(value)) for value in values)
    assert is_storable(result)
    TypeSerializer().serialize(result)  # boto3 refuses (raises) what DynamoDB cannot store exactly


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal(5), 5),
        (Decimal("1E+30"), 10**30),
        (Decimal("19.99"), 19.99),
        (Decimal("0.1"), 0.1),
        (Decimal("1000000000000000000000000000000.75"), "1000000000000000000000000000000.75"),
        (Decimal("0.12345678901234567890"), "0.12345678901234567890"),
        (LARGEST, int(LARGEST)),
    ],
)
def test_json_numbers_never_lose_a_digit(value: Decimal, expected: object) -> None:
    shown = json_number(value)
    assert shown == expected and type(shown) is type(expected)
    assert Decimal(str(json.loads(json.dumps(shown)))) == value


def test_the_replay_counts_the_issue_case_and_qualifies_over_1e30() -> None:
    exact = replay(CounterState(), SPEND, "u1", [event(1, value=BIG), event(2, value="0.25")]).state.sum
    assert exact == Decimal("1000000000000000000000000000000.75")
    # 1e30 + 0.25 is greater than 1e30 only when the 0.25 is kept (the 28-digit context dropped it).
    events = [event(1, event_type="purchase", value="1e30"), event(2, event_type="purchase", value="0.25")]
    result = replay(CounterState(), SPEND, "u1", events)
    (qualified,) = result.outcomes
    assert qualified.kind is OutcomeKind.QUALIFIED and qualified.evidence["count"] == 2
    assert qualified.evidence["sum"] == "1000000000000000000000000000000.25"
    assert qualified.evidence["conditions"][0]["actual"] == "1000000000000000000000000000000.25"
    assert [e["value"] for e in qualified.evidence["events"]] == [10**30, 0.25]


def test_a_saturated_sum_is_stored_and_read_back_and_still_compares() -> None:
    huge = Rule("huge", RuleType.AGGREGATE, "purchase", sum=SumCondition(Operator.GREATER, Decimal("9e125")))
    events = [event(n, event_type="purchase", value="9e125") for n in range(1, 4)]
    result = replay(CounterState(), huge, "u1", events)
    assert result.state.sum == LARGEST and len(result.outcomes) == 1
    stored = item_to_dynamo({"identity": "i", "version": 1, "recent": {}, "st": {"sum": result.state.sum}})
    state = counter_from_item(stored, "i").state
    assert state.sum == LARGEST


def test_a_date_rule_sums_exactly_with_pandas() -> None:
    rule = Rule(
        "spend",
        RuleType.DATE,
        "purchase",
        sum=SumCondition(Operator.GREATER, Decimal("1e30")),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 1, 31),
    )
    at = epoch_ms(dt.datetime(2021, 1, 10, tzinfo=dt.UTC))
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "event_id": ["a", "b", "c"],
            "timestamp_ms": [at, at + 1, at],
            "value": [Decimal(BIG), Decimal("0.25"), Decimal("1e30")],
        }
    )
    result = evaluate_period(rule, dt.datetime(2021, 2, 5, tzinfo=dt.UTC), events)
    assert result.totals.loc["u1", "sum"] == Decimal("1000000000000000000000000000000.75")
    assert result.qualified == {"u1"}  # u2's 1e30 is not greater than 1e30
    (outcome,) = result.outcomes
    assert outcome.evidence["sum"] == "1000000000000000000000000000000.75"
