"""Reads the Lambda functions make from DynamoDB: counters and claims by key (consistent), and the rules."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.rules import Rule

BATCH_GET_LIMIT = 100
_BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


class UnprocessedKeysError(RuntimeError):
    """DynamoDB kept returning unprocessed keys (throttling): the batch is retried as a whole."""


def batch_get(client: Any, table: str, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, read consistently, 100 keys a request, unprocessed keys retried."""
    found: list[dict[str, Any]] = []
    unique = list({_key_text(key): key for key in keys}.values())
    for start in range(0, len(unique), BATCH_GET_LIMIT):
        request: dict[str, Any] = {table: {"Keys": unique[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}}
        for pause in (0.0, *_BACKOFF_SECONDS):
            if pause:
                time.sleep(pause)
            answer = client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(table, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise UnprocessedKeysError(f"{table}: keys still unprocessed after {len(_BACKOFF_SECONDS)} retries")
    return found


def _key_text(key: Mapping[str, Any]) -> str:
    return repr(sorted((name, sorted(value.items())) for name, value in key.items()))


def scan_all(client: Any, table: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    paginator = client.get_paginator("scan")
    for page in paginator.paginate(TableName=table, ConsistentRead=True, **kwargs):
        yield from page.get("Items", [])


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
    """Delete every key, 25 a request, unprocessed ones retried with backoff."""
    for start in range(0, len(keys), BATCH_WRITE_LIMIT):
        request: dict[str, Any] = {
            table: [{"DeleteRequest": {"Key": dict(key)}} for key in keys[start : start + BATCH_WRITE_LIMIT]]
        }
        for pause in (0.0, *_BACKOFF_SECONDS):
            if pause:
                time.sleep(pause)
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
        else:
            raise UnprocessedKeysError(f"{table}: deletes still unprocessed after {len(_BACKOFF_SECONDS)} retries")
