"""Static checks of the state machines behind a SAM template (cfn-lint does not read `DefinitionUri`).

`python -m incremental_analytics_local.asl_checks infra/template.yaml` prints every problem and exits 1 on any:
placeholders and `DefinitionSubstitutions` match both ways; statelint passes after substitution; every
Next/Default/Catch target exists; no state is unreachable; every Choice has a Default; every `lambda:invoke`
retries Lambda's transient errors; Express workflows declare a TimeoutSeconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statelint.linter import Linter

from incremental_analytics_local.cfn import PLACEHOLDER, read_template

LAMBDA_TRANSIENT = frozenset({"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"})


@dataclass(frozen=True)
class StateMachineSource:
    logical_id: str
    path: Path
    text: str
    substitutions: frozenset[str]
    express: bool

    def substituted(self) -> dict[str, Any]:
        """The definition with each placeholder replaced by a value of its kind (an ARN, a name)."""
        text = PLACEHOLDER.sub(lambda match: _stand_in(match.group(1)), self.text)
        definition: dict[str, Any] = json.loads(text)
        return definition


def _stand_in(name: str) -> str:
    if name.endswith("FunctionArn"):
        return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    if name.endswith(("StateMachineArn", "WorkflowArn")):
        return f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    if name.endswith("Arn"):
        return f"arn:aws:sqs:us-east-1:123456789012:{name}"
    return name


def state_machines(template_path: Path) -> list[StateMachineSource]:
    template = read_template(template_path)
    found = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        properties = resource.get("Properties") or {}
        uri = properties.get("DefinitionUri")
        if not isinstance(uri, str):
            continue
        path = (template_path.parent / uri).resolve()
        found.append(
            StateMachineSource(
                logical_id=logical_id,
                path=path,
                text=path.read_text(),
                substitutions=frozenset(properties.get("DefinitionSubstitutions") or {}),
                express=str(properties.get("Type", "STANDARD")).upper() == "EXPRESS",
            )
        )
    return found


def problems(source: StateMachineSource) -> list[str]:
    found: list[str] = []
    placeholders = set(PLACEHOLDER.findall(source.text))
    found += [
        f"placeholder ${{{name}}} has no DefinitionSubstitution" for name in sorted(placeholders - source.substitutions)
    ]
    found += [f"DefinitionSubstitution {name} is not used" for name in sorted(source.substitutions - placeholders)]
    definition = source.substituted()
    found += [f"statelint: {problem}" for problem in Linter.validate(definition)]
    found += graph_problems(definition)
    if source.express and "TimeoutSeconds" not in definition:
        found.append("an Express workflow needs a top-level TimeoutSeconds")
    return found


def _scopes(definition: Mapping[str, Any], where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The top-level machine and every Parallel branch and Map processor, each a scope of its own."""
    yield where or "(top)", definition
    for name, state in definition.get("States", {}).items():
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _scopes(branch, f"{where}{name}.branch[{index}]/")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _scopes(processor, f"{where}{name}.processor/")


def graph_problems(definition: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for scope, machine in _scopes(definition):
        states: Mapping[str, Any] = machine.get("States", {})
        edges: dict[str, set[str]] = {name: set(_targets(state)) for name, state in states.items()}
        for name, targets in edges.items():
            found += [
                f"{scope}{name}: goes to {target}, which is not a state here"
                for target in sorted(targets - set(states))
            ]
        start = machine.get("StartAt")
        if start not in states:
            found.append(f"{scope}: StartAt {start} is not a state")
        reached, frontier = {start}, [start]
        while frontier:
            for target in edges.get(str(frontier.pop()), set()):
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
        found += [f"{scope}{name}: unreachable" for name in sorted(set(states) - reached)]
        for name, state in states.items():
            if state.get("Type") == "Choice" and "Default" not in state:
                found.append(f"{scope}{name}: a Choice without a Default")
            if state.get("Type") == "Task" and "lambda:invoke" in str(state.get("Resource", "")):
                retried = {error for retry in state.get("Retry", []) for error in retry.get("ErrorEquals", [])}
                if not retried >= LAMBDA_TRANSIENT:
                    found.append(
                        f"{scope}{name}: lambda:invoke does not retry {', '.join(sorted(LAMBDA_TRANSIENT - retried))}"
                    )
    return found


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        yield choice["Next"]
    for catch in state.get("Catch", []):
        yield catch["Next"]


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])] or [Path("infra/template.yaml")]
    failed = False
    for template in paths:
        for source in state_machines(template):
            for problem in problems(source):
                failed = True
                print(f"{source.path.name} ({source.logical_id}): {problem}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
