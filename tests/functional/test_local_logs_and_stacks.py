"""Canaries for what a deployment leaves as AWS leaves it: the CloudFormation stack (stack_registry.py), and the
execution history a state machine's LoggingConfiguration sends to CloudWatch Logs (glue.py, execution_logs.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local import execution_logs
from incremental_analytics_local.deploy import Stack
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

ROLE = "arn:aws:iam::123456789012:role/r"


def test_a_deployed_template_is_a_cloudformation_stack(aws: LocalAws, fixture_stack: Stack) -> None:
    cloudformation = aws.client("cloudformation")
    (described,) = cloudformation.describe_stacks(StackName="fx")["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]} == fixture_stack.outputs
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]} == {
        key: str(value) for key, value in fixture_stack.parameters.items()
    }
    summaries = cloudformation.list_stack_resources(StackName="fx")["StackResourceSummaries"]
    found = {summary["LogicalResourceId"]: summary for summary in summaries}
    assert found["Worker"]["ResourceType"] == "AWS::StepFunctions::StateMachine"  # as the SAM transform leaves it
    assert found["Worker"]["PhysicalResourceId"] == fixture_stack.ref("Worker")
    assert found["Counters"]["ResourceType"] == "AWS::DynamoDB::Table"
    detailed = cloudformation.describe_stack_resources(StackName="fx")["StackResources"]
    assert {resource["LogicalResourceId"] for resource in detailed} == set(found)
    assert "fx" in [stack["StackName"] for stack in cloudformation.list_stacks()["StackSummaries"]]
    assert cloudformation.get_template(StackName="fx")["TemplateBody"] == fixture_stack.template_path.read_text()
    try:
        cloudformation.describe_stacks(StackName="nope")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ValidationError"
    else:
        raise AssertionError("an unknown stack was described")


def _records(aws: LocalAws, group: str) -> list[dict[str, Any]]:
    pages = aws.client("logs").get_paginator("filter_log_events").paginate(logGroupName=group)
    return [json.loads(event["message"]) for page in pages for event in page["events"]]


def test_an_express_execution_logged_at_all_with_data_has_its_whole_history_in_its_log_group(aws: LocalAws) -> None:
    product = LocalProduct(
        aws, parameters={"ExpressLogLevel": "ALL", "IncludeExecutionData": "true", "FunctionLogLevel": "WARNING"}
    )
    product.put_rules([Rule("clicks", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 2))])
    now = int(time.time() * 1000)
    product.put_events({"user_id": "u1", "event_type": "click", "timestamp": now - 1000 + n} for n in range(3))
    (execution,) = product.ingest().executions
    group = product.table("IngestBatchLogs")
    records = _records(aws, group)
    assert {record["execution_arn"] for record in records} == {execution.arn}
    assert set(records[0]) == {
        "id",
        "type",
        "details",
        "previous_event_id",
        "event_timestamp",
        "execution_arn",
        "redrive_count",
    }
    assert all(isinstance(record["event_timestamp"], str) for record in records)
    # The log holds what GetExecutionHistory would: the same events, details and all.
    assert execution_logs.history(records) == aws.history(execution.arn)
    streams = aws.client("logs").describe_log_streams(logGroupName=group)["logStreams"]
    assert all(stream["logStreamName"].startswith("states/") for stream in streams)


def test_at_error_level_without_data_only_failures_are_logged_and_no_input(aws: LocalAws) -> None:
    logs = aws.client("logs")
    logs.create_log_group(logGroupName="/aws/vendedlogs/states/failing")
    definition = {
        "StartAt": "Check",
        "States": {
            "Check": {"Type": "Pass", "Next": "Stop"},
            "Stop": {"Type": "Fail", "Error": "Bad.Input", "Cause": "rejected"},
        },
    }
    machine = aws.client("stepfunctions").create_state_machine(
        name="failing",
        roleArn=ROLE,
        type="EXPRESS",
        definition=json.dumps(definition),
        loggingConfiguration={
            "level": "ERROR",
            "includeExecutionData": False,
            "destinations": [
                {
                    "cloudWatchLogsLogGroup": {
                        "logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/failing:*"
                    }
                }
            ],
        },
    )["stateMachineArn"]
    result = aws.start_sync_execution(machine, {"email": "a@example.com"}, name="fails-1")
    assert result.status == "FAILED"
    records = _records(aws, "/aws/vendedlogs/states/failing")
    assert [record["type"] for record in records] == ["FailStateEntered", "ExecutionFailed"]
    assert records[1]["details"] == {"error": "Bad.Input", "cause": "rejected"}
    assert "a@example.com" not in json.dumps(records)
