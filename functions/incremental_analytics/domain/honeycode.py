"""The 2021 Honeycode table's layout of rules (docs/rules.md), as a spreadsheet exports it to CSV.

Problems are told as `row N, column C: what is wrong`, N as a spreadsheet numbers rows (the header is row 1) and C
the column's name (or its letter, for a cell under no header).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from incremental_analytics.domain.rules import Rule
from incremental_analytics.domain.rules_validation import (
    DELETE_ALL_HINT,
    MAX_CELL_CHARACTERS,
    MAX_FILE_BYTES,
    NO_RULES,
    SHOWN_CHARACTERS,
    RulesError,
    as_date,
    max_rules,
    shown,
    validate_rule_dicts,
)

HONEYCODE_COLUMNS = (
    "RuleType",
    "EventName",
    "AttributeName",
    "AttributeValue",
    "Operator-C",
    "Target-C",
    "Operator-V",
    "Target-V",
    "ResetWhenReachTarget",
    "StartDate",
    "FinishDate",
)
_OPTIONAL_COLUMNS = ("Key",)
# What a missing column reads as while the rest of a file is checked (the column itself is reported).
_ABSENT = {
    "RuleType": "aggregator",
    "EventName": "",
    "AttributeName": "na",
    "AttributeValue": "",
    "Operator-C": "na",
    "Target-C": "",
    "Operator-V": "na",
    "Target-V": "",
    "ResetWhenReachTarget": "no",
    "StartDate": "",
    "FinishDate": "",
}
_ALIASES = {"resetwhenreached": "resetwhenreachtarget"}
_RULE_TYPES = {"aggregator": "aggregate", "aggregate": "aggregate", "date": "date"}
_OPERATORS = {
    "equal": "equal",
    "not_equal": "not_equal",
    "notequal": "not_equal",
    "greater": "greater",
    "greater_or_equal": "greater_or_equal",
    "greaterorequal": "greater_or_equal",
    "smaller": "less",
    "less": "less",
    "less_or_equal": "less_or_equal",
    "lessorequal": "less_or_equal",
    "smaller_or_equal": "less_or_equal",
}
_YES_NO = {"yes": True, "no": False, "true": True, "false": False}
_NO_DATE = "9999-99-99"
_NOT_APPLICABLE = "na"
_RULE_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DELIMITERS = (",", ";", "\t")  # a spreadsheet's CSV, its European CSV, its "Unicode text" export
_LONGEST_COUNT_TARGET = 38  # digits: what the contract's maximum count target has

# Where a rule field comes from in the spreadsheet, to name the column of a schema problem.
_FIELD_COLUMN = {
    "type": "RuleType",
    "event_type": "EventName",
    "attribute": "AttributeName",
    "count": "Operator-C",
    "sum": "Operator-V",
    "reset": "ResetWhenReachTarget",
    "start_date": "StartDate",
    "finish_date": "FinishDate",
}
_NESTED_COLUMN = {
    ("attribute", "name"): "AttributeName",
    ("attribute", "value"): "AttributeValue",
    ("count", "operator"): "Operator-C",
    ("count", "target"): "Target-C",
    ("sum", "operator"): "Operator-V",
    ("sum", "target"): "Target-V",
}


def _header_key(name: str) -> str:
    key = re.sub(r"[\s_-]+", "", name).lower()
    return _ALIASES.get(key, key)


def column_letter(index: int) -> str:
    """A spreadsheet's name for the column at a 0-based index: A, B, ..., Z, AA, ..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def load_honeycode_csv(text: str) -> list[Rule]:
    """Rules from a CSV in the 2021 Honeycode table's layout (docs/rules.md)."""
    # The csv module refuses a field over 131,072 characters with an error, not a problem; a rules file is
    # at most MAX_FILE_BYTES long, so no field can pass this limit, and each cell is measured below instead.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES + 1))
    header_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=lambda d: _known_columns(header_line, d))
    records = _records(text, delimiter)
    header = next(records, None)
    if header is None:
        raise RulesError([f"{NO_RULES}: the file is empty"])
    if isinstance(header, str):
        raise RulesError([f"row 1: {header}"])
    canonical = {_header_key(name): name for name in (*HONEYCODE_COLUMNS, *_OPTIONAL_COLUMNS)}
    position: dict[str, int] = {}
    problems: list[str] = []
    for index, name in enumerate(header):
        key = _header_key(name)
        if not name.strip():
            continue
        if key not in canonical:
            problems.append(f"row 1, column {_header_shown(name)}: unknown column")
        elif key in position:
            first = column_letter(position[key])
            problems.append(
                f"row 1, column {canonical[key]}: appears twice (columns {first} and {column_letter(index)})"
            )
        else:
            position[key] = index
    missing = {name for name in HONEYCODE_COLUMNS if _header_key(name) not in position}
    problems = [f"row 1, column {name}: missing column" for name in HONEYCODE_COLUMNS if name in missing] + problems
    named = {index: canonical[key] for key, index in position.items()}
    headed = {index for index, name in enumerate(header) if name.strip()}

    # Rows are still read with the columns that are there, so one pass shows every problem; a problem that
    # only follows from a missing column is not repeated on each row.
    entries: list[dict[str, Any]] = []
    row_numbers: list[int] = []
    rules_seen = 0
    for number, row in enumerate(records, start=2):
        if isinstance(row, str):
            problems.append(f"row {number}: {row}; the rows after it were not read")
            break
        if not any(cell.strip() for cell in row):
            continue
        rules_seen += 1
        if rules_seen > max_rules():
            continue  # only counted: the file is refused for its size below
        row_problems = _cell_problems(number, row, named, headed)
        if row_problems:
            problems += row_problems
            continue
        cells = {
            name: _cell(row, position[_header_key(name)]) if name not in missing else _ABSENT[name]
            for name in HONEYCODE_COLUMNS
        }
        entry, rule_problems = _row_to_rule(cells)
        problems += [f"row {number}, column {column}: {message}" for column, message in rule_problems]
        if entry is not None:
            entries.append(entry)
            row_numbers.append(number)
    if rules_seen > max_rules():
        raise RulesError([f"{rules_seen:,} rule rows; a rules file may hold at most {max_rules():,}"])
    if rules_seen == 0:
        problems.append(f"{NO_RULES}: the file has a header row but no rule rows ({DELETE_ALL_HINT} as JSON)")

    for index, found in validate_rule_dicts(entries, lambda other: f"row {row_numbers[other]}"):
        for problem in found:
            column = _column_of(problem.path)
            if column not in missing:
                problems.append(f"row {row_numbers[index]}, column {column}: {problem.message}")
    if problems:
        raise RulesError(sorted(problems, key=_row_order))
    return [Rule.from_dict(entry) for entry in entries]


