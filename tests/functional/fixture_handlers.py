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
