"""`incremental-analytics run`: the whole product on the embedded local AWS, files in, files out (docs/run.md)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incremental_analytics.adapters.outbox import as_undelivered
from incremental_analytics.domain.delivery import SINKS, DeliveryState, RetryPolicy, delivery_state
from incremental_analytics.domain.events import Event, IdentityMode, Ignored, Rejected, RejectReason, normalise
from incremental_analytics.domain.matching import RuleIndex
from incremental_analytics.domain.numbers import json_number
from incremental_analytics.domain.rules import Rule, epoch_ms
from incremental_analytics.domain.rules_loading import load_rules_file
from incremental_analytics_cli.invocation import command_name
from incremental_analytics_cli.progress import progress
from incremental_analytics_cli.rules_commands import read_rules_file
from incremental_analytics_local import (
    KINESIS_PARTITION_KEY_CHARACTERS,
    KINESIS_RECORD_DATA_BYTES,
    ExecutionResult,
    Fault,
    LocalAws,
    LocalProduct,
    seed_for,
)

TRACES_KEPT = 25
SCHEDULE = dt.timedelta(hours=1)  # EvaluationSchedule's default, rate(1 hour)


class RunError(Exception):
    """A run that cannot start or complete: the message is the one-line reason."""


@dataclass(frozen=True)
class RunOptions:
    rules: Path
    events: Path
    out: Path
    now: dt.datetime | None = None
    batch_size: int = 100
    redeliver: float = 0.0
    seed: int = 0
    faults: tuple[Fault, ...] = ()
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT


def prepare_out(folder: Path) -> None:
    """Create the results folder (an existing one is reused: its files are overwritten)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunError(f"cannot write results to {folder}: it exists and is not a folder") from None
    except OSError as error:
        raise RunError(f"cannot write results to {folder}: {error.strerror or error}") from None


def read_rules(path: Path) -> list[Rule]:
    try:
        content, size = read_rules_file(path)
    except OSError as error:
        raise RunError(f"cannot read rules {path}: {error.strerror or error}") from None
    return load_rules_file(path.name, content, size=size)


def read_lines(path: Path) -> list[bytes]:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise RunError(f"cannot read events {path}: {error.strerror or error}") from None
    return content.splitlines()


def partition_key(line: bytes, read: Event | Rejected | Ignored, number: int) -> str:
    """The line's identity (its user id, or `endpoint:<id>`...), so that each one's events keep file order on
    the stream; for a line that is not counted, the user it names, if any, as a producer would key it. Kinesis
    takes a key of 1 to 256 Unicode characters: anything else (a lone surrogate, say) keys the line by its number."""
    if isinstance(read, Event) and _valid_key(read.user_id):
        return read.user_id
    if isinstance(read, Rejected) and read.reason in _UNREADABLE:
        return f"line-{number}"
    try:
        document = json.loads(line)
    except (ValueError, RecursionError):
        return f"line-{number}"
    if isinstance(document, dict):
        endpoint = document.get("endpoint")
        user = endpoint.get("User") if isinstance(endpoint, dict) else None
        for found in (
            user.get("UserId") if isinstance(user, dict) else None,
            document.get("userId"),
            document.get("user_id"),
        ):
            if isinstance(found, str) and _valid_key(found[:KINESIS_PARTITION_KEY_CHARACTERS]):
                return found[:KINESIS_PARTITION_KEY_CHARACTERS]
    return f"line-{number}"


# Lines whose JSON is not worth reading again for a key: too large, not JSON (nested too deep, say).
_UNREADABLE = frozenset({RejectReason.TOO_LARGE, RejectReason.NOT_JSON})


def _valid_key(key: str) -> bool:
    if not key or len(key) > KINESIS_PARTITION_KEY_CHARACTERS:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def classify(
    lines: Sequence[bytes], rules: Sequence[Rule], now_ms: int, identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT
) -> list[Event | Rejected | Ignored]:
    system = RuleIndex(rules).system_event_types
    return [normalise(line, now_ms=now_ms, ruled_system_events=system, identity=identity) for line in lines]


