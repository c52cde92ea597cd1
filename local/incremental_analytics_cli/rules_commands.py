"""`rules push`, `rules list` and `rules diff`: a rules file against a deployed stack (found through its
CloudFormation outputs), or pushed into the embedded local AWS to see what SyncRules and RulesChanged do."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.rules import Rule
from incremental_analytics.domain.rules_sync import classify_change, diff_rules
from incremental_analytics.domain.rules_validation import MAX_FILE_BYTES
from incremental_analytics_cli.explain import describe_rule
from incremental_analytics_cli.stacks import stack_outputs
from incremental_analytics_local import LocalAws, LocalProduct


def read_rules_file(path: Path) -> tuple[bytes, int]:
    """A rules file's bytes, but never more than one over the limit (a larger file is refused by its size),
    and its size. Raises OSError."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        return file.read(MAX_FILE_BYTES + 1), size


def stack_rules(stack_name: str, session: Any) -> list[Rule]:
    table = stack_outputs(stack_name, session, ["RulesTableName"])["RulesTableName"]
    pages = session.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return rules_from_items(item for page in pages for item in page["Items"])


def list_text(rules: Sequence[Rule]) -> str:
    if not rules:
        return "no rules"
    return "\n".join(f"{rule.rule_id}: {describe_rule(rule.to_dict())}" for rule in rules)


def diff_text(current: Sequence[Rule], wanted: Sequence[Rule]) -> str:
    """What pushing `wanted` would change, and what each change sets off (docs/rules.md)."""
    found = diff_rules(current, wanted)
    by_id = {rule.rule_id: rule for rule in current}
    lines = []
    for rule in found.created:
        lines.append(f"+ {rule.rule_id}: {describe_rule(rule.to_dict())}{_effects(rule.rule_id, None, rule)}")
    for rule in found.changed:
        old = by_id[rule.rule_id]
        lines.append(f"~ {rule.rule_id}: {describe_rule(rule.to_dict())}{_effects(rule.rule_id, old, rule)}")
        lines.append(f"    was: {describe_rule(old.to_dict())}")
    for rule_id in found.deleted:
        lines.append(f"- {rule_id}{_effects(rule_id, by_id[rule_id], None)}")
    lines.append(
        f"{len(found.created)} to create, {len(found.changed)} to change, {len(found.deleted)} to delete, "
        f"{len(found.unchanged)} unchanged"
    )
    return "\n".join(lines)


def _effects(rule_id: str, old: Rule | None, new: Rule | None) -> str:
    change = classify_change(rule_id, old, new)
    notes = []
    if change is not None and change.purge:
        notes.append("purges its counters and dedupe records")
    elif change is not None and change.kind == "changed":
        notes.append("keeps its counters")
    if change is not None and change.evaluate:
        notes.append("evaluated at once")
    return f"  [{'; '.join(notes)}]" if notes else ""


def push_to_stack(path: Path, content: bytes, stack_name: str, session: Any) -> str:
    bucket = stack_outputs(stack_name, session, ["DataBucketName"])["DataBucketName"]
    key = f"rules/{path.name}"
    session.client("s3").put_object(Bucket=bucket, Key=key, Body=content)
    return (
        f"uploaded to s3://{bucket}/{key}: SyncRules applies it (RulesSynced on the outcomes bus), or, with any "
        f"problem, changes nothing and writes s3://{bucket}/{key}.errors.json (RulesRejected)"
    )


def push_locally(path: Path, content: bytes) -> str:
    """Into a fresh embedded local AWS: SyncRules, then RulesChanged, as on AWS."""
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"FunctionLogLevel": "WARNING"})
        synced = product.upload_rules_file(path.name, content)
        if synced.status != "SUCCEEDED":
            return f"SyncRules {synced.status.lower()}: {synced.error}"
        counts = (synced.output or {}).get("summary", {}).get("counts", {})
        changes = product.apply_rule_changes()
        applied = [change for execution in changes.executions for change in (execution.output or {}).get("changes", [])]
        evaluated = sum(1 for change in applied if change["evaluated"])
        return (
            f"SyncRules: {counts.get('created', 0)} created, {counts.get('changed', 0)} changed, "
            f"{counts.get('deleted', 0)} deleted, {counts.get('unchanged', 0)} unchanged; RulesChanged: "
            f"{len(applied)} change(s), {evaluated} date/window rule(s) evaluated at once (embedded local AWS)"
        )
