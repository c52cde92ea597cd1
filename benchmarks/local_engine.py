"""The embedded local AWS: time to start, to deploy the fixture template, Task states per second, and the wall and
CPU time of `incremental-analytics run` on the cost benchmark's issue workload.

Figures, not pass/fail: medians of several runs. To compare with another checkout (an earlier commit, say
`git worktree add /tmp/before HEAD~1`), on the same machine at the same time, the two alternated:

    .venv/bin/python -m benchmarks.local_engine --against /tmp/before --events 10000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from incremental_analytics_local.deploy import deploy
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.pipes import PipeDriver

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "functional" / "fixture" / "template.yaml"


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


def write_workload(folder: Path, events: int) -> tuple[Path, Path]:
    """The cost benchmark's issue workload (benchmarks/ingest_cost.py) as `run` reads it: rules, events."""
    from benchmarks.ingest_cost import RULES, synthetic_events  # noqa: PLC0415 - only this figure needs it

    rules, lines = folder / "rules.json", folder / f"events-{events}.jsonl"
    rules.write_text(json.dumps([rule.to_dict() for rule in RULES], default=str))
    lines.write_text("".join(json.dumps(event) + "\n" for event in synthetic_events(events, 500)))
    return rules, lines


def _run_once(root: Path, rules: Path, lines: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `run`, in a Python process of its own, with `root`'s code."""
    code = "import sys; from incremental_analytics_cli.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "run", "--rules", str(rules), "--events", str(lines), "--out", str(out)]
    path = os.pathsep.join(str(root / part) for part in ("functions", "local"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, "PYTHONPATH": path}, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_command(events: int = 2_000, runs: int = 3, against: Path | None = None) -> list[dict[str, object]]:
    """Median wall and CPU seconds of `run` on `events` events of the issue workload; with `against`, the same for
    that checkout, the two alternated run by run, and the ratios."""
    roots = {"this checkout": ROOT} | ({str(against): against} if against is not None else {})
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory() as scratch:
        rules, lines = write_workload(Path(scratch), events)
        for _ in range(runs):
            for name, root in roots.items():
                timings[name].append(_run_once(root, rules, lines, Path(scratch) / "out"))
    medians = {
        name: (statistics.median(wall for wall, _ in found), statistics.median(cpu for _, cpu in found))
        for name, found in timings.items()
    }
    rows: list[dict[str, object]] = [
        {"code": name, "events": events, "runs": runs, "wall_s_median": round(wall, 1), "cpu_s_median": round(cpu, 1)}
        for name, (wall, cpu) in medians.items()
    ]
    if against is not None:
        (this_wall, this_cpu), (other_wall, other_cpu) = medians.values()
        rows.append(
            {
                "code": "ratio (other / this)",
                "events": events,
                "runs": runs,
                "wall_s_median": round(other_wall / this_wall, 2),
                "cpu_s_median": round(other_cpu / this_cpu, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, help="another checkout of the project, run alternately with this one")
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.against is None:
        print(start_and_deploy())
        print(task_states_per_second())
    for row in run_command(args.events, args.runs, args.against):
        print(row)


if __name__ == "__main__":
    main()
