"""Whatever a rules file holds, loading it answers with the rules or the list of problems, never an exception."""

from __future__ import annotations

import codecs
import json
import random
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incremental_analytics.adapters.rules_store import rule_item, rules_from_items
from incremental_analytics.domain.honeycode import column_letter
from incremental_analytics.domain.rules import Rule
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics.domain.rules_validation import (
    MAX_CELL_CHARACTERS,
    MAX_FILE_BYTES,
    MAX_LISTED_PROBLEMS,
    MAX_PROBLEM_CHARACTERS,
    max_rules,
    time_zone_names,
)

HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)
ROW = "aggregator,café,na,999,greater,3,na,999,no,9999-99-99,9999-99-99,k\n"
# The "billion laughs": 342 bytes of YAML whose aliases expand to 9^9 (387 million) strings.
ALIAS_BOMB = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]\n".encode()
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def problems_of(name: str, content: bytes | str) -> list[str]:
    with pytest.raises(RulesError) as raised:
        load_rules_file(name, content)
    return raised.value.problems


def one_rule(**fields: Any) -> str:
    rule = {"rule_id": "r", "type": "aggregate", "event_type": "x", "count": {"operator": "greater", "target": 1}}
    return json.dumps([{**rule, **fields}])


# -- encodings -----------------------------------------------------------------------------------------------


def test_a_windows_1252_file_is_refused_with_where_it_stops_being_utf8() -> None:
    assert problems_of("rules.csv", (HEADER + ROW).encode("cp1252")) == [
        "the file is not UTF-8 text: byte 0xE9 at line 2, column 15 cannot be read "
        "(save the file as UTF-8, e.g. a spreadsheet's 'CSV UTF-8')"
    ]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ","), ("utf-16", "\t"), ("utf-16", ","), ("utf-32", ";"), ("utf-8", ";")],
)
def test_utf8_and_marked_utf16_and_32_load_with_a_spreadsheets_delimiters(encoding: str, delimiter: str) -> None:
    (rule,) = load_rules_file("rules.csv", (HEADER + ROW).replace(",", delimiter).encode(encoding))
    assert rule.event_type == "café"


def test_utf16_without_its_byte_order_mark_and_random_bytes_are_refused() -> None:
    assert problems_of("rules.csv", HEADER.encode("utf-16-le"))[0].startswith("the file holds NUL characters")
    for seed in range(20):
        content = random.Random(seed).randbytes(2000)
        assert problems_of(random.Random(seed).choice(["r.csv", "r.json", "r.yaml"]), content)
    broken_utf16 = codecs.BOM_UTF16_LE + "x".encode("utf-16-le") + b"\x00\xd8"  # a lone high surrogate
    assert problems_of("rules.csv", broken_utf16)[0].startswith("the file is not UTF-16 text: byte 0x00")


def test_text_that_is_not_unicode_is_refused_where_it_is() -> None:
    assert problems_of("r.json", one_rule(event_type="\ud800")) == [
        "rules[0].event_type: is not valid Unicode text (it holds a lone surrogate)"
    ]
    problems = problems_of(
        "r.yaml",
        '- {rule_id: r, type: aggregate, event_type: "\\ud800", count: {operator: equal, target: 1}, "\\udfff": 1}',
    )
    assert problems == [
        "rules[0].event_type: is not valid Unicode text (it holds a lone surrogate)",
        "rules[0]['\\udfff']: is not valid Unicode text (it holds a lone surrogate)",
        "rules[0]['\\udfff']: unknown field",
    ]
    assert all(problem.encode("utf-8") for problem in problems)


# -- sizes -------------------------------------------------------------------------------------------------------


def test_a_cell_over_the_csv_modules_own_limit_is_a_problem_on_its_cell() -> None:
    huge = HEADER + f"aggregator,{'x' * 131_073},na,999,greater,3,na,999,no,,,k\n" + ROW.replace("café", "ok")
    assert problems_of("rules.csv", huge) == [
        f"row 2, column EventName: 131,073 characters; a cell may hold at most {MAX_CELL_CHARACTERS:,}"
    ]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    assert problems_of("r.json", b"[" + b" " * MAX_FILE_BYTES + b"]") == [
        f"the file is {MAX_FILE_BYTES + 2:,} bytes; a rules file may hold at most {MAX_FILE_BYTES:,} bytes"
    ]
    with pytest.raises(RulesError) as raised:  # a reader that stopped early gives the file's size
        load_rules_file("r.csv", HEADER[:10], size=10 * MAX_FILE_BYTES)
    assert raised.value.problems[0].startswith(f"the file is {10 * MAX_FILE_BYTES:,} bytes")


