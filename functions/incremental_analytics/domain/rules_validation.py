"""What makes a rules file's entries rules: the contract (rules_schema.json) and the checks it cannot express,
with every problem told as its place and what is wrong; and the limits of a rules file (docs/rules.md, "Limits").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from incremental_analytics.domain.numbers import FLOAT_DIGITS, is_storable, significant_digits, to_decimal

# -- limits of a rules file ----------------------------------------------------------------------------------------

MAX_FILE_BYTES = 4 * 1024 * 1024  # a 10,000-rule file takes under 1 MB as CSV, about 3 MB as indented JSON
MAX_CELL_CHARACTERS = 1_000  # the longest field a rule takes is an event type of 256 characters
MAX_DEPTH = 16  # a rules document nests 4 deep: {"rules": [{"count": {...}}]}
MAX_YAML_NODES = 500_000  # values a YAML document may expand to through its aliases (50 for each rule allowed)
MAX_LISTED_PROBLEMS = 1_000  # every problem is counted; the first ones are listed
MAX_PROBLEM_CHARACTERS = 300
SHOWN_CHARACTERS = 40  # of a value quoted in a problem

NO_RULES = "no rules"
DELETE_ALL_HINT = 'to delete every rule on purpose, upload {"rules": [], "allow_empty": true}'


class RulesError(ValueError):
    """A rules file with problems: `total` of them, the first MAX_LISTED_PROBLEMS in `problems`.

    Each problem is printable text (a lone surrogate of the file shows as its escape) of bounded length.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.total = len(problems)
        self.problems = [_printable(problem) for problem in problems[:MAX_LISTED_PROBLEMS]]
        first = "; ".join(self.problems[:3])
        more = f" (and {self.total - 3} more)" if self.total > 3 else ""
        super().__init__(f"{self.total} problem(s) in the rules: {first}{more}")


def _printable(problem: str) -> str:
    text = problem.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_PROBLEM_CHARACTERS else text[: MAX_PROBLEM_CHARACTERS - 3] + "..."


def shown(value: Any) -> str:
    """A value of the file as a problem quotes it: its repr, cut short when long."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    if len(text) <= SHOWN_CHARACTERS + 2:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} characters as text"
    return f"{text[:SHOWN_CHARACTERS]}... ({size})"


@dataclass(frozen=True, slots=True)
class Problem:
    """Where a problem is (a path of keys and indexes into one rule) and what it is."""

    path: tuple[Any, ...]
    message: str


@cache
def rules_schema() -> dict[str, Any]:
    text = resources.files("incremental_analytics").joinpath("rules_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def max_rules() -> int:
    """The most rules one file may hold: the contract's own limit (rules_schema.json, `ruleList.maxItems`)."""
    return int(rules_schema()["$defs"]["ruleList"]["maxItems"])


@cache
def _rule_validator() -> jsonschema.Draft202012Validator:
    schema = rules_schema()
    rule_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/rule"}
    return jsonschema.Draft202012Validator(rule_schema, format_checker=jsonschema.FormatChecker(["date"]))


def validate_rule_dicts(
    entries: Sequence[Any], where: Callable[[int], str] = lambda index: f"rules[{index}]"
) -> list[tuple[int, list[Problem]]]:
    """Validate rule entries against the schema and the checks it cannot express; (index, problems) pairs.

    `where` names an entry in a problem that points at another one (a duplicate rule_id).
    """
    found: list[tuple[int, list[Problem]]] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        problems = _text_problems(entry) + _schema_problems(entry) + _semantic_problems(entry)
        rule_id = entry.get("rule_id") if isinstance(entry, Mapping) else None
        if isinstance(rule_id, str):
            if rule_id in first_index:
                problems.append(
                    Problem(("rule_id",), f"duplicate rule_id {shown(rule_id)} (also {where(first_index[rule_id])})")
                )
            else:
                first_index[rule_id] = index
        if problems:
            found.append((index, problems))
    return found


# -- schema and semantic checks ----------------------------------------------------------------------------


def _text_problems(entry: Any) -> list[Problem]:
    """Text that is not Unicode (a lone surrogate, which a JSON escape like \\ud800 can make) cannot be stored."""
    problems = []
    for path, value in _strings(entry):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(Problem(path, "is not valid Unicode text (it holds a lone surrogate)"))
    return sorted(problems, key=lambda problem: [str(part) for part in problem.path])


