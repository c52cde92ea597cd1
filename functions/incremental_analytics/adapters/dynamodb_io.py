"""What the Lambda functions read from DynamoDB (counters and claims by key, consistently; the rules) and the
counters they write with PartiQL statements."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.rules import Rule

BATCH_GET_LIMIT = 100


def batch_get(client: Any, table: str, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, read consistently, 100 keys a request; throttling and unprocessed keys
    are retried with backoff (retrying.py), then the function gives up with `Throttled`."""
    found: list[dict[str, Any]] = []
    unique = list({_key_text(key): key for key in keys}.values())

    def read(request: dict[str, Any]) -> dict[str, Any]:
        answer = client.batch_get_item(RequestItems=request)
        found.extend(answer.get("Responses", {}).get(table, []))
        return dict(answer.get("UnprocessedKeys") or {})

    for start in range(0, len(unique), BATCH_GET_LIMIT):
        request = {table: {"Keys": unique[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}}
        retrying.until_done(read, request, f"{table} BatchGetItem")
    return found


def _key_text(key: Mapping[str, Any]) -> str:
    return repr(sorted((name, sorted(value.items())) for name, value in key.items()))


def scan_all(client: Any, table: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    """Every item, read consistently, page by page; each page retried while throttled."""
    start: dict[str, Any] = {}
    while True:
        page = retrying.call(
            functools.partial(client.scan, TableName=table, ConsistentRead=True, **kwargs, **start), f"{table} Scan"
        )
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


class RulesCache:
    """The rules table, read at most once per `ttl_seconds` per process (a Lambda container) and client."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._loaded_at = float("-inf")
        self._source: tuple[int, str] = (0, "")

    def get(self, client: Any, table: str, ttl_seconds: int) -> list[Rule]:
        now = time.monotonic()
        if (id(client), table) != self._source or now - self._loaded_at >= ttl_seconds:
            self._rules = rules_from_items(scan_all(client, table))
            self._loaded_at, self._source = now, (id(client), table)
        return self._rules


BATCH_WRITE_LIMIT = 25


def batch_write_deletes(client: Any, table: str, keys: Sequence[Mapping[str, Any]]) -> None:
    """Delete every key, 25 a request; throttling and unprocessed items retried with backoff."""

    def write(request: dict[str, Any]) -> dict[str, Any]:
        return dict(client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {})

    for start in range(0, len(keys), BATCH_WRITE_LIMIT):
        request = {table: [{"DeleteRequest": {"Key": dict(key)}} for key in keys[start : start + BATCH_WRITE_LIMIT]]}
        retrying.until_done(write, request, f"{table} BatchWriteItem")


BATCH_STATEMENT_LIMIT = 25  # "Running batch operations with PartiQL for DynamoDB": at most 25 statements a batch
# BatchStatementError's codes (DynamoDB API reference): a statement that met a conflict, one worth sending again.
CONFLICT_CODES = frozenset({"ConditionalCheckFailed", "DuplicateItem"})
RETRYABLE_STATEMENT_CODES = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)


class StatementFailed(RuntimeError):
    """A statement DynamoDB refused for a reason no retry changes (ValidationError, ResourceNotFound,
    AccessDenied, ItemCollectionSizeLimitExceeded): the execution fails and the batch is retried."""


def execute_statements(client: Any, statements: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Write `statements` with BatchExecuteStatement, 25 a request. Each one's outcome, in order: None when it
    was written, else its conflict code (ConditionalCheckFailed, DuplicateItem). A 200 answer does not mean every
    statement was written: throttled ones are sent again with backoff (retrying.py), then `Throttled`."""
    results: list[str | None] = [None] * len(statements)
    for start in range(0, len(statements), BATCH_STATEMENT_LIMIT):
        waiting = list(range(start, min(start + BATCH_STATEMENT_LIMIT, len(statements))))
        for attempt in range(retrying.ATTEMPTS):
            request = [dict(statements[index]) for index in waiting]
            answer = retrying.call(
                functools.partial(client.batch_execute_statement, Statements=request), "BatchExecuteStatement"
            )
            again = []
            for index, response in zip(waiting, answer["Responses"], strict=True):
                error = response.get("Error")
                code = str(error.get("Code", "")) if error else ""
                if not error:
                    continue
                if code in CONFLICT_CODES:
                    results[index] = code
                elif code in RETRYABLE_STATEMENT_CODES:
                    again.append(index)
                else:
                    raise StatementFailed(f"BatchExecuteStatement: {code}: {error.get('Message', '')}")
            if not again:
                break
            if attempt == retrying.ATTEMPTS - 1:
                still = f"statements still throttled after {retrying.ATTEMPTS} attempts"
                raise retrying.Throttled(f"BatchExecuteStatement: {still}")
            waiting = again
            retrying.pause(attempt)
    return results
