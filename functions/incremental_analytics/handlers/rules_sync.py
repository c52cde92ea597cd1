"""The SyncRules workflow's functions: validate an uploaded rules file (every problem at once), and diff its rules
against the rules table. They read and write the data bucket themselves (adapters.rules_files) and hand the
workflow keys and counts only, so that a file of any size within the limits is applied or reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.adapters import rules_files as files
from incremental_analytics.adapters.aws_clients import client
from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.rules import Rule, iso_instant
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics.domain.rules_sync import diff_rules
from incremental_analytics.domain.rules_validation import MAX_FILE_BYTES
from incremental_analytics.observability import logger, tracer
from incremental_analytics.settings import Settings

PROBLEMS_ANNOUNCED = 20  # in the RulesRejected event; the report holds them all
RULE_IDS_LISTED = 100  # of each kind of change, in the RulesSynced event and the execution's output


def validate(key: str, content: bytes, size: int) -> tuple[list[Rule], dict[str, Any] | None]:
    """The file's rules, or no rules and the report of its problems."""
    try:
        return load_rules_file(key.rsplit("/", 1)[-1], content, size=size), None
    except RulesError as error:
        return [], {"file": key, "problems": error.problems, "problems_total": error.total}


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def validate_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bucket, key, execution = str(event["bucket"]), str(event["key"]), str(event["execution"])
    s3 = client("s3")
    content, size = files.read_limited(s3, bucket, key, MAX_FILE_BYTES)
    rules, report = validate(key, content, size)
    if report is not None:
        files.write_json(s3, bucket, files.report_key(key), report)
        logger.info("rejected a rules file", extra={"bytes": size, "problems": report["problems_total"]})
        announced = {**report, "problems": report["problems"][:PROBLEMS_ANNOUNCED], "report": files.report_key(key)}
        return {"valid": False, "rules": 0, "staged": None, "report": announced}
    staged = files.staged_rules_key(execution)
    files.write_json(s3, bucket, staged, [rule.to_dict() for rule in rules])
    logger.info("validated a rules file", extra={"bytes": size, "rules": len(rules)})
    return {"valid": True, "rules": len(rules), "staged": staged, "report": None}


def plan_sync(
    current: Sequence[Rule], wanted: Sequence[Rule], now: dt.datetime, table: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pages of table writes that make the table hold `wanted`, and the summary of what changes."""
    found = diff_rules(current, wanted)
    pages = files.write_pages(table, [*found.created, *found.changed], found.deleted, iso_instant(now))
    created = [rule.rule_id for rule in found.created]
    changed = [rule.rule_id for rule in found.changed]
    summary = {
        "created": created[:RULE_IDS_LISTED],
        "changed": changed[:RULE_IDS_LISTED],
        "deleted": list(found.deleted[:RULE_IDS_LISTED]),
        "unchanged": len(found.unchanged),
        "counts": {
            "created": len(created),
            "changed": len(changed),
            "deleted": len(found.deleted),
            "unchanged": len(found.unchanged),
        },
    }
    return pages, summary


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def diff_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bucket, staged, execution = str(event["bucket"]), str(event["staged"]), str(event["execution"])
    config = Settings.from_environment()
    s3 = client("s3")
    wanted = [Rule.from_dict(entry) for entry in files.read_json(s3, bucket, staged)]
    current = rules_from_items(scan_all(client("dynamodb"), config.rules_table))
    pages, summary = plan_sync(current, wanted, dt.datetime.now(dt.UTC), config.rules_table)
    keys = []
    for number, page in enumerate(pages):
        keys.append(files.writes_key(execution, number))
        files.write_json(s3, bucket, keys[-1], page)
    counts = summary["counts"]
    logger.info(
        "diffed the rules",
        extra={f"rules_{kind}": count for kind, count in counts.items()} | {"pages": len(keys)},
    )
    return {"pages": keys, "summary": summary, "changes_anything": bool(keys)}
