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
        del d["States"]["AnythingToDeliver"]["Default"]

    def no_retry(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Retry"] = []

    def nested_dangling(d: dict[str, Any]) -> None:
        commit = d["States"]["Apply"]["Branches"][1]["States"]["CommitCounters"]["ItemProcessor"]
        commit["States"]["CommitChunk"]["Catch"][0]["Next"] = "Gone"

    assert graph_problems(_mutated(dangling)) == [
        "(top)MatchAndEvaluate: goes to Nowhere, which is not a state here",
        "(top)AnythingToDeliver: unreachable",
        "(top)Apply: unreachable",
        "(top)DeliverOutcomes: unreachable",
        "(top)Done: unreachable",
    ]
    assert graph_problems(_mutated(no_default)) == ["(top)AnythingToDeliver: a Choice without a Default"]
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
        source.logical_id, source.path, source.text, source.substitutions - {"AuditTable"}, source.express
    )
    assert problems(extra) == ["DefinitionSubstitution Unused is not used"]
    assert problems(missing) == ["placeholder ${AuditTable} has no DefinitionSubstitution"]


def test_statelint_runs_on_the_substituted_definition() -> None:
    source = _ingest()
    broken = json.loads(source.text)
    broken["States"]["Done"]["Type"] = "Teleport"
    bad = StateMachineSource(source.logical_id, source.path, json.dumps(broken), source.substitutions, source.express)
    assert any(problem.startswith("statelint:") for problem in problems(bad))


def test_every_workflow_delivers_outcomes_with_the_same_states() -> None:
    """IngestBatch delivers inline (no child execution per batch); DeliverOutcomes serves the period evaluation and
    the redelivery. Their delivery states are one design: a change to one must be made to both."""
    by_id = {source.logical_id: json.loads(source.text) for source in SOURCES}
    inline = dict(by_id["IngestBatchStateMachine"]["States"]["DeliverOutcomes"])
    shared = dict(by_id["DeliverOutcomesStateMachine"]["States"]["DeliverOutcomes"])
    assert inline.pop("Next") == "Done" and shared.pop("Next") == "Done"
    assert inline == shared


def _delivery(d: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = d["States"]["DeliverOutcomes"]["ItemProcessor"]["States"]
    return states


def test_the_checks_know_which_errors_each_integration_raises() -> None:
    def optimised_name_on_sdk_task(d: dict[str, Any]) -> None:
        writes = d["States"]["Apply"]["Branches"][0]["States"]["StoreTimeSeries"]["ItemProcessor"]["States"]
        writes["WriteEvents"]["Retry"][0]["ErrorEquals"][0] = "DynamoDB.ProvisionedThroughputExceededException"

    def suffixed_step_functions_name(d: dict[str, Any]) -> None:
        _delivery(d)["MarkDelivered"]["Catch"][0]["ErrorEquals"] = ["StepFunctions.ExecutionAlreadyExistsException"]

    found = error_name_problems(_mutated(optimised_name_on_sdk_task))
    assert found == [
        "Apply.branch[0]/StoreTimeSeries.processor/WriteEvents: aws-sdk:dynamodb:batchWriteItem never raises "
        "DynamoDB.ProvisionedThroughputExceededException (its errors are DynamoDb.*)"
    ]
    assert error_name_problems(_mutated(suffixed_step_functions_name)) == [
        "DeliverOutcomes.processor/MarkDelivered: dynamodb:updateItem never raises "
        "StepFunctions.ExecutionAlreadyExistsException (its errors are DynamoDB.*)"
    ]


def test_the_checks_want_every_task_to_retry_its_service_throttling() -> None:
    def no_retry(d: dict[str, Any]) -> None:
        del _delivery(d)["CountSinkFailure"]["Retry"]

    assert throttling_problems(_mutated(no_retry)) == [
        "DeliverOutcomes.processor/CountSinkFailure: does not retry throttling (CloudWatch.CloudWatchException)"
    ]


def test_the_checks_refuse_sync_and_callback_tasks_in_an_express_workflow() -> None:
    def sync(d: dict[str, Any]) -> None:
        _delivery(d)["MarkDelivered"]["Resource"] = "arn:aws:states:::states:startExecution.sync:2"

    def callback(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Resource"] = "arn:aws:states:::lambda:invoke.waitForTaskToken"

    assert express_problems(_mutated(sync)) == [
        "DeliverOutcomes.processor/MarkDelivered: arn:aws:states:::states:startExecution.sync:2 in an EXPRESS "
        "workflow (Express supports neither .sync nor .waitForTaskToken)"
    ]
    assert len(express_problems(_mutated(callback))) == 1


def test_the_checks_find_reads_of_a_result_field_the_service_may_leave_out() -> None:
    def in_result_selector(d: dict[str, Any]) -> None:
        _delivery(d)["LoadOutcome"]["ResultSelector"] = {"request.$": "States.StringToJson($.Item.request.S)"}

    def unguarded(d: dict[str, Any]) -> None:
        _delivery(d)["LoadOutcome"]["Next"] = "Unpack"

    def compared_before_found(d: dict[str, Any]) -> None:
        choice = _delivery(d)["OutcomeFound"]["Choices"][0]
        choice.pop("IsPresent")
        choice["IsNull"] = False

    assert unguarded_read_problems(_mutated(in_result_selector)) == [
        "DeliverOutcomes.processor/LoadOutcome: ResultSelector reads $.Item.request.S, which the service may leave out"
    ]
    assert unguarded_read_problems(_mutated(unguarded)) == [
        "DeliverOutcomes.processor/Unpack: reads $.loaded.Item of LoadOutcome's result without a Choice finding it "
        "present"
    ]
    assert unguarded_read_problems(_mutated(compared_before_found)) == [
        "DeliverOutcomes.processor/OutcomeFound: reads $.loaded.Item of LoadOutcome's result without a Choice "
        "finding it present",
        "DeliverOutcomes.processor/Unpack: reads $.loaded.Item of LoadOutcome's result without a Choice finding it "
        "present",
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
        "              Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem]\n"
        "              Resource: !GetAtt AuditTable.Arn",
        "              Action: [dynamodb:GetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt AuditTable.Arn",
    )
    assert iam_checks.problems(path)["DeliverOutcomesStateMachine"] == [
        "RecordOutcome: needs dynamodb:PutItem on arn:AuditTable, which the role does not grant"
    ]


def test_the_iam_check_finds_a_grant_on_the_wrong_resource_and_one_nothing_uses(tmp_path: Path) -> None:
    path = _template_with(
        tmp_path,
        "            - Effect: Allow\n              Action: dynamodb:Query\n"
        '              Resource: !Sub "${AuditTable.Arn}/index/pending"',
        "            - Effect: Allow\n              Action: dynamodb:Query\n"
        "              Resource: !GetAtt AuditTable.Arn",
    )
    assert iam_checks.problems(path)["EvaluatePeriodsStateMachine"] == [
        "QueryPending: needs dynamodb:Query on arn:AuditTable/index/pending, which the role does not grant",
        "QueryPendingAfter: needs dynamodb:Query on arn:AuditTable/index/pending, which the role does not grant",
        "the role grants dynamodb:Query on arn:AuditTable, which no Task needs",
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
