"""Canaries for the local engine's patches to moto: each fails if a moto upgrade changes what a patch relies on,
and each shows the patched behaviour working."""

from __future__ import annotations

import copy
import datetime as dt
import enum
import gc
import hashlib
import inspect
import json
import re
import subprocess
import sys
from decimal import Decimal
from typing import Any

import boto3
import jsonpath_ng.ext
import moto
import pytest
from botocore.exceptions import ClientError
from botocore.loaders import JSONFileLoader
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import Validator
from moto.ec2.models import availability_zones_and_regions
from moto.events.utils import EventTemplateParser
from moto.kinesis.models import Shard as KinesisShard
from moto.sqs.models import Queue as SqsQueue
from moto.sqs.models import SQSBackend, sqs_backends
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as sdk_service,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback_service,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning
from moto.stepfunctions.parser.asl.eval.states import States
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from incremental_analytics_local import glue, startup
from incremental_analytics_local.deploy import Stack
from incremental_analytics_local.engine import GC_THRESHOLDS, LocalAws
from incremental_analytics_local.pipes import PipeDriver
from tests.functional.test_local_execution import _put

ROLE = "arn:aws:iam::123456789012:role/r"
# moto 5.2.5's asl/component/state/state.py, whose history-detail methods glue replaces (see the canary below).
STATE_MODULE_SHA256 = "70fcbfdfa0d55078f948cdc718b48fa87f472ef8e0b25d6ee06629fe42a78f1a"


class Kind(enum.StrEnum):
    A = "a"


def _machine(aws: LocalAws, name: str, definition: dict[str, object], kind: str = "STANDARD") -> str:
    arn: str = aws.client("stepfunctions").create_state_machine(
        name=name, roleArn=ROLE, type=kind, definition=json.dumps(definition)
    )["stateMachineArn"]
    return arn


def test_the_moto_pin_is_the_one_the_patches_were_written_for() -> None:
    assert moto.__version__ == glue.MOTO_VERSION


def test_the_moto_source_the_patches_replace_is_unchanged() -> None:
    # If one of these lines moves or changes in a moto upgrade, the patch above it must be revisited.
    glue.apply()
    assert "time.sleep(interval_seconds)" in inspect.getsource(retrier_decl)
    assert "env.program_state_event.wait(wait_seconds)" in inspect.getsource(WaitFunction)
    assert "table.put_item(data)" in inspect.getsource(DynamoDBBackend.update_item.__wrapped__)  # type: ignore[attr-defined]
    assert "boto_client_for(" in inspect.getsource(sdk_service)
    assert "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES" in inspect.getsource(sdk_service.StateTaskServiceAwsSdk.__mro__[2])
    assert "time.sleep(_DELAY_SECONDS_SYNC_CONDITION_CHECK)" in inspect.getsource(callback_service)
    assert callback_service._DELAY_SECONDS_SYNC_CONDITION_CHECK == glue.SYNC_CHECK_SECONDS
    assert "EnteredTime=datetime.datetime.now(tz=datetime.timezone.utc).isoformat()" in inspect.getsource(state_module)
    # _history_details_without_copies: moto's two methods, which it replaces but for the copy.
    source = inspect.getsource(state_module)
    assert 'input=to_json_str(env.states.get_input(), separators=(",", ":"))' in source
    assert 'output=to_json_str(env.states.get_input(), separators=(",", ":"))' in source
    assert hashlib.sha256(source.encode()).hexdigest() == STATE_MODULE_SHA256
    assert "clone_input_value = copy.deepcopy(input_value)" in inspect.getsource(States.reset)


