"""Every bad invocation is one clear line on stderr and a non-zero exit status, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from incremental_analytics_cli.cli import EXIT_FAILED, EXIT_USAGE, main
from tests.conftest import SAMPLES

RULES = str(SAMPLES / "honeycode_rules.csv")


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as done:  # argparse's usage errors
        assert isinstance(done.code, int)
        return done.code


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["demo", "--users", "0"], EXIT_USAGE, "argument --users: must be from 1 to 100000"),
        (["demo", "--events", "-5"], EXIT_USAGE, "argument --events: must be from 1 to 1000000"),
        (["demo", "--events", "many"], EXIT_USAGE, "argument --events: 'many' is not a whole number"),
        (["run", "--rules", RULES, "--events", "x"], EXIT_USAGE, "the following arguments are required: --out"),
        (["run", "--rules", RULES, "--events", "x", "--out", "y", "--batch-size", "0"], EXIT_USAGE, "1 to 10000"),
        (["run", "--rules", RULES, "--events", "x", "--out", "y", "--now", "soon"], EXIT_USAGE, "ISO-8601"),
        (["rules", "list"], EXIT_USAGE, "the following arguments are required: --stack"),
        (["frobnicate"], EXIT_USAGE, "invalid choice: 'frobnicate'"),
        (["explain", "--from", "/nonexistent", "--user", "u"], EXIT_FAILED, "not a run output folder"),
        (["trace", "--from", "/nonexistent"], EXIT_FAILED, "no traces in /nonexistent"),
        (["rules", "validate", "/nonexistent.csv"], EXIT_FAILED, "cannot read /nonexistent.csv"),
        (
            ["run", "--rules", RULES, "--events", "x", "--out", "y", "--inject-fault", "pinpoint.Nothing"],
            EXIT_USAGE,
            "pinpoint has no operation 'Nothing'",
        ),
        (["outcomes", "redrive"], EXIT_USAGE, "the following arguments are required: --stack"),
        (["outcomes", "pending"], EXIT_USAGE, "one of the arguments --from --stack is required"),
        (["outcomes", "abandoned", "--from", "/nonexistent"], EXIT_FAILED, "not a run output folder"),
    ],
)
def test_a_bad_invocation_is_one_line(
    argv: list[str], status: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_status(argv) == status
    line = _one_line_error(capsys)
    assert line.startswith("incremental-analytics") and message in line


def test_run_into_an_existing_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "results"
    taken.write_text("mine")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"user_id": "u", "event_type": "pageview", "timestamp": 1_700_000_000_000}) + "\n")
    assert main(["run", "--rules", RULES, "--events", str(events), "--out", str(taken)]) == EXIT_FAILED
    assert _one_line_error(capsys) == (
        f"incremental-analytics: error: cannot write results to {taken}: it exists and is not a folder"
    )
    assert taken.read_text() == "mine"
    assert main(["demo", "--out", str(taken)]) == EXIT_FAILED
    assert "it exists and is not a folder" in _one_line_error(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["rules", "list", "--stack", "prod"],
        ["rules", "diff", RULES, "--stack", "prod"],
        ["rules", "push", RULES, "--stack", "prod"],
        ["explain", "--stack", "prod", "--user", "u"],
        ["outcomes", "pending", "--stack", "prod"],
        ["outcomes", "abandoned", "--stack", "prod"],
        ["outcomes", "redrive", "--stack", "prod"],
    ],
)
def test_a_stack_command_without_a_region_says_how_to_give_one(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(argv) == EXIT_FAILED
    assert _one_line_error(capsys) == (
        "incremental-analytics: error: no AWS region: pass --region, or set AWS_DEFAULT_REGION or a region in your AWS "
        "profile"
    )
    assert main([*argv, "--profile", "absent"]) == EXIT_FAILED
    assert "could not be found" in _one_line_error(capsys)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_status(["--version"]) == 0
    assert capsys.readouterr().out.startswith("incremental-analytics 0.")


def test_printed_commands_name_a_program_that_runs(tmp_path: Path) -> None:
    """A fresh clone has the command in .venv/bin, not on PATH: the hints the CLI prints say so, and they run."""
    done = subprocess.run(
        [sys.executable, "-m", "incremental_analytics_cli", "trace", "--from", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    hint = done.stderr.split("(run `", 1)[1].split(" run`", 1)[0]
    again = subprocess.run([*hint.split(), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout.startswith("incremental-analytics ")
