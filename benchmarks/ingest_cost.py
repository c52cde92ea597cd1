"""What ingesting costs: 10,000 events from 500 users, 3 rules, batches of 100, through the real workflows.

Counting (IngestBatch, from the stream) and delivery (DeliverOutcomes, from the outbox's stream) are measured
apart: exact counts from the local run (requests by operation, Lambda invocations, states per execution,
requests per outcome and sink, DynamoDB capacity units computed from each request's items as DynamoDB bills
them), and an estimate per million events at list prices. Figures, not pass/fail.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from decimal import Decimal
from typing import Any

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition
from incremental_analytics_local import botocore_hooks
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct, seed_endpoints, seed_profiles

RULES = [
    Rule("greenbutton-fan", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 5)),
    Rule("redbutton-every-4", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 3), reset=True),
    Rule(
        "big-spender",
        RuleType.AGGREGATE,
        "purchase",
        sum=SumCondition(Operator.GREATER, Decimal(500), "price"),
    ),
]

# us-east-1 list prices (USD) as AWS published them in 2025; DynamoDB on-demand after its November 2024 cut.
PRICES = {
    "pipes_per_request": 0.40 / 1e6,  # EventBridge Pipes, per request (each 64 KB of a batch)
    "express_per_request": 1.00 / 1e6,  # Step Functions Express
    "express_per_gb_second": 0.00001667,  # Express duration, billed per 64 MB
    "lambda_per_request": 0.20 / 1e6,
    "lambda_arm_per_gb_second": 0.0000133334,
    "dynamodb_per_write_unit": 0.625 / 1e6,  # on-demand write request units
    "dynamodb_per_read_unit": 0.125 / 1e6,  # on-demand read request units
    "eventbridge_per_event": 1.00 / 1e6,  # custom events put on a bus
    "kinesis_per_gb": 0.08,  # on-demand data ingested
    "s3_per_put": 0.005 / 1000,
}


def _size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, near enough: names plus values as text."""
    return len(json.dumps(item, separators=(",", ":")))


class CapacityMeter:
    """Write and read units of the product's DynamoDB requests, from the requests themselves."""

    def __init__(self) -> None:
        self.write_units = 0.0
        self.read_units = 0.0

    def __call__(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if service != "dynamodb":
            return
        if operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (body,) = entry.values()
                self.write_units += 2 * math.ceil(_size(body.get("Item") or body.get("Key") or {}) / 1024 or 1)
        elif operation == "BatchWriteItem":
            for writes in params["RequestItems"].values():
                for write in writes:
                    self.write_units += math.ceil(_size(write["PutRequest"]["Item"]) / 1024)
        elif operation in ("UpdateItem", "PutItem"):
            self.write_units += 1
        elif operation == "BatchGetItem":
            for request in params["RequestItems"].values():
                self.read_units += len(request["Keys"]) * (1 if request.get("ConsistentRead") else 0.5)
        elif operation == "GetItem":
            self.read_units += 1 if params.get("ConsistentRead") else 0.5
        elif operation in ("Scan", "Query"):
            self.read_units += 1


def synthetic_events(count: int, users: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    events = []
    for n in range(count):
        event_type = rng.choice(["greenbutton", "redbutton", "purchase", "pageview"])
        event: dict[str, Any] = {
            "user_id": f"user-{rng.randrange(users):04d}",
            "event_type": event_type,
            "timestamp": now_ms - 3_600_000 + n,
        }
        if event_type == "purchase":
            event["metrics"] = {"price": round(rng.uniform(5, 250), 2)}
        events.append(event)
    return events


def main(events_count: int = 10_000, users: int = 500) -> dict[str, Any]:
    events = synthetic_events(events_count, users)
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"BatchSize": "100"})
        user_ids = sorted({event["user_id"] for event in events})
        seed_endpoints(aws, user_ids)
        seed_profiles(aws, user_ids)
        product.put_rules(RULES)
        product.put_events(events)
        meter = CapacityMeter()
        aws.reset_request_counts()
        botocore_hooks.observe(meter)
        started = time.perf_counter()
        report = product.ingest()
        wall = time.perf_counter() - started
        requests = aws.request_counts()
        states, durations = _states(aws, report.executions), [execution.seconds for execution in report.executions]
        invocations = dict(aws.lambdas.invocations)
        aws.reset_request_counts()
        started = time.perf_counter()
        delivered = product.deliver()
        delivery_wall = time.perf_counter() - started
        delivery_requests = aws.request_counts()
        delivery_states = _states(aws, delivered.executions)
        outcomes = len(product.outcomes())
    per_thousand = {name: round(count * 1000 / events_count, 1) for name, count in sorted(requests.items())}
    executions = len(report.executions)
    lambda_calls = sum(invocations.values())
    all_requests = {
        name: requests.get(name, 0) + delivery_requests.get(name, 0) for name in {*requests, *delivery_requests}
    }
    cost = _cost_per_million(
        events_count,
        executions + len(delivered.executions),
        lambda_calls,
        meter,
        all_requests,
        statistics.median(durations),
    )
    return {
        "events": events_count,
        "executions": executions,
        "outcomes": outcomes,
        "wall_seconds": round(wall, 1),
        "requests_per_1000_events": per_thousand,
        "lambda_invocations_per_execution": round(lambda_calls / executions, 2),
        "states_per_execution_median": statistics.median(states),
        "states_per_execution_max": max(states),
        "execution_seconds_median": round(statistics.median(durations), 3),
        "write_units_per_event": round(meter.write_units / events_count, 2),
        "read_units_per_event": round(meter.read_units / events_count, 2),
        "delivery": {
            "executions": len(delivered.executions),
            "wall_seconds": round(delivery_wall, 1),
            "states_per_outcome": round(sum(delivery_states) / max(outcomes, 1), 1),
            "requests_per_outcome": per_outcome(delivery_requests, outcomes),
        },
        "cost_per_million_events_usd": cost,
    }


