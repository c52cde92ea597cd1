"""Static checks on every state machine of the product's template, and proof that the checks can fail."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_local import iam_checks
from incremental_analytics_local.asl_checks import (
    StateMachineSource,
    error_name_problems,
    express_problems,
    graph_problems,
    language_service_problems,
    problems,
    state_machines,
    throttling_problems,
    unguarded_read_problems,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = state_machines(ROOT / "infra" / "template.yaml")


def test_every_asl_file_is_deployed_by_the_template() -> None:
    on_disk = sorted(path.name for path in (ROOT / "statemachines").glob("*.asl.json"))
    assert sorted(source.path.name for source in SOURCES) == on_disk


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.path.name)
def test_state_machine_passes_every_check(source: StateMachineSource) -> None:
    assert problems(source) == []


def _ingest() -> StateMachineSource:
    return next(source for source in SOURCES if source.logical_id == "IngestBatchStateMachine")


def _mutated(change: Any) -> dict[str, Any]:
    definition = copy.deepcopy(_ingest().substituted())
    change(definition)
    return definition


def test_the_checks_find_broken_graphs() -> None:
    def dangling(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Next"] = "Nowhere"

    def no_default(d: dict[str, Any]) -> None:
        commit = d["States"]["Apply"]["Branches"][1]["States"]["CommitCounters"]["ItemProcessor"]
        del commit["States"]["ChunkWhere"]["Default"]

    def no_retry(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Retry"] = []

    def nested_dangling(d: dict[str, Any]) -> None:
        commit = d["States"]["Apply"]["Branches"][1]["States"]["CommitCounters"]["ItemProcessor"]
        commit["States"]["CommitChunk"]["Catch"][0]["Next"] = "Gone"

    assert graph_problems(_mutated(dangling)) == [
        "(top)MatchAndEvaluate: goes to Nowhere, which is not a state here",
        "(top)Apply: unreachable",
        "(top)Done: unreachable",
    ]
    assert graph_problems(_mutated(no_default)) == [
        "Apply.branch[1]/CommitCounters.processor/CommitChunk: unreachable",
        "Apply.branch[1]/CommitCounters.processor/ChunkWhere: a Choice without a Default",
    ]
    assert graph_problems(_mutated(no_retry)) == [
        "(top)MatchAndEvaluate: lambda:invoke does not retry "
        "Lambda.AWSLambdaException, Lambda.SdkClientException, Lambda.ServiceException"
    ]
    found = graph_problems(_mutated(nested_dangling))
    assert "Apply.branch[1]/CommitCounters.processor/CommitChunk: goes to Gone, which is not a state here" in found


def test_the_checks_find_placeholder_mismatches(tmp_path: Path) -> None:
    source = _ingest()
    extra = StateMachineSource(
        source.logical_id, source.path, source.text, source.substitutions | {"Unused"}, source.express
    )
    missing = StateMachineSource(
        source.logical_id, source.path, source.text, source.substitutions - {"DataBucket"}, source.express
    )
    assert problems(extra) == ["DefinitionSubstitution Unused is not used"]
    assert problems(missing) == ["placeholder ${DataBucket} has no DefinitionSubstitution"]


def test_statelint_runs_on_the_substituted_definition() -> None:
    source = _ingest()
    broken = json.loads(source.text)
    broken["States"]["Done"]["Type"] = "Teleport"
    bad = StateMachineSource(source.logical_id, source.path, json.dumps(broken), source.substitutions, source.express)
    assert any(problem.startswith("statelint:") for problem in problems(bad))


def _deliver() -> StateMachineSource:
    return next(source for source in SOURCES if source.logical_id == "DeliverOutcomesStateMachine")


def _delivery_mutated(change: Any) -> dict[str, Any]:
    definition = copy.deepcopy(_deliver().substituted())
    change(definition)
    return definition


def _periods_mutated(change: Any) -> dict[str, Any]:
    source = next(source for source in SOURCES if source.logical_id == "EvaluatePeriodsStateMachine")
    definition = copy.deepcopy(source.substituted())
    change(definition)
    return definition


def _rule(d: dict[str, Any]) -> dict[str, Any]:
    """The states of one rule's evaluation (EvaluateRules' processor), whose claim is an optimised updateItem."""
    states: dict[str, Any] = d["States"]["EvaluateRules"]["ItemProcessor"]["States"]
    return states


def _lookup(d: dict[str, Any]) -> dict[str, Any]:
    """The states of one user's Pinpoint lookup (SendFirst's branch in SINKS order: eventbridge, pinpoint, ...)."""
    branch = d["States"]["SendFirst"]["Branches"][1]["States"]
    states: dict[str, Any] = branch["FindUserEndpoints"]["ItemProcessor"]["States"]
    return states


PINPOINT = "SendFirst.branch[1]/FindUserEndpoints.processor/"


def test_the_checks_know_which_errors_each_integration_raises() -> None:
    def optimised_name_on_sdk_task(d: dict[str, Any]) -> None:
        writes = d["States"]["Apply"]["Branches"][0]["States"]["StoreTimeSeries"]["ItemProcessor"]["States"]
        writes["WriteEvents"]["Retry"][0]["ErrorEquals"][0] = "DynamoDB.ProvisionedThroughputExceededException"

    def suffixed_step_functions_name(d: dict[str, Any]) -> None:
        _rule(d)["MarkEvaluated"]["Catch"][0]["ErrorEquals"] = ["StepFunctions.ExecutionAlreadyExistsException"]

    def unsuffixed_dynamodb_name(d: dict[str, Any]) -> None:
        _rule(d)["ClaimEvaluation"]["Retry"][0]["ErrorEquals"][2] = "DynamoDB.RequestLimitExceeded"

    def optimised_name_on_sdk_claim(d: dict[str, Any]) -> None:
        d["States"]["ReadClaimed"]["Retry"][1]["ErrorEquals"] = ["DynamoDB.TransactionCanceledException"]

    found = error_name_problems(_mutated(optimised_name_on_sdk_task))
    assert found == [
        "Apply.branch[0]/StoreTimeSeries.processor/WriteEvents: aws-sdk:dynamodb:batchWriteItem never raises "
        "DynamoDB.ProvisionedThroughputExceededException (its errors are DynamoDb.*)"
    ]
    assert error_name_problems(_periods_mutated(suffixed_step_functions_name)) == [
        "EvaluateRules.processor/MarkEvaluated: dynamodb:updateItem never raises "
        "StepFunctions.ExecutionAlreadyExistsException (its errors are DynamoDB.*)"
    ]
    # The optimised integration names errors by the Java SDK's exception classes: RequestLimitExceededException.
    assert error_name_problems(_periods_mutated(unsuffixed_dynamodb_name)) == [
        "EvaluateRules.processor/ClaimEvaluation: dynamodb:updateItem never raises DynamoDB.RequestLimitExceeded "
        "(its errors are DynamoDB.*)"
    ]
    assert error_name_problems(_delivery_mutated(optimised_name_on_sdk_claim)) == [
        "(top)ReadClaimed: aws-sdk:dynamodb:transactGetItems never raises DynamoDB.TransactionCanceledException "
        "(its errors are DynamoDb.*)"
    ]


def test_the_checks_want_every_task_to_retry_its_service_throttling() -> None:
    def no_retry(d: dict[str, Any]) -> None:
        del d["States"]["CountAbandoned"]["Retry"]

    def eventbridge_throttling_not_retried(d: dict[str, Any]) -> None:
        publish = d["States"]["SendFirst"]["Branches"][0]["States"]["PublishOutcomes"]["ItemProcessor"]["States"]
        publish["PublishBatch"]["Retry"][0]["ErrorEquals"] = ["EventBridge.InternalException"]

    assert throttling_problems(_delivery_mutated(no_retry)) == [
        "(top)CountAbandoned: does not retry throttling (CloudWatch.CloudWatchException)"
    ]
    # The AWS SDK integration names the service eventbridge: its throttling is EventBridge.ThrottlingException.
    assert throttling_problems(_delivery_mutated(eventbridge_throttling_not_retried)) == [
        "SendFirst.branch[0]/PublishOutcomes.processor/PublishBatch: does not retry throttling "
        "(EventBridge.ThrottlingException)"
    ]


def test_the_checks_refuse_sync_and_callback_tasks_in_an_express_workflow() -> None:
    def sync(d: dict[str, Any]) -> None:
        d["States"]["ClaimAll"]["Resource"] = "arn:aws:states:::states:startExecution.sync:2"

    def callback(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Resource"] = "arn:aws:states:::lambda:invoke.waitForTaskToken"

    assert express_problems(_delivery_mutated(sync)) == [
        "(top)ClaimAll: arn:aws:states:::states:startExecution.sync:2 in an EXPRESS "
        "workflow (Express supports neither .sync nor .waitForTaskToken)"
    ]
    assert len(express_problems(_mutated(callback))) == 1


def test_the_checks_find_reads_of_a_result_field_the_service_may_leave_out() -> None:
    def in_result_selector(d: dict[str, Any]) -> None:
        _lookup(d)["GetUserEndpoints"]["ResultSelector"] = {"ids.$": "$.EndpointsResponse.Item[*].Id"}

    def read_in_the_workflow(d: dict[str, Any]) -> None:
        states = _lookup(d)
        states["GetUserEndpoints"].pop("End")
        states["GetUserEndpoints"]["ResultSelector"] = None
        states["GetUserEndpoints"].pop("ResultSelector")
        states["GetUserEndpoints"]["ResultPath"] = "$.endpoints"
        states["GetUserEndpoints"]["Next"] = "UserEndpointIds"
        states["UserEndpointIds"] = {
            "Type": "Pass",
            "Parameters": {"ids.$": "$.endpoints.EndpointsResponse.Item[*].Id"},
            "End": True,
        }

    def unguarded(d: dict[str, Any]) -> None:
        read_in_the_workflow(d)

    def compared_before_found(d: dict[str, Any]) -> None:
        read_in_the_workflow(d)
        states = _lookup(d)
        states["GetUserEndpoints"]["Next"] = "AnyEndpoint"
        states["AnyEndpoint"] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.endpoints.EndpointsResponse.Item[0]", "IsNull": False, "Next": "UserEndpointIds"}
            ],
            "Default": "NoUserEndpoints",
        }

    assert unguarded_read_problems(_delivery_mutated(in_result_selector)) == [
        f"{PINPOINT}GetUserEndpoints: ResultSelector reads $.EndpointsResponse.Item[*].Id, which the service may "
        "leave out"
    ]
    assert unguarded_read_problems(_delivery_mutated(unguarded)) == [
        f"{PINPOINT}UserEndpointIds: reads $.endpoints.EndpointsResponse.Item of GetUserEndpoints's result "
        "without a Choice finding it present"
    ]
    assert unguarded_read_problems(_delivery_mutated(compared_before_found)) == [
        f"{PINPOINT}AnyEndpoint: reads $.endpoints.EndpointsResponse.Item of GetUserEndpoints's result without a "
        "Choice finding it present",
        f"{PINPOINT}UserEndpointIds: reads $.endpoints.EndpointsResponse.Item of GetUserEndpoints's result "
        "without a Choice finding it present",
    ]


def _template_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the product's template (and its ASL) with one text replaced."""
    text = (ROOT / "infra" / "template.yaml").read_text()
    assert old in text
    (tmp_path / "infra").mkdir()
    shutil.copytree(ROOT / "statemachines", tmp_path / "statemachines")
    path = tmp_path / "infra" / "template.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_every_role_grants_exactly_what_its_tasks_need() -> None:
    assert iam_checks.problems(ROOT / "infra" / "template.yaml") == {source.logical_id: [] for source in SOURCES}