def test_more_rows_than_a_file_may_hold_is_one_problem() -> None:
    rows = "".join(f"aggregator,e{n},na,999,greater,3,na,999,no,,,k\n" for n in range(max_rules() + 1))
    assert problems_of("rules.csv", HEADER + rows) == [
        f"{max_rules() + 1:,} rule rows; a rules file may hold at most {max_rules():,}"
    ]


def test_ten_thousand_rows_load() -> None:
    rows = "".join(f"aggregator,event-{n},product,item-{n},greater,{n % 50},na,999,no,,,k\n" for n in range(10_000))
    rules = load_rules_file("rules.csv", HEADER + rows)
    assert len(rules) == 10_000 and rules[-1].rule_id == "aggregate-event-9999-product-item-9999"


def test_problems_are_counted_all_and_listed_up_to_the_limit_each_short() -> None:
    rows = "".join(f"weekly,{'e' * 900},na,999,more,x{n},na,999,no,,,k\n" for n in range(2_000))
    with pytest.raises(RulesError) as raised:
        load_rules_file("rules.csv", HEADER + rows)
    assert raised.value.total == 6_000 and len(raised.value.problems) == MAX_LISTED_PROBLEMS
    assert (
        raised.value.problems[0]
        == "row 2, column Operator-C: 'more' is not an operator (greater, smaller, equal, na, ...)"
    )
    assert max(len(problem) for problem in raised.value.problems) <= MAX_PROBLEM_CHARACTERS
    assert str(raised.value).startswith("6000 problem(s) in the rules: ")


# -- nesting and aliases -----------------------------------------------------------------------------------------


def test_json_nested_5000_deep_is_refused_before_it_is_parsed() -> None:
    assert problems_of("r.json", "[" * 5000 + "]" * 5000) == ["not valid rules: nested 5000 levels deep, more than 16"]
    assert problems_of("r.json", '["[[[[[[[[[[[[[[[[[[[[[[[[["]')[0] == "rules[0]: must be an object"  # in a string


