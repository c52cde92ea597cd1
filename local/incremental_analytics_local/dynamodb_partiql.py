"""BatchExecuteStatement for moto's DynamoDB: the PartiQL writes the product sends, run as the conditional
PutItem and UpdateItem they are, with DynamoDB's per-statement errors.

moto 5.2.5 runs each statement by handing every item of every table to a general PartiQL parser (seconds per
batch once the counters table is large), creates the item an UPDATE names when it is missing, and ignores an
UPDATE's conditions on other attributes. DynamoDB does neither ("PartiQL update statements for DynamoDB": the
WHERE clause must name the full primary key; an UPDATE of a key that does not exist fails ConditionalCheckFailed
and creates nothing; a non-key equality in the WHERE clause is a condition). This runs a narrow subset strictly:

    UPDATE "<table>" SET <path> = ? [SET <path> = ?]... WHERE <term> [AND <term>]...
    INSERT INTO "<table>" VALUE {'<name>': ?[, '<name>': ?]...}

(`<path>`: double-quoted names joined by dots; `<term>`: `<path> = ?`, `<path> < ?`, `begins_with(<path>, ?)`,
`<path> IS MISSING`, or such terms joined by OR in parentheses: "PartiQL select statements for DynamoDB" and its
functions BEGINS_WITH and MISSING). The key's equalities must be terms of the AND; every other term is a condition
of the write, as DynamoDB makes it. Anything else is refused as a ValidationException naming the subset: the
engine may be stricter than DynamoDB, never kinder. Limits and errors ("Running batch operations with
PartiQL for DynamoDB"; API reference, BatchExecuteStatement and BatchStatementError): 1 to 25 statements of at
most 8,192 characters; reads
and writes never mixed; each statement's failure in its response's `Error` (`ConditionalCheckFailed`,
`DuplicateItem` for an INSERT of a key that exists, `ValidationError`, `ResourceNotFound`), the others written.
Two statements on one item in a batch are refused as BatchWriteItem refuses them (the engine's choice: the
product never sends them). Values DynamoDB refuses are the statement's `ValidationError` (`_refusal`): paths that
overlap, empty sets, key attributes of the table or an index of the wrong type or empty, and operands `<` or
begins_with cannot compare. A comparison with an attribute the item lacks is false, as in a condition expression
(so `("claimed_by" IS MISSING OR "claimed_at" < ?)` holds for an item with neither).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.exceptions import ConditionalCheckFailed, MockValidationException, ResourceNotFoundException
from moto.dynamodb.models import DynamoDBBackend

MAX_STATEMENTS = 25
MAX_STATEMENT_CHARACTERS = 8_192  # BatchStatementRequest's Statement: 1 to 8,192 characters (API reference)

_NAME = r'"[^"]+"'
_PATH = rf"{_NAME}(?:\.{_NAME})*"
_SIMPLE = rf"(?:{_PATH}\s*[=<]\s*\?|begins_with\(\s*{_PATH}\s*,\s*\?\s*\)|{_PATH}\s+IS\s+MISSING)"
_TERM = rf"(?:{_SIMPLE}|\(\s*{_SIMPLE}(?:\s+OR\s+{_SIMPLE})+\s*\))"
_UPDATE = re.compile(
    rf"\s*UPDATE\s+(?P<table>{_NAME})(?P<sets>(?:\s+SET\s+{_PATH}\s*=\s*\?)+)"
    rf"\s+WHERE\s+(?P<where>{_TERM}(?:\s+AND\s+{_TERM})*)\s*",
    re.IGNORECASE,
)
_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(?P<table>" + _NAME + r")\s+VALUE\s*\{(?P<fields>\s*'[^']+'\s*:\s*\?"
    r"(?:\s*,\s*'[^']+'\s*:\s*\?)*)\s*\}\s*",
    re.IGNORECASE,
)
_SET = re.compile(rf"SET\s+({_PATH})\s*=\s*\?", re.IGNORECASE)
# One simple term of a WHERE clause, in the order written (which is the order of its parameters), and whether it
# opens or closes an OR group.
_PIECE = re.compile(
    rf"(?P<open>\()|(?P<close>\))|begins_with\(\s*(?P<prefix>{_PATH})\s*,\s*\?\s*\)"
    rf"|(?P<missing>{_PATH})\s+IS\s+MISSING|(?P<compared>{_PATH})\s*(?P<operator>[=<])\s*\?",
    re.IGNORECASE,
)
_FIELD = re.compile(r"'([^']+)'\s*:\s*\?")
SUBSET = (
    "the embedded local AWS runs only PartiQL writes of the forms "
    'UPDATE "<table>" SET <path> = ? ... WHERE <term> AND ... (a term: <path> = ?, <path> < ?, '
    "begins_with(<path>, ?), <path> IS MISSING, or such terms joined by OR in parentheses) "
    "and INSERT INTO \"<table>\" VALUE {'<name>': ?, ...}"
)


class StatementError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


Path = tuple[str, ...]


@dataclass(frozen=True)
class _Term:
    kind: str  # "=", "<", "begins_with" or "missing"
    path: Path
    value: dict[str, Any] | None  # None for "missing"


@dataclass(frozen=True)
class _Write:
    table: str
    assignments: tuple[tuple[Path, dict[str, Any]], ...]  # (path, value): SET for UPDATE, fields of INSERT
    conditions: tuple[tuple[_Term, ...], ...]  # WHERE (UPDATE only): ANDed terms, each one or more ORed
    insert: bool

    def equalities(self) -> list[tuple[Path, dict[str, Any]]]:
        """The WHERE clause's terms `<path> = ?` that stand alone in its AND (where the key must be)."""
        return [
            (term.path, term.value)
            for (term, *others) in self.conditions
            if not others and term.kind == "=" and term.value is not None
        ]


