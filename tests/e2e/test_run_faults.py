"""`run --inject-fault`: with moderate faults anywhere (the counting path, Lambda, the Pipes, the sinks) the
outputs are those of the run without them, and each sink took each outcome exactly once (docs/run.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_cli.cli import main

NOW_MS = int(time.time() * 1000)
RULES = {
    "rules": [
        {
            "rule_id": "fans",
            "type": "aggregate",
            "event_type": "greenbutton",
            "count": {"operator": "greater", "target": 2},
        },
        {
            "rule_id": "every-2",
            "type": "aggregate",
            "event_type": "redbutton",
            "count": {"operator": "greater_or_equal", "target": 2},
            "reset": True,
        },
    ]
}
# Each fault is absorbed by a Task's own retries, by the Pipe retrying a failed execution, or by the scheduled
# redelivery: none is so long that a sink gives up.
FAULTS = [
    "dynamodb.TransactWriteItems:6",  # more than CommitChunk's four attempts: the batch fails, the Pipe retries
    "stepfunctions.StartSyncExecution",  # the Pipe's first call is throttled
    "lambda.Invoke:2",
    "dynamodb.UpdateItem:2",
    "events.PutEvents:3",
    # Five outcomes set a Pinpoint attribute, three calls an attempt: twelve failures fail at least two attempts,
    # which the scheduled redelivery then completes.
    "pinpoint.UpdateEndpoint:12",
    "customer-profiles.PutProfileObject:3",
    "customer-profiles.SearchProfiles",
]


def _events() -> list[dict[str, Any]]:
    events = []
    for n, user in enumerate(["ann", "bob", "cyd", "dan", "eve"]):
        events += [
            {"user_id": user, "event_type": "greenbutton", "timestamp": NOW_MS - 9000 + n * 10 + k} for k in range(3)
        ]
        events += [
            {"user_id": user, "event_type": "redbutton", "timestamp": NOW_MS - 5000 + n * 10 + k} for k in range(4)
        ]
    return events


def _run(folder: Path, *extra: str) -> Path:
    (folder / "rules.json").write_text(json.dumps(RULES))
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in _events()))
    out = folder / "out"
    args = ["run", "--rules", str(folder / "rules.json"), "--events", str(folder / "events.jsonl"), "--out", str(out)]
    assert main([*args, "--batch-size", "7", *extra]) == 0
    return out


def _outputs(out: Path) -> dict[str, Any]:
    def rows(name: str) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in (out / name).read_text().splitlines()]
        # The deciding execution's name is drawn at random per run; everything else must be equal.
        return sorted(({k: v for k, v in row.items() if k != "execution"} for row in found), key=json.dumps)

    summary = json.loads((out / "summary.json").read_text())
    kept = ("records", "accepted", "ignored", "rejected", "duplicates", "outcomes", "deliveries", "undelivered")
    return {
        "outcomes": rows("outcomes.jsonl"),
        "emitted": rows("emitted.jsonl"),
        "rejected": rows("rejected.jsonl"),
        "attributes": json.loads((out / "attributes.json").read_text()),
        "summary": {key: summary[key] for key in kept},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    clean = _run(tmp_path_factory.mktemp("clean"))
    faulted = _run(tmp_path_factory.mktemp("faulted"), *(arg for fault in FAULTS for arg in ("--inject-fault", fault)))
    return clean, faulted


def test_moderate_faults_change_no_output(runs: tuple[Path, Path]) -> None:
    clean, faulted = runs
    assert _outputs(faulted) == _outputs(clean)
    outcomes = _outputs(clean)["summary"]["outcomes"]
    assert outcomes == {"qualified": 5, "disqualified": 0, "reached": 10}


def test_each_sink_took_each_outcome_exactly_once(runs: tuple[Path, Path]) -> None:
    for out in runs:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["deliveries"] == {"eventbridge": 15, "pinpoint": 15, "profiles": 15}
        assert summary["undelivered"] == {"pending": 0, "abandoned": 0}
        rows = [json.loads(line) for line in (out / "deliveries.jsonl").read_text().splitlines()]
        assert {row["state"] for row in rows} == {"delivered"} and len(rows) == 15


def test_the_faults_did_happen_and_were_healed(runs: tuple[Path, Path]) -> None:
    clean, faulted = (json.loads((out / "summary.json").read_text()) for out in runs)
    assert clean["redelivery_runs"] == 0 and clean["failed_executions"] == 0
    assert faulted["redelivery_runs"] >= 1  # Pinpoint's attempts failed: the schedule delivered them later
    assert faulted["failed_executions"] >= 1  # the Pipe's throttled call failed a batch, which it retried
    more = {name for name, count in faulted["aws_requests"].items() if count > clean["aws_requests"].get(name, 0)}
    assert {"events.PutEvents", "pinpoint.UpdateEndpoint", "dynamodb.TransactWriteItems"} <= more


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("pinpoint", "is not SERVICE.Operation[:N]"),
        ("nosuch.Thing", "no AWS service is called 'nosuch'"),
        ("dynamodb.PutThing:2", "dynamodb has no operation 'PutThing'"),
        ("dynamodb.PutItem:0", "N must be at least 1"),
    ],
)
def test_a_fault_that_names_no_operation_is_refused(
    fault: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--rules", "r.json", "--events", "e.jsonl", "--out", "o", "--inject-fault", fault])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_sink_that_never_recovers_is_abandoned_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in _events()[:7]))
    out = tmp_path / "out"
    args = ["run", "--rules", str(tmp_path / "rules.json"), "--events", str(tmp_path / "events.jsonl")]
    assert main([*args, "--out", str(out), "--inject-fault", "customer-profiles.SearchProfiles:1000"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("incremental-analytics: error: 1 outcome(s) abandoned and 0 still pending")
    assert len(error.splitlines()) == 1
    summary = json.loads((out / "summary.json").read_text())
    # ann qualified (profiles: SearchProfiles, down) and reached twice (profiles: PutProfileObject, up).
    assert summary["deliveries"] == {"eventbridge": 3, "pinpoint": 3, "profiles": 2}
    assert summary["redelivery_runs"] == 9  # ten attempts: the first from the outbox's stream, nine by the schedule
    assert main(["outcomes", "abandoned", "--from", str(out)]) == 0
    listed = capsys.readouterr().out
    assert "user ann  rule fans  eventbridge delivered, pinpoint delivered, profiles abandoned  (10 attempts)" in listed
    assert listed.rstrip().endswith("1 outcome(s) abandoned")
    assert main(["outcomes", "pending", "--from", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "0 outcome(s) pending"
