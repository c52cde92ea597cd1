"""Rules files: JSON, YAML and the Honeycode CSV layout, with every problem reported at once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from incremental_analytics.domain.honeycode import load_honeycode_csv
from incremental_analytics.domain.rules import (
    AttributeFilter,
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
)
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file

HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)


def test_the_sample_honeycode_csv_loads_to_the_expected_rules(samples: Path) -> None:
    rules = load_rules_file("honeycode_rules.csv", (samples / "honeycode_rules.csv").read_bytes())
    assert rules == [
        Rule("aggregate-pageview", RuleType.AGGREGATE, "pageview", count=CountCondition(Operator.GREATER, 3)),
        Rule(
            "date-purchase-product-table",
            RuleType.DATE,
            "purchase",
            attribute=AttributeFilter("product", "table"),
            count=CountCondition(Operator.GREATER, 3),
            sum=SumCondition(Operator.GREATER, Decimal(180)),
            start_date=dt.date(2021, 1, 1),
            finish_date=dt.date(2021, 2, 28),
        ),
        Rule(
            "aggregate-greenbutton",
            RuleType.AGGREGATE,
            "greenbutton",
            count=CountCondition(Operator.GREATER, 5),
        ),
        Rule(
            "aggregate-redbutton",
            RuleType.AGGREGATE,
            "redbutton",
            count=CountCondition(Operator.GREATER, 3),
            reset=True,
        ),
        Rule(
            "date-greenbutton",
            RuleType.DATE,
            "greenbutton",
            sum=SumCondition(Operator.GREATER, Decimal(500)),
            start_date=dt.date(2021, 1, 1),
            finish_date=dt.date(2021, 2, 1),
        ),
    ]
    assert [rule.output for rule in rules] == [
        "trk_pageview",
        "trk_date_purchase_table",
        "trk_greenbutton",
        "trk_redbutton",
        "trk_date_greenbutton",
    ]


def test_a_csv_reports_every_problem_with_row_and_column_at_once() -> None:
    csv = (
        "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
        "ResetWhenReachTarget,StartDate,Key\n"
        "aggregator,pageview,na,999,bigger,3,na,999,no,9999-99-99,k1\n"
        "aggregator,click,na,999,greater,three,na,999,no,9999-99-99,k2\n"
        "date,purchase,na,999,greater,3,na,999,no,2021-02-29,k3\n"
        "aggregator,greenbutton,na,999,greater,5,na,999,no,9999-99-99,k4\n"
    )
    with pytest.raises(RulesError) as raised:
        load_honeycode_csv(csv)
    assert raised.value.problems == [
        "row 1, column FinishDate: missing column",
        "row 2, column Operator-C: 'bigger' is not an operator (greater, smaller, equal, na, ...)",
        "row 3, column Target-C: 'three' is not a whole number",
        "row 4, column StartDate: '2021-02-29' is not a calendar date (YYYY-MM-DD)",
    ]


def test_a_missing_cell_of_a_date_row_is_reported_on_its_column() -> None:
    with pytest.raises(RulesError) as raised:
        load_honeycode_csv(HEADER + "date,greenbutton,na,999,na,999,greater,500,no,2021-01-01\n")
    assert raised.value.problems == ["row 2, column FinishDate: is required for date rules"]


def test_header_names_match_loosely_and_key_may_be_missing() -> None:
    csv = (
        "rule type,event_name,attribute name,ATTRIBUTE-VALUE,operator c,target c,operator v,target v,"
        "ResetWhenReached,start date,finish date\n"
        "\n"
        "aggregator,redbutton,color,red,na,999,smaller,10.5,yes,9999-99-99,9999-99-99\n"
        ",,,,,,,,,,\n"
    )
    (rule,) = load_honeycode_csv(csv)
    assert rule.rule_id == "aggregate-redbutton-color-red"
    assert rule.attribute == AttributeFilter("color", "red")
    assert rule.count is None
    assert rule.sum == SumCondition(Operator.LESS, Decimal("10.5"))
    assert rule.reset is True
    assert rule.output == "trk_redbutton_red"


def test_reset_on_a_date_row_is_ignored_as_in_2021() -> None:
    (rule,) = load_honeycode_csv(HEADER + "date,purchase,na,999,greater,3,na,999,yes,2021-01-01,2021-01-31,x\n")
    assert rule.type is RuleType.DATE and rule.reset is False


def test_an_unknown_rule_type_and_an_unknown_column_are_reported() -> None:
    with pytest.raises(RulesError) as raised:
        load_honeycode_csv(HEADER.replace(",Key", ",Key,Colour") + "weekly,x,na,999,greater,3,na,999,no,,,k,red\n")
    assert raised.value.problems == [
        "row 1, column Colour: unknown column",
        "row 2, column RuleType: 'weekly' is not a rule type (aggregator or date)",
    ]


def test_duplicate_rules_in_a_csv_are_an_error() -> None:
    with pytest.raises(RulesError) as raised:
        load_honeycode_csv(
            HEADER
            + "aggregator,click,na,999,greater,3,na,999,no,,,a\n"
            + "aggregator,click,na,999,greater,5,na,999,no,,,b\n"
        )
    assert raised.value.problems == ["row 3, column EventName: duplicate rule_id 'aggregate-click' (also row 2)"]


def test_a_row_with_no_condition_is_reported_on_its_row() -> None:
    with pytest.raises(RulesError) as raised:
        load_honeycode_csv(HEADER + "aggregator,click,na,999,na,999,na,999,no,,,a\n")
    assert raised.value.problems == ["row 2, column RuleType: needs a count or a sum condition (or both)"]


def test_json_list_and_object_forms_load_the_same() -> None:
    rule = '{"rule_id": "r", "type": "aggregate", "event_type": "x", "sum": {"operator": "greater", "target": 19.99}}'
    as_list = load_rules_file("rules.json", f"[{rule}]")
    as_object = load_rules_file("rules.json", f'{{"rules": [{rule}]}}')
    assert as_list == as_object
    assert as_list[0].sum == SumCondition(Operator.GREATER, Decimal("19.99"))


def test_yaml_with_unquoted_dates_loads() -> None:
    text = """