def _path(text: str) -> Path:
    return tuple(part[1:-1] for part in re.findall(_NAME, text))


def _where(text: str) -> list[tuple[str, Path]]:
    """The WHERE clause's terms in order, as (kind, path), with "(" and ")" around an OR group."""
    found: list[tuple[str, Path]] = []
    for piece in _PIECE.finditer(text):
        if piece["open"] or piece["close"]:
            found.append((piece[0], ()))
        elif piece["prefix"]:
            found.append(("begins_with", _path(piece["prefix"])))
        elif piece["missing"]:
            found.append(("missing", _path(piece["missing"])))
        else:
            found.append((piece["operator"], _path(piece["compared"])))
    return found


def _bind(terms: list[tuple[str, Path]], values: list[dict[str, Any]]) -> tuple[tuple[_Term, ...], ...]:
    bound: list[tuple[_Term, ...]] = []
    group: list[_Term] | None = None
    given = iter(values)
    for kind, path in terms:
        if kind == "(":
            group = []
        elif kind == ")":
            bound.append(tuple(group or ()))
            group = None
        else:
            term = _Term(kind, path, None if kind == "missing" else next(given))
            if group is None:
                bound.append((term,))
            else:
                group.append(term)
    return tuple(bound)


def parse(statement: Any) -> _Write:
    """A statement of the subset with its parameters bound, or MockValidationException (the whole request)."""
    text = str(statement.get("Statement", ""))
    parameters = list(statement.get("Parameters") or [])
    if len(text) > MAX_STATEMENT_CHARACTERS:
        raise MockValidationException(
            "1 validation error detected: Value at 'statements.member.statement' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_STATEMENT_CHARACTERS}"
        )
    where: list[tuple[str, Path]] = []
    if update := _UPDATE.fullmatch(text):
        sets = [_path(match) for match in _SET.findall(update["sets"])]
        where = _where(update["where"])
    elif insert := _INSERT.fullmatch(text):
        sets = [(name,) for name in _FIELD.findall(insert["fields"])]
    else:
        raise MockValidationException(f"Statement not supported locally: {text[:200]!r}: {SUBSET}")
    wanted = len(sets) + sum(1 for kind, _ in where if kind in ("=", "<", "begins_with"))
    if len(parameters) != wanted:
        raise MockValidationException(
            f"Number of parameters in request and statement don't match: {len(parameters)} and {wanted}"
        )
    table = (update or insert)["table"][1:-1]  # type: ignore[index]
    assignments = tuple(zip(sets, parameters[: len(sets)], strict=True))
    return _Write(table, assignments, _bind(where, parameters[len(sets) :]), insert=update is None)