def run(options: RunOptions) -> dict[str, Any]:
    rules = read_rules(options.rules)
    lines = read_lines(options.events)
    if options.batch_size < 1 or options.batch_size > 10_000:
        raise RunError("--batch-size must be from 1 to 10000")
    if not 0.0 <= options.redeliver <= 1.0:
        raise RunError("--redeliver must be a fraction from 0 to 1")
    now = options.now or dt.datetime.now(dt.UTC)
    started_ms = epoch_ms(dt.datetime.now(dt.UTC))
    classified = classify(lines, rules, started_ms, options.identity)
    prepare_out(options.out)

    with LocalAws(time_scale=0.001) as aws:
        parameters = {
            "BatchSize": str(options.batch_size),
            "FunctionLogLevel": "WARNING",
            "Identity": options.identity.value,
        }
        product = LocalProduct(aws, parameters=parameters)
        seed_for(aws, (event for event in classified if isinstance(event, Event)))
        product.put_rules(rules)
        aws.reset_request_counts()
        _inject(aws, options.faults)
        sequence_to_line = _put_lines(product, lines, classified)
        with progress("ingesting batches", len(lines)) as bar:
            report = product.ingest(redeliver=options.redeliver, seed=options.seed, on_batch=bar.advance)
        with progress("evaluating date and window rules", 1) as bar:
            evaluation = product.evaluate_periods(now, name="run-" + now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S"))
            bar.advance()
        with progress("delivering outcomes", 1) as bar:
            delivered = product.deliver()
            scheduled, redeliveries = _redeliver_as_scheduled(product)
            bar.advance()
        executions_run = [*report.all_executions, evaluation, *delivered.executions, *scheduled, *redeliveries]
        outcomes = product.outcomes()
        audit = product.audit_items()
        quarantined = product.quarantined()
        parked = product.parked()
        attributes, disagreeing = _attributes(product)
        deliveries = product.sink_deliveries()
        executions = _execution_counts(aws, product)
        requests = aws.request_counts()
        _save_traces(aws, options.out, executions_run, outcomes)
        counters = product.counters()

        # Still inside the engine's block: its collector thresholds hold until the results are written (with
        # Python's defaults, the first full collection would walk what the engine left, for nothing).
        kept = {sequence_to_line[(item["shard_id"], item["sequence_number"])]: item["reason"] for item in quarantined}
        kept |= dict.fromkeys(sequence_to_line.unputtable, RejectReason.TOO_LARGE.value)
        rejected = sorted(kept.items())
        dead_lettered = sequence_to_line.lines_in(parked)
        states = [delivery_state(item.get("delivery") or {}) for item in audit]
        summary = _summary(classified, rejected, dead_lettered, outcomes, executions, requests)
        summary["deliveries"] = deliveries
        summary["undelivered"] = {
            "pending": states.count(DeliveryState.PENDING),
            "abandoned": states.count(DeliveryState.ABANDONED),
        }
        summary["redelivery_runs"] = len(scheduled)
        summary["now"] = now.isoformat()
        summary["failed_executions"] = sum(1 for execution in executions_run if execution.status != "SUCCEEDED")
        _write_outputs(options.out, outcomes, audit, attributes, rejected, summary, rules, counters)
        if dead_lettered:
            raise RunError(
                f"{len(dead_lettered)} line(s) could not be counted (first: line {min(dead_lettered)}): the pipe "
                f"dead-lettered them and reading them back failed until they were parked; see {options.out / 'traces'}"
            )
        if evaluation.status != "SUCCEEDED":
            raise RunError(f"the date and window evaluation failed ({evaluation.error}); see {options.out / 'traces'}")
        undelivered = summary["undelivered"]
        if undelivered["pending"] or undelivered["abandoned"]:
            raise RunError(
                f"{undelivered['abandoned']} outcome(s) abandoned and {undelivered['pending']} still pending for some "
                f"sink; see `{command_name()} outcomes abandoned --from {options.out}`"
            )
        if disagreeing:
            raise RunError(f"the attribute sinks disagree for {len(disagreeing)} user(s), first {disagreeing[0]}")
        return summary


def _inject(aws: LocalAws, faults: Sequence[Fault]) -> None:
    """Each fault, its counts added up when an operation is named twice."""
    counts: Counter[tuple[str, str]] = Counter()
    for fault in faults:
        counts[(fault.service, fault.operation)] += fault.count
    for (service, operation), count in counts.items():
        code, status = Fault(service, operation).error
        aws.fail_next(service, operation, count, code, status)


def _redeliver_as_scheduled(product: LocalProduct) -> tuple[list[ExecutionResult], list[ExecutionResult]]:
    """What the hourly schedule does once the stream is delivered: each run sends the outcomes some sink still
    lacks whose backoff has passed. Runs with nothing due change nothing, so the run goes straight to the first
    hourly run at which something is due, until no outcome is pending (delivered, or abandoned for a sink).
    Returns the scheduled runs and the DeliverOutcomes executions they started."""
    policy = RetryPolicy(first=dt.timedelta(seconds=int(product.stack.parameters["RedeliverAfterSeconds"])))
    limit = int(product.stack.parameters["MaxDeliveryAttempts"])
    start = last = dt.datetime.now(dt.UTC)
    runs: list[ExecutionResult] = []
    deliveries: list[ExecutionResult] = []
    # Bounded: a run attempts every outcome due, and each takes at most MaxDeliveryAttempts attempts.
    for _ in range(limit * 3):
        pending = [
            as_undelivered(item) for item in product.audit_items() if str(item.get("undelivered", "")).startswith("P")
        ]
        if not pending:
            break
        due = min(policy.due_at(o.attempts, o.attempted_at, o.committed_at) for o in pending)
        hours = max(1, -(-(due - start) // SCHEDULE), (last - start) // SCHEDULE + 1)
        last = start + hours * SCHEDULE
        run = product.redeliver(last)
        runs.append(run)
        deliveries.extend(product.last_deliveries)
        if run.status != "SUCCEEDED":
            break
    return runs, deliveries


class Positions(dict[tuple[str, str], int]):
    """(shard, sequence number) -> the 1-based number of the line put there; and the lines that could not be put
    (over Kinesis' 1 MiB: no producer can put them on a stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.unputtable: list[int] = []

    def lines_in(self, batches: Sequence[dict[str, Any]]) -> list[int]:
        """The lines of the batches a dead-letter message names (`KinesisBatchInfo`: shard, first and last)."""
        return sorted(
            line
            for (shard, sequence), line in self.items()
            for batch in batches
            if shard == batch["shardId"]
            and int(batch["startSequenceNumber"]) <= int(sequence) <= int(batch["endSequenceNumber"])
        )


PUT_RECORDS_RECORDS = 500  # Kinesis PutRecords: at most 500 records a request,
PUT_RECORDS_BYTES = 5 * 1_048_576  # 5 MiB of data and partition keys in all, 1 MiB a record ("PutRecords")


def _put_lines(
    product: LocalProduct, lines: Sequence[bytes], classified: Sequence[Event | Rejected | Ignored]
) -> Positions:
    """Every line on the stream, in file order: PutRecords of up to 500 lines (a line too large for it alone by
    PutRecord, in its place)."""
    kinesis = product.aws.client("kinesis")
    stream = product.table("EventStream")
    positions = Positions()
    pending: list[tuple[int, str, bytes]] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal pending_bytes
        if not pending:
            return
        records = [{"PartitionKey": key, "Data": line} for _, key, line in pending]
        answer = kinesis.put_records(StreamName=stream, Records=records)
        if answer.get("FailedRecordCount"):  # the engine's own calls take no fault: a failure here is a defect
            raise RuntimeError(f"PutRecords refused {answer['FailedRecordCount']} records of the local stream")
        for (number, _, _), record in zip(pending, answer["Records"], strict=True):
            positions[(record["ShardId"], record["SequenceNumber"])] = number
        pending.clear()
        pending_bytes = 0

    with progress("putting records", len(lines)) as bar, product.aws.uncounted():
        for number, (line, read) in enumerate(zip(lines, classified, strict=True), start=1):
            if len(line) > KINESIS_RECORD_DATA_BYTES:
                positions.unputtable.append(number)
            else:
                key = partition_key(line, read, number)
                size = len(line) + len(key.encode())
                if size > KINESIS_RECORD_DATA_BYTES:  # PutRecords counts the key in a record's MiB
                    flush()
                    answer = kinesis.put_record(StreamName=stream, PartitionKey=key, Data=line)
                    positions[(answer["ShardId"], answer["SequenceNumber"])] = number
                else:
                    if len(pending) == PUT_RECORDS_RECORDS or pending_bytes + size > PUT_RECORDS_BYTES:
                        flush()
                    pending.append((number, key, line))
                    pending_bytes += size
            bar.advance()
        flush()
    return positions


def _attributes(product: LocalProduct) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The attributes the attribute sinks agree on, and the users on whom they disagree (an outcome one sink
    does not have yet)."""
    by_sink = product.sink_attributes()
    pinpoint, profiles = by_sink["pinpoint"], by_sink["profiles"]
    users = sorted(set(pinpoint) | set(profiles))
    agreed = {}
    for user in users:
        mine, theirs = pinpoint.get(user, {}), profiles.get(user, {})
        common = {name: value for name, value in mine.items() if theirs.get(name) == value}
        if common:
            agreed[user] = dict(sorted(common.items()))
    return agreed, [user for user in users if pinpoint.get(user) != profiles.get(user)]


def _execution_counts(aws: LocalAws, product: LocalProduct) -> dict[str, int]:
    # From the engine: ListExecutions refuses Express workflows, as on AWS.
    return {
        logical_id.removesuffix("StateMachine"): len(aws.executions(ref))
        for logical_id, ref in product.stack.of_type("AWS::Serverless::StateMachine").items()
    }


def _summary(  # noqa: PLR0917 - the run's findings, each passed once
    classified: Sequence[Event | Rejected | Ignored],
    rejected: Sequence[tuple[int, str]],
    dead_lettered: Sequence[int],
    outcomes: Sequence[dict[str, Any]],
    executions: dict[str, int],
    requests: dict[str, int],
) -> dict[str, Any]:
    """About lines: each is rejected (the product quarantined it), dead-lettered (parked, not counted), or else
    accepted or ignored as the product reads it."""
    not_counted = {line for line, _ in rejected} | set(dead_lettered)
    seen: set[tuple[str, str]] = set()
    accepted = ignored = duplicates = 0
    for number, result in enumerate(classified, start=1):
        if number in not_counted:
            continue
        if isinstance(result, Event):
            accepted += 1
            duplicates += result.key in seen  # an event id names an event of its identity only
            seen.add(result.key)
        else:
            ignored += 1
    kinds = Counter(outcome["kind"] for outcome in outcomes)
    return {
        "records": len(classified),
        "accepted": accepted,
        "ignored": ignored,
        "rejected": len(rejected),
        "dead_lettered": len(dead_lettered),
        "duplicates": duplicates,
        "outcomes": {kind: kinds.get(kind, 0) for kind in ("qualified", "disqualified", "reached")},
        "executions": executions,
        "aws_requests": requests,
    }


def _write_outputs(  # noqa: PLR0917 - one writer of the run's files, each passed once
    out: Path,
    outcomes: Sequence[dict[str, Any]],
    audit: Sequence[dict[str, Any]],
    attributes: dict[str, dict[str, str]],
    rejected: Sequence[tuple[int, str]],
    summary: dict[str, Any],
    rules: Sequence[Rule],
    counters: dict[Any, Any],
) -> None:
    def jsonl(name: str, rows: Sequence[dict[str, Any]]) -> None:
        (out / name).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))

    jsonl("outcomes.jsonl", outcomes)
    jsonl(
        "emitted.jsonl",
        [
            {
                "user_id": o["user_id"],
                "event_type": o["output"],
                "rule_id": o["rule_id"],
                "cycle": o["cycle"],
                "outcome_id": o["outcome_id"],
            }
            for o in outcomes
            if o["kind"] == "reached"
        ],
    )
    jsonl("rejected.jsonl", [{"line": line, "reason": reason} for line, reason in rejected])
    (out / "attributes.json").write_text(json.dumps(attributes, indent=2, sort_keys=True) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    # Beside the contract's files: what `explain` reads to answer "why" and "why not yet".
    jsonl("rules.jsonl", [rule.to_dict() for rule in rules])
    jsonl(
        "deliveries.jsonl",
        sorted((_delivery_row(item) for item in audit), key=lambda row: row["outcome_id"]),
    )
    jsonl(
        "counters.jsonl",
        [
            {
                "user_id": user,
                "rule_id": rule,
                "count": counter.count,
                "sum": json_number(counter.sum),
                "cycle": counter.cycle,
                "qualified": counter.qualified,
            }
            for (user, rule), counter in sorted(counters.items())
        ],
    )


def _delivery_row(item: dict[str, Any]) -> dict[str, Any]:
    """An outcome's delivery as the outbox records it: each sink's status, the attempts, the overall state."""
    delivery = item.get("delivery") or {}
    return {
        "outcome_id": item["outcome_id"],
        "user_id": item["user_id"],
        "rule_id": item["rule_id"],
        **{sink: delivery.get(sink, "pending") for sink in SINKS},
        "attempts": int(item.get("delivery_attempts", 0)),
        "state": delivery_state(delivery).value,
    }


def _save_traces(aws: LocalAws, out: Path, executions: Sequence[Any], outcomes: Sequence[dict[str, Any]]) -> None:
    """Keep the history of the executions worth looking at: those that decided outcomes, failed ones, a few more."""
    deciding = {outcome["execution"] for outcome in outcomes}
    executions = [e for e in executions if e.arn]  # an injected StartSyncExecution fault started nothing
    chosen = [e for e in executions if e.status != "SUCCEEDED" or e.arn in deciding]
    rest = [e for e in executions if e not in chosen]
    chosen += random.Random(0).sample(rest, min(len(rest), 3))
    folder = out / "traces"
    folder.mkdir(exist_ok=True)
    names = [arn.rsplit(":", 1)[-1] for arn in sorted(deciding) if arn]
    (folder / "index.json").write_text(json.dumps({"deciding": names}, indent=1))
    with aws.uncounted():
        for execution in chosen[:TRACES_KEPT]:
            record = trace_record(aws, execution.arn)
            (folder / f"{record['name']}.json").write_text(json.dumps(record, default=str, indent=1))


def trace_record(aws: LocalAws, execution_arn: str) -> dict[str, Any]:
    """What `trace` draws of an execution: its state machine's definition and the execution's history."""
    described = aws.describe(execution_arn)  # DescribeExecution refuses Express executions, as on AWS
    machine = aws.client("stepfunctions").describe_state_machine(stateMachineArn=described["stateMachineArn"])
    return {
        "execution": execution_arn,
        "name": described["name"],
        "state_machine": machine["name"],
        "status": described["status"],
        "definition": json.loads(machine["definition"]),
        "history": aws.history(execution_arn),
    }
