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
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from incremental_analytics.adapters.item_size import item_size
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, SumCondition
from incremental_analytics_local import botocore_hooks
from incremental_analytics_local.engine import ACCOUNT_ID, LocalAws
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
    "s3_per_get": 0.0004 / 1000,
}


# -- DynamoDB capacity, as DynamoDB bills it --------------------------------------------------------------------
# Item sizes as the product computes them (adapters/item_size.py, per "DynamoDB item sizes and formats").
# Units per "Read/write capacity mode" and "DynamoDB transactions": a write 1 WRU per KB (rounded up) of the larger
# of the item before and after it (PutItem, UpdateItem, DeleteItem, each BatchWriteItem put), twice that in a
# transaction; a read 0.5 RRU per 4 KB (rounded up, per item) eventually consistent, 1 strongly consistent, 2 in a
# transaction, and at least that much for an item that is not there; a Query or Scan per 4 KB of all it reads.
# Each global secondary index a write touches costs its own units ("Global secondary indexes in DynamoDB", Write
# capacity units / Provisioned throughput considerations): putting an entry in, or taking one out, 1 WRU per KB of
# the entry (its keys and projected attributes); an update that changes the index's key, both; one that changes only
# projected attributes, one write; nothing if the index's entry does not change. The table's part of a transaction
# counts twice; the index's part is counted once here (indexes are updated after the transaction, as any write's).


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _index_entry(index: Any, item: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item's entry in a global secondary index (moto's index: key schema and projection), None if it has none
    (a sparse index holds only items with its key attributes)."""
    if item is None or any(name not in item for name in index.schema_key_attrs):
        return None
    kind = index.projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return item
    kept = {*index.table_key_attrs, *index.schema_key_attrs}
    if kind == "INCLUDE":
        kept |= set(index.projection.get("NonKeyAttributes", []))
    return {name: value for name, value in item.items() if name in kept}


def index_write_units(indexes: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """Write units the global secondary indexes take for one write of an item, from the item before and after."""
    units = 0
    for index in indexes:
        old, new = _index_entry(index, before), _index_entry(index, after)
        if old == new:
            continue
        if old is None or new is None:
            units += _write_units(item_size(old if new is None else new))
        elif any(old[name] != new[name] for name in index.schema_key_attrs):
            units += _write_units(item_size(old)) + _write_units(item_size(new))
        else:
            units += _write_units(max(item_size(old), item_size(new)))
    return units


def _read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


class CapacityMeter:
    """Write and read units of the product's DynamoDB requests, from the items as the local DynamoDB holds them
    before and after each write (moto's backend, wrapped while the meter is installed)."""

    def __init__(self) -> None:
        self.write_units = 0.0
        self.read_units = 0.0
        self.by_table: defaultdict[str, float] = defaultdict(float)  # write units per table (its logical name's stem)
        self.index_write_units = 0.0  # of the above, what the tables' global secondary indexes took
        # EventBridge bills each entry a PutEvents puts (per 64 KB chunk), not each request.
        self.eventbridge_entries = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._restore: list[tuple[Any, str, Any]] = []
        self._backend: Any = None

    # reads: from the request, looking the items up (reads change nothing)
    def __call__(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if service == "events" and operation == "PutEvents":
            with self._lock:
                self.eventbridge_entries += len(params.get("Entries") or [])
        if service != "dynamodb":
            return
        if operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                for key in request["Keys"]:
                    self._read(table, key, bool(request.get("ConsistentRead")))
        elif operation == "TransactGetItems":  # twice a strongly consistent read, per item
            for action in params["TransactItems"]:
                self._read(action["Get"]["TableName"], action["Get"]["Key"], True, transactional=True)
        elif operation == "GetItem":
            self._read(params["TableName"], params["Key"], bool(params.get("ConsistentRead")))

    def _read(self, table: str, key: dict[str, Any], consistent: bool, *, transactional: bool = False) -> None:
        units = _read_units(item_size(self._stored(table, key)), consistent) * (2 if transactional else 1)
        with self._lock:
            self.read_units += units

    def _stored(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        backend = self._backend
        try:
            found = backend.get_item(table, key)
        except Exception:  # a table that is not there reads nothing
            return None
        return None if found is None else found.to_json()["Attributes"]

    def install(self, region: str) -> None:
        self._backend = dynamodb_backends[ACCOUNT_ID][region]
        for name in ("put_item", "update_item", "delete_item"):
            self._wrap_write(name)
        for name in ("transact_write_items", "query", "scan"):
            self._wrap_other(name)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()

    def _wrap_write(self, name: str) -> None:
        owner, original = DynamoDBBackend, getattr(DynamoDBBackend, name)
        meter = self

        def write(backend: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            key: Any = kwargs.get("key", args[0] if args else None)
            if name == "put_item":
                table = backend.get_table(table_name)
                attrs = kwargs.get("item_attrs", args[0] if args else {})
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            before = meter._stored(table_name, key)
            result = original(backend, table_name, *args, **kwargs)
            after = meter._stored(table_name, key)
            indexes = backend.get_table(table_name).global_indexes
            meter._wrote(
                table_name,
                _write_units(max(item_size(before), item_size(after))),
                index_write_units(indexes, before, after),
            )
            return result

        setattr(owner, name, write)
        self._restore.append((owner, name, original))

    def _wrap_other(self, name: str) -> None:
        owner, original = DynamoDBBackend, getattr(DynamoDBBackend, name)
        meter = self

        def other(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if name != "transact_write_items":
                result = original(backend, *args, **kwargs)
                items = result[0] if isinstance(result, tuple) else []
                size = sum(item.size() for item in items) if items and hasattr(items[0], "size") else 0
                with meter._lock:
                    meter.read_units += _read_units(size, False)
                return result
            meter._local.pending = []
            try:
                result = original(backend, *args, **kwargs)
            except Exception:
                meter._local.pending = None  # cancelled: what it tried is not counted here (see note)
                raise
            pending, meter._local.pending = meter._local.pending, None
            for table_name, units, index_units in pending:
                meter._count(table_name, 2 * units, index_units)
            return result

        setattr(owner, name, other)
        self._restore.append((owner, name, original))

    def _wrote(self, table_name: str, units: int, index_units: int) -> None:
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append((table_name, units, index_units))
        else:
            self._count(table_name, units, index_units)

    def _count(self, table_name: str, units: float, index_units: float) -> None:
        stem = next((part for part in table_name.split("-") if part.endswith("Table")), table_name)
        with self._lock:
            self.write_units += units + index_units
            self.by_table[stem] += units + index_units
            self.index_write_units += index_units


EVENT_TYPES = ["greenbutton", "redbutton", "purchase", "pageview"]

# The heavy workload: ten rules, the three above and seven more, one of them a window rule (which needs the
# time series of its event type).
HEAVY_RULES = [
    *RULES,
    Rule(
        "green-every-3",
        RuleType.AGGREGATE,
        "greenbutton",
        count=CountCondition(Operator.GREATER_OR_EQUAL, 3),
        reset=True,
    ),
    Rule("red-regular", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 10)),
    Rule("buyer", RuleType.AGGREGATE, "purchase", count=CountCondition(Operator.GREATER, 2)),
    Rule(
        "spend-every-300",
        RuleType.AGGREGATE,
        "purchase",
        sum=SumCondition(Operator.GREATER_OR_EQUAL, Decimal(300), "price"),
        reset=True,
    ),
    Rule("reader", RuleType.AGGREGATE, "pageview", count=CountCondition(Operator.GREATER, 4)),
    Rule(
        "browser-every-10",
        RuleType.AGGREGATE,
        "pageview",
        count=CountCondition(Operator.GREATER_OR_EQUAL, 10),
        reset=True,
    ),
    Rule("weekly-buyer", RuleType.WINDOW, "purchase", count=CountCondition(Operator.GREATER, 1), days=7),
]


@dataclass(frozen=True)
class Workload:
    name: str
    rules: list[Rule]
    users_per_batch: int | None = None  # None: every event's user drawn from all users
    parameters: tuple[tuple[str, str], ...] = ()  # stack parameters beyond the defaults


WORKLOADS = [
    Workload("issue", RULES),
    Workload("dense", RULES, users_per_batch=20),
    Workload("heavy", HEAVY_RULES),
    # The saving a stack chooses (docs/periods.md): the time series only for what a date or window rule names.
    Workload("issue, TimeSeriesForAllEvents=false", RULES, parameters=(("TimeSeriesForAllEvents", "false"),)),
    Workload("heavy, TimeSeriesForAllEvents=false", HEAVY_RULES, parameters=(("TimeSeriesForAllEvents", "false"),)),
]


def synthetic_events(
    count: int, users: int, seed: int = 3, *, users_per_batch: int | None = None, batch: int = 100
) -> list[dict[str, Any]]:
    """`count` events of the four types; with `users_per_batch`, each run of `batch` events on the stream is from
    that many users only (the stream keeps put order on one shard, so each Pipe batch is one such run)."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    events = []
    chosen = list(range(users))
    for n in range(count):
        if users_per_batch is not None and n % batch == 0:
            chosen = rng.sample(range(users), users_per_batch)
        event_type = rng.choice(EVENT_TYPES)
        event: dict[str, Any] = {
            "user_id": f"user-{rng.choice(chosen):04d}",
            "event_type": event_type,
            "timestamp": now_ms - 3_600_000 + n,
        }
        if event_type == "purchase":
            event["metrics"] = {"price": round(rng.uniform(5, 250), 2)}
        events.append(event)
    return events


def main(
    events_count: int = 10_000,
    users: int = 500,
    workload: Workload = WORKLOADS[0],
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    events = synthetic_events(events_count, users, users_per_batch=workload.users_per_batch)
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"BatchSize": "100", **dict(workload.parameters), **(parameters or {})})
        user_ids = sorted({event["user_id"] for event in events})
        seed_endpoints(aws, user_ids)
        seed_profiles(aws, user_ids)
        product.put_rules(workload.rules)
        product.put_events(events)
        meter = CapacityMeter()
        meter.install(aws.region)
        try:
            aws.reset_request_counts()
            botocore_hooks.observe(meter)
            started = time.perf_counter()
            report = product.ingest()
            wall = time.perf_counter() - started
            requests = aws.request_counts()
            states, durations = _states(aws, report.executions), [execution.seconds for execution in report.executions]
            invocations = dict(aws.lambdas.invocations)
            counting_write_units, counting_read_units = meter.write_units, meter.read_units
            counting_by_table = dict(meter.by_table)
            counting_index_units = meter.index_write_units
            aws.reset_request_counts()
            started = time.perf_counter()
            delivered = product.deliver()
            delivery_wall = time.perf_counter() - started
            delivery_requests = aws.request_counts()
            delivery_states = _states(aws, delivered.executions)
            outcomes = len(product.outcomes())
        finally:
            meter.uninstall()
    per_thousand = {name: round(count * 1000 / events_count, 1) for name, count in sorted(requests.items())}
    executions = len(report.executions)
    lambda_calls = sum(invocations.values())
    all_requests = {
        name: requests.get(name, 0) + delivery_requests.get(name, 0) for name in {*requests, *delivery_requests}
    }
    cost = _cost_per_million(
        events_count,
        executions + len(delivered.executions),
        lambda_calls + delivery_requests.get("lambda.Invoke", 0),  # delivery's ShapeDelivery steps too
        meter,
        all_requests,
        statistics.median(durations),
    )
    return {
        "workload": workload.name,
        "events": events_count,
        "executions": executions,
        "outcomes": outcomes,
        "wall_seconds": round(wall, 1),
        "requests_per_1000_events": per_thousand,
        "requests_per_event": round(sum(requests.values()) / events_count, 3),
        "lambda_invocations_per_execution": round(lambda_calls / executions, 2),
        "states_per_execution_median": statistics.median(states),
        "states_per_execution_max": max(states),
        "execution_seconds_median": round(statistics.median(durations), 3),
        "write_units_per_event": round(counting_write_units / events_count, 3),
        "read_units_per_event": round(counting_read_units / events_count, 3),
        "index_write_units_per_event": round(counting_index_units / events_count, 3),
        "write_units_per_event_by_table": {
            table: round(units / events_count, 3) for table, units in sorted(counting_by_table.items())
        },
        "delivery": {
            "executions": len(delivered.executions),
            "wall_seconds": round(delivery_wall, 1),
            "states_per_outcome": round(sum(delivery_states) / max(outcomes, 1), 1),
            "requests_per_outcome": per_outcome(delivery_requests, outcomes),
            "lambda_invocations_per_outcome": round(delivery_requests.get("lambda.Invoke", 0) / max(outcomes, 1), 2),
            "write_units_per_outcome": round((meter.write_units - counting_write_units) / max(outcomes, 1), 2),
            "index_write_units_per_outcome": round(
                (meter.index_write_units - counting_index_units) / max(outcomes, 1), 2
            ),
            "read_units_per_outcome": round((meter.read_units - counting_read_units) / max(outcomes, 1), 2),
        },
        "cost_per_million_events_usd": cost,
    }


def summary_row(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue asks for, one row per workload."""
    delivery = figures["delivery"]
    return {
        "workload": figures["workload"],
        "usd_per_million": figures["cost_per_million_events_usd"]["total"],
        "wru_per_event": figures["write_units_per_event"],
        "rru_per_event": figures["read_units_per_event"],
        "requests_per_event": figures["requests_per_event"],
        "requests_per_outcome": round(sum(delivery["requests_per_outcome"].values()), 2),
        "states_per_execution": figures["states_per_execution_median"],
        "outcomes": figures["outcomes"],
        "local_wall_s": figures["wall_seconds"],
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
        "eventbridge": meter.eventbridge_entries * scale * PRICES["eventbridge_per_event"],
        "kinesis": 1e6 * 200 / 1e9 * PRICES["kinesis_per_gb"],  # about 200 bytes an event
        "s3": scale
        * (
            requests.get("s3.PutObject", 0) * PRICES["s3_per_put"]
            + requests.get("s3.GetObject", 0) * PRICES["s3_per_get"]
        ),
    }
    parts = {name: round(value, 3) for name, value in parts.items()}
    parts["total"] = round(sum(parts.values()), 2)
    parts["local_median_execution_seconds"] = round(median_execution_seconds, 2)
    return parts


if __name__ == "__main__":
    print(json.dumps([main(workload=workload) for workload in WORKLOADS], indent=2))
