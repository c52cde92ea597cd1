"""BatchExecuteStatement for moto's DynamoDB: the PartiQL writes the product sends, run as the conditional
PutItem and UpdateItem they are, with DynamoDB's per-statement errors.

moto 5.2.5 runs each statement by handing every item of every table to a general PartiQL parser (seconds per
batch once the counters table is large), creates the item an UPDATE names when it is missing, and ignores an
UPDATE's conditions on other attributes. DynamoDB does neither ("PartiQL update statements for DynamoDB": the
WHERE clause must name the full primary key; an UPDATE of a key that does not exist fails ConditionalCheckFailed
and creates nothing; a non-key equality in the WHERE clause is a condition). This runs a narrow subset strictly:

    UPDATE "<table>" SET <path> = ? [SET <path> = ?]... WHERE <path> = ? [AND <path> = ?]...
    INSERT INTO "<table>" VALUE {'<name>': ?[, '<name>': ?]...}

(`<path>`: double-quoted names joined by dots). Anything else is refused as a ValidationException naming the
subset: the engine may be stricter than DynamoDB, never kinder. Limits and errors ("Running batch operations with
PartiQL for DynamoDB"; API reference, BatchExecuteStatement and BatchStatementError): 1 to 25 statements of at
most 8,192 characters; reads
and writes never mixed; each statement's failure in its response's `Error` (`ConditionalCheckFailed`,
`DuplicateItem` for an INSERT of a key that exists, `ValidationError`, `ResourceNotFound`), the others written.
Two statements on one item in a batch are refused as BatchWriteItem refuses them (the engine's choice: the
product never sends them).
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
_UPDATE = re.compile(
    rf"\s*UPDATE\s+(?P<table>{_NAME})(?P<sets>(?:\s+SET\s+{_PATH}\s*=\s*\?)+)"
    rf"\s+WHERE\s+(?P<where>{_PATH}\s*=\s*\?(?:\s+AND\s+{_PATH}\s*=\s*\?)*)\s*",
    re.IGNORECASE,
)
_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(?P<table>" + _NAME + r")\s+VALUE\s*\{(?P<fields>\s*'[^']+'\s*:\s*\?"
    r"(?:\s*,\s*'[^']+'\s*:\s*\?)*)\s*\}\s*",
    re.IGNORECASE,
)
_SET = re.compile(rf"SET\s+({_PATH})\s*=\s*\?", re.IGNORECASE)
_CONDITION = re.compile(rf"({_PATH})\s*=\s*\?")
_FIELD = re.compile(r"'([^']+)'\s*:\s*\?")
SUBSET = (
    "the embedded local AWS runs only PartiQL writes of the forms "
    'UPDATE "<table>" SET <path> = ? ... WHERE <path> = ? AND ... '
    "and INSERT INTO \"<table>\" VALUE {'<name>': ?, ...}"
)


class StatementError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class _Write:
    table: str
    assignments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]  # (path, value): SET for UPDATE, fields of INSERT
    conditions: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]  # WHERE equalities (UPDATE only)
    insert: bool


def _path(text: str) -> tuple[str, ...]:
    return tuple(part[1:-1] for part in re.findall(_NAME, text))


def parse(statement: Any) -> _Write:
    """A statement of the subset with its parameters bound, or MockValidationException (the whole request)."""
    text = str(statement.get("Statement", ""))
    parameters = list(statement.get("Parameters") or [])
    if len(text) > MAX_STATEMENT_CHARACTERS:
        raise MockValidationException(
            "1 validation error detected: Value at 'statements.member.statement' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_STATEMENT_CHARACTERS}"
        )
    if update := _UPDATE.fullmatch(text):
        sets = [_path(match) for match in _SET.findall(update["sets"])]
        where = [_path(match) for match in _CONDITION.findall(update["where"])]
        names = [*sets, *where]
    elif insert := _INSERT.fullmatch(text):
        names = [(name,) for name in _FIELD.findall(insert["fields"])]
        sets, where = names, []
    else:
        raise MockValidationException(f"Statement not supported locally: {text[:200]!r}: {SUBSET}")
    if len(parameters) != len(names):
        raise MockValidationException(
            f"Number of parameters in request and statement don't match: {len(parameters)} and {len(names)}"
        )
    table = (update or insert)["table"][1:-1]  # type: ignore[index]
    bound = list(zip(names, parameters, strict=True))
    return _Write(table, tuple(bound[: len(sets)]), tuple(bound[len(sets) :]), insert=update is None)


def _names(paths: Sequence[tuple[str, ...]], names: dict[str, str]) -> list[str]:
    placed = []
    for path in paths:
        parts = []
        for part in path:
            placeholder = names.setdefault(part, f"#n{len(names)}")
            parts.append(placeholder)
        placed.append(".".join(parts))
    return placed


def _run(backend: DynamoDBBackend, write: _Write) -> None:
    try:
        table = backend.get_table(write.table)
    except ResourceNotFoundException:
        raise StatementError("ResourceNotFound", "Requested resource not found") from None
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
    key = {path[0]: value for path, value in write.conditions if len(path) == 1 and path[0] in keys}
    if sorted(key) != sorted(keys):
        missing = "Where clause does not contain a mandatory equality on all key attributes"
        raise StatementError("ValidationError", missing)
    others = [(path, value) for path, value in write.conditions if not (len(path) == 1 and path[0] in keys)]
    values: dict[str, Any] = {}
    set_paths = _names([path for path, _ in write.assignments], names)
    clauses = []
    for number, (placed, (_, value)) in enumerate(zip(set_paths, write.assignments, strict=True)):
        values[f":s{number}"] = value
        clauses.append(f"{placed} = :s{number}")
    conditions = [f"attribute_exists({_names([(keys[0],)], names)[0]})"]
    for number, (placed, (_, value)) in enumerate(zip(_names([p for p, _ in others], names), others, strict=True)):
        values[f":c{number}"] = value
        conditions.append(f"{placed} = :c{number}")
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
    named = write.assignments if write.insert else write.conditions
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
