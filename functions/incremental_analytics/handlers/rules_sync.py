"""The SyncRules workflow's functions: validate an uploaded rules file (every problem at once), and diff it against
the rules table. The workflow reads the file, writes the rules and the report, and puts the events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.rules_store import rule_item, rules_from_items
from incremental_analytics.domain.rules import Rule, iso_instant
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics.domain.rules_sync import diff_rules
from incremental_analytics.observability import logger, tracer
from incremental_analytics.settings import Settings


def validate(key: str, content: str) -> dict[str, Any]:
    name = key.rsplit("/", 1)[-1]
    try:
        rules = load_rules_file(name, content)
    except RulesError as error:
        return {"valid": False, "report": {"file": key, "problems": error.problems}, "rules": []}
    return {"valid": True, "report": {"file": key, "problems": []}, "rules": [rule.to_dict() for rule in rules]}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def validate_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = validate(str(event["key"]), str(event["content"]))
    logger.info(
        "validated a rules file",
        extra={"valid": result["valid"], "rules": len(result["rules"]), "problems": len(result["report"]["problems"])},
    )
    return result


def diff(wanted: list[dict[str, Any]], current: list[Rule], now: dt.datetime) -> dict[str, Any]:
    rules = [Rule.from_dict(entry) for entry in wanted]
    found = diff_rules(current, rules)
    updated_at = iso_instant(now)
    return {
        "put": [rule_item(rule, updated_at) for rule in (*found.created, *found.changed)],
        "delete": [{"rule_id": {"S": rule_id}} for rule_id in found.deleted],
        "summary": {
            "created": [rule.rule_id for rule in found.created],
            "changed": [rule.rule_id for rule in found.changed],
            "deleted": list(found.deleted),
            "unchanged": len(found.unchanged),
        },
        "changes_anything": found.changes_anything,
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def diff_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = Settings.from_environment()
    current = rules_from_items(scan_all(client("dynamodb"), config.rules_table))
    result = diff(event["rules"], current, dt.datetime.now(dt.UTC))
    summary = result["summary"]
    logger.info(
        "diffed the rules",
        extra={
            "rules_created": len(summary["created"]),
            "rules_changed": len(summary["changed"]),
            "rules_deleted": len(summary["deleted"]),
            "rules_unchanged": summary["unchanged"],
        },
    )
    return result