def test_executions_started_without_a_name_get_distinct_arns(aws: LocalAws) -> None:
    arn = _machine(aws, "unnamed", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sfn = aws.client("stepfunctions")
    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    assert first != second and not first.endswith(":None")


def test_task_clients_are_built_once_per_service(aws: LocalAws) -> None:
    make = sdk_service.boto_client_for
    assert make.__qualname__.startswith("_cache_task_clients")  # the module's own reference was replaced
    assert make(region="us-east-1", service="dynamodb") is make(region="us-east-1", service="dynamodb")


def test_concurrent_map_iterations_do_not_lose_dynamodb_updates(aws: LocalAws) -> None:
    aws.client("dynamodb").create_table(
        TableName="hits",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    arn = _machine(
        aws,
        "adds",
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 40,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Add",
                        "States": {
                            "Add": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::dynamodb:updateItem",
                                "Parameters": {
                                    "TableName": "hits",
                                    "Key": {"pk": {"S": "one"}},
                                    "UpdateExpression": "ADD n :one",
                                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                                },
                                "End": True,
                            }
                        },
                    },
                    "End": True,
                }
            },
        },
        kind="EXPRESS",
    )
    result = aws.start_sync_execution(arn, {"items": list(range(300))}, name="adds")
    assert result.status == "SUCCEEDED"
    item = aws.client("dynamodb").get_item(TableName="hits", Key={"pk": {"S": "one"}})["Item"]
    assert item["n"] == {"N": "300"}
    # Executions of one definition share its parsed program: five at once still each do all their work.
    sfn = aws.client("stepfunctions")
    started = [
        sfn.start_execution(stateMachineArn=arn, name=f"adds-{n}", input=json.dumps({"items": list(range(50))}))
        for n in range(5)
    ]
    assert {aws.wait_for_execution(run["executionArn"]).status for run in started} == {"SUCCEEDED"}
    item = aws.client("dynamodb").get_item(TableName="hits", Key={"pk": {"S": "one"}})["Item"]
    assert item["n"] == {"N": "550"}


def test_start_execution_parameters_and_output_have_the_aws_casing(aws: LocalAws, fixture_stack: Stack) -> None:
    _put(aws, fixture_stack, ("u1", {"id": "casing"}))
    (execution,) = PipeDriver(aws, fixture_stack.pipes["StreamPipe"]).drain().executions
    assert set(execution.output["worker"]) == {"ExecutionArn", "StartDate"}
    assert isinstance(execution.output["worker"]["StartDate"], str)
    assert execution.output["worker"]["ExecutionArn"].endswith(execution.arn.rsplit(":", 1)[1])


