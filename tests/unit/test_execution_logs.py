"""Execution history as Step Functions writes it to CloudWatch Logs, and back (execution_logs.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from incremental_analytics_local import execution_logs

EXPRESS = "arn:aws:states:sa-east-1:123456789012:express:my-machine:batch-7:7fa0cfbe-be28-4a20-9875-73c37f5dc39e"
STANDARD = "arn:aws:states:us-east-1:123456789012:execution:my-machine:evaluate-20210301"

# An Express execution's first record, as a log subscription received it from AWS (the fields of AWS's own record,
# the role and names replaced).
AWS_RECORD = {
    "id": "1",
    "type": "ExecutionStarted",
    "details": {
        "input": '{"Comment": "Insert your JSON here"}',
        "inputDetails": {"truncated": False},
        "roleArn": "arn:aws:iam::123456789012:role/service-role/StepFunctions-my-machine-role",
    },
    "previous_event_id": "0",
    "event_timestamp": "1668095539607",
    "execution_arn": EXPRESS,
}


def test_a_record_aws_wrote_reads_as_the_history_event_get_execution_history_gives() -> None:
    event = execution_logs.history_event(AWS_RECORD)
    assert event == {
        "id": 1,
        "previousEventId": 0,
        "type": "ExecutionStarted",
        "timestamp": dt.datetime(2022, 11, 10, 15, 52, 19, 607000, tzinfo=dt.UTC),
        "executionStartedEventDetails": AWS_RECORD["details"],
    }
    record = execution_logs.log_record(event, EXPRESS, include_execution_data=True)
    assert record == {**AWS_RECORD, "redrive_count": "0"}
    assert list(record) == [*AWS_RECORD, "redrive_count"]  # AWS's order of fields


@pytest.mark.parametrize(
    ("event_type", "member"),
    [
        ("TaskStateEntered", "stateEnteredEventDetails"),
        ("ChoiceStateExited", "stateExitedEventDetails"),
        ("FailStateEntered", "stateEnteredEventDetails"),
        ("TaskScheduled", "taskScheduledEventDetails"),
        ("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails"),
        ("MapIterationStarted", "mapIterationStartedEventDetails"),
        ("MapStateStarted", "mapStateStartedEventDetails"),
        ("ExecutionFailed", "executionFailedEventDetails"),
    ],
)
def test_details_go_under_the_member_botocores_model_names(event_type: str, member: str) -> None:
    assert execution_logs.details_member(event_type) == member


def test_without_execution_data_no_input_or_output_is_written() -> None:
    event = {
        "id": 4,
        "previousEventId": 3,
        "type": "TaskStateExited",
        "timestamp": "2021-03-01T00:00:00.250Z",
        "stateExitedEventDetails": {"name": "Commit", "output": '{"email": "a@example.com"}', "outputDetails": {}},
    }
    record = execution_logs.log_record(event, STANDARD, include_execution_data=False)
    assert record["details"] == {"name": "Commit"}
    assert record["event_timestamp"] == "1614556800250"
    assert "a@example.com" not in json.dumps(record)


def test_an_output_over_248_kb_escaped_is_cut_and_marked_truncated() -> None:
    output = json.dumps({"data": '"' * 130_000})  # each quote escapes to two characters: 260 KB escaped
    event = {
        "id": 9,
        "previousEventId": 8,
        "type": "TaskStateExited",
        "timestamp": dt.datetime(2021, 3, 1, tzinfo=dt.UTC),
        "stateExitedEventDetails": {"name": "Parse", "output": output, "outputDetails": {"truncated": False}},
    }
    details = execution_logs.log_record(event, STANDARD, include_execution_data=True)["details"]
    assert details["outputDetails"] == {"truncated": True}
    escaped = len(json.dumps(details["output"]).encode()) - 2
    assert execution_logs.LOG_PAYLOAD_LIMIT_BYTES - 2 <= escaped <= execution_logs.LOG_PAYLOAD_LIMIT_BYTES
    assert output.startswith(details["output"])
    small = execution_logs.log_record(
        {**event, "stateExitedEventDetails": {"name": "Parse", "output": "{}"}}, STANDARD, include_execution_data=True
    )
    assert small["details"]["outputDetails"] == {"truncated": False}


def test_a_history_is_its_records_in_id_order_once_each() -> None:
    records = [
        {**AWS_RECORD, "id": "3", "type": "ExecutionSucceeded", "previous_event_id": "2", "details": {"output": "1"}},
        AWS_RECORD,
        {**AWS_RECORD, "id": "2", "type": "PassStateEntered", "previous_event_id": "1", "details": {"name": "P"}},
        AWS_RECORD,
    ]
    events = execution_logs.history(records)
    assert [event["id"] for event in events] == [1, 2, 3]
    assert execution_logs.status(events) == "SUCCEEDED"
    assert execution_logs.status(events[:2]) == "RUNNING"
    assert execution_logs.status([{"type": "ExecutionTimedOut"}]) == "TIMED_OUT"


def test_names_and_machines_from_execution_arns() -> None:
    assert execution_logs.execution_name(EXPRESS) == "batch-7"
    assert execution_logs.execution_name(STANDARD) == "evaluate-20210301"
    assert execution_logs.state_machine_arn(EXPRESS) == "arn:aws:states:sa-east-1:123456789012:stateMachine:my-machine"
    assert execution_logs.state_machine_arn(STANDARD) == "arn:aws:states:us-east-1:123456789012:stateMachine:my-machine"
    with pytest.raises(ValueError, match="not a Step Functions execution ARN"):
        execution_logs.state_machine_arn("arn:aws:s3:::bucket")
    configuration = {
        "level": "ALL",
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/x:*"}}
        ],
    }
    assert execution_logs.log_group_name(configuration) == "/aws/x"
    assert execution_logs.log_group_name({"level": "OFF"}) is None