rules:
  - rule_id: spend
    type: date
    event_type: purchase
    sum: {operator: greater, target: 500.5, metric: price}
    start_date: 2021-01-01
    finish_date: 2021-02-28
    timezone: America/New_York
"""
    (rule,) = load_rules_file("rules.yaml", text)
    assert rule.start_date == dt.date(2021, 1, 1)
    assert rule.sum == SumCondition(Operator.GREATER, Decimal("500.5"), "price")
    assert rule.timezone == "America/New_York"


def test_every_problem_of_a_json_file_is_listed_with_its_path() -> None:
    text = """[
      {"rule_id": "a", "type": "aggregate", "event_type": "x", "count": {"operator": "more", "target": 1}},
      {"rule_id": "a", "type": "window", "event_type": "y", "sum": {"operator": "less", "target": 3}},
      {"rule_id": "c", "type": "date", "event_type": "trk_z", "count": {"operator": "equal", "target": 1},
       "start_date": "2021-03-01", "finish_date": "2021-02-01"}
    ]"""
    with pytest.raises(RulesError) as raised:
        load_rules_file("rules.json", text)
    assert raised.value.problems == [
        "rules[0].count.operator: 'more' is not one of "
        "equal, not_equal, greater, greater_or_equal, less, less_or_equal",
        "rules[1].days: is required for window rules",
        "rules[1].rule_id: duplicate rule_id 'a' (also rules[0])",
        "rules[2].event_type: must not start with trk_ (those are the product's own outputs)",
        "rules[2].finish_date: 2021-02-01 is before start_date 2021-03-01",
    ]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("rules.json", "{not json", "line 1, column 2: not valid JSON"),
        ("rules.json", '{"rule": []}', "the file must hold a list of rules"),
        ("rules.json", '{"rules": [], "extra": 1}', "extra: unknown top-level key"),
        ("rules.json", "[1]", "rules[0]: must be an object"),
        ("rules.yaml", "rules: [a: b", "not valid YAML"),
        ("rules.csv", "", "no rules: the file is empty"),
    ],
)
def test_unreadable_files_give_a_clear_problem(name: str, text: str, problem: str) -> None:
    with pytest.raises(RulesError) as raised:
        load_rules_file(name, text)
    assert raised.value.problems[0].startswith(problem)


def test_rule_round_trips_through_its_dict_form() -> None:
    rule = Rule(
        "spend",
        RuleType.DATE,
        "purchase",
        attribute=AttributeFilter("product", "table"),
        sum=SumCondition(Operator.GREATER_OR_EQUAL, Decimal("180.5"), "price"),
        start_date=dt.date(2021, 1, 1),
        finish_date=dt.date(2021, 2, 28),
        timezone="Europe/Paris",
        enabled=False,
    )
    assert Rule.from_dict(rule.to_dict()) == rule
    assert load_rules_file("r.json", f"[{__import__('json').dumps(rule.to_dict())}]") == [rule]
