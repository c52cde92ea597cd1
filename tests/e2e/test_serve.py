"""`incremental-analytics serve`: the stack on a local AWS served over HTTP, driven from another process as a user
would, with boto3, this command's `--stack` commands (through AWS_ENDPOINT_URL) and the AWS CLI."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from incremental_analytics_cli.cli import main

STACK = "served"
REGION = "us-east-1"
HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)
CLICKS = HEADER + "aggregator,click,na,999,greater,2,na,na,no,9999-99-99,9999-99-99,1\n"
T = TypeVar("T")


def _eventually(check: Callable[[], T | None], what: str, seconds: float = 90) -> T:
    """The first truthy answer of `check`, polled until a deadline (the background works at its own pace)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s: {what}")


@dataclass
class Server:
    process: subprocess.Popen[str]
    endpoint: str
    lines: queue.Queue[str]
    environment: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def output(self, service: str = "cloudformation") -> dict[str, str]:
        (stack,) = self.client(service).describe_stacks(StackName=STACK)["Stacks"]
        return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}

    def machine(self, part: str) -> str:
        machines = self.client("stepfunctions").list_state_machines()["stateMachines"]
        (arn,) = [m["stateMachineArn"] for m in machines if part in m["name"]]
        return str(arn)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    rules = folder / "rules.csv"
    rules.write_text(CLICKS)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "incremental_analytics_cli",
            "serve",
            "--port",
            str(port),
            "--rules",
            str(rules),
            "--stack-name",
            STACK,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=folder,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []

    def banner_line() -> str | None:
        while not lines.empty():
            seen.append(lines.get())
            if "SyncRules" in seen[-1]:
                return seen[-1]
        assert process.poll() is None, "".join(seen)
        return None

    try:
        synced = _eventually(banner_line, "the stack served and the rules pushed", seconds=120)
        assert "SyncRules 1 created" in synced
        text = "".join(seen)
        endpoint = f"http://127.0.0.1:{port}"
        assert f"Stack {STACK} is served on {endpoint}" in text
        (exports,) = re.findall(r"export (.*)", text)
        environment = dict(item.split("=", 1) for item in shlex.split(exports))
        assert environment["AWS_ENDPOINT_URL"] == endpoint
        yield Server(process, endpoint, lines, environment)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    assert process.returncode == 0


def test_aws_tools_see_the_stack_and_what_it_deployed(server: Server) -> None:
    outputs = server.output()
    assert outputs["RulesTableName"] in server.client("dynamodb").list_tables()["TableNames"]
    buckets = [bucket["Name"] for bucket in server.client("s3").list_buckets()["Buckets"]]
    assert outputs["DataBucketName"] in buckets
    machines = {m["name"]: m["type"] for m in server.client("stepfunctions").list_state_machines()["stateMachines"]}
    assert sorted(machines.values()) == ["EXPRESS", "EXPRESS", "STANDARD", "STANDARD", "STANDARD"]
    functions = server.client("lambda").list_functions()["Functions"]
    assert "incremental_analytics.handlers.parse_records.handler" in {f["Handler"] for f in functions}
    # Invoked over HTTP, a function runs its handler, as its Tasks run it.
    parse = next(f["FunctionName"] for f in functions if f["Handler"].endswith("parse_records.handler"))
    record = {
        "data": base64.b64encode(b'{"user_id": "u", "event_type": "x", "timestamp": 1614556800000}').decode(),
        "sequenceNumber": "1",
        "partitionKey": "u",
        "eventID": "shardId-000000000000:1",
    }
    answer = server.client("lambda").invoke(FunctionName=parse, Payload=json.dumps([record]).encode())
    assert "FunctionError" not in answer
    (handoff,) = json.loads(answer["Payload"].read())  # the Pipe enrichment's answer: IngestBatch's input
    assert handoff["records"] == 1 and handoff["events"][0]["event_type"] == "x"
    failed = server.client("lambda").invoke(FunctionName=parse, Payload=b"[42]")
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "AttributeError"
    resources = server.client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    assert {r["ResourceType"] for r in resources} >= {"AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"}
    # The rules file pushed at start: SyncRules ran, then RulesChanged through the rules table's stream.
    sfn = server.client("stepfunctions")
    for part in ("SyncRules", "RulesChanged"):
        machine = server.machine(part)
        _eventually(
            lambda machine=machine: [
                e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["status"] == "SUCCEEDED"
            ],
            f"a {part} execution succeeded",
        )


