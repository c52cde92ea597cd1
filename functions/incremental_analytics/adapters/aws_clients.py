"""boto3 clients, made once per process (a Lambda container) on first use, never at import time."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)


@functools.cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def forget_clients() -> None:
    """Drop the clients (the local engine does this when it starts a fresh local AWS)."""
    client.cache_clear()
