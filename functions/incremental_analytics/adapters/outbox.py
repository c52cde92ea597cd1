"""The outbox (the audit table) as delivery sees it: outcomes recorded once, the ones some sink still lacks
(the sparse `undelivered` index), and an operator's redrive of abandoned ones."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics.adapters.dynamodb_items import (
    ABANDONED,
    UNDELIVERED_INDEX,
    item_from_dynamo,
    outbox_item,
    pending_shard,
    to_dynamo,
)
from incremental_analytics.domain.delivery import Undelivered, redriven
from incremental_analytics.domain.rules import parse_instant


def record_outcomes(
    dynamodb: Any, table: str, deliveries: Sequence[Mapping[str, Any]], committed_at: str, shards: int
) -> int:
    """Put each outcome in the outbox once: one already there (a retried step) is left as it is, so that its
    delivery state is never reset. Returns how many were new; each new one reaches the sinks through the
    outbox's stream."""
    recorded = 0
    for delivery in deliveries:
        try:
            dynamodb.put_item(
                TableName=table,
                Item=outbox_item(delivery, committed_at, shards),
                ConditionExpression="attribute_not_exists(outcome_id)",
            )
            recorded += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    return recorded


def undelivered_items(dynamodb: Any, table: str, partition: str) -> Iterator[dict[str, Any]]:
    """Every outcome of one `undelivered` partition (a pending shard, or ABANDONED), oldest commit first, with
    the attributes the index projects, as plain values."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        IndexName=UNDELIVERED_INDEX,
        KeyConditionExpression="#p = :p",
        ExpressionAttributeNames={"#p": "undelivered"},
        ExpressionAttributeValues={":p": {"S": partition}},
    )
    for page in pages:
        for item in page.get("Items", []):
            yield item_from_dynamo(item)


def as_undelivered(item: Mapping[str, Any]) -> Undelivered:
    attempted = item.get("attempted_at")
    return Undelivered(
        user_id=str(item["user_id"]),
        outcome_id=str(item["outcome_id"]),
        committed_at=parse_instant(str(item["committed_at"])),
        attempts=int(item.get("delivery_attempts", 0)),
        attempted_at=parse_instant(str(attempted)) if attempted else None,
    )


def redrive(dynamodb: Any, table: str, keys: Sequence[Mapping[str, str]], shards: int) -> list[dict[str, str]]:
    """Give abandoned outcomes to the delivery again: their abandoned sinks become `failed`, their attempts start
    from zero, and they go back among the pending ones. Sinks that took an outcome are not sent it again.
    Returns the keys redriven (an outcome no longer abandoned is left as it is)."""
    redone = []
    for key in keys:
        dynamo_key = {"user_id": {"S": key["user_id"]}, "outcome_id": {"S": key["outcome_id"]}}
        found = dynamodb.get_item(TableName=table, Key=dynamo_key, ConsistentRead=True).get("Item")
        if not found or found.get("undelivered", {}).get("S") != ABANDONED:
            continue
        delivery = item_from_dynamo(found).get("delivery") or {}
        try:
            dynamodb.update_item(
                TableName=table,
                Key=dynamo_key,
                UpdateExpression="SET delivery = :delivery, delivery_attempts = :zero, undelivered = :pending "
                "REMOVE abandoned_at, attempted_at, claimed_by, claimed_at",
                ConditionExpression="undelivered = :abandoned",
                ExpressionAttributeValues={
                    ":delivery": to_dynamo(redriven(delivery)),
                    ":zero": {"N": "0"},
                    ":pending": {"S": pending_shard(key["outcome_id"], shards)},
                    ":abandoned": {"S": ABANDONED},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            continue
        redone.append({"user_id": key["user_id"], "outcome_id": key["outcome_id"]})
    return redone