def test_the_iam_check_finds_a_missing_grant(tmp_path: Path) -> None:
    path = _template_with(
        tmp_path,
        "Action: [mobiletargeting:UpdateEndpoint, mobiletargeting:GetUserEndpoints, mobiletargeting:PutEvents]",
        "Action: [mobiletargeting:UpdateEndpoint, mobiletargeting:PutEvents]",
    )
    assert iam_checks.problems(path)["DeliverOutcomesStateMachine"] == [
        "GetUserEndpoints: needs mobiletargeting:GetUserEndpoints on *, which the role does not grant"
    ]


def test_the_iam_check_finds_a_grant_on_the_wrong_resource_and_one_nothing_uses(tmp_path: Path) -> None:
    path = _template_with(
        tmp_path,
        "              Action: states:StartExecution\n              Resource: !Ref DeliverOutcomesStateMachine",
        "              Action: states:StartExecution\n              Resource: !Ref SyncRulesStateMachine",
    )
    assert iam_checks.problems(path)["EvaluatePeriodsStateMachine"] == [
        "StartRedelivery: needs states:StartExecution on arn:DeliverOutcomesStateMachine, which the role does not "
        "grant",
        "the role grants states:StartExecution on arn:SyncRulesStateMachine, which no Task needs",
    ]


def test_the_aws_language_service_accepts_every_definition_and_finds_a_broken_one() -> None:
    definitions = {source.path.name: source.substituted() for source in SOURCES}
    assert language_service_problems(definitions) == []
    broken = copy.deepcopy(definitions["sync_rules.asl.json"])
    broken["States"]["Valid"]["Choices"][0]["Next"] = "Nowhere"
    broken["States"]["Synced"]["Type"] = "Teleport"
    found = language_service_problems({"broken.json": broken})
    assert any(problem.startswith("broken.json:") and "existing state" in problem for problem in found), found
    assert len(found) >= 2