def test_records_put_on_the_stream_are_counted_and_explained_and_traced(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = server.output()
    kinesis = server.client("kinesis")
    now = int(time.time() * 1000)
    for n in range(3):
        event = {"user_id": "ann", "event_type": "click", "timestamp": now - 1000 + n, "event_id": f"ann-{n}"}
        kinesis.put_record(StreamName=outputs["StreamName"], PartitionKey="ann", Data=json.dumps(event).encode())
    dynamodb = server.client("dynamodb")

    def qualified() -> list[dict[str, Any]]:
        items = dynamodb.scan(TableName=outputs["AuditTableName"])["Items"]
        return [item for item in items if item["user_id"]["S"] == "ann"]

    (outcome,) = _eventually(qualified, "ann qualified")
    assert outcome["rule_id"]["S"] == "aggregate-click"

    for name, value in server.environment.items():  # what the banner says to export
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--stack", STACK, "--user", "ann"]) == 0
    explained = capsys.readouterr().out
    assert "QUALIFIED at" in explained and "count 3 greater 2: holds" in explained
    (suggested,) = re.findall(r"trace: \S+ (trace --stack .*)", explained)
    assert main(shlex.split(suggested)) == 0
    traced = capsys.readouterr().out
    assert traced.splitlines()[1].strip().startswith("MatchAndEvaluate -> Apply")
    page = Path(traced.strip().splitlines()[-1].removeprefix("trace written to "))
    assert (tmp_path / page).read_text().count("MatchAndEvaluate") > 1


def test_rules_commands_against_the_served_stack(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    assert main(["rules", "list", "--stack", STACK]) == 0
    assert capsys.readouterr().out.startswith("aggregate-click: aggregate rule on 'click' events when count greater 2")
    edited = tmp_path / "rules.csv"
    edited.write_text(CLICKS + "aggregator,purchase,na,999,greater,0,na,na,no,9999-99-99,9999-99-99,2\n")
    assert main(["rules", "diff", str(edited), "--stack", STACK]) == 0
    assert "1 to create, 0 to change, 0 to delete, 1 unchanged" in capsys.readouterr().out
    assert main(["rules", "push", str(edited), "--stack", STACK]) == 0
    assert "SyncRules applies it" in capsys.readouterr().out

    def listed() -> str | None:
        assert main(["rules", "list", "--stack", STACK]) == 0
        text = capsys.readouterr().out
        return text if "aggregate-purchase" in text else None

    _eventually(listed, "the pushed rule listed")


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI (pip package awscli) is not installed")
def test_the_aws_cli_session_of_the_docs(server: Server, tmp_path: Path) -> None:
    environment = {**os.environ, **server.environment, "AWS_PAGER": ""}
    environment.pop("AWS_PROFILE", None)

    def aws(*args: str) -> str:
        done = subprocess.run(["aws", *args], env=environment, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    version = aws("--version") or "aws-cli/1"
    assert (
        aws(
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            STACK,
            "--query",
            "Stacks[0].StackStatus",
            "--output",
            "text",
        )
        == "CREATE_COMPLETE"
    )
    stream = aws(
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        STACK,
        "--query",
        "Stacks[0].Outputs[?OutputKey=='StreamName'].OutputValue",
        "--output",
        "text",
    )
    raw = [] if version.startswith("aws-cli/1") else ["--cli-binary-format", "raw-in-base64-out"]
    now = int(time.time() * 1000)
    for n in range(3):
        event = json.dumps({"user_id": "bob", "event_type": "click", "timestamp": now + n, "event_id": f"b{n}"})
        aws("kinesis", "put-record", "--stream-name", stream, "--partition-key", "bob", "--data", event, *raw)
    audit = aws(
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        STACK,
        "--query",
        "Stacks[0].Outputs[?OutputKey=='AuditTableName'].OutputValue",
        "--output",
        "text",
    )
    _eventually(
        lambda: (
            "bob" in aws("dynamodb", "scan", "--table-name", audit, "--query", "Items[].user_id.S", "--output", "text")
        ),
        "bob qualified",
    )
    assert int(aws("lambda", "list-functions", "--query", "length(Functions)")) >= 10
    # A rules file copied into the bucket: SyncRules, then RulesChanged.
    bucket = aws(
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        STACK,
        "--query",
        "Stacks[0].Outputs[?OutputKey=='DataBucketName'].OutputValue",
        "--output",
        "text",
    )
    sheet = tmp_path / "more-rules.csv"
    sheet.write_text(CLICKS + "aggregator,view,na,999,greater,5,na,na,no,9999-99-99,9999-99-99,2\n")
    changed_before = len(
        json.loads(
            aws(
                "stepfunctions",
                "list-executions",
                "--state-machine-arn",
                server.machine("RulesChanged"),
                "--query",
                "executions[].name",
            )
        )
    )
    aws("s3", "cp", str(sheet), f"s3://{bucket}/rules/more-rules.csv")

    def synced_and_changed() -> bool:
        synced = json.loads(
            aws(
                "stepfunctions",
                "list-executions",
                "--state-machine-arn",
                server.machine("SyncRules"),
                "--query",
                "executions[?status=='SUCCEEDED'].name",
            )
        )
        changed = json.loads(
            aws(
                "stepfunctions",
                "list-executions",
                "--state-machine-arn",
                server.machine("RulesChanged"),
                "--query",
                "executions[].name",
            )
        )
        return len(synced) >= 2 and len(changed) > changed_before

    _eventually(synced_and_changed, "SyncRules and RulesChanged ran for the copied file")
