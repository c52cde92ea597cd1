"""Loading rules files: JSON, YAML and the 2021 Honeycode column layout (CSV), validated all at once.

Every problem is reported together, each as `rules[i].field: what is wrong` (JSON, YAML) or
`row N, column C: what is wrong` (CSV, N as a spreadsheet numbers rows: the header is row 1).
When there is any problem nothing is returned: a rules file is applied whole or not at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from incremental_analytics.domain.numbers import to_decimal
from incremental_analytics.domain.rules import Rule


class RulesError(ValueError):
    """A rules file with problems. `problems` lists every one; the message is the first few of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the rules: {shown}{more}")


@dataclass(frozen=True, slots=True)
class Problem:
    """Where a problem is (a path of keys and indexes into one rule) and what it is."""

    path: tuple[str | int, ...]
    message: str


@cache
def rules_schema() -> dict[str, Any]:
    text = resources.files("incremental_analytics").joinpath("rules_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _rule_validator() -> jsonschema.Draft202012Validator:
    schema = rules_schema()
    rule_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/rule"}
    return jsonschema.Draft202012Validator(rule_schema, format_checker=jsonschema.FormatChecker(["date"]))


# -- public entry points ---------------------------------------------------------------------------------------


def load_rules_file(name: str, content: bytes | str) -> list[Rule]:
    """Load a rules file by its name's extension: .csv (Honeycode layout), .yaml/.yml, else JSON."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return load_honeycode_csv(text)
    if lowered.endswith((".yaml", ".yml")):
        return load_yaml(text)
    return load_json(text)


def load_json(text: str) -> list[Rule]:
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise RulesError([f"line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"]) from None
    return rules_from_document(document)


def load_yaml(text: str) -> list[Rule]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError([f"not valid YAML: {error}"]) from None
    return rules_from_document(_dates_as_text(document))


def rules_from_document(document: Any) -> list[Rule]:
    """A parsed JSON/YAML document: a list of rules, or `{"rules": [...]}`."""
    if isinstance(document, Mapping) and "rules" in document:
        extra = sorted(str(key) for key in document if key != "rules")
        if extra:
            raise RulesError([f"{key}: unknown top-level key (expected only 'rules')" for key in extra])
        document = document["rules"]
    if not isinstance(document, list):
        raise RulesError(["the file must hold a list of rules, or an object with a 'rules' list"])
    by_index = validate_rule_dicts(document)
    problems = [f"rules[{index}]{_json_path(p.path)}: {p.message}" for index, found in by_index for p in found]
    if problems:
        raise RulesError(problems)
    return [Rule.from_dict(entry) for entry in document]


def validate_rule_dicts(
    entries: Sequence[Any], where: Callable[[int], str] = lambda index: f"rules[{index}]"
) -> list[tuple[int, list[Problem]]]:
    """Validate rule entries against the schema and the checks it cannot express; (index, problems) pairs.

    `where` names an entry in a problem that points at another one (a duplicate rule_id).
    """
    found: list[tuple[int, list[Problem]]] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        problems = _schema_problems(entry) + _semantic_problems(entry)
        rule_id = entry.get("rule_id") if isinstance(entry, Mapping) else None
        if isinstance(rule_id, str):
            if rule_id in first_index:
                problems.append(
                    Problem(("rule_id",), f"duplicate rule_id {rule_id!r} (also {where(first_index[rule_id])})")
                )
            else:
                first_index[rule_id] = index
        if problems:
            found.append((index, problems))
    return found


# -- schema and semantic checks ----------------------------------------------------------------------------


def _schema_problems(entry: Any) -> list[Problem]:
    problems: list[Problem] = []
    errors = sorted(_rule_validator().iter_errors(entry), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        problems.extend(_describe(error, entry))
    unique: dict[tuple[tuple[str | int, ...], str], Problem] = {(p.path, p.message): p for p in problems}
    return list(unique.values())


def _describe(error: jsonschema.ValidationError, entry: Any) -> list[Problem]:
    """Turn one schema error into problems a rule author can act on."""
    path = tuple(error.absolute_path)
    kind = error.validator
    expected: Any = error.validator_value
    schema: Any = error.schema
    if kind == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [name for name in expected if name not in instance]
        rule_type = entry.get("type") if isinstance(entry, Mapping) else None
        suffix = f" for {rule_type} rules" if path == () and rule_type in ("date", "window") else ""
        return [Problem((*path, name), f"is required{suffix}") for name in missing]
    if kind == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        return [Problem((*path, name), "unknown field") for name in instance if name not in allowed]
    if kind == "anyOf" and path == ():
        return [Problem((), "needs a count or a sum condition (or both)")]
    if kind == "enum":
        return [Problem(path, f"{error.instance!r} is not one of {', '.join(expected)}")]
    if kind == "const" or (kind == "not" and error.validator_value == {}):
        rule_type = entry.get("type") if isinstance(entry, Mapping) else "this"
        return [Problem(path, f"not allowed for {rule_type} rules")]
    if kind == "not" and path == ("event_type",):
        return [Problem(path, "must not start with trk_ (those are the product's own outputs)")]
    if kind == "type":
        return [Problem(path, f"must be {_ARTICLE_TYPE.get(str(error.validator_value), error.validator_value)}")]
    if kind == "pattern" and path in (("start_date",), ("finish_date",)):
        return [Problem(path, f"{error.instance!r} is not a date in the form YYYY-MM-DD")]
    if kind == "format":
        return [Problem(path, f"{error.instance!r} is not a calendar date")]
    if kind == "pattern":
        return [Problem(path, f"{error.instance!r} does not match {error.validator_value}")]
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        return [Problem(path, f"must be {word} {error.validator_value}")]
    if kind in ("minLength", "maxLength"):
        word = "at least" if kind == "minLength" else "at most"
        return [Problem(path, f"must be {word} {error.validator_value} characters long")]
    return [Problem(path, error.message)]


_ARTICLE_TYPE = {
    "object": "an object",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
}


def _semantic_problems(entry: Any) -> list[Problem]:
    """What JSON Schema cannot say: finish on or after start, a real IANA time zone, finite targets."""
    if not isinstance(entry, Mapping):
        return []
    problems: list[Problem] = []
    start, finish = _as_date(entry.get("start_date")), _as_date(entry.get("finish_date"))
    if start is not None and finish is not None and finish < start:
        problems.append(Problem(("finish_date",), f"{finish} is before start_date {start}"))
    timezone = entry.get("timezone")
    if isinstance(timezone, str) and timezone and not _is_time_zone(timezone):
        problems.append(Problem(("timezone",), f"{timezone!r} is not an IANA time zone name"))
    total = entry.get("sum")
    if (
        isinstance(total, Mapping)
        and isinstance(total.get("target"), Decimal | float)
        and not to_decimal(total["target"]).is_finite()
    ):
        problems.append(Problem(("sum", "target"), "must be a finite number"))
    return problems


def _as_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _json_path(path: Iterable[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _dates_as_text(value: Any) -> Any:
    """YAML reads an unquoted 2021-01-01 as a date: give it back as the text the author wrote."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_dates_as_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _dates_as_text(item) for key, item in value.items()}
    if isinstance(value, float):
        return to_decimal(value)
    return value


# -- the Honeycode layout ----------------------------------------------------------------------------------

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


def load_honeycode_csv(text: str) -> list[Rule]:
    """Rules from a CSV in the 2021 Honeycode table's layout (SPEC 3.1)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RulesError(["row 1: the file is empty (expected the header row)"])
    header = rows[0]
    position = {_header_key(name): index for index, name in enumerate(header) if name.strip()}
    known = {_header_key(name) for name in (*HONEYCODE_COLUMNS, *_OPTIONAL_COLUMNS)}
    missing = {name for name in HONEYCODE_COLUMNS if _header_key(name) not in position}
    problems = [f"row 1, column {name}: missing column" for name in HONEYCODE_COLUMNS if name in missing]
    problems += [
        f"row 1, column {name.strip()}: unknown column"
        for name in header
        if name.strip() and _header_key(name) not in known
    ]

    # Rows are still read with the columns that are there, so one pass shows every problem; a problem that
    # only follows from a missing column is not repeated on each row.
    entries: list[dict[str, Any]] = []
    row_numbers: list[int] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {
            name: _cell(row, position[_header_key(name)]) if name not in missing else _ABSENT[name]
            for name in HONEYCODE_COLUMNS
        }
        entry, row_problems = _row_to_rule(cells)
        problems += [f"row {number}, column {column}: {message}" for column, message in row_problems]
        if entry is not None:
            entries.append(entry)
            row_numbers.append(number)

    for index, found in validate_rule_dicts(entries, lambda other: f"row {row_numbers[other]}"):
        for problem in found:
            column = _column_of(problem.path)
            if column not in missing:
                problems.append(f"row {row_numbers[index]}, column {column}: {problem.message}")
    if problems:
        raise RulesError(sorted(problems, key=_row_order))
    return [Rule.from_dict(entry) for entry in entries]


def _cell(row: Sequence[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _row_order(problem: str) -> tuple[int, str]:
    match = re.match(r"row (\d+)", problem)
    return (int(match.group(1)) if match else 0, problem)


def _column_of(path: tuple[str | int, ...]) -> str:
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
        problems.append(("RuleType", f"{cells['RuleType']!r} is not a rule type (aggregator or date)"))
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
                    f"{cells[operator_column]!r} is not an operator (greater, smaller, equal, na, ...)",
                )
            )
        target, target_problem = parse_target(cells[target_column])
        if target_problem:
            problems.append((target_column, target_problem))
        entry[key] = {"operator": operator, "target": target}

    if rule_type == "aggregate":
        reset = _YES_NO.get(cells["ResetWhenReachTarget"].lower())
        if reset is None:
            problems.append(("ResetWhenReachTarget", f"{cells['ResetWhenReachTarget']!r} is not yes or no"))
        entry["reset"] = bool(reset)
    if rule_type == "date":
        for field, column in (("start_date", "StartDate"), ("finish_date", "FinishDate")):
            value = cells[column]
            if value and value != _NO_DATE:
                if _as_date(value) is None:
                    problems.append((column, f"{value!r} is not a calendar date (YYYY-MM-DD)"))
                entry[field] = value

    if problems or rule_type is None:
        return None, problems
    entry["rule_id"] = _derived_rule_id(rule_type, event_type, entry.get("attribute"))
    return entry, problems


def _parse_count_target(text: str) -> tuple[int | None, str | None]:
    if re.fullmatch(r"\d+", text):
        return int(text), None
    return None, f"{text!r} is not a whole number"


def _parse_sum_target(text: str) -> tuple[Decimal | None, str | None]:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, f"{text!r} is not a number"
    if not value.is_finite():
        return None, f"{text!r} is not a finite number"
    return value, None


def _derived_rule_id(rule_type: str, event_type: str, attribute: Mapping[str, str] | None) -> str:
    parts = [rule_type, event_type]
    if attribute is not None:
        parts += [attribute["name"], attribute["value"]]
    text = _RULE_ID_UNSAFE.sub("-", "-".join(parts)).strip("-._")
    return text[:64] or rule_type
