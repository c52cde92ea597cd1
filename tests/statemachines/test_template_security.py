"""What the template promises for data at rest and in transit, read from the template itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools.shared import constants as powertools

from incremental_analytics.adapters.dynamodb_items import period_key
from incremental_analytics_local.cfn import read_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = read_template(ROOT / "infra" / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


def test_function_responses_stay_out_of_x_ray() -> None:
    """Handlers return user ids, attributes and rejected records' data; Powertools' Tracer would record them."""
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[powertools.TRACER_CAPTURE_RESPONSE_ENV] == "false"
    assert all(
        powertools.TRACER_CAPTURE_RESPONSE_ENV not in str(resource.get("Properties", {}).get("Environment", ""))
        for resource in _of_type("AWS::Serverless::Function").values()
    )


def test_every_queue_and_bucket_refuses_plain_http() -> None:
    def tls_only(document: dict[str, Any]) -> bool:
        return any(
            statement["Effect"] == "Deny"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and statement["Principal"] == "*"
            for statement in document["Statement"]
        )

    queues = {
        queue["Ref"]
        for policy in _of_type("AWS::SQS::QueuePolicy").values()
        if tls_only(policy["Properties"]["PolicyDocument"])
        for queue in policy["Properties"]["Queues"]
    }
    buckets = {
        policy["Properties"]["Bucket"]["Ref"]
        for policy in _of_type("AWS::S3::BucketPolicy").values()
        if tls_only(policy["Properties"]["PolicyDocument"])
    }
    assert queues == set(_of_type("AWS::SQS::Queue"))
    assert buckets == set(_of_type("AWS::S3::Bucket"))


def test_tables_and_the_bucket_outlive_the_stack() -> None:
    stateful = {**_of_type("AWS::DynamoDB::Table"), **_of_type("AWS::S3::Bucket")}
    assert stateful
    for name, resource in stateful.items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name


def test_an_existing_stream_under_a_customer_key_can_be_read() -> None:
    statements = RESOURCES["IngestPipeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (decrypt,) = [
        statement["Fn::If"] for statement in statements if isinstance(statement, dict) and "Fn::If" in statement
    ]
    condition, granted, otherwise = decrypt
    assert TEMPLATE["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingStreamKeyArn"}, ""]}]}
    assert (granted["Action"], granted["Resource"]) == ("kms:Decrypt", {"Ref": "ExistingStreamKeyArn"})
    assert "kms:ViaService" in granted["Condition"]["StringEquals"]
    assert otherwise == {"Ref": "AWS::NoValue"}


def test_the_period_evaluation_updates_only_its_own_items_of_the_counters_table() -> None:
    statements = [
        statement
        for policy in RESOURCES["EvaluatePeriodsStateMachine"]["Properties"]["Policies"]
        for statement in policy.get("Statement", [])
        if "dynamodb:UpdateItem" in str(statement["Action"])
    ]
    (update,) = statements
    assert update["Resource"] == {"Fn::GetAtt": ["CountersTable", "Arn"]}
    (allowed,) = update["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert period_key("any-rule", "identity")["pk"]["S"].startswith(allowed.rstrip("*"))


# EventBridge User Guide, "Event source permissions for Amazon EventBridge Pipes": a DynamoDB stream source needs
# these four; a dead-letter queue needs sqs:SendMessage. "Amazon EventBridge Pipes targets": a Step Functions target
# is started with StartSyncExecution when the invocation is REQUEST_RESPONSE, StartExecution when FIRE_AND_FORGET.
DYNAMODB_STREAM_READ = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
START = {"REQUEST_RESPONSE": "states:StartSyncExecution", "FIRE_AND_FORGET": "states:StartExecution"}


def _grants(role: str) -> dict[str, list[Any]]:
    """action -> the resources a Pipe's role grants it on (conditional statements aside)."""
    found: dict[str, list[Any]] = {}
    for policy in RESOURCES[role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                found.setdefault(action, []).append(statement["Resource"])
    return found


def test_each_pipe_from_a_table_stream_may_read_it_start_its_target_and_nothing_more() -> None:
    pipes = {
        name: pipe["Properties"]
        for name, pipe in _of_type("AWS::Pipes::Pipe").items()
        if "DynamoDBStreamParameters" in pipe["Properties"]["SourceParameters"]
    }
    assert set(pipes) == {"OutboxPipe", "RulesChangedPipe"}
    for name, pipe in pipes.items():
        granted = _grants(pipe["RoleArn"]["Fn::GetAtt"][0])
        invocation = pipe["TargetParameters"]["StepFunctionStateMachineParameters"]["InvocationType"]
        expected = {action: [pipe["Source"]] for action in DYNAMODB_STREAM_READ}
        expected[START[invocation]] = [pipe["Target"]]
        dead_letters = pipe["SourceParameters"]["DynamoDBStreamParameters"].get("DeadLetterConfig")
        if dead_letters:
            expected["sqs:SendMessage"] = [dead_letters["Arn"]]
        assert granted == expected, name


def test_the_outbox_pipe_delivers_new_outcomes_synchronously_to_the_express_delivery() -> None:
    pipe = RESOURCES["OutboxPipe"]["Properties"]
    assert pipe["Source"] == {"Fn::GetAtt": ["AuditTable", "StreamArn"]}
    assert pipe["Target"] == {"Ref": "DeliverOutcomesStateMachine"}
    assert RESOURCES["DeliverOutcomesStateMachine"]["Properties"]["Type"] == "EXPRESS"
    # Pipes: an Express target takes REQUEST_RESPONSE, so that a failed delivery execution is retried.
    assert pipe["TargetParameters"]["StepFunctionStateMachineParameters"]["InvocationType"] == "REQUEST_RESPONSE"
    assert pipe["SourceParameters"]["FilterCriteria"]["Filters"] == [{"Pattern": '{"eventName": ["INSERT"]}'}]