def _strings(value: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in a parsed value (keys too), with its path; without recursion."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str):
                    yield (*path, key), key
                stack.append(((*path, key), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, index), child) for index, child in enumerate(item))


def _schema_problems(entry: Any) -> list[Problem]:
    problems: list[Problem] = []
    errors = sorted(_rule_validator().iter_errors(entry), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        problems.extend(_describe(error, entry))
    unique: dict[tuple[tuple[Any, ...], str], Problem] = {(p.path, p.message): p for p in problems}
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
        return [Problem(path, f"{shown(error.instance)} is not one of {', '.join(expected)}")]
    if kind == "const" or (kind == "not" and error.validator_value == {}):
        rule_type = entry.get("type") if isinstance(entry, Mapping) else None
        return [Problem(path, f"not allowed for {rule_type if rule_type in _RULE_TYPE_NAMES else 'these'} rules")]
    if kind == "not" and path == ("event_type",):
        return [Problem(path, "must not start with trk_ (those are the product's own outputs)")]
    if kind == "type":
        return [Problem(path, f"must be {_ARTICLE_TYPE.get(str(error.validator_value), error.validator_value)}")]
    if kind == "pattern" and path in (("start_date",), ("finish_date",)):
        return [Problem(path, f"{shown(error.instance)} is not a date in the form YYYY-MM-DD")]
    if kind == "format":
        return [Problem(path, f"{shown(error.instance)} is not a calendar date")]
    if kind == "pattern":
        return [Problem(path, f"{shown(error.instance)} does not match {error.validator_value}")]
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        return [Problem(path, f"must be {word} {error.validator_value}")]
    if kind in ("minLength", "maxLength"):
        word = "at least" if kind == "minLength" else "at most"
        return [Problem(path, f"must be {word} {error.validator_value} characters long")]
    return [Problem(path, f"does not meet the contract's {kind!r} ({shown(error.validator_value)})")]


_RULE_TYPE_NAMES = ("aggregate", "date", "window")
_ARTICLE_TYPE = {
    "object": "an object",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
}


def _semantic_problems(entry: Any) -> list[Problem]:
    """What JSON Schema cannot say: finish on or after start, a real IANA time zone, exact sum targets."""
    if not isinstance(entry, Mapping):
        return []
    problems: list[Problem] = []
    start, finish = as_date(entry.get("start_date")), as_date(entry.get("finish_date"))
    if start is not None and finish is not None and finish < start:
        problems.append(Problem(("finish_date",), f"{finish} is before start_date {start}"))
    timezone = entry.get("timezone")
    if isinstance(timezone, str) and timezone and timezone not in time_zone_names():
        problems.append(Problem(("timezone",), f"{shown(timezone)} is not an IANA time zone name (e.g. Europe/Paris)"))
    total = entry.get("sum")
    target = total.get("target") if isinstance(total, Mapping) else None
    if isinstance(target, Decimal | float | int) and not isinstance(target, bool):
        problem = _sum_target_problem(to_decimal(target))
        if problem:
            problems.append(Problem(("sum", "target"), problem))
    return problems


def _sum_target_problem(target: Decimal) -> str | None:
    """A target must read back exactly from the rules table and compare with a storable sum (docs/rules.md)."""
    if not target.is_finite():
        return "must be a finite number"
    if not is_storable(target):
        return f"{shown(target)} cannot be stored exactly (at most 38 significant digits, magnitude 1E-130 to 1E+125)"
    if target != target.to_integral_value() and significant_digits(target) > FLOAT_DIGITS:
        return (
            f"{shown(target)} has more than {FLOAT_DIGITS} significant digits (a fraction keeps at most {FLOAT_DIGITS})"
        )
    return None


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA time zones of the tz database the tzdata package ships (and that ZoneInfo reads on Lambda).

    Not `zoneinfo.available_timezones()`: that also lists files of the host's zoneinfo folder that are not
    zones (`localtime`, `posixrules`, `posix/...`, `right/...`); nor the database's placeholder `Factory`.
    """
    names = resources.files("tzdata").joinpath("zones").read_text("utf-8").split()
    return frozenset(names) - {"Factory"}


def as_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def key_shown(key: Any) -> str:
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else f"[{shown(key)}]"


def json_path(path: Iterable[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else _dotted(part) for part in path)


def _dotted(key: Any) -> str:
    name = key_shown(key)
    return name if name.startswith("[") else f".{name}"