def test_the_yaml_alias_bomb_is_refused_fast_in_small_memory() -> None:
    assert len(ALIAS_BOMB) == 342
    tracemalloc.start()
    try:
        problems = problems_of("rules.yaml", ALIAS_BOMB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problems == [
        "not valid YAML: more than 500,000 values, counting what each alias repeats (line 6, column 26)"
    ]
    assert peak < 10_000_000  # bytes: it never expands (the issue measured 642 MB)


def test_yaml_aliases_within_the_limits_still_work_and_cycles_or_depth_do_not() -> None:
    shared = "- &base {rule_id: a, type: aggregate, event_type: x, count: {operator: greater, target: 1}}\n"
    rules = load_rules_file("r.yaml", shared + "- {<<: *base, rule_id: b}\n")
    assert [rule.rule_id for rule in rules] == ["a", "b"]
    assert problems_of("r.yaml", "&a [*a]") == [
        "not valid YAML: an alias refers to a node that contains it (line 1, column 5)"
    ]
    assert problems_of("r.yaml", "[" * 5000 + "]" * 5000) == [
        "not valid YAML: nested more than 16 levels deep (line 1, column 17)"
    ]


# -- numbers, names, zones ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "r.csv",
            HEADER + ROW.replace("greater,3", "greater,1_000"),
            "row 2, column Target-C: '1_000' is not a whole number",
        ),
        (
            "r.csv",
            HEADER + ROW.replace("greater,3", "greater,\uff13"),
            "row 2, column Target-C: '\uff13' is not a whole number",
        ),
        (
            "r.csv",
            HEADER + ROW.replace("na,999,no", "greater,1_000.5,no"),
            "row 2, column Target-V: '1_000.5' is not a number",
        ),
        ("r.csv", HEADER + ROW.replace("na,999,no", "greater,NaN,no"), "row 2, column Target-V: 'NaN' is not a number"),
        (
            "r.csv",
            HEADER + ROW.replace("greater,3", "greater," + "9" * 39),
            "row 2, column Target-C: '999999999999999999999999999999999999999' has more than 38 digits",
        ),
        (
            "r.yaml",
            "- {rule_id: r, type: aggregate, event_type: x, count: {operator: equal, target: 1_000}}",
            "rules[0].count.target: must be a whole number",
        ),
        (
            "r.yaml",
            "- {rule_id: r, type: aggregate, event_type: x, count: {operator: equal, target: 0o17}}",
            "rules[0].count.target: must be a whole number",
        ),
        (
            "r.yaml",
            "- {rule_id: r, type: aggregate, event_type: x, count: {operator: equal, target: '1:30'}}",
            "rules[0].count.target: must be a whole number",
        ),
        (
            "r.yaml",
            "- {rule_id: r, type: aggregate, event_type: x, count: {operator: equal, target: !!int 0x1F}}",
            "not valid YAML: '0x1F' is not a whole number (line 1, column 81)",
        ),
        (
            "r.json",
            one_rule(count={"operator": "equal", "target": 10**38}),
            "rules[0].count.target: must be at most 99999999999999999999999999999999999999",
        ),
        (
            "r.json",
            one_rule().replace('"target": 1', '"target": ' + "9" * 5000),
            "not valid JSON: a whole number of 5,000 digits",
        ),
        ("r.json", one_rule().replace('"target": 1', '"target": NaN'), "not valid JSON: NaN is not a JSON number"),
        (
            "r.json",
            one_rule(sum={"operator": "greater", "target": 5}).replace('"target": 5', '"target": 1e126'),
            "rules[0].sum.target: 1E+126 cannot be stored exactly",
        ),
        (
            "r.json",
            one_rule(sum={"operator": "greater", "target": 5}).replace('"target": 5', '"target": 0.1234567890123456'),
            "rules[0].sum.target: 0.1234567890123456 has more than 15 significant digits",
        ),
    ],
)
def test_numbers_are_plain_decimals_storable_exactly(name: str, content: str, problem: str) -> None:
    assert problems_of(name, content)[0].startswith(problem)


def test_numbers_read_exactly() -> None:
    (rule,) = load_rules_file(
        "r.yaml", "- {rule_id: r, type: aggregate, event_type: x, sum: {operator: greater, target: 19.99}}"
    )
    assert rule.sum is not None and rule.sum.target == Decimal("19.99")
    (rule,) = load_rules_file(
        "r.json", one_rule(sum={"operator": "greater", "target": 5}).replace('"target": 5', '"target": 1e30')
    )
    assert rule.sum is not None and rule.sum.target == Decimal("1e30") and rule.to_dict()["sum"]["target"] == 10**30


@pytest.mark.parametrize(
    "zone", ["localtime", "posixrules", "Factory", "right/UTC", "posix/Europe/Paris", "europe/paris", ""]
)
def test_only_the_tz_databases_zone_names_are_time_zones(zone: str) -> None:
    rule = {"type": "date", "start_date": "2021-01-01", "finish_date": "2021-01-02", "timezone": zone}
    problem = problems_of("r.json", one_rule(**rule))[0]
    assert problem.startswith("rules[0].timezone: "), problem
    assert {"UTC", "Europe/Paris", "America/New_York", "Etc/GMT+5"} <= time_zone_names()


# -- rows and headers ---------------------------------------------------------------------------------------------


def test_a_row_with_extra_cells_is_a_problem_but_a_spreadsheets_empty_padding_is_not() -> None:
    assert problems_of("r.csv", HEADER + ROW.strip() + ",surprise\n") == [
        "row 2, column M: 'surprise' is in a column with no header"
    ]
    assert len(load_rules_file("r.csv", HEADER + ROW.strip() + ",,  ,\n")) == 1
    assert column_letter(0) == "A" and column_letter(25) == "Z" and column_letter(26) == "AA"


