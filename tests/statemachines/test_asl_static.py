"""Static checks on every state machine of the product's template, and proof that the checks can fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_local.asl_checks import StateMachineSource, graph_problems, problems, state_machines

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
        d["States"]["ParseRecords"]["Next"] = "Nowhere"

    def no_default(d: dict[str, Any]) -> None:
        del d["States"]["AnyRejects"]["Default"]

    def no_retry(d: dict[str, Any]) -> None:
        d["States"]["MatchAndEvaluate"]["Retry"] = []

    def nested_dangling(d: dict[str, Any]) -> None:
        commit = d["States"]["Apply"]["Branches"][1]["States"]["CommitCounters"]["ItemProcessor"]
        commit["States"]["CommitChunk"]["Catch"][0]["Next"] = "Gone"

    assert graph_problems(_mutated(dangling)) == [
        "(top)ParseRecords: goes to Nowhere, which is not a state here",
        "(top)AnyRejects: unreachable",
        "(top)Apply: unreachable",
        "(top)Done: unreachable",
        "(top)MatchAndEvaluate: unreachable",
        "(top)QuarantineRejects: unreachable",
    ]
    assert graph_problems(_mutated(no_default)) == ["(top)AnyRejects: a Choice without a Default"]
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