def _names(paths: Sequence[tuple[str, ...]], names: dict[str, str]) -> list[str]:
    placed = []
    for path in paths:
        parts = []
        for part in path:
            placeholder = names.setdefault(part, f"#n{len(names)}")
            parts.append(placeholder)
        placed.append(".".join(parts))
    return placed


def _empty_set(value: dict[str, Any]) -> bool:
    ((kind, data),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return not data
    if kind == "M":
        return any(_empty_set(element) for element in data.values())
    if kind == "L":
        return any(_empty_set(element) for element in data)
    return False


def _refusal(table: Any, write: _Write) -> str | None:
    """Why DynamoDB refuses the statement's values, as a ValidationError of the statement, or None:
    - two paths of one write that overlap (UpdateExpression: "Two document paths overlap"; an INSERT's tuple
      naming one attribute twice), and a WHERE clause naming a key attribute twice ("PartiQL update statements
      for DynamoDB": the condition must resolve to a single primary key value);
    - an empty set ("Supported data types and naming rules in Amazon DynamoDB": DynamoDB does not support empty
      sets);
    - a key attribute of the table or of a secondary index of another type than its definition, or an empty
      string or binary (the same page, and "Amazon DynamoDB now supports empty values for non-key String and
      Binary attributes", 2020-05-18: key attributes of tables and indexes still need non-empty values);
    - `<` with an operand that is not a string, number or binary, and begins_with with one that is not a string
      or binary (API reference, Condition: LT and BEGINS_WITH; moto would raise, or answer false)."""
    paths = [path for path, _ in write.assignments]
    for number, path in enumerate(paths):
        for other in paths[number + 1 :]:
            if path[: len(other)] == other or other[: len(path)] == path:
                return f"Two document paths overlap with each other: [{'.'.join(path)}], [{'.'.join(other)}]"
    defined = {attribute["AttributeName"]: attribute["AttributeType"] for attribute in table.attr}
    table_keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    index_keys = [name for index in (*table.indexes, *table.global_indexes) for name in index.schema_key_attrs]
    where_keys = [(path, value) for path, value in write.equalities() if path[0] in table_keys and len(path) == 1]
    if len({path for path, _ in where_keys}) != len(where_keys):
        return "Where clause does not resolve to a single primary key value"
    terms = [term for group in write.conditions for term in group]
    values = [value for _, value in write.assignments] + [term.value for term in terms if term.value is not None]
    if any(_empty_set(value) for value in values):
        return "One or more parameter values were invalid: a set may not be empty"
    for path, value in [*where_keys, *write.assignments]:
        name = path[0]
        if len(path) > 1 or (name not in table_keys and name not in index_keys):
            continue
        ((kind, data),) = value.items()
        if kind != defined.get(name, kind):
            return f"One or more parameter values were invalid: {name} is a key of type {defined[name]}, not {kind}"
        if kind in ("S", "B") and not data:
            return f"One or more parameter values are not valid: the key attribute {name} cannot be empty"
    for term in terms:
        allowed = {"<": ("S", "N", "B"), "begins_with": ("S", "B")}.get(term.kind, ())
        kind = next(iter(term.value or {"S": ""}))
        if allowed and kind not in allowed:
            return f"Invalid operand type for {term.kind}: {kind}"
    return None


def _run(backend: DynamoDBBackend, write: _Write) -> None:
    try:
        table = backend.get_table(write.table)
    except ResourceNotFoundException:
        raise StatementError("ResourceNotFound", "Requested resource not found") from None
    refused = _refusal(table, write)
    if refused:
        raise StatementError("ValidationError", refused)
    keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    names: dict[str, str] = {}
    if write.insert:
        item = {path[0]: value for path, value in write.assignments}
        if any(key not in item for key in keys):
            raise StatementError("ValidationError", "One or more parameter values were invalid: Missing the key")
        try:
            backend.put_item(
                write.table,
                item_attrs=item,
                condition_expression="attribute_not_exists(#k)",
                expression_attribute_names={"#k": keys[0]},
            )
        except ConditionalCheckFailed:
            raise StatementError("DuplicateItem", "Duplicate primary key exists in table") from None
        return
    key = {path[0]: value for path, value in write.equalities() if len(path) == 1 and path[0] in keys}
    if sorted(key) != sorted(keys):
        missing = "Where clause does not contain a mandatory equality on all key attributes"
        raise StatementError("ValidationError", missing)
    values: dict[str, Any] = {}
    set_paths = _names([path for path, _ in write.assignments], names)
    clauses = []
    for number, (placed, (_, value)) in enumerate(zip(set_paths, write.assignments, strict=True)):
        values[f":s{number}"] = value
        clauses.append(f"{placed} = :s{number}")
    conditions = [f"attribute_exists({_names([(keys[0],)], names)[0]})"]
    for group in write.conditions:
        if len(group) == 1 and group[0].kind == "=" and group[0].path in [(k,) for k in key]:
            continue  # the key: which item, not a condition on it
        alternatives = []
        for term in group:
            (placed,) = _names([term.path], names)
            if term.kind == "missing":
                alternatives.append(f"attribute_not_exists({placed})")
                continue
            values[f":c{len(values)}"] = term.value
            operand = f":c{len(values) - 1}"
            alternatives.append(
                f"begins_with({placed}, {operand})" if term.kind == "begins_with" else f"{placed} {term.kind} {operand}"
            )
        conditions.append(alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")")
    try:
        backend.update_item(
            write.table,
            key=key,
            update_expression="SET " + ", ".join(clauses),
            expression_attribute_names={placeholder: name for name, placeholder in names.items()},
            expression_attribute_values=values,
            condition_expression=" AND ".join(conditions),
        )
    except ConditionalCheckFailed:
        raise StatementError("ConditionalCheckFailed", "The conditional request failed") from None


def _target(backend: DynamoDBBackend, write: _Write) -> tuple[str, str]:
    """The item a write names (its table and key values), to refuse two writes of one item in a batch."""
    try:
        table = backend.get_table(write.table)
    except ResourceNotFoundException:
        return write.table, repr(write)
    keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    named = write.assignments if write.insert else tuple(write.equalities())
    key = sorted((path[0], repr(value)) for path, value in named if len(path) == 1 and path[0] in keys)
    return write.table, repr(key)


def batch_execute_statement(self: DynamoDBBackend, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not 1 <= len(statements) <= MAX_STATEMENTS:
        raise MockValidationException(
            "1 validation error detected: Value at 'statements' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_STATEMENTS} and greater than or equal to 1"
        )
    writes = [parse(statement) for statement in statements]
    targets = [_target(self, write) for write in writes]
    if len(set(targets)) != len(targets):
        raise MockValidationException("Provided list of item keys contains duplicates")
    responses: list[dict[str, Any]] = []
    for write in writes:
        try:
            _run(self, write)
            responses.append({"TableName": write.table})
        except StatementError as error:
            responses.append({"TableName": write.table, "Error": {"Code": error.code, "Message": error.message}})
        except MockValidationException as error:
            responses.append({"TableName": write.table, "Error": {"Code": "ValidationError", "Message": error.message}})
    return responses