# Which requests belong to which sink, and to the outbox's own bookkeeping.
SINK_SERVICES = {"eventbridge": "events", "pinpoint": "pinpoint", "profiles": "customer-profiles", "outbox": "dynamodb"}


def per_outcome(requests: dict[str, int], outcomes: int) -> dict[str, float]:
    """Requests per outcome, by sink (and the outbox's own updates), from a delivery's request counts."""
    return {
        sink: round(
            sum(count for name, count in requests.items() if name.split(".")[0] == service) / max(outcomes, 1), 2
        )
        for sink, service in SINK_SERVICES.items()
    }


def _states(aws: LocalAws, executions: Any) -> list[int]:
    """States entered per execution (an injected fault on the Pipe's call starts none)."""
    return [
        sum(1 for event in aws.history(execution.arn) if event["type"].endswith("StateEntered"))
        for execution in executions
        if execution.arn
    ]


def _cost_per_million(  # noqa: PLR0917 - the measured figures, each once
    events: int,
    executions: int,
    lambda_calls: int,
    meter: CapacityMeter,
    requests: dict[str, int],
    median_execution_seconds: float,
) -> dict[str, float]:
    scale = 1e6 / events
    # Assumed on AWS: a batch's Express execution lasts about 1 s at 64 MB; a function call 50 ms at 512 MB.
    express_seconds = 1.0
    lambda_seconds = 0.05
    parts = {
        "pipes": executions * scale * PRICES["pipes_per_request"],
        "step_functions_express": executions
        * scale
        * (PRICES["express_per_request"] + express_seconds * 0.0625 * PRICES["express_per_gb_second"]),
        "lambda": lambda_calls
        * scale
        * (PRICES["lambda_per_request"] + lambda_seconds * 0.5 * PRICES["lambda_arm_per_gb_second"]),
        "dynamodb": scale
        * (meter.write_units * PRICES["dynamodb_per_write_unit"] + meter.read_units * PRICES["dynamodb_per_read_unit"]),
        "eventbridge": requests.get("events.PutEvents", 0) * scale * PRICES["eventbridge_per_event"],
        "kinesis": 1e6 * 200 / 1e9 * PRICES["kinesis_per_gb"],  # about 200 bytes an event
        "s3": requests.get("s3.PutObject", 0) * scale * PRICES["s3_per_put"],
    }
    parts = {name: round(value, 3) for name, value in parts.items()}
    parts["total"] = round(sum(parts.values()), 2)
    parts["local_median_execution_seconds"] = round(median_execution_seconds, 2)
    return parts


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
