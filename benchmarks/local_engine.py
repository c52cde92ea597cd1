"""The embedded local AWS: time to start, to deploy the fixture template, and Task states per second.

Figures, not pass/fail: medians of several runs.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from incremental_analytics_local.deploy import deploy
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.pipes import PipeDriver

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "functional" / "fixture" / "template.yaml"


def _median_seconds(action: object, runs: int = 5) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def start_and_deploy() -> dict[str, object]:
    def start() -> None:
        LocalAws().start().stop()

    def start_deploy() -> None:
        with LocalAws() as aws:
            deploy(aws, FIXTURE, stack_name="bench")

    start_s = _median_seconds(start)
    both_s = _median_seconds(start_deploy)
    return {"start_ms": round(start_s * 1000), "start_and_deploy_ms": round(both_s * 1000)}


def task_states_per_second(records: int = 300) -> dict[str, object]:
    with LocalAws(time_scale=0.001) as aws:
        stack = deploy(aws, FIXTURE, stack_name="bench", parameters={"BatchSize": "10"})
        kinesis = aws.client("kinesis")
        for n in range(records):
            kinesis.put_record(
                StreamName=stack.ref("Stream"), PartitionKey=f"u{n % 25}", Data=json.dumps({"id": f"e{n}"}).encode()
            )
        started = time.perf_counter()
        report = PipeDriver(aws, stack.pipes["StreamPipe"]).drain()
        elapsed = time.perf_counter() - started
        tasks = states = 0
        for execution in report.executions:
            history = aws.history(execution.arn)
            tasks += sum(1 for event in history if event["type"] == "TaskStateEntered")
            states += sum(1 for event in history if event["type"].endswith("StateEntered"))
    return {
        "executions": len(report.executions),
        "states_per_execution": round(states / len(report.executions), 1),
        "task_states_per_execution": round(tasks / len(report.executions), 1),
        "task_states_per_second": round(tasks / elapsed),
        "median_execution_ms": round(statistics.median(e.seconds for e in report.executions) * 1000),
    }


if __name__ == "__main__":
    print(start_and_deploy())
    print(task_states_per_second())
