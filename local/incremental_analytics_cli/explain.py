"""`incremental-analytics explain`: why a user qualified, reached a target or was disqualified (or not yet).

Reads a `run` output folder, or a deployed stack's audit, counters and rules tables.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incremental_analytics.adapters.dynamodb_items import item_from_dynamo, outcome_from_item
from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.delivery import SINKS
from incremental_analytics.domain.numbers import json_number
from incremental_analytics_cli.invocation import command_name
from incremental_analytics_cli.stacks import StackError, stack_outputs
from incremental_analytics_local import execution_logs


class ExplainError(Exception):
    pass


@dataclass
class Record:
    """What is known of the product's decisions: rules, outcomes, their deliveries, the counters."""

    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    run_folder: str | None = None  # where `trace` finds executions kept by a local run
    trace_source: str | None = None  # what `trace` is told to read executions from: --from FOLDER, --stack NAME


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def from_run(folder: Path) -> Record:
    if not (folder / "outcomes.jsonl").exists():
        raise ExplainError(f"{folder} is not a run output folder (no outcomes.jsonl)")
    return Record(
        rules={rule["rule_id"]: rule for rule in _jsonl(folder / "rules.jsonl")},
        outcomes=_jsonl(folder / "outcomes.jsonl"),
        deliveries={row["outcome_id"]: row for row in _jsonl(folder / "deliveries.jsonl")},
        counters={(row["user_id"], row["rule_id"]): row for row in _jsonl(folder / "counters.jsonl")},
        run_folder=str(folder),
        trace_source=shlex.join(["--from", str(folder)]),
    )


def from_stack(stack_name: str, user_id: str, session: Any, *, trace_flags: Sequence[str] = ()) -> Record:
    """One user's record from a deployed stack: its outputs name the tables. `trace_flags` (--region, --profile)
    go into the trace command it suggests."""
    try:
        outputs = stack_outputs(stack_name, session, ["AuditTableName", "CountersTableName", "RulesTableName"])
    except StackError as error:
        raise ExplainError(str(error)) from None
    dynamodb = session.client("dynamodb")
    audit = _query(dynamodb, outputs["AuditTableName"], "user_id", user_id)
    counters = _query(dynamodb, outputs["CountersTableName"], "pk", f"U#{user_id}")
    rules_pages = dynamodb.get_paginator("scan").paginate(TableName=outputs["RulesTableName"])
    rules = rules_from_items(item for page in rules_pages for item in page["Items"])
    record = Record(
        rules={rule.rule_id: rule.to_dict() for rule in rules},
        trace_source=shlex.join(["--stack", stack_name, *trace_flags]),
    )
    for item in audit:
        outcome = outcome_from_item(item)
        record.outcomes.append(outcome)
        plain = item_from_dynamo(item)
        delivery = plain.get("delivery") or {}
        record.deliveries[outcome["outcome_id"]] = {
            **{sink: delivery.get(sink, "pending") for sink in SINKS},
            "attempts": int(plain.get("delivery_attempts", 0)),
        }
    for item in counters:
        plain = item_from_dynamo(item)
        if str(item["sk"]["S"]).startswith("R#"):
            figures = plain["st"]
            record.counters[(user_id, plain["rule_id"])] = {
                "count": int(figures["count"]),
                "sum": json_number(figures["sum"]),
                "cycle": int(figures["cycle"]),
                "qualified": bool(figures["qualified"]),
            }
    return record


def _query(dynamodb: Any, table: str, key: str, value: str) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="#k = :v",
        ExpressionAttributeNames={"#k": key},
        ExpressionAttributeValues={":v": {"S": value}},
    )
    return [item for page in pages for item in page["Items"]]


# -- rendering -------------------------------------------------------------------------------------------------


def explain(record: Record, user_id: str, rule_id: str | None = None) -> str:
    if (
        rule_id is not None
        and rule_id not in record.rules
        and not any(o["rule_id"] == rule_id for o in record.outcomes)
    ):
        raise ExplainError(f"no rule {rule_id!r} (rules: {', '.join(sorted(record.rules)) or 'none'})")
    rule_ids = (
        [rule_id]
        if rule_id
        else sorted(set(record.rules) | {o["rule_id"] for o in record.outcomes if o["user_id"] == user_id})
    )
    sections = [_explain_rule(record, user_id, rid) for rid in rule_ids]
    known = any(o["user_id"] == user_id for o in record.outcomes) or any(u == user_id for u, _ in record.counters)
    header = f"User {user_id}" + ("" if known else " (no events of this user matched any rule)")
    return "\n\n".join([header, *sections])


