"""`trace --stack NAME --execution ARN|NAME`: a deployed stack's executions, Standard ones from
GetExecutionHistory, Express ones from their CloudWatch Logs, as `explain --stack` suggests."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_cli.cli import main
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

TRACED = {"ExpressLogLevel": "ALL", "IncludeExecutionData": "true", "FunctionLogLevel": "WARNING"}


def _product(aws: LocalAws, parameters: dict[str, str]) -> LocalProduct:
    product = LocalProduct(aws, stack_name="prod", parameters=parameters)
    product.put_rules([Rule("clicks", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 2))])
    now = int(time.time() * 1000)
    product.put_events({"user_id": "u1", "event_type": "click", "timestamp": now - 1000 + n} for n in range(3))
    product.ingest()
    return product


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    with LocalAws(time_scale=0.001) as local:
        yield local


def test_explain_points_at_the_trace_of_the_deciding_express_execution(
    aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = _product(aws, TRACED)
    assert main(["explain", "--stack", "prod", "--user", "u1", "--rule", "clicks", "--region", aws.region]) == 0
    text = capsys.readouterr().out
    (suggested,) = re.findall(r"trace: \S+ (trace --stack .*)", text)
    args = shlex.split(suggested)
    assert args[:5] == ["trace", "--stack", "prod", "--region", aws.region]
    arn = args[args.index("--execution") + 1]
    assert arn == product.outcomes()[0]["execution"]

    page = tmp_path / "batch.html"
    assert main([*args, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].strip().startswith("MatchAndEvaluate -> Apply")
    assert "SUCCEEDED" in out.splitlines()[0] and f"trace written to {page}" in out
    html = page.read_text()
    assert "<svg" in html and "MatchAndEvaluate" in html and "CommitCounters" in html
    assert '\\"user_id\\"' in html or "user_id" in html  # inputs and outputs, logged with execution data

    # By its name alone, from the folder it is run in.
    name = arn.rsplit(":", 1)[-1]
    assert main(["trace", "--stack", "prod", "--execution", name, "--html", str(tmp_path / "by-name.html")]) == 0
    assert capsys.readouterr().out.splitlines()[1] == out.splitlines()[1]


def test_a_standard_execution_is_read_from_its_history(
    aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = _product(aws, TRACED)
    evaluation = product.evaluate_periods(dt.datetime(2021, 3, 1, tzinfo=dt.UTC), name="evaluate-march")
    assert evaluation.status == "SUCCEEDED"
    assert main(["trace", "--stack", "prod", "--execution", evaluation.arn, "--html", str(tmp_path / "e.html")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{product.table('EvaluatePeriodsStateMachine').rsplit(':', 1)[-1]} evaluate-march:")
    assert "SUCCEEDED" in out.splitlines()[0]
    page = (tmp_path / "e.html").read_text()
    assert "<svg" in page and "PlanEvaluation" in page
    assert out.splitlines()[1].strip().startswith("PlanEvaluation")


def test_an_express_workflow_logged_at_error_cannot_be_traced_and_says_how_to(
    aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = _product(aws, {"FunctionLogLevel": "WARNING"})  # the defaults: ERROR, no execution data
    arn = product.outcomes()[0]["execution"]
    assert main(["trace", "--stack", "prod", "--execution", arn, "--html", str(tmp_path / "x.html")]) == 1
    error = capsys.readouterr().err
    assert "logged at ERROR" in error and "ExpressLogLevel=ALL" in error and "docs/tracing.md" in error
    assert not (tmp_path / "x.html").exists()
    assert main(["trace", "--stack", "prod", "--execution", "no-such-run"]) == 1
    assert "no execution no-such-run found in stack prod" in capsys.readouterr().err
    assert main(["trace", "--stack", "nope", "--execution", "x"]) == 1
    assert "cannot read stack nope" in capsys.readouterr().err
    assert main(["trace", "--stack", "prod"]) == 2
    assert "needs --execution" in capsys.readouterr().err
