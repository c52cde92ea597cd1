"""Reads the Lambda functions make from DynamoDB: counters and claims by key (consistent), and the rules."""

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
