from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_local.deploy import Stack, deploy
from incremental_analytics_local.engine import LocalAws

FIXTURE_TEMPLATE = Path(__file__).parent / "fixture" / "template.yaml"


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    # Retry backoff and Wait states pass at a thousandth of real time.
    with LocalAws(time_scale=0.001) as local:
        yield local


@pytest.fixture
def fixture_stack(aws: LocalAws) -> Stack:
    return deploy(aws, FIXTURE_TEMPLATE, stack_name="fx")


def create_audit_table(client: Any, name: str) -> None:
    """A table keyed as the product's audit table (the outbox): user_id, outcome_id."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "user_id", "KeyType": "HASH"},
            {"AttributeName": "outcome_id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "outcome_id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
