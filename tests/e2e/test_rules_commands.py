"""`rules push`, `rules list` and `rules diff` against a deployed stack (found through its outputs), and `rules push`
into the embedded local AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from incremental_analytics_cli.cli import main
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)


@pytest.fixture
def stack() -> object:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"FunctionLogLevel": "WARNING"})
        outputs = {"RulesTableName": product.table("RulesTable"), "DataBucketName": product.table("DataBucket")}
        template = {
            "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        aws.client("cloudformation").create_stack(StackName="prod", TemplateBody=json.dumps(template))
        yield aws, product


@pytest.mark.filterwarnings("ignore::UserWarning")  # moto: "Tried to parse AWS::CloudFormation::..."
def test_push_list_and_diff_against_a_stack(
    stack: tuple[LocalAws, LocalProduct], samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws, product = stack
    sheet = samples / "honeycode_rules.csv"
    machine = product.table("SyncRulesStateMachine")
    assert main(["rules", "push", str(sheet), "--stack", "prod"]) == 0
    assert f"s3://{product.table('DataBucket')}/rules/honeycode_rules.csv" in capsys.readouterr().out
    (execution,) = aws.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert aws.wait_for_execution(execution["executionArn"]).status == "SUCCEEDED"

    assert main(["rules", "list", "--stack", "prod"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 5
    assert "date-greenbutton: date rule on 'greenbutton' events when sum greater 500 from 2021-01-01" in listed[3]

    edited = tmp_path / "rules.csv"
    rows = sheet.read_text().splitlines()[1:]
    rows[0] = rows[0].replace("greater,3", "greater,4")  # pageview: a new target keeps the counters
    rows[1] = rows[1].replace("product,table", "product,chair")  # a new filter is a new rule in this layout
    edited.write_text(HEADER + "\n".join(rows[:-1]) + "\n")  # date-greenbutton deleted
    assert main(["rules", "diff", str(edited), "--stack", "prod"]) == 0
    text = capsys.readouterr().out
    assert "+ date-purchase-product-chair: " in text and "[evaluated at once]" in text
    assert "~ aggregate-pageview: aggregate rule on 'pageview' events when count greater 4" in text
    assert "[keeps its counters]" in text and "was: aggregate rule on 'pageview' events when count greater 3" in text
    assert "- date-greenbutton  [purges its counters and dedupe records]" in text
    assert text.rstrip().endswith("1 to create, 1 to change, 2 to delete, 2 unchanged")

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + rows[0].replace("greater,4", "greater,four") + "\n")
    assert main(["rules", "push", str(bad), "--stack", "prod"]) == 1  # checked before anything is uploaded
    assert "row 2, column Target-C" in capsys.readouterr().out
    assert main(["rules", "list", "--stack", "nope"]) == 1
    assert "cannot read stack nope" in capsys.readouterr().err


def test_push_into_the_embedded_local_aws(samples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "push", str(samples / "honeycode_rules.csv")]) == 0
    out = capsys.readouterr().out
    assert "SyncRules: 5 created, 0 changed, 0 deleted, 0 unchanged" in out
    assert "RulesChanged: 5 change(s), 2 date/window rule(s) evaluated at once" in out
