"""`outcomes pending`, `outcomes abandoned` and `outcomes redrive`: the outcomes some sink still lacks, read from a
`run` output folder or a deployed stack's outbox, and an operator's redrive of the abandoned ones on a stack."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from incremental_analytics.adapters.dynamodb_items import ABANDONED, pending_partitions
from incremental_analytics.adapters.outbox import redrive, undelivered_items
from incremental_analytics.domain.delivery import CLAIM_EXPIRY, SINKS, DeliveryState, delivery_state
from incremental_analytics.domain.rules import iso_instant
from incremental_analytics.settings import PENDING_SHARDS
from incremental_analytics_cli.stacks import StackError, stack_outputs

PAGE_SIZE = 50  # outcomes per DeliverOutcomes execution, as the scheduled redelivery starts them


def from_run(folder: Path, state: DeliveryState) -> list[dict[str, Any]]:
    path = folder / "deliveries.jsonl"
    if not path.exists():
        raise StackError(f"{folder} is not a run output folder (no deliveries.jsonl)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("state") == state.value]


def from_stack(stack_name: str, session: Any, state: DeliveryState) -> list[dict[str, Any]]:
    table = stack_outputs(stack_name, session, ["AuditTableName"])["AuditTableName"]
    partitions = [ABANDONED] if state is DeliveryState.ABANDONED else pending_partitions(PENDING_SHARDS)
    dynamodb = session.client("dynamodb")
    return [_row(item) for partition in partitions for item in undelivered_items(dynamodb, table, partition)]


def _row(item: Mapping[str, Any]) -> dict[str, Any]:
    delivery = item.get("delivery") or {}
    return {
        "outcome_id": item["outcome_id"],
        "user_id": item["user_id"],
        "rule_id": item.get("rule_id"),
        **{sink: delivery.get(sink, "pending") for sink in SINKS},
        "attempts": int(item.get("delivery_attempts", 0)),
        "state": delivery_state(delivery).value,
    }


def listing_text(rows: Sequence[Mapping[str, Any]], state: DeliveryState) -> str:
    lines = [
        f"{row['outcome_id']}  user {row['user_id']}  rule {row['rule_id']}  "
        + ", ".join(f"{sink} {row[sink]}" for sink in SINKS)
        + f"  ({row['attempts']} attempt{'s' if row['attempts'] != 1 else ''})"
        for row in sorted(rows, key=lambda row: (str(row["user_id"]), str(row["outcome_id"])))
    ]
    lines.append(f"{len(rows)} outcome(s) {state.value}")
    return "\n".join(lines)


def redrive_stack(stack_name: str, session: Any, outcome_ids: Iterable[str] = ()) -> str:
    """Abandoned outcomes (all, or the ones named) back to the delivery, then delivered at once: their abandoned
    sinks are sent them again; sinks that took them are not."""
    needed = ["AuditTableName", "DeliverOutcomesStateMachineArn"]
    outputs = stack_outputs(stack_name, session, needed)
    dynamodb = session.client("dynamodb")
    abandoned = [_row(item) for item in undelivered_items(dynamodb, outputs["AuditTableName"], ABANDONED)]
    wanted = set(outcome_ids)
    unknown = wanted - {row["outcome_id"] for row in abandoned}
    if unknown:
        raise StackError(f"not abandoned (or no such outcome): {', '.join(sorted(unknown))}")
    chosen = [row for row in abandoned if not wanted or row["outcome_id"] in wanted]
    keys = redrive(dynamodb, outputs["AuditTableName"], chosen, PENDING_SHARDS)
    stale_before = iso_instant(dt.datetime.now(dt.UTC) - CLAIM_EXPIRY)
    sfn = session.client("stepfunctions")
    started = []
    for start in range(0, len(keys), PAGE_SIZE):
        # A redriven outcome's attempts start again from zero.
        page = [{**key, "attempts": 0, "stale_before": stale_before} for key in keys[start : start + PAGE_SIZE]]
        answer = sfn.start_execution(
            stateMachineArn=outputs["DeliverOutcomesStateMachineArn"], input=json.dumps({"outcomes": page})
        )
        started.append(answer["executionArn"])
    lines = [f"redriven: {len(keys)} outcome(s)"]
    lines += [f"  DeliverOutcomes execution {arn}" for arn in started]
    lines.append("`outcomes pending --stack` and `outcomes abandoned --stack` show where they stand")
    return "\n".join(lines)