def test_transactions_roll_back_only_what_they_touched(aws: LocalAws) -> None:
    from incremental_analytics_local import dynamodb_transactions

    assert (
        hashlib.sha256(inspect.getsource(DynamoDBBackend.transact_write_items.__wrapped__).encode()).hexdigest()  # type: ignore[attr-defined]
        == dynamodb_transactions.MOTO_SOURCE_SHA256
    ), "moto's transact_write_items changed: compare it with dynamodb_transactions.py"
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="tx",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.create_table(
        TableName="flat",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="flat", Item={"pk": {"S": "h"}, "v": {"N": "1"}})
    dynamodb.put_item(TableName="tx", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}})
    dynamodb.put_item(TableName="tx", Item={"pk": {"S": "b"}, "sk": {"S": "1"}, "v": {"N": "1"}})
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "tx", "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": "tx",
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "UpdateExpression": "ADD v :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Delete": {"TableName": "tx", "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": "flat",
                        "Key": {"pk": {"S": "h"}},
                        "UpdateExpression": "ADD v :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": "flat", "Item": {"pk": {"S": "fresh"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "tx",
                        "Key": {"pk": {"S": "c"}, "sk": {"S": "1"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    reasons = [reason["Code"] for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "None", "None", "ConditionalCheckFailed"]
    items = sorted((item["pk"]["S"], item["v"]["N"]) for item in dynamodb.scan(TableName="tx")["Items"])
    assert items == [("a", "1"), ("b", "1")]
    assert dynamodb.scan(TableName="flat")["Items"] == [{"pk": {"S": "h"}, "v": {"N": "1"}}]
    stream_arn = dynamodb.describe_table(TableName="tx")["Table"]["LatestStreamArn"]
    streams = aws.client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert len(streams.get_records(ShardIterator=iterator)["Records"]) == 2  # the two puts, nothing cancelled


def test_a_creating_update_shows_one_insert_on_the_table_stream(aws: LocalAws) -> None:
    dynamodb = aws.client("dynamodb")
    description = dynamodb.create_table(
        TableName="streamed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    for _ in range(2):
        dynamodb.update_item(
            TableName="streamed",
            Key={"pk": {"S": "a"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    streams = aws.client("dynamodbstreams")
    stream_arn = description["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [record["eventName"] for record in records] == ["INSERT", "MODIFY"]
    assert records[0]["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_a_service_the_local_aws_lacks_gives_a_clear_catchable_error(aws: LocalAws) -> None:
    with pytest.raises(ClientError) as raised:
        boto3.client("appflow", region_name=aws.region).list_flows()
    assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "appflow.ListFlows: not available in the local AWS" in raised.value.response["Error"]["Message"]
    arn = _machine(
        aws,
        "absent",
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:appflow:listFlows",
                    "Parameters": {},
                    # A code the service's model does not declare surfaces as the SDK's base exception.
                    "Catch": [{"ErrorEquals": ["Appflow.AppflowException"], "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )
    result = aws.wait_for_execution(aws.client("stepfunctions").start_execution(stateMachineArn=arn)["executionArn"])
    assert result.status == "SUCCEEDED"
    assert aws.entered_states(result.arn) == ["Call", "Caught"]


def test_json_paths_intrinsics_and_sdk_results_read_as_on_aws(aws: LocalAws) -> None:
    aws.client("s3").create_bucket(Bucket="glue-bucket")
    aws.client("s3").put_object(Bucket="glue-bucket", Key="k.json", Body=b'{"n": 1}')
    definition = {
        "StartAt": "Paths",
        "States": {
            "Paths": {
                "Type": "Pass",
                "Parameters": {
                    "definite.$": "$.a[0].b",
                    "wildcard.$": "$.a[*].b",
                    "single_wildcard.$": "$.c[*].b",
                    "none.$": "$.d[*].b",
                    "values.$": "$.e.*.code",
                    "no_values.$": "$.f.*.code",
                    "entered.$": "$$.State.EnteredTime",
                    "keyed.$": "States.StringToJson(States.Format('\\{\"{}\":{}\\}', $.a[1].b, $.c[0].b))",
                    "started.$": "$$.Execution.StartTime",
                },
                "Next": "Read",
            },
            "Read": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": "glue-bucket", "Key": "k.json"},
                "ResultSelector": {"body.$": "States.StringToJson($.Body)", "modified.$": "$.LastModified"},
                "ResultPath": "$.read",
                "End": True,
            },
        },
    }
    arn = _machine(aws, "paths", definition, kind="EXPRESS")
    given = {"a": [{"b": "one"}, {"b": "two"}], "c": [{"b": 1}], "d": [], "e": {"x": {"code": 202}}, "f": {}}
    result = aws.start_sync_execution(arn, given, name="p")
    assert result.status == "SUCCEEDED", result.cause
    output = result.output
    assert (output["definite"], output["wildcard"], output["single_wildcard"], output["none"]) == (
        "one",
        ["one", "two"],
        [1],
        [],
    )
    assert output["keyed"] == {"two": 1}
    assert (output["values"], output["no_values"]) == ([202], [])  # `.*` is a wildcard: indefinite, as `[*]`
    assert isinstance(output["started"], str) and output["started"].endswith("Z")
    # As AWS writes it, e.g. 2019-03-26T20:14:13.192Z: instants stored from it compare as text.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", output["entered"]), output["entered"]
    assert output["read"]["body"] == {"n": 1} and isinstance(output["read"]["modified"], str)


def test_a_sync_child_execution_is_awaited_promptly(aws: LocalAws) -> None:
    child = _machine(
        aws, "child", {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}, "EXPRESS"
    )
    parent = _machine(
        aws,
        "parent",
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync:2",
                    "Parameters": {"StateMachineArn": child, "Input": {"x": 1}},
                    "ResultSelector": {"output.$": "$.Output", "status.$": "$.Status"},
                    "End": True,
                }
            },
        },
    )
    arn = aws.client("stepfunctions").start_execution(stateMachineArn=parent, name="p1", input="{}")["executionArn"]
    result = aws.wait_for_execution(arn)
    assert result.status == "SUCCEEDED" and result.output == {"output": {"ok": 1}, "status": "SUCCEEDED"}


def test_a_query_reads_its_partition_and_an_index_query_finds_every_match(aws: LocalAws) -> None:
    source = inspect.getsource(Table.query.__wrapped__)  # type: ignore[attr-defined]
    assert "for item in self.all_items()" in source and "item.hash_key == hash_key" in source
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for p in range(30):
        for s in range(5):
            item = {"pk": {"S": f"p{p:02d}"}, "sk": {"S": f"s{4 - s}"}, **({"g": {"S": "x"}} if s == 0 else {})}
            dynamodb.put_item(TableName="t", Item=item)
    one = dynamodb.query(
        TableName="t",
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": "p07"}, ":s": {"S": "s"}},
        Limit=3,
    )
    assert [item["sk"]["S"] for item in one["Items"]] == ["s0", "s1", "s2"] and "LastEvaluatedKey" in one
    keys, start = [], None
    while True:
        page = dynamodb.query(
            TableName="t",
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "x"}},
            Limit=7,
            **({"ExclusiveStartKey": start} if start else {}),
        )
        keys += [item["pk"]["S"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert keys == [f"p{p:02d}" for p in range(30)]


def test_the_history_read_from_the_backend_is_the_api_history(aws: LocalAws) -> None:
    machine = _machine(
        aws,
        "h",
        {
            "StartAt": "P",
            "States": {"P": {"Type": "Pass", "Result": {"a": 1}, "Next": "F"}, "F": {"Type": "Fail", "Error": "E"}},
        },
    )
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name="h1", input='{"k": 1}')["executionArn"]
    aws.wait_for_execution(arn)
    through_the_api = sfn.get_execution_history(executionArn=arn)["events"]
    assert aws.history(arn) == through_the_api
    assert [event["type"] for event in aws.history(arn)][-1] == "ExecutionFailed"


def test_an_invoke_over_http_runs_the_handler_in_the_serving_process(aws: LocalAws, fixture_stack: Stack) -> None:
    endpoint = aws.serve()
    function = fixture_stack.ref("GreetFunction")
    script = f"""
import base64, boto3, json
client = boto3.client("lambda", endpoint_url="{endpoint}", region_name="{aws.region}",
                      aws_access_key_id="k", aws_secret_access_key="s")
record = {{"data": base64.b64encode(b'{{"id": "e1"}}').decode(), "partitionKey": "u1", "sequenceNumber": "1"}}
answer = client.invoke(FunctionName="{function}", Payload=json.dumps({{"records": [record]}}).encode())
print(json.dumps([answer.get("FunctionError"), json.loads(answer["Payload"].read())]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    error, payload = json.loads(done.stdout)
    assert error is None
    assert payload["items"] == [{"user": "u1", "event_id": "e1"}]
    assert payload["greeting"].endswith(f"from {function}")


def test_copies_of_state_data_are_deep_and_unshared() -> None:
    glue.apply()
    value = {"a": [1, 2.5, {"b": None, "c": True}], "s": "é", "big": 10**40, "n": {"m": []}}
    copied = glue.json_copy(value)
    assert copied == value and copied is not value
    assert (
        copied["a"] is not value["a"]
        and copied["a"][2] is not value["a"][2]
        and copied["n"]["m"] is not value["n"]["m"]
    )
    assert type(copied["a"][2]["c"]) is bool
    # What marshal refuses (a datetime, a Decimal, a str subclass) is copied member by member, still deeply.
    odd = {"when": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "price": Decimal("1.10"), "kind": Kind.A, "l": [{"x": 1}]}
    copied = glue.json_copy(odd)
    assert copied == odd and copied["l"][0] is not odd["l"][0] and copied["kind"] is Kind.A
    assert glue.json_copy("text") == "text" and glue.json_copy(None) is None


def test_attribute_values_are_serialised_as_moto_serialises_them(aws: LocalAws) -> None:
    item = {
        "pk": {"S": "user-1"},
        "n": {"N": "12.50"},
        "t": {"BOOL": True},
        "f": {"BOOL": False},
        "z": {"NULL": True},
        "b": {"B": b"\x00\x01"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "m": {"M": {"x": {"S": "y"}, "l": {"L": [{"N": "1"}, {"M": {"deep": {"BOOL": False}}}, {"B": b"\x02"}]}}},
        "plain": {"M": {"l": {"L": [{"S": "a"}, {"N": "1"}, {"M": {"n": {"NULL": True}, "s": {"NS": ["2"]}}}]}}},
        "empty": {"M": {"m": {"M": {}}, "l": {"L": []}}},
    }
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="shapes",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="shapes", Item=item)
    fast = dynamodb.scan(TableName="shapes", ConsistentRead=True)["Items"]
    direct = BaseJSONSerializer._serialize_type_structure
    BaseJSONSerializer._serialize_type_structure = glue._original_structure_serialiser  # type: ignore[method-assign]
    try:
        walked = dynamodb.scan(TableName="shapes", ConsistentRead=True)["Items"]
    finally:
        BaseJSONSerializer._serialize_type_structure = direct  # type: ignore[method-assign]
    assert fast == walked == [item]


def test_the_engine_sets_the_collector_s_thresholds_while_it_runs_and_restores_them() -> None:
    before = gc.get_threshold()
    with LocalAws():
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_threshold() == before


def test_answers_are_the_same_with_the_serialiser_s_names_worked_out_once(aws: LocalAws) -> None:
    dynamodb, kinesis, s3, sfn = (aws.client(name) for name in ("dynamodb", "kinesis", "s3", "stepfunctions"))
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "m": {"M": {"l": {"L": [{"N": "1"}, {"SS": ["x"]}]}}}})
    kinesis.create_stream(StreamName="s", ShardCount=1)
    kinesis.put_record(StreamName="s", PartitionKey="p", Data=b"\x00data")
    s3.create_bucket(Bucket="answers")
    s3.put_object(Bucket="answers", Key="k", Body=b"body")
    machine = _machine(aws, "m", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})

    def answers() -> list[object]:
        iterator = kinesis.get_shard_iterator(
            StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found = [
            dynamodb.describe_table(TableName="t"),
            dynamodb.scan(TableName="t"),
            kinesis.describe_stream(StreamName="s"),
            kinesis.get_records(ShardIterator=iterator),
            s3.list_objects_v2(Bucket="answers"),
            sfn.describe_state_machine(stateMachineArn=machine),
        ]
        for answer in found:
            answer.pop("ResponseMetadata")
            answer.pop("NextShardIterator", None)  # an iterator names the moment it was made
        return found

    worked_out_once = answers()
    cached = XFormedAttributePicker.get_possible_keys
    XFormedAttributePicker.get_possible_keys = glue._original_possible_keys  # type: ignore[method-assign]
    try:
        worked_out_each_time = answers()
    finally:
        XFormedAttributePicker.get_possible_keys = cached  # type: ignore[method-assign]
    assert worked_out_once == worked_out_each_time
    assert glue._possible_keys  # the names were worked out once and kept


def test_waiting_for_an_execution_is_woken_by_its_end(aws: LocalAws) -> None:
    assert "self._reflect_execution_status()" in inspect.getsource(
        BaseExecutionWorkerCommunication.terminated.__wrapped__
    )  # type: ignore[attr-defined]
    assert "self._execution_communication.terminated()" in inspect.getsource(ExecutionWorker)
    machine = _machine(aws, "woken", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}})
    arn = aws.client("stepfunctions").start_execution(stateMachineArn=machine, name="w1")["executionArn"]
    running = glue.execution_watch("123456789012", aws.region, arn)
    assert glue.wait_until_ended(running, 60)
    assert not running() and aws.describe(arn)["status"] == "SUCCEEDED"
    assert not glue.wait_until_ended(lambda: True, 0.01)  # still running when the timeout passed


def test_a_shard_s_sequence_ends_are_its_first_and_last_records(aws: LocalAws) -> None:
    assert "return list(self.records.keys())[-1]" in inspect.getsource(KinesisShard)  # what the patch replaces
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName="ends", ShardCount=1)
    numbers = [kinesis.put_record(StreamName="ends", PartitionKey="p", Data=b"x")["SequenceNumber"] for _ in range(3)]
    assert numbers == sorted(numbers, key=int) and len(set(numbers)) == 3
    (shard,) = kinesis.describe_stream(StreamName="ends")["StreamDescription"]["Shards"]
    assert shard["SequenceNumberRange"]["StartingSequenceNumber"] == numbers[0]
    assert KinesisShard(0, 0, 1).get_max_sequence_number() == KinesisShard(0, 0, 1).get_min_sequence_number() == 0


def test_taking_a_queue_s_messages_is_receiving_and_deleting_them_all(aws: LocalAws) -> None:
    assert "if message.visible and not message.delayed" in inspect.getsource(SqsQueue)  # what ReceiveMessage takes
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="taken")["QueueUrl"]
    for n in range(13):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    later = sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=900)["MessageId"]
    assert later
    assert glue.take_visible_messages("123456789012", aws.region, "taken") == [f"m{n}" for n in range(13)]
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    assert glue.take_visible_messages("123456789012", aws.region, "taken") == []


def test_a_message_sent_reads_its_queue_s_attributes_as_moto_works_them_out(aws: LocalAws) -> None:
    source = inspect.getsource(SQSBackend.send_message.__wrapped__)  # type: ignore[attr-defined]
    assert 'queue.attributes.get("ContentBasedDeduplication")' in source  # the one attribute it reads
    sqs = aws.client("sqs")
    dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*"}]})
    kinds = {
        "plain": {},
        "fifo.fifo": {"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        "kms": {"KmsMasterKeyId": "alias/aws/sqs"},
        "redriven": {
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2}),
            "Policy": policy,
        },
    }
    backend = sqs_backends["123456789012"][aws.region]
    for name, attributes in kinds.items():
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        group = {"MessageGroupId": "g"} if name.endswith(".fifo") else {}
        sqs.send_message(QueueUrl=url, MessageBody="one", **group)
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=900) if not group else None
        queue = backend.get_queue(name)
        assert isinstance(queue.attributes, dict)  # outside SendMessage: moto's own
        assert dict(glue._QueueAttributes(queue)) == glue._original_queue_attributes.fget(queue) == queue.attributes
    # Content-based deduplication (the attribute SendMessage reads) still drops the same body sent twice.
    fifo = sqs.get_queue_url(QueueName="fifo.fifo")["QueueUrl"]
    sqs.send_message(QueueUrl=fifo, MessageBody="one", MessageGroupId="g")
    sqs.send_message(QueueUrl=fifo, MessageBody="two", MessageGroupId="g")
    received = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in received] == ["one", "two"]


def test_result_paths_and_event_bridge_s_input_paths_are_parsed_once(aws: LocalAws) -> None:
    assert "from jsonpath_ng.ext import parse" in inspect.getsource(EventTemplateParser.parse)  # read at each call
    assert jsonpath_ng.ext.parse("$.detail.a") is jsonpath_ng.ext.parse("$.detail.a")
    assert result_path.parse("$.r.s") is result_path.parse("$.r.s")
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.r.s", "End": True}}}
    machine = _machine(aws, "result-path", definition)
    for n in range(2):  # the second execution reuses the parsed path
        arn = aws.client("stepfunctions").start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))
        assert aws.wait_for_execution(arn["executionArn"]).output == {"n": n, "r": {"s": 1}}
    # EventBridge's default input template, filled from the event by the parsed paths.
    events, sqs = aws.client("events"), aws.client("sqs")
    url = sqs.create_queue(QueueName="bus-copy")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["s"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": arn}])
    for n in range(2):
        events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": json.dumps({"n": n})}])
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert [(body["source"], body["detail-type"], body["detail"]) for body in bodies] == [
        ("s", "t", {"n": 0}),
        ("s", "t", {"n": 1}),
    ]
    event = {**bodies[0], "time": 1700000000, "account": "123456789012", "ingestion-time": 1}  # as the rule has it
    filled = EventTemplateParser.parse(input_template="", input_paths_map={}, event=event)
    jsonpath_ng.ext.parse = glue.jsonpath_parse  # each path parsed at each use, as moto does
    try:
        assert EventTemplateParser.parse(input_template="", input_paths_map={}, event=event) == filled
        assert filled == {**bodies[0], "time": 1700000000}
    finally:
        jsonpath_ng.ext.parse = glue._parsed_path_ext


def test_the_collector_skips_its_last_collections_when_the_process_exits() -> None:
    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen' if gc.get_freeze_count() else 'not frozen'))\n"
        "from incremental_analytics_local.engine import LocalAws\n"
        "LocalAws().start().stop()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "frozen"


# moto 5.2.5's DepthFirstTraverser.traverse_node_recursively, which glue's _walk follows step by step.
TRAVERSE_SHA256 = "d7f01d9b45cf9f64ac84751ec4c8cab3114e7c179350eb1b81ffe5f0a114aa78"


def _subclasses(cls: type) -> list[type]:
    return [cls, *(found for sub in cls.__subclasses__() for found in _subclasses(sub))]


def test_update_expressions_are_parsed_once_and_validated_as_moto_validates_them(aws: LocalAws) -> None:
    update_item = inspect.getsource(DynamoDBBackend.update_item.__wrapped__)  # type: ignore[attr-defined]
    assert "update_expression_ast = UpdateExpressionParser.make(update_expression)" in update_item
    assert "self.node_to_validate = deepcopy(expression)" in inspect.getsource(Validator)
    walk = inspect.getsource(DepthFirstTraverser.traverse_node_recursively)
    assert hashlib.sha256(walk.encode()).hexdigest() == TRAVERSE_SHA256
    for processor in _subclasses(DepthFirstTraverser)[1:]:  # each processor walks as the base class does
        assert not {"traverse", "traverse_node_recursively", "nodes_to_be_processed", "process"} & set(vars(processor))
    assert UpdateExpressionParser.make("SET a = :v") is UpdateExpressionParser.make("SET a = :v")
    dynamodb = aws.client("dynamodb")
    start = {
        "pk": {"S": "k"},
        "n": {"N": "5"},
        "m": {"M": {"a": {"S": "x"}, "l": {"L": [{"N": "1"}]}}},
        "s": {"SS": ["a", "b"]},
        "l": {"L": [{"S": "p"}]},
    }
    updates: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (
            "SET #c = :v, #d.#e = :w, version = :n",
            {"#c": "c", "#d": "m", "#e": "a"},
            {":v": {"S": "y"}, ":w": {"N": "2"}, ":n": {"N": "1"}},
        ),
        (
            "SET n = n + :one, l = list_append(l, :l), z = if_not_exists(z, :v)",
            {},
            {":one": {"N": "1"}, ":l": {"L": [{"S": "q"}]}, ":v": {"S": "new"}},
        ),
        ("REMOVE m.l[0], l ADD n :one DELETE s :a", {}, {":one": {"N": "3"}, ":a": {"SS": ["a"]}}),
        ("SET m.a = :v, m = :w", {}, {":v": {"S": "1"}, ":w": {"M": {}}}),  # overlapping paths
        ("SET a = :v SET b = :v", {}, {":v": {"S": "1"}}),  # two SET clauses
        ("SET n = n + :s", {}, {":s": {"S": "text"}}),  # wrong operand type
        ("SET pk = :v", {}, {":v": {"S": "other"}}),  # a key attribute
        ("SET a = :undefined", {}, {":v": {"S": "1"}}),
        ("SET missing.deeper = :v", {}, {":v": {"S": "1"}}),
    ]

    def answers(table: str) -> list[object]:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        found: list[object] = []
        for expression, names, values in updates:
            dynamodb.put_item(TableName=table, Item=start)
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"pk": {"S": "k"}},
                    UpdateExpression=expression,
                    **({"ExpressionAttributeNames": names} if names else {}),
                    ExpressionAttributeValues=values,
                )
                found.append(dynamodb.get_item(TableName=table, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"])
            except ClientError as error:
                found.append(error.response["Error"])
        return found

    patched = answers("patched")
    kept_make, kept_copy, kept_traverse = UpdateExpressionParser.make, validators.deepcopy, DepthFirstTraverser.traverse
    UpdateExpressionParser.make = glue._original_update_expression_make  # type: ignore[method-assign]
    validators.deepcopy = copy.deepcopy
    DepthFirstTraverser.traverse = glue._original_traverse  # type: ignore[method-assign]
    try:
        original = answers("original")
    finally:
        UpdateExpressionParser.make = kept_make  # type: ignore[method-assign]
        validators.deepcopy = kept_copy
        DepthFirstTraverser.traverse = kept_traverse  # type: ignore[method-assign]
    assert patched == original
    assert [answer.get("Code") for answer in patched[3:]] == ["ValidationException"] * 6  # each refused


def test_a_running_state_is_copied_as_deepcopy_copies_it() -> None:
    glue.apply()
    assert set(vars(ProgramRunning())) == {"_next_state_name", "_next_field_name"}  # names, text or None
    running = ProgramRunning()
    running.next_state_name = "Next"
    running.next_field_name = "Field"
    copied = copy.deepcopy(running)
    assert type(copied) is ProgramRunning and copied is not running and vars(copied) == vars(running)
    copied.next_state_name = "Other"
    assert running.next_state_name == "Next" and running.next_field_name == "Field"
    odd = ProgramRunning()
    odd.__dict__["extra"] = {"nested": []}  # anything else is deep-copied as before
    copied_odd = copy.deepcopy(odd)
    assert copied_odd.__dict__["extra"] == {"nested": []} and copied_odd.__dict__["extra"] is not odd.__dict__["extra"]


def test_botocore_s_data_is_read_once_while_the_engine_is_imported_and_as_botocore_reads_it_after() -> None:
    # What the shared reading is for: moto's EC2 regions, listed through new sessions as the module is imported.
    assert "get_available_regions" in inspect.getsource(availability_zones_and_regions)
    assert JSONFileLoader.load_file.__module__ == "botocore.loaders"  # botocore's own again once imported
    reads: list[str] = []
    original = JSONFileLoader.load_file

    def counted(self: JSONFileLoader, file_path: str) -> Any:
        reads.append(file_path)
        return original(self, file_path)

    JSONFileLoader.load_file = counted  # type: ignore[method-assign]
    try:
        with startup.botocore_data_read_once():
            shared = [boto3.Session().get_available_regions("ec2") for _ in range(3)]
        endpoint_reads = len([path for path in reads if path.endswith("endpoints")])
        alone = boto3.Session().get_available_regions("ec2")
    finally:
        JSONFileLoader.load_file = original  # type: ignore[method-assign]
    assert shared == [alone] * 3 and "us-east-1" in alone
    assert endpoint_reads == 1 and len([path for path in reads if path.endswith("endpoints")]) == 2
