"""Throttling, retried where it happens. A function's DynamoDB, S3 or Kinesis call that is throttled (or meets a
service's passing failure) is tried again with exponential backoff and full jitter; when it still fails the
function gives up with `Throttled`, which the workflow's Retry names, and past the workflow's own retries the
Pipe retries the batch and finally hands it to the dead-letter path, which reads it back later: throttling
delays counting and never loses an event (docs/design.md).

The error codes are the services' own: DynamoDB's ("Error handling with DynamoDB": throttling and
`InternalServerError` are retryable), S3's `SlowDown` and 5xx ("Error responses"), Kinesis'
`ProvisionedThroughputExceededException` and `KMSThrottlingException` (GetRecords' errors).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "KMSThrottlingException",
    }
)
ATTEMPTS = 8
FIRST_PAUSE_SECONDS = 0.05
LONGEST_PAUSE_SECONDS = 2.0

T = TypeVar("T")


class Throttled(RuntimeError):
    """A call still throttled after ATTEMPTS tries: the workflow retries the whole Task (Retry "Throttled")."""


# How a pause passes: real time on AWS; the local engine runs it faster, as it does a Wait state's.
sleep: Callable[[float], None] = time.sleep
_jitter = random.Random()


def pause(attempt: int) -> None:
    """The backoff before try `attempt + 1`: full jitter over an exponential ceiling."""
    ceiling = min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2**attempt)
    sleep(_jitter.uniform(0, ceiling))


def retryable(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in RETRYABLE_CODES


def call(operation: Callable[[], T], what: str) -> T:
    """`operation()`, tried up to ATTEMPTS times while it is throttled."""
    for attempt in range(ATTEMPTS):
        try:
            return operation()
        except ClientError as error:
            if not retryable(error):
                raise
            if attempt == ATTEMPTS - 1:
                code = error.response["Error"]["Code"]
                raise Throttled(f"{what}: {code} after {ATTEMPTS} attempts") from None
            pause(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def until_done(step: Callable[[Any], Any], request: Any, what: str) -> None:
    """Run `step(request)`, which answers what is left to do (unprocessed keys or items), until nothing is;
    each step is itself retried while throttled, and what is left is tried again after a pause."""
    for attempt in range(ATTEMPTS):
        request = call(functools.partial(step, request), what)
        if not request:
            return
        if attempt < ATTEMPTS - 1:
            pause(attempt)
    raise Throttled(f"{what}: still unprocessed after {ATTEMPTS} attempts")
