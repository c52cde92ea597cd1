"""The `run` contract of docs/run.md, and the commands that read its output (explain, trace)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_cli.cli import main

NOW_MS = int(time.time() * 1000)
RULES = {
    "rules": [
        {
            "rule_id": "greenbutton-fan",
            "type": "aggregate",
            "event_type": "greenbutton",
            "count": {"operator": "greater", "target": 2},
        },
        {
            "rule_id": "redbutton-every-3",
            "type": "aggregate",
            "event_type": "redbutton",
            "count": {"operator": "greater_or_equal", "target": 3},
            "reset": True,
        },
        {
            "rule_id": "tables",
            "type": "aggregate",
            "event_type": "purchase",
            "attribute": {"name": "product", "value": "table"},
            "sum": {"operator": "greater", "target": 100},
        },
    ]
}


def _generic(user: str, event_type: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": NOW_MS - 600_000 + n * 1000, **extra}


def _pinpoint(samples: Path, user: str, n: int, price: float) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((samples / "pinpoint_app_event.json").read_text())
    document = copy.deepcopy(document)
    document["event_timestamp"] = NOW_MS - 500_000 + n
    document["endpoint"]["User"]["UserId"] = user
    document["endpoint"]["Id"] = f"endpoint-of-{user}"
    document["metrics"] = {"price": price}
    return document


def _lines(samples: Path) -> list[str]:
    events = [_generic("ann", "greenbutton", n) for n in range(4)]
    events += [_generic("bob", "redbutton", n, event_id=f"bob-{n}") for n in range(7)]
    events.append(_generic("bob", "redbutton", 3, event_id="bob-3"))  # the same event again
    events += [_pinpoint(samples, "cyd", n, 60.5) for n in range(2)]  # 121 of tables
    events.append(_generic("ann", "_session.start", 99))
    events.append(_generic("ann", "trk_greenbutton", 100))
    lines = [json.dumps(event) for event in events]
    lines.insert(3, "{oops")
    lines.insert(8, json.dumps({"user_id": "dan", "event_type": "greenbutton", "timestamp": "last week"}))
    lines.insert(9, "[1, 2]")
    return lines


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import SAMPLES

    folder = tmp_path_factory.mktemp("run")
    rules = folder / "rules.json"
    rules.write_text(json.dumps(RULES))
    events = folder / "events.jsonl"
    events.write_text("\n".join(_lines(SAMPLES)) + "\n")
    code = main(
        [
            "run",
            "--rules",
            str(rules),
            "--events",
            str(events),
            "--out",
            str(folder / "out"),
            "--batch-size",
            "4",
            "--redeliver",
            "0.5",
            "--seed",
            "7",
        ]
    )
    assert code == 0
    return folder / "out"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_summary_counts_lines(run_folder: Path) -> None:
    summary = json.loads((run_folder / "summary.json").read_text())
    assert summary["records"] == 19
    assert summary["records"] == summary["accepted"] + summary["ignored"] + summary["rejected"]
    assert (summary["accepted"], summary["ignored"], summary["rejected"], summary["duplicates"]) == (14, 2, 3, 1)
    assert summary["outcomes"] == {"qualified": 2, "disqualified": 0, "reached": 2}
    assert summary["executions"]["IngestBatch"] >= 5
    # The Pipes start one execution per batch: IngestBatch from the stream, DeliverOutcomes from the outbox.
    started = summary["executions"]["IngestBatch"] + summary["executions"]["DeliverOutcomes"]
    assert summary["aws_requests"]["stepfunctions.StartSyncExecution"] == started
    assert summary["aws_requests"]["dynamodb.TransactWriteItems"] > 0
    # Every sink took every outcome once, at the first attempt: nothing was left for the schedule.
    assert summary["deliveries"] == {"eventbridge": 4, "pinpoint": 4, "profiles": 4}
    assert summary["undelivered"] == {"pending": 0, "abandoned": 0} and summary["redelivery_runs"] == 0


def test_rejected_lines_with_reasons(run_folder: Path) -> None:
    assert _jsonl(run_folder / "rejected.jsonl") == [
        {"line": 4, "reason": "not_json"},
        {"line": 9, "reason": "bad_timestamp"},
        {"line": 10, "reason": "not_an_object"},
    ]


def test_outcomes_have_every_field(run_folder: Path) -> None:
    outcomes = _jsonl(run_folder / "outcomes.jsonl")
    fields = {"outcome_id", "kind", "user_id", "rule_id", "output", "cycle", "occurred_at", "evidence", "execution"}
    assert all(set(outcome) == fields for outcome in outcomes)
    summary = sorted((o["user_id"], o["rule_id"], o["kind"], o["cycle"]) for o in outcomes)
    assert summary == [
        ("ann", "greenbutton-fan", "qualified", None),
        ("bob", "redbutton-every-3", "reached", 1),
        ("bob", "redbutton-every-3", "reached", 2),
        ("cyd", "tables", "qualified", None),
    ]
    cyd = next(o for o in outcomes if o["user_id"] == "cyd")
    assert cyd["evidence"]["sum"] == 121 and cyd["output"] == "trk_purchase_table"
    assert all(o["execution"].startswith("arn:aws:states:") for o in outcomes)


def test_attributes_and_emitted_events(run_folder: Path) -> None:
    assert json.loads((run_folder / "attributes.json").read_text()) == {
        "ann": {"trk_greenbutton": "ready"},
        "cyd": {"trk_purchase_table": "ready"},
    }
    emitted = sorted(_jsonl(run_folder / "emitted.jsonl"), key=lambda row: row["cycle"])
    assert [(row["user_id"], row["event_type"], row["rule_id"], row["cycle"]) for row in emitted] == [
        ("bob", "trk_redbutton", "redbutton-every-3", 1),
        ("bob", "trk_redbutton", "redbutton-every-3", 2),
    ]
    assert all(set(row) == {"user_id", "event_type", "rule_id", "cycle", "outcome_id"} for row in emitted)


def test_explain_a_qualified_user_and_one_not_yet(run_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--from", str(run_folder), "--user", "ann", "--rule", "greenbutton-fan"]) == 0
    text = capsys.readouterr().out
    assert "QUALIFIED at" in text and "count 3 greater 2: holds" in text
    assert "contributing events (all 3)" in text
    assert "sinks: eventbridge delivered, pinpoint delivered, profiles delivered" in text
    assert f"trace --from {run_folder} --execution" in text
    assert main(["explain", "--from", str(run_folder), "--user", "bob", "--rule", "greenbutton-fan"]) == 0
    assert "Not qualified yet. count is 0, needs greater 2." in capsys.readouterr().out
    assert main(["explain", "--from", str(run_folder), "--user", "ann", "--rule", "nope"]) == 1


def test_trace_writes_a_self_contained_page(run_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--from", str(run_folder)]) == 0
    printed = capsys.readouterr().out
    assert "MatchAndEvaluate -> Apply" in printed
    page = Path(printed.strip().splitlines()[-1].removeprefix("trace written to "))
    html = page.read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert 'data-state="CommitCounters"' in html and "MatchAndEvaluate" in html
    assert "<script" not in html


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("RuleType,EventName\naggregator,x\n", "row 1, column AttributeName: missing column"),
        ('[{"rule_id": "a", "type": "weekly", "event_type": "x"}]', "rules[0].type"),
    ],
)
def test_invalid_rules_exit_1_with_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    suffix = ".csv" if content.startswith("RuleType") else ".json"
    rules = tmp_path / f"rules{suffix}"
    rules.write_text(content)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    code = main(["run", "--rules", str(rules), "--events", str(events), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 1 and message in error and len(error.strip().splitlines()) == 1
    assert main(["rules", "validate", str(rules)]) == 1
    assert message in capsys.readouterr().out


def test_an_unreadable_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    code = main(["run", "--rules", str(rules), "--events", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and "cannot read events" in error


def test_rules_show_prints_the_normalised_rules(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import SAMPLES

    assert main(["rules", "show", str(SAMPLES / "honeycode_rules.csv")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [rule["rule_id"] for rule in shown["rules"]][:2] == ["aggregate-pageview", "date-purchase-product-table"]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["explain"],
        ["trace"],
        ["rules", "validate"],
        ["demo"],
        ["outcomes", "pending"],
        ["outcomes", "redrive"],
    ],
)
def test_every_command_answers_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0 and "usage: incremental-analytics" in capsys.readouterr().out


def test_the_module_runs_as_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "incremental_analytics_cli", "rules", "validate", "/nonexistent.csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stderr.startswith("incremental-analytics: error: cannot read")


def test_run_now_evaluates_the_guides_date_rules_once(
    tmp_path: Path, samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample Honeycode sheet; January and February 2021 events; `--now` after both periods closed."""

    def at(month: int, day: int, hour: int = 12) -> str:
        return f"2021-{month:02d}-{day:02d}T{hour:02d}:00:00Z"

    events = [
        *(
            {"user_id": "gus", "event_type": "greenbutton", "timestamp": at(1, d), "metrics": {"v": 130}}
            for d in (2, 9, 16, 23)
        ),
        *(
            {"user_id": "hal", "event_type": "greenbutton", "timestamp": at(1, d), "metrics": {"v": 250}}
            for d in (5, 6)
        ),
        {"user_id": "hal", "event_type": "greenbutton", "timestamp": at(2, 2), "metrics": {"v": 250}},  # after
        *(
            {
                "user_id": "ivy",
                "event_type": "purchase",
                "timestamp": at(m, d),
                "attributes": {"product": "table"},
                "metrics": {"price": 49.5},
            }
            for m, d in ((1, 10), (1, 20), (2, 10), (2, 27))
        ),
    ]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    out = tmp_path / "out"
    args = ["run", "--rules", str(samples / "honeycode_rules.csv"), "--events", str(tmp_path / "events.jsonl")]
    assert main([*args, "--out", str(out), "--now", "2021-03-05T00:00:00Z"]) == 0

    outcomes = sorted((o["user_id"], o["rule_id"], o["kind"]) for o in _jsonl(out / "outcomes.jsonl"))
    assert outcomes == [("gus", "date-greenbutton", "qualified"), ("ivy", "date-purchase-product-table", "qualified")]
    assert json.loads((out / "attributes.json").read_text()) == {
        "gus": {"trk_date_greenbutton": "ready"},
        "ivy": {"trk_date_purchase_table": "ready"},
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["executions"]["EvaluatePeriods"] == 1 and summary["now"].startswith("2021-03-05T00:00:00")
    assert summary["executions"]["DeliverOutcomes"] == 1  # both outcomes in one batch of the outbox's stream
    capsys.readouterr()
    assert main(["explain", "--from", str(out), "--user", "ivy", "--rule", "date-purchase-product-table"]) == 0
    text = capsys.readouterr().out
    assert "QUALIFIED at 2021-03-05T00:00:00.000Z" in text and "sum 198 greater 180: holds" in text
    assert "2021-01-01T00:00:00.000Z" in text  # the period
