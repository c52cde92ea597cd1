"""The RulesChanged workflow's functions: what each rules-table change sets off (docs/rules.md), and the purge of one
page of a rule's counters with their dedupe claims. Audit records are never touched."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import batch_write_deletes
from incremental_analytics.domain.rules import Rule
from incremental_analytics.domain.rules_sync import classify_change
from incremental_analytics.observability import logger, tracer
from incremental_analytics.settings import Settings


def _rule_of(image: Mapping[str, Any] | None) -> Rule | None:
    if not image or "definition" not in image:
        return None
    return Rule.from_dict(json.loads(image["definition"]["S"], parse_float=Decimal))


def classify(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One change per rules-table stream record that changed a definition, in stream order."""
    changes = []
    for record in records:
        change = record.get("dynamodb", {})
        rule_id = change.get("Keys", {}).get("rule_id", {}).get("S")
        if rule_id is None:
            continue
        found = classify_change(rule_id, _rule_of(change.get("OldImage")), _rule_of(change.get("NewImage")))
        if found is None:
            continue
        changed_at = dt.datetime.fromtimestamp(float(change.get("ApproximateCreationDateTime", 0)), dt.UTC)
        changes.append(
            {
                "rule_id": found.rule_id,
                "kind": found.kind,
                "purge": found.purge,
                "evaluate": found.evaluate,
                "claims_prefix": f"D#{rule_id}#" + (f"{found.old_identity}#" if found.kept_identity else ""),
                "kept_identity": found.kept_identity or "",
                # A redelivered record starts the same evaluation name, which Step Functions refuses twice.
                "evaluation_name": "rule-" + hashlib.sha256(str(record.get("eventID")).encode()).hexdigest()[:32],
                "evaluation_input": {"rule_ids": [rule_id], "now": changed_at.isoformat().replace("+00:00", "Z")},
            }
        )
    return changes


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def classify_handler(event: list[dict[str, Any]], context: LambdaContext) -> dict[str, Any]:
    changes = classify(event)
    logger.info(
        "classified rule changes",
        extra={"records": len(event), "changes": len(changes), "purges": sum(c["purge"] for c in changes)},
    )
    return {"changes": changes}


def purge_page(
    change: Mapping[str, Any], counter_keys: Sequence[Mapping[str, Any]], config: Settings
) -> dict[str, int]:
    """For each counter of the page: its user's claims of the rule (of the old counting identity, when the rule
    changed), then the counter. A deleted rule's counters go in the same batches; a changed rule's counter is kept
    when it already counts under the new identity (events after the change)."""
    dynamodb = client("dynamodb")
    table = config.counters_table
    claims: list[dict[str, Any]] = []
    for key in counter_keys:
        pages = dynamodb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": key["pk"], ":prefix": {"S": change["claims_prefix"]}},
            ProjectionExpression="pk, sk",
        )
        claims.extend(item for page in pages for item in page.get("Items", []))
    counters = [{"pk": key["pk"], "sk": key["sk"]} for key in counter_keys]
    batch_write_deletes(dynamodb, table, claims)  # claims first: a retried page finds its users again
    if not change["kept_identity"]:
        batch_write_deletes(dynamodb, table, counters)
        return {"counters": len(counters), "claims": len(claims)}
    deleted = 0
    for key in counters:
        try:
            dynamodb.delete_item(
                TableName=table,
                Key=key,
                ConditionExpression="attribute_exists(pk) AND #identity <> :kept",
                ExpressionAttributeNames={"#identity": "identity"},
                ExpressionAttributeValues={":kept": {"S": change["kept_identity"]}},
            )
            deleted += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    return {"counters": deleted, "claims": len(claims)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def purge_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = purge_page(event["change"], event["keys"], Settings.from_environment())
    logger.info("purged a page of a rule's state", extra={"rule_id": event["change"]["rule_id"], **result})
    return result