def _explain_rule(record: Record, user_id: str, rule_id: str) -> str:
    rule = record.rules.get(rule_id)
    outcomes = sorted(
        (o for o in record.outcomes if o["user_id"] == user_id and o["rule_id"] == rule_id),
        key=lambda o: (o["occurred_at"], o["cycle"] or 0),
    )
    lines = [f"Rule {rule_id}: {describe_rule(rule) if rule else _rule_from_evidence(outcomes)}"]
    if not outcomes:
        lines.append(f"  Not qualified yet. {_not_yet(rule, record.counters.get((user_id, rule_id)))}")
    for outcome in outcomes:
        lines += _explain_outcome(outcome, record.deliveries.get(outcome["outcome_id"]), record)
    counter = record.counters.get((user_id, rule_id))
    if counter and outcomes:
        lines.append(
            f"  Counters now: count {counter['count']}, sum {counter['sum']}"
            + (f", cycle {counter['cycle']}" if counter.get("cycle") else "")
        )
    return "\n".join(lines)


def describe_rule(rule: dict[str, Any]) -> str:
    parts = [f"{rule['type']} rule on {rule['event_type']!r} events"]
    if rule.get("attribute"):
        parts.append(f"whose {rule['attribute']['name']!r} is {rule['attribute']['value']!r}")
    conditions = [
        f"{name} {rule[name]['operator'].replace('_', ' ')} {rule[name]['target']}"
        + (f" (metric {rule[name]['metric']!r})" if rule[name].get("metric") else "")
        for name in ("count", "sum")
        if rule.get(name)
    ]
    parts.append("when " + " and ".join(conditions))
    if rule.get("reset"):
        parts.append("firing and starting again each time")
    if rule["type"] == "date":
        parts.append(f"from {rule['start_date']} to {rule['finish_date']} inclusive ({rule.get('timezone', 'UTC')})")
    if rule["type"] == "window":
        parts.append(f"over the last {rule['days']} days")
    return " ".join(parts) + f" -> {rule['output']}" + ("" if rule.get("enabled", True) else " (disabled)")


def _rule_from_evidence(outcomes: list[dict[str, Any]]) -> str:
    if not outcomes:
        return "(not in the current rules)"
    rule = outcomes[0]["evidence"]["rule"]
    return f"{rule['type']} rule on {rule['event_type']!r} events (no longer in the current rules)"


def _not_yet(rule: dict[str, Any] | None, counter: dict[str, Any] | None) -> str:
    if rule is None:
        return ""
    figures = counter or {"count": 0, "sum": 0}
    needs = [
        f"{name} is {figures[name]}, needs {rule[name]['operator'].replace('_', ' ')} {rule[name]['target']}"
        for name in ("count", "sum")
        if rule.get(name)
    ]
    return "; ".join(needs) + "."


def _explain_outcome(outcome: dict[str, Any], delivery: dict[str, Any] | None, record: Record) -> list[str]:
    evidence = outcome["evidence"]
    what = {"qualified": "QUALIFIED", "disqualified": "DISQUALIFIED", "reached": "REACHED the target"}[outcome["kind"]]
    cycle = f" (cycle {outcome['cycle']})" if outcome["cycle"] is not None else ""
    lines = [f"  {what}{cycle} at {outcome['occurred_at']}: {outcome['output']}   [outcome {outcome['outcome_id']}]"]
    for condition in evidence["conditions"]:
        verdict = "holds" if condition["holds"] else "does not hold"
        lines.append(
            f"    {condition['on']} {condition['actual']} {condition['operator'].replace('_', ' ')} "
            f"{condition['target']}: {verdict}"
        )
    if evidence.get("period"):
        period = evidence["period"]
        lines.append(f"    period [{period['start']}, {period['end']}) in {period['timezone']}")
    shown = evidence["events"]
    total = evidence["events_total"]
    label = f"all {total}" if not evidence.get("events_truncated") else f"the last {len(shown)} of {total}"
    lines.append(f"    contributing events ({label}):")
    lines += [f"      {event['timestamp']}  {event['event_id']}  value {event['value']}" for event in shown]
    if delivery:
        statuses = ", ".join(f"{sink} {delivery.get(sink, 'pending')}" for sink in SINKS)
        attempts = int(delivery.get("attempts", 0))
        lines.append(f"    sinks: {statuses} ({attempts} attempt{'' if attempts == 1 else 's'})")
    if outcome.get("execution"):
        name = execution_logs.execution_name(outcome["execution"])
        lines.append(f"    decided by execution {name}")
        # A run folder keeps its traces by name; on a stack the ARN names the state machine too.
        execution = name if record.run_folder else outcome["execution"]
        if record.trace_source:
            lines.append(f"      trace: {command_name()} trace {record.trace_source} --execution {execution}")
    return lines