def test_a_header_only_file_and_an_empty_list_have_no_rules_unless_said_so() -> None:
    hint = 'to delete every rule on purpose, upload {"rules": [], "allow_empty": true}'
    assert problems_of("r.csv", HEADER) == [f"no rules: the file has a header row but no rule rows ({hint} as JSON)"]
    assert problems_of("r.csv", HEADER + ",,,\n\n") == problems_of("r.csv", HEADER)
    assert problems_of("r.json", "[]") == [f"no rules: the list of rules is empty ({hint})"]
    assert problems_of("r.yaml", "rules: []") == [f"no rules: the list of rules is empty ({hint})"]
    assert problems_of("r.yaml", "  \n") == ["no rules: the file is empty"]
    assert load_rules_file("r.json", '{"rules": [], "allow_empty": true}') == []
    assert load_rules_file("r.yaml", "rules: []\nallow_empty: true\n") == []


def test_a_header_naming_a_column_twice_is_a_problem() -> None:
    assert problems_of("r.csv", HEADER.replace("Key", "event_name") + ROW) == [
        "row 1, column EventName: appears twice (columns B and L)"
    ]


def test_an_unreadable_csv_record_is_a_problem() -> None:
    unterminated = HEADER + 'aggregator,"open,na,999\n'
    assert problems_of("r.csv", unterminated)[0].startswith("row 2, column ")


# -- the fuzz --------------------------------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["aggregate", "date", "window", "greater", "less", "2021-01-01", "UTC", "localtime", "trk_x"])
)
_FIELDS = st.sampled_from(
    [
        "rule_id",
        "type",
        "event_type",
        "attribute",
        "count",
        "sum",
        "reset",
        "start_date",
        "finish_date",
        "timezone",
        "days",
        "output",
        "enabled",
        "operator",
        "target",
        "metric",
        "name",
        "value",
        "rules",
        "allow_empty",
    ]
)


def _collections(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=5) | st.dictionaries(_FIELDS | st.text(max_size=10), inner, max_size=8)


_DOCUMENTS = st.recursive(_SCALARS, _collections, max_leaves=40)
_NAMES = st.sampled_from(["rules.json", "rules.yaml", "rules.yml", "rules.csv", "RULES.CSV", "rules"])


def _assert_answer(name: str, content: bytes | str) -> None:
    """The rules, each storable and read back the same; or at least one problem, printable and short."""
    try:
        rules = load_rules_file(name, content)
    except RulesError as error:
        assert error.total >= 1 and 1 <= len(error.problems) <= MAX_LISTED_PROBLEMS
        for problem in error.problems:
            assert problem and len(problem) <= MAX_PROBLEM_CHARACTERS
            problem.encode("utf-8")
        return
    assert all(isinstance(rule, Rule) for rule in rules)
    items = [rule_item(rule, "2021-01-01T00:00:00.000Z") for rule in rules]
    json.dumps(items).encode("utf-8")
    assert rules_from_items(items) == sorted(rules, key=lambda rule: rule.rule_id)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_NAMES, st.binary(max_size=3000))
def test_random_bytes_never_raise_anything_but_the_problems(name: str, content: bytes) -> None:
    _assert_answer(name, content)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_NAMES, _DOCUMENTS)
def test_random_documents_never_raise_anything_but_the_problems(name: str, document: Any) -> None:
    text = json.dumps(document, default=str)
    _assert_answer("rules.json", text)
    _assert_answer(name, text)  # JSON is YAML too; as CSV it is one strange row


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_SCALARS.map(str), max_size=14), max_size=6), st.sampled_from([",", ";", "\t"]))
def test_random_sheets_never_raise_anything_but_the_problems(rows: list[list[str]], delimiter: str) -> None:
    body = "".join(delimiter.join(row) + "\n" for row in rows)
    _assert_answer("rules.csv", HEADER.replace(",", delimiter) + body)
    _assert_answer("rules.csv", body)


def test_a_yaml_file_of_many_small_values_is_refused_once_it_passes_the_limit() -> None:
    problems = problems_of("r.yaml", "-\n" * 600_000)
    assert problems == [
        "not valid YAML: more than 500,000 values, counting what each alias repeats (line 500000, column 2)"
    ]
