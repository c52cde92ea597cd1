"""`make bench`: print the product's figures as tables. Figures only: nothing here passes or fails."""

from __future__ import annotations

import json
import platform

from benchmarks import (
    express_logs,
    ingest_cost,
    inprocess,
    local_engine,
    periods,
    poison,
    rules_files,
    throughput,
    timeseries,
)


def table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).rjust(widths[c]) for c in columns))


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}")
    table(
        "In-process: normalise + match + replay, 20,000 events from 500 users, batches of 100 (median of 5 runs)",
        inprocess.main(),
    )
    table(
        "Local AWS: start, and start + deploy the fixture template (median of 5, ms)", [local_engine.start_and_deploy()]
    )
    table(
        "Local AWS: the fixture's Express workflow over 300 records in batches of 10 (Task states per second)",
        [local_engine.task_states_per_second()],
    )
    table(
        "Local AWS: `incremental-analytics run` on 2,000 events of the issue workload (median of 3; "
        "`python -m benchmarks.local_engine --against DIR` compares with another checkout)",
        local_engine.run_command(),
    )
    runs = [ingest_cost.main(workload=workload) for workload in ingest_cost.WORKLOADS]
    table(
        "Ingest cost, three workloads of 10,000 events (issue: 500 users, 3 rules; dense: 20 users a batch; "
        "heavy: 10 rules), batches of 100 (benchmarks/ingest_cost.py)",
        [ingest_cost.summary_row(figures) for figures in runs],
    )
    figures = runs[0]
    requests = figures.pop("requests_per_1000_events")
    cost = figures.pop("cost_per_million_events_usd")
    delivery = figures.pop("delivery")
    per_sink = delivery.pop("requests_per_outcome")
    figures.pop("write_units_per_event_by_table")
    table("Ingest: 10,000 events from 500 users, 3 rules, batches of 100, through the real workflow", [figures])
    table("Delivery of those outcomes: the outbox's stream through DeliverOutcomes", [delivery])
    table(
        "Delivery: requests per outcome, by sink", [{"sink": k, "requests_per_outcome": v} for k, v in per_sink.items()]
    )
    table("Ingest: AWS requests per 1000 events", [{"request": k, "per_1000_events": v} for k, v in requests.items()])
    print("\nEstimated cost per million events (USD, list prices named in benchmarks/ingest_cost.py):")
    print(json.dumps(cost, indent=2))
    table(
        "The time series packed, by shards and batch size, in process (benchmarks/timeseries.py)", timeseries.packing()
    )
    table(
        "The time series: IngestBatch's writes, EvaluatePeriods' reads of a 7-day window rule "
        "(benchmarks/timeseries.py)",
        timeseries.main(),
    )
    table(
        "Throughput of one shard on paper: measured transactions per batch, AWS's latencies (benchmarks/throughput.py)",
        throughput.model(),
    )
    table(
        "Tracing Express workflows: IngestBatch's CloudWatch Logs records, 2,000 events, batches of 100 "
        "(benchmarks/express_logs.py)",
        express_logs.main(),
    )
    table(
        "EvaluatePeriods: a 30-day window rule, hourly evaluation, by history size (benchmarks/periods.py)",
        periods.main(),
    )
    table("Rules files: loading, valid and hostile (median of 3; peak traced memory)", rules_files.loading())
    table(
        "SyncRules: a 10,000-row sheet through the real workflow (benchmarks/rules_files.py)",
        [rules_files.sync_workflow()],
    )
    figures = poison.main()
    table(
        f"Poison records: normalise, median and slowest of {poison.RUNS} runs (benchmarks/poison.py)", figures["parse"]
    )
    table("ParseRecords reading four records of 1 MiB, the largest batch Lambda hands it", figures["enrichment"])
    table(
        "One poison record among 99 good ones, through the Pipe, its enrichment and IngestBatch", figures["workflows"]
    )


if __name__ == "__main__":
    main()
