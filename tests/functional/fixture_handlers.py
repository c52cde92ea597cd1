"""Handlers of the local AWS fixture template (run in-process by the local Lambda runtime)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any


class FixtureConflict(Exception):
    """A domain error a state machine catches by name."""


class FixtureRetryable(Exception):
    """An error a state machine retries with a long backoff."""


class PoisonRecord(Exception):
    """A record that fails its whole batch, so the pipe retries, bisects and dead-letters it."""


def greet(event: dict[str, Any], context: Any) -> dict[str, Any]:
    items, mode = [], "count"
    for record in event["records"]:
        data = json.loads(base64.b64decode(record["data"]))
        if data.get("poison"):
            raise PoisonRecord(f"record {record['sequenceNumber']} is poison")
        mode = data.get("mode", mode)
        items.append({"user": record["partitionKey"], "event_id": data["id"]})
    return {"items": items, "mode": mode, "greeting": f"{os.environ['GREETING']} from {context.function_name}"}


ATTEMPTS: dict[str, int] = {}


def flaky(event: dict[str, Any], context: Any) -> None:
    """Fails twice with a retryable error, then with a conflict, per batch (keyed by its first event)."""
    key = event["items"][0]["event_id"]
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise FixtureRetryable("try again")
    raise FixtureConflict("conflict")


def enrich(event: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
    """A pipe enrichment: drops records marked `skip`, fails the batch on one marked `enrichment_fails`; nothing
    left is an empty answer (no execution)."""
    kept = []
    for record in event:
        data = json.loads(base64.b64decode(record["data"]))
        if data.get("enrichment_fails"):
            raise PoisonRecord(f"record {record['sequenceNumber']} fails its enrichment")
        if not data.get("skip"):
            kept.append(record)
    return kept


def replay(event: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
    """An SQS pipe's enrichment: each message body `{"user", "id", "fails"?}` becomes a Kinesis-like record."""
    records = []
    for message in event:
        body = json.loads(message["body"])
        if body.get("fails"):
            raise PoisonRecord(f"message {message['messageId']} cannot be replayed")
        data = base64.b64encode(json.dumps({"id": body["id"]}).encode()).decode()
        records.append({"partitionKey": body["user"], "sequenceNumber": message["messageId"], "data": data})
    return records


def echo(event: Any, context: Any) -> Any:
    """Answers its payload, or a text of `inflate` bytes."""
    if isinstance(event, dict) and "inflate" in event:
        return "x" * int(event["inflate"])
    return event
