"""What tracing Express workflows costs: the CloudWatch Logs records IngestBatch writes at each logging setting.

2,000 synthetic events from 100 users (the demo's mix), the ingest benchmark's 3 rules, batches of 100, through
the real workflow on the local AWS, whose state machines log as AWS does (execution_logs.py). Counts are exact
for the local run; bytes are the records' messages plus the 26 bytes per event PutLogEvents counts. The price is
CloudWatch Logs' Standard-class ingestion in us-east-1 (0.50 USD per GB, the first tier of vended logs such as
Step Functions', "Amazon CloudWatch pricing", 2025); storage (0.03 USD per GB-month) comes on top while the log
group keeps them (IngestBatchLogs: 30 days). Figures, not pass/fail.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.ingest_cost import RULES
from incremental_analytics_cli.demo import synthetic_events
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

EVENTS, USERS, BATCH = 2_000, 100, 100
INGESTION_USD_PER_GB = 0.50
EVENT_OVERHEAD_BYTES = 26  # CloudWatch Logs counts each log event as its message plus 26 bytes
SETTINGS = [("ERROR", "false"), ("ALL", "false"), ("ALL", "true")]


def _measure(level: str, data: str) -> dict[str, Any]:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(
            aws,
            parameters={
                "ExpressLogLevel": level,
                "IncludeExecutionData": data,
                "BatchSize": str(BATCH),
                "FunctionLogLevel": "WARNING",
            },
        )
        product.put_rules(RULES)
        product.put_events(synthetic_events(USERS, EVENTS))
        executions = len(product.ingest().executions)
        pages = (
            aws.client("logs")
            .get_paginator("filter_log_events")
            .paginate(logGroupName=product.table("IngestBatchLogs"))
        )
        messages = [event["message"] for page in pages for event in page["events"]]
    by_execution: dict[str, list[int]] = {}
    for message in messages:
        record = json.loads(message)
        by_execution.setdefault(record["execution_arn"], []).append(len(message.encode()) + EVENT_OVERHEAD_BYTES)
    sizes = [sum(found) for found in by_execution.values()] or [0]
    total = sum(sizes)
    per_million_events = total / EVENTS * 1e6 / 1e9 * INGESTION_USD_PER_GB
    return {
        "level": level,
        "execution_data": data,
        "executions": executions,
        "log_events_per_execution": statistics.median([len(found) for found in by_execution.values()] or [0]),
        "kb_per_execution": round(statistics.median(sizes) / 1024, 1),
        "bytes_per_stream_event": round(total / EVENTS),
        "usd_per_million_events": round(per_million_events, 2),
    }


def main() -> list[dict[str, Any]]:
    return [_measure(level, data) for level, data in SETTINGS]


if __name__ == "__main__":
    for row in main():
        print(row)
