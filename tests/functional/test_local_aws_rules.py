"""Canaries for the local engine's strictness: each AWS rule (aws_rules.py names its documentation) refused or
named locally as AWS does. A moto upgrade that loosens one fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from incremental_analytics_local.aws_rules import (
    KINESIS_RECORD_DATA_BYTES,
    LAMBDA_RESPONSE_TOO_LARGE,
    LAMBDA_SYNC_PAYLOAD_BYTES,
    PAYLOAD_LIMIT_BYTES,
)
from incremental_analytics_local.deploy import Stack, deploy
from incremental_analytics_local.engine import ExecutionResult, LocalAws
from incremental_analytics_local.pipes import PipeDriver
from tests.functional.conftest import FIXTURE_TEMPLATE
from tests.functional.test_local_execution import _counters, _put

ROLE = "arn:aws:iam::123456789012:role/r"
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
CAUGHT = {"Type": "Pass", "End": True}


def _machine(aws: LocalAws, name: str, states: dict[str, Any], kind: str = "STANDARD") -> str:
    definition = {"StartAt": next(iter(states)), "States": states}
    arn: str = aws.client("stepfunctions").create_state_machine(
        name=name, roleArn=ROLE, type=kind, definition=json.dumps(definition)
    )["stateMachineArn"]
    return arn


def _run(aws: LocalAws, machine: str, payload: str) -> ExecutionResult:
    started = aws.client("stepfunctions").start_execution(stateMachineArn=machine, input=payload)
    return aws.wait_for_execution(started["executionArn"])


def _text_of(size: int) -> str:
    """A JSON object whose compact text is exactly `size` bytes of UTF-8 (two-byte characters included)."""
    head = '{"s":"'
    body = "é" * 10 + "x" * (size - len(head) - 2 - 20)
    text = head + body + '"}'
    assert len(text.encode()) == size
    return text


# -- 256 KiB ------------------------------------------------------------------------------------------------------


def test_an_execution_input_of_256_kib_is_taken_and_one_byte_more_refused(aws: LocalAws) -> None:
    machine = _machine(aws, "limit", {"P": {"Type": "Pass", "Parameters": {"ok": True}, "End": True}})
    assert _run(aws, machine, _text_of(PAYLOAD_LIMIT_BYTES)).status == "SUCCEEDED"
    with pytest.raises(ClientError) as refused:
        aws.client("stepfunctions").start_execution(stateMachineArn=machine, input=_text_of(PAYLOAD_LIMIT_BYTES + 1))
    assert refused.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize(
    ("case", "state"),
    [
        # The state's input after Parameters: two copies of a 150 KB string.
        ("input after Parameters", {"Type": "Pass", "Parameters": {"a.$": "$.s", "b.$": "$.s"}, "End": True}),
        # The state's output: the input plus a copy of itself.
        ("output", {"Type": "Pass", "ResultPath": "$.copy", "End": True}),
        # A Task's parameters: the Parameters of a Task are its state input too.
        (
            "task parameters",
            {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:putObject",
                "Parameters": {"Bucket": "b", "Key": "k", "Body.$": "States.Format('{}{}', $.s, $.s)"},
                "Catch": CATCH_ALL,
                "End": True,
            },
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_state_data_over_256_kib_fails_the_execution_uncatchably(
    aws: LocalAws, case: str, state: dict[str, Any]
) -> None:
    machine = _machine(aws, "big", {"Big": state, "Caught": CAUGHT})
    result = _run(aws, machine, json.dumps({"s": "x" * 150_000}))
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded"), case
    assert "Caught" not in aws.entered_states(result.arn)


def test_a_service_result_over_256_kib_fails_the_task_uncatchably(aws: LocalAws) -> None:
    aws.client("s3").create_bucket(Bucket="big")
    aws.client("s3").put_object(Bucket="big", Key="k", Body=b"x" * 300_000)
    read = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
        "Parameters": {"Bucket": "big", "Key": "k"},
        "Catch": CATCH_ALL,
        "End": True,
    }
    result = _run(aws, _machine(aws, "read", {"Read": read, "Caught": CAUGHT}), "{}")
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")


def test_the_pipe_refuses_a_batch_over_256_kib_and_bisects_it(aws: LocalAws, fixture_stack: Stack) -> None:
    # Three records of 70 KB on one shard: base64 in the Pipes event makes each 93 KB, the batch of three 280 KB.
    _put(aws, fixture_stack, *[("u0", {"id": f"e{n}", "pad": "x" * 70_000}) for n in range(3)])
    report = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain()
    assert report.refused_too_large >= 1 and report.bisections >= 1
    assert {execution.status for execution in report.executions} == {"SUCCEEDED"}
    assert report.dead_lettered_records == 0
    assert _counters(aws, fixture_stack)["user#u0"] == 3


# -- Lambda's 6 MB, Kinesis' 1 MiB ---------------------------------------------------------------------------------


def _ascii_text(size: int) -> bytes:
    """A JSON text of exactly `size` bytes, which a handler answering it unchanged answers in as many."""
    return b'"' + b"x" * (size - 2) + b'"'


def test_a_synchronous_invocation_of_6_mb_is_taken_and_one_byte_more_refused(
    aws: LocalAws, fixture_stack: Stack
) -> None:
    function = fixture_stack.ref("EchoFunction")
    answer = aws.client("lambda").invoke(FunctionName=function, Payload=_ascii_text(LAMBDA_SYNC_PAYLOAD_BYTES))
    assert "FunctionError" not in answer and len(answer["Payload"].read()) == LAMBDA_SYNC_PAYLOAD_BYTES
    with pytest.raises(ClientError) as refused:
        aws.client("lambda").invoke(FunctionName=function, Payload=_ascii_text(LAMBDA_SYNC_PAYLOAD_BYTES + 1))
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_a_response_over_6_mb_fails_the_invocation(aws: LocalAws, fixture_stack: Stack) -> None:
    function = fixture_stack.ref("EchoFunction")
    fits = aws.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"inflate": LAMBDA_SYNC_PAYLOAD_BYTES - 2})
    )
    assert "FunctionError" not in fits and len(fits["Payload"].read()) == LAMBDA_SYNC_PAYLOAD_BYTES
    over = aws.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"inflate": LAMBDA_SYNC_PAYLOAD_BYTES - 1})
    )
    assert over["FunctionError"] == "Unhandled"
    assert json.loads(over["Payload"].read())["errorType"] == LAMBDA_RESPONSE_TOO_LARGE


def test_a_record_of_1_mib_is_put_and_one_byte_more_refused(aws: LocalAws, fixture_stack: Stack) -> None:
    kinesis = aws.client("kinesis")
    stream = fixture_stack.ref("Stream")
    kinesis.put_record(StreamName=stream, PartitionKey="u" * 256, Data=b"x" * KINESIS_RECORD_DATA_BYTES)
    for key, data in [("u", b"x" * (KINESIS_RECORD_DATA_BYTES + 1)), ("u" * 257, b"{}")]:
        with pytest.raises(ClientError) as refused:
            kinesis.put_record(StreamName=stream, PartitionKey=key, Data=data)
        assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_an_enrichment_refuses_a_batch_over_6_mb_and_the_pipe_bisects_it(aws: LocalAws) -> None:
    # Five records of 1 MiB on one shard: 7 MB of base64 in one batch, which Lambda refuses; halves of two and
    # three records (2.8 and 4.2 MB) pass through the enrichment.
    stack = deploy(aws, FIXTURE_TEMPLATE, stack_name="big", parameters={"BatchSize": 5})
    pad = "x" * (KINESIS_RECORD_DATA_BYTES - 40)
    _put(aws, stack, *[("u0", {"id": f"e{n}", "pad": pad}) for n in range(5)])
    report = PipeDriver(aws, stack.pipes["EnrichedPipe"]).drain()
    assert report.failed_enrichments == 1 and report.enrichments > 1 and report.bisections >= 1
    # This enrichment hands the records on unchanged: too large for a Step Functions input (262144 bytes) even
    # one by one, they are refused, bisected down to single records and dead-lettered, as on AWS.
    assert report.refused_too_large > 0 and report.dead_lettered_records == 5 and not report.executions


# -- States.ALL and the terminal errors ----------------------------------------------------------------------------


def test_states_all_does_not_catch_a_runtime_error(aws: LocalAws) -> None:
    missing = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
        "Parameters": {"Bucket": "b", "Key.$": "$.Item.key"},  # a GetItem result with no Item
        "Catch": CATCH_ALL,
        "End": True,
    }
    result = _run(aws, _machine(aws, "runtime", {"Read": missing, "Caught": CAUGHT}), "{}")
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Caught" not in aws.entered_states(result.arn)


def test_states_all_still_catches_a_task_error(aws: LocalAws) -> None:
    read = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
        "Parameters": {"Bucket": "nowhere", "Key": "k"},
        "Catch": CATCH_ALL,
        "End": True,
    }
    result = _run(aws, _machine(aws, "caught", {"Read": read, "Caught": CAUGHT}), "{}")
    assert result.status == "SUCCEEDED" and result.output["error"]["Error"] == "S3.NoSuchBucketException"


# -- error names, as each integration raises them ------------------------------------------------------------------

TABLE = "names"


def _names_table(aws: LocalAws) -> None:
    aws.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


_GET = {"TableName": TABLE, "Key": {"pk": {"S": "a"}}}


@pytest.mark.parametrize(
    ("resource", "parameters", "fault", "expected"),
    [
        # The optimised DynamoDB integration: `DynamoDB.`, the Exception suffix, the SDK's base for the unknown.
        ("dynamodb:getItem", _GET, ("dynamodb", "GetItem", "ProvisionedThroughputExceededException"),
         "DynamoDB.ProvisionedThroughputExceededException"),
        ("dynamodb:getItem", _GET, ("dynamodb", "GetItem", "RequestLimitExceeded"),
         "DynamoDB.RequestLimitExceededException"),
        ("dynamodb:getItem", _GET, ("dynamodb", "GetItem", "SomethingNew"), "DynamoDB.AmazonDynamoDBException"),
        # The AWS SDK integration: `DynamoDb.` (its SDK client's name), always the Exception suffix.
        ("aws-sdk:dynamodb:getItem", _GET, ("dynamodb", "GetItem", "ProvisionedThroughputExceededException"),
         "DynamoDb.ProvisionedThroughputExceededException"),
        ("aws-sdk:dynamodb:getItem", _GET, ("dynamodb", "GetItem", "InternalServerError"),
         "DynamoDb.InternalServerErrorException"),
        ("aws-sdk:dynamodb:getItem", _GET, ("dynamodb", "GetItem", "ThrottlingException"),
         "DynamoDb.ThrottlingException"),
        # S3's throttling code is not in its model: the SDK raises its base exception.
        ("aws-sdk:s3:getObject", {"Bucket": "b", "Key": "k"}, ("s3", "GetObject", "SlowDown"), "S3.S3Exception"),
        ("aws-sdk:s3:getObject", {"Bucket": "b", "Key": "k"}, ("s3", "GetObject", "NoSuchKey"),
         "S3.NoSuchKeyException"),
        ("aws-sdk:cloudwatch:putMetricData", {"Namespace": "n", "MetricData": [{"MetricName": "m", "Value": 1}]},
         ("cloudwatch", "PutMetricData", "Throttling"), "CloudWatch.CloudWatchException"),
        # A query-protocol service answers a code that is not its shape's name: the SDK's class is the shape's.
        ("aws-sdk:cloudwatch:putMetricData", {"Namespace": "n", "MetricData": [{"MetricName": "m", "Value": 1}]},
         ("cloudwatch", "PutMetricData", "InternalServiceError"), "CloudWatch.InternalServiceFaultException"),
        # The delivery path's retriers: optimised DynamoDB's account-quota and server errors, EventBridge's.
        ("dynamodb:updateItem", {**_GET, "UpdateExpression": "SET a = :a",
                                 "ExpressionAttributeValues": {":a": {"S": "x"}}},
         ("dynamodb", "UpdateItem", "InternalServerError"), "DynamoDB.InternalServerErrorException"),
        ("events:putEvents", {"Entries": [{"Source": "s", "DetailType": "d", "Detail": {}}]},
         ("events", "PutEvents", "InternalException"), "EventBridge.InternalException"),
        ("aws-sdk:pinpoint:getUserEndpoints", {"ApplicationId": "a", "UserId": "u"},
         ("pinpoint", "GetUserEndpoints", "TooManyRequestsException"), "Pinpoint.TooManyRequestsException"),
        ("aws-sdk:customerprofiles:searchProfiles", {"DomainName": "d", "KeyName": "k", "Values": ["v"]},
         ("customer-profiles", "SearchProfiles", "ThrottlingException"), "CustomerProfiles.ThrottlingException"),
        ("lambda:invoke", {"FunctionName": "f", "Payload": {}}, ("lambda", "Invoke", "TooManyRequestsException"),
         "Lambda.TooManyRequestsException"),
        ("events:putEvents", {"Entries": [{"Source": "s", "DetailType": "d", "Detail": {}}]},
         ("events", "PutEvents", "ThrottlingException"), "EventBridge.ThrottlingException"),
        # "Start workflow executions from a task state": `StepFunctions.ExecutionLimitExceeded`, no suffix.
        ("states:startExecution", {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"},
         ("stepfunctions", "StartExecution", "ExecutionLimitExceeded"), "StepFunctions.ExecutionLimitExceeded"),
    ],
    ids=lambda value: value[2] if isinstance(value, tuple) else value if isinstance(value, str) else "",
)  # fmt: skip
def test_each_integration_names_a_service_error_as_aws_does(
    aws: LocalAws, resource: str, parameters: dict[str, Any], fault: tuple[str, str, str], expected: str
) -> None:
    _names_table(aws)
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::{resource}",
        "Parameters": parameters,
        "Catch": CATCH_ALL,
        "End": True,
    }
    # The Wait lets the fault be set after the execution started (StartExecution is one of the faulted calls).
    machine = _machine(aws, "named", {"Wait": {"Type": "Wait", "Seconds": 50, "Next": "Call"}, "Call": task,
                                      "Caught": CAUGHT})  # fmt: skip
    started = aws.client("stepfunctions").start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    service, operation, code = fault
    aws.fail_next(service, operation, 1, code)
    result = aws.wait_for_execution(started)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["error"]["Error"] == expected


def test_a_started_execution_that_exists_is_step_functions_execution_already_exists(aws: LocalAws) -> None:
    child = _machine(aws, "child", {"P": {"Type": "Pass", "End": True}})
    start = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution",
        "Parameters": {"StateMachineArn": child, "Name": "once", "Input.$": "$"},
        "Catch": CATCH_ALL,
        "End": True,
    }
    parent = _machine(aws, "parent", {"Start": start, "Caught": CAUGHT})
    assert "error" not in _run(aws, parent, '{"n": 1}').output
    again = _run(aws, parent, '{"n": 2}')  # the same name, another input
    assert again.output["error"]["Error"] == "StepFunctions.ExecutionAlreadyExists"


def test_a_failed_event_bridge_entry_fails_the_task(aws: LocalAws) -> None:
    put = {
        "Type": "Task",
        "Resource": "arn:aws:states:::events:putEvents",
        # An entry without a DetailType: PutEvents answers 200 with that entry failed (InvalidArgument).
        "Parameters": {"Entries": [{"Source": "s", "Detail": {"a": 1}}]},
        "Catch": CATCH_ALL,
        "End": True,
    }
    result = _run(aws, _machine(aws, "entry", {"Put": put, "Caught": CAUGHT}), "{}")
    assert result.output["error"]["Error"] == "EventBridge.FailedEntry"


# -- Express workflows: no history API ------------------------------------------------------------------------------


def test_express_executions_have_no_describe_history_or_list(aws: LocalAws) -> None:
    states = {"P": {"Type": "Pass", "Result": {"a": 1}, "End": True}}
    express = _machine(aws, "fast", states, kind="EXPRESS")
    standard = _machine(aws, "slow", states)
    sfn = aws.client("stepfunctions")
    fast = aws.start_sync_execution(express, {}, name="fast-1")
    slow = _run(aws, standard, "{}")
    for call, code in [
        (lambda: sfn.describe_execution(executionArn=fast.arn), "InvalidArn"),
        (lambda: sfn.get_execution_history(executionArn=fast.arn), "InvalidArn"),
        (lambda: sfn.list_executions(stateMachineArn=express), "StateMachineTypeNotSupported"),
    ]:
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == code
    assert sfn.describe_execution(executionArn=slow.arn)["status"] == "SUCCEEDED"
    assert len(sfn.list_executions(stateMachineArn=standard)["executions"]) == 1
    # The local engine still knows both, from its backend: what the trace and the tests read.
    assert json.loads(aws.describe(fast.arn)["output"]) == {"a": 1}
    assert aws.entered_states(fast.arn) == ["P"] and aws.executions(express) == [fast.arn]


@pytest.mark.parametrize(
    ("logging", "problem"),
    [
        ({"level": "ALL"}, "a log destination is required at level ALL"),
        (
            {
                "level": "ERROR",
                "destinations": [
                    {"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g"}}
                ],
            },
            "must be a CloudWatch Logs log group's ARN ending with :*",
        ),
        (
            {
                "level": "ALL",
                "destinations": [
                    {"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g:*"}}
                ]
                * 2,
            },
            "at most one log destination",
        ),
    ],
)
def test_a_logging_configuration_aws_refuses_is_refused(aws: LocalAws, logging: dict[str, Any], problem: str) -> None:
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sfn = aws.client("stepfunctions")
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="logged", roleArn=ROLE, definition=definition, loggingConfiguration=logging)
    assert refused.value.response["Error"]["Code"] == "InvalidLoggingConfiguration"
    assert problem in refused.value.response["Error"]["Message"]
    arn = sfn.create_state_machine(name="quiet", roleArn=ROLE, definition=definition)["stateMachineArn"]
    with pytest.raises(ClientError) as refused:
        sfn.update_state_machine(stateMachineArn=arn, loggingConfiguration=logging)
    assert refused.value.response["Error"]["Code"] == "InvalidLoggingConfiguration"