def _known_columns(header_line: str, delimiter: str) -> int:
    known = {_header_key(name) for name in (*HONEYCODE_COLUMNS, *_OPTIONAL_COLUMNS)}
    return sum(1 for name in header_line.split(delimiter) if _header_key(name.strip('"')) in known)


def _records(text: str, delimiter: str) -> Iterator[list[str] | str]:
    """The CSV's records (a cell may span lines when quoted), or, where one cannot be read, why (then stops)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield f"cannot be read as CSV ({error})"
            return
        yield record


def _cell_problems(number: int, row: Sequence[str], named: Mapping[int, str], headed: set[int]) -> list[str]:
    """Cells too long to be a rule's, and cells under no column of the header (a row with extra cells)."""
    problems = []
    for index, cell in enumerate(row):
        column = named.get(index, column_letter(index))
        if len(cell) > MAX_CELL_CHARACTERS:
            problems.append(
                f"row {number}, column {column}: {len(cell):,} characters; a cell may hold at most "
                f"{MAX_CELL_CHARACTERS:,}"
            )
        elif cell.strip() and index not in headed:
            problems.append(f"row {number}, column {column}: {shown(cell.strip())} is in a column with no header")
    return problems


def _header_shown(name: str) -> str:
    text = name.strip()
    return text if len(text) <= SHOWN_CHARACTERS and text.isprintable() else shown(text)


