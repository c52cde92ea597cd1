"""Deploying a SAM template into the local AWS: what is created, from the template itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from incremental_analytics_local.cfn import TemplateError, read_template
from incremental_analytics_local.deploy import Stack, deploy
from incremental_analytics_local.engine import LocalAws
from tests.functional.conftest import FIXTURE_TEMPLATE


def test_tables_are_created_as_the_template_declares(aws: LocalAws, fixture_stack: Stack) -> None:
    declared = read_template(FIXTURE_TEMPLATE)["Resources"]["Counters"]["Properties"]
    name = fixture_stack.ref("Counters")
    assert name.startswith("fx-Counters-")
    table = aws.client("dynamodb").describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["by-kind"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert fixture_stack.attribute("Counters", "StreamArn") == table["LatestStreamArn"]
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_streams_queues_buses_functions_and_state_machines(aws: LocalAws, fixture_stack: Stack) -> None:
    shards = aws.client("kinesis").list_shards(StreamName=fixture_stack.ref("Stream"))["Shards"]
    assert len(shards) == 2
    assert aws.client("sqs").get_queue_url(QueueName=fixture_stack.attribute("DeadLetters", "QueueName"))
    assert fixture_stack.outputs["BusName"] == "fx-bus"
    assert aws.client("events").describe_event_bus(Name="fx-bus")["Name"] == "fx-bus"
    machines = {
        machine["name"]: machine["type"]
        for machine in aws.client("stepfunctions").list_state_machines()["stateMachines"]
    }
    assert machines == {
        fixture_stack.attribute("Ingest", "Name"): "EXPRESS",
        fixture_stack.attribute("Worker", "Name"): "STANDARD",
    }
    greet = aws.lambdas.find(fixture_stack.ref("GreetFunction"))
    assert greet.handler == "tests.functional.fixture_handlers.greet"
    assert greet.environment == {"COUNTERS_TABLE": fixture_stack.ref("Counters"), "GREETING": "hello"}
    assert greet.timeout_seconds == 10  # from Globals
    bucket = fixture_stack.ref("Uploads")
    assert bucket == bucket.lower() and bucket.startswith("fx-uploads-")
    assert aws.client("s3").head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    rule = aws.client("events").describe_rule(Name=fixture_stack.ref("UploadRule"))
    assert json.loads(rule["EventPattern"])["detail"] == {"bucket": {"name": [bucket]}}
    (target,) = aws.client("events").list_targets_by_rule(Rule=fixture_stack.ref("UploadRule"))["Targets"]
    assert target["Arn"] == fixture_stack.ref("Worker")
    assert set(fixture_stack.pipes) == {"StreamPipe", "EnrichedPipe", "ReplayPipe", "CountersPipe"}
    assert fixture_stack.pipes["StreamPipe"].target == fixture_stack.ref("Ingest")
    assert fixture_stack.pipes["EnrichedPipe"].enrichment == fixture_stack.attribute("EnrichFunction", "Arn")
    sqs = aws.client("sqs")
    replays = sqs.get_queue_url(QueueName=fixture_stack.attribute("Replays", "QueueName"))["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=replays, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "60"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": fixture_stack.attribute("Parked", "Arn"),
        "maxReceiveCount": 3,
    }
    assert fixture_stack.schedules["Hourly"].expression == "rate(1 hour)"


def test_definition_substitutions_are_applied(aws: LocalAws, fixture_stack: Stack) -> None:
    definition = aws.client("stepfunctions").describe_state_machine(stateMachineArn=fixture_stack.ref("Ingest"))[
        "definition"
    ]
    assert "${" not in definition
    assert fixture_stack.attribute("GreetFunction", "Arn") in definition
    assert fixture_stack.ref("Counters") in definition


def test_parameters_and_conditions(aws: LocalAws) -> None:
    stack = deploy(aws, FIXTURE_TEMPLATE, stack_name="nobus", parameters={"WithBus": "false", "Greeting": "hi"})
    assert stack.skipped == ["Bus"]
    assert "BusName" not in stack.outputs
    assert aws.lambdas.find(stack.ref("GreetFunction")).environment["GREETING"] == "hi"
    assert (
        '"EventBusName": "default"'
        in aws.client("stepfunctions").describe_state_machine(stateMachineArn=stack.ref("Ingest"))["definition"]
    )


def test_two_stacks_share_an_account(aws: LocalAws, fixture_stack: Stack) -> None:
    other = deploy(aws, FIXTURE_TEMPLATE, stack_name="fx2", parameters={"WithBus": "false"})
    assert other.ref("Counters") != fixture_stack.ref("Counters")
    assert other.ref("Ingest") != fixture_stack.ref("Ingest")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"WithBus": "maybe"}, "parameter WithBus: 'maybe' is not one of"),
        ({"Colour": "red"}, "parameters the template does not declare: Colour"),
    ],
)
def test_bad_parameters_are_refused(aws: LocalAws, parameters: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        deploy(aws, FIXTURE_TEMPLATE, stack_name="bad", parameters=parameters)


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    for name in ("ingest.asl.json", "worker.asl.json"):
        shutil.copy(FIXTURE_TEMPLATE.parent / name, tmp_path / name)
    path = tmp_path / "template.yaml"
    path.write_text(FIXTURE_TEMPLATE.read_text().replace(old, new))
    return path


def test_an_unknown_resource_type_is_reported_by_name(aws: LocalAws, tmp_path: Path) -> None:
    template = _variant(
        tmp_path, "  DeadLetters:\n    Type: AWS::SQS::Queue", "  DeadLetters:\n    Type: AWS::SNS::Topic"
    )
    with pytest.raises(TemplateError, match=r"does not know: DeadLetters \(AWS::SNS::Topic\)"):
        deploy(aws, template, stack_name="x")


def test_a_missing_definition_substitution_is_reported(aws: LocalAws, tmp_path: Path) -> None:
    template = _variant(tmp_path, "        WorkerArn: !Ref Worker\n", "")
    with pytest.raises(TemplateError, match="Ingest: no DefinitionSubstitutions for WorkerArn"):
        deploy(aws, template, stack_name="x")


def test_a_lambda_event_source_is_not_silently_skipped(aws: LocalAws, tmp_path: Path) -> None:
    template = _variant(
        tmp_path,
        "      Handler: tests.functional.fixture_handlers.flaky\n",
        "      Handler: tests.functional.fixture_handlers.flaky\n      Events:\n"
        "        FromQueue:\n          Type: SQS\n          Properties: {Queue: !GetAtt DeadLetters.Arn}\n",
    )
    with pytest.raises(TemplateError, match=r"FlakyFunction: event source FromQueue \(SQS\) is not emulated"):
        deploy(aws, template, stack_name="x")