def _cell(row: Sequence[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _row_order(problem: str) -> tuple[int, str]:
    match = re.match(r"row (\d+)", problem)
    return (int(match.group(1)) if match else 1 << 62, problem)


def _column_of(path: tuple[Any, ...]) -> str:
    if len(path) >= 2 and (str(path[0]), str(path[1])) in _NESTED_COLUMN:
        return _NESTED_COLUMN[(str(path[0]), str(path[1]))]
    if path and str(path[0]) in _FIELD_COLUMN:
        return _FIELD_COLUMN[str(path[0])]
    return "EventName" if path and path[0] == "rule_id" else "RuleType"


def _row_to_rule(cells: Mapping[str, str]) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """One spreadsheet row as a rules-file entry, or the problems that stop it being one."""
    problems: list[tuple[str, str]] = []
    rule_type = _RULE_TYPES.get(cells["RuleType"].lower())
    if rule_type is None:
        problems.append(("RuleType", f"{shown(cells['RuleType'])} is not a rule type (aggregator or date)"))
    event_type = cells["EventName"]
    if not event_type:
        problems.append(("EventName", "is empty"))
    entry: dict[str, Any] = {"type": rule_type, "event_type": event_type}

    attribute_name = cells["AttributeName"]
    if attribute_name.lower() != _NOT_APPLICABLE and attribute_name:
        entry["attribute"] = {"name": attribute_name, "value": cells["AttributeValue"]}

    for key, operator_column, target_column, parse_target in (
        ("count", "Operator-C", "Target-C", _parse_count_target),
        ("sum", "Operator-V", "Target-V", _parse_sum_target),
    ):
        raw_operator = cells[operator_column].lower()
        if raw_operator in (_NOT_APPLICABLE, ""):
            continue
        operator = _OPERATORS.get(raw_operator.replace(" ", "_"))
        if operator is None:
            problems.append(
                (
                    operator_column,
                    f"{shown(cells[operator_column])} is not an operator (greater, smaller, equal, na, ...)",
                )
            )
        target, target_problem = parse_target(cells[target_column])
        if target_problem:
            problems.append((target_column, target_problem))
        entry[key] = {"operator": operator, "target": target}

    if rule_type == "aggregate":
        reset = _YES_NO.get(cells["ResetWhenReachTarget"].lower())
        if reset is None:
            problems.append(("ResetWhenReachTarget", f"{shown(cells['ResetWhenReachTarget'])} is not yes or no"))
        entry["reset"] = bool(reset)
    if rule_type == "date":
        for field, column in (("start_date", "StartDate"), ("finish_date", "FinishDate")):
            value = cells[column]
            if value and value != _NO_DATE:
                if as_date(value) is None:
                    problems.append((column, f"{shown(value)} is not a calendar date (YYYY-MM-DD)"))
                entry[field] = value

    if problems or rule_type is None:
        return None, problems
    entry["rule_id"] = _derived_rule_id(rule_type, event_type, entry.get("attribute"))
    return entry, problems


def _parse_count_target(text: str) -> tuple[int | None, str | None]:
    # ASCII digits only: int() would also take `1_000`, ` 7` and other scripts' digits.
    if not re.fullmatch(r"[0-9]+", text):
        return None, f"{shown(text)} is not a whole number"
    if len(text.lstrip("0")) > _LONGEST_COUNT_TARGET:
        return None, f"{shown(text)} has more than {_LONGEST_COUNT_TARGET} digits"
    return int(text), None


def _parse_sum_target(text: str) -> tuple[Decimal | None, str | None]:
    # A plain decimal: Decimal() would also take `1_000`, `NaN`, `Infinity` and other scripts' digits.
    if not _PLAIN_NUMBER.fullmatch(text):
        return None, f"{shown(text)} is not a number"
    try:
        return Decimal(text), None
    except InvalidOperation:  # an exponent beyond what a decimal can hold
        return None, f"{shown(text)} is not a number"


def _derived_rule_id(rule_type: str, event_type: str, attribute: Mapping[str, str] | None) -> str:
    parts = [rule_type, event_type]
    if attribute is not None:
        parts += [attribute["name"], attribute["value"]]
    text = _RULE_ID_UNSAFE.sub("-", "-".join(parts)).strip("-._")
    return text[:64] or rule_type
