"""Static checks of the state machines behind a SAM template (cfn-lint does not read `DefinitionUri`).

`python -m incremental_analytics_local.asl_checks infra/template.yaml` prints every problem and exits 1 on any:
placeholders and `DefinitionSubstitutions` match both ways; statelint passes after substitution; every
Next/Default/Catch target exists; no state is unreachable; every Choice has a Default; every `lambda:invoke`
retries Lambda's transient errors; Express workflows declare a TimeoutSeconds; and AWS's rules (aws_rules.py):
every Retry/Catch names errors its integration can raise, every Task retries its service's throttling, no
.sync or .waitForTaskToken in an Express workflow, no unguarded read of a result field a service may leave out,
and each state machine's role grants what its Tasks need and nothing more (iam_checks.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statelint.linter import Linter

from incremental_analytics_local import aws_rules, iam_checks
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
    if source.express:
        found += express_problems(definition)
    found += error_name_problems(definition)
    found += throttling_problems(definition)
    found += unguarded_read_problems(definition)
    return found


def scopes(definition: Mapping[str, Any], where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The top-level machine and every Parallel branch and Map processor, each a scope of its own."""
    yield where or "(top)", definition
    for name, state in definition.get("States", {}).items():
        for index, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"{where}{name}.branch[{index}]/")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from scopes(processor, f"{where}{name}.processor/")


def graph_problems(definition: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for scope, machine in scopes(definition):
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


ROOT = Path(__file__).resolve().parents[2]
LANGUAGE_SERVICE = ROOT / "local" / "validators" / "asl_language_service.js"


def language_service_problems(definitions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The AWS Toolkit's own ASL validation (npm amazon-states-language-service, installed by `make setup`),
    of each definition after placeholder substitution: name -> definition."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "amazon-states-language-service").is_dir():
        return ["the ASL language service is not installed: run `make setup` (needs node and npm)"]
    answer = subprocess.run(
        [node, str(LANGUAGE_SERVICE)],
        input=json.dumps({name: json.dumps(definition, indent=2) for name, definition in definitions.items()}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    if answer.returncode != 0:
        return [f"the ASL language service failed: {answer.stderr.strip()}"]
    found: list[str] = json.loads(answer.stdout)
    return found


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])] or [Path("infra/template.yaml")]
    failed = False
    for template in paths:
        sources = state_machines(template)
        for source in sources:
            for problem in problems(source):
                failed = True
                print(f"{source.path.name} ({source.logical_id}): {problem}")  # noqa: T201
        for problem in language_service_problems({source.path.name: source.substituted() for source in sources}):
            failed = True
            print(f"amazon-states-language-service: {problem}")  # noqa: T201
        for logical_id, found in iam_checks.problems(template).items():
            for problem in found:
                failed = True
                print(f"{template.name} ({logical_id} role): {problem}")  # noqa: T201
    return 1 if failed else 0


# -- AWS's rules ------------------------------------------------------------------------------------------------


def _tasks(definition: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(scope, name, state) of every Task, nested ones too."""
    for scope, machine in scopes(definition):
        for name, state in machine.get("States", {}).items():
            if state.get("Type") == "Task":
                yield scope, name, state


def error_name_problems(definition: Mapping[str, Any]) -> list[str]:
    """A Retry or Catch may only name errors its Task's integration can raise (aws_rules.raisable_errors, from
    AWS's integration pages and the service's model): `DynamoDB.*` on an `aws-sdk:dynamodb` Task is never raised.
    A `lambda:invoke` Task may also name its function's own errors (anything without a service prefix)."""
    found: list[str] = []
    prefixes = {
        f"{name}." for name in (*aws_rules.SDK_SERVICE_ERROR_NAMES.values(), *aws_rules.OPTIMISED_PREFIXES.values())
    }
    for scope, name, state in _tasks(definition):
        resource = str(state.get("Resource", ""))
        try:
            raisable = aws_rules.raisable_errors(resource)
        except aws_rules.UnknownIntegration as unknown:
            found.append(f"{scope}{name}: {unknown}")
            continue
        _kind, service, _ = aws_rules.integration(resource)
        function_errors_allowed = service == "lambda"
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in handler.get("ErrorEquals", []):
                if error.startswith("States.") or error in raisable:
                    continue
                if function_errors_allowed and not any(error.startswith(prefix) for prefix in prefixes):
                    continue
                found.append(
                    f"{scope}{name}: {resource.rsplit(':::', 1)[-1]} never raises {error} "
                    f"(its errors are {aws_rules.error_prefix(resource)}.*)"
                )
    return found


def throttling_problems(definition: Mapping[str, Any]) -> list[str]:
    """Every Task of a service that throttles retries that service's throttling errors, as each integration
    names them (aws_rules.THROTTLING_CODES)."""
    found: list[str] = []
    for scope, name, state in _tasks(definition):
        resource = str(state.get("Resource", ""))
        retried = {error for retry in state.get("Retry", []) for error in retry.get("ErrorEquals", [])}
        missing = sorted(set(aws_rules.throttling_errors(resource)) - retried)
        if missing:
            found.append(f"{scope}{name}: does not retry throttling ({', '.join(missing)})")
    return found


SYNC_PATTERNS = (".sync", ".waitForTaskToken")


def express_problems(definition: Mapping[str, Any]) -> list[str]:
    """Step Functions, "Choosing workflow type" / "Service integration patterns": an Express workflow supports
    neither `.sync` (Run a Job) nor `.waitForTaskToken`; AWS refuses the definition."""
    return [
        f"{scope}{name}: {state['Resource']} in an EXPRESS workflow (Express supports neither .sync nor "
        ".waitForTaskToken)"
        for scope, name, state in _tasks(definition)
        if any(pattern in str(state.get("Resource", "")) for pattern in SYNC_PATTERNS)
    ]


# A service result's fields the service may leave out: read one only behind a Choice that found it present.
# DynamoDB GetItem: "If there is no matching item, GetItem does not return any data and there will be no Item
# element in the response." Query/Scan page with LastEvaluatedKey only when more remain; Customer Profiles
# SearchProfiles and Pinpoint GetUserEndpoints lists are read item by item.
OPTIONAL_RESULT_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("dynamodb", "getItem"): ("Item",),
    ("dynamodb", "query"): ("Items", "LastEvaluatedKey"),
    ("dynamodb", "scan"): ("Items", "LastEvaluatedKey"),
    ("customerprofiles", "searchProfiles"): ("Items", "NextToken"),
    ("pinpoint", "getUserEndpoints"): ("EndpointsResponse.Item",),
}
# A Choice rule that proves a field present: IsPresent on it (or on a path inside it), or, for a DynamoDB page's
# Items, a Count above zero (Count is the number of items in the page).
_COUNT_IMPLIES = {"Items": "Count"}
_JSON_PATH_IN_TEXT = re.compile(r"\$[A-Za-z0-9_.\[\]*]*")


def _paths_read(state: Mapping[str, Any]) -> Iterator[str]:
    """Every JSONPath the state reads from its input (not inside a Map's or Parallel's own states)."""

    def walk(value: Any, key: str = "") -> Iterator[str]:
        if isinstance(value, Mapping):
            for child_key, child in value.items():
                if child_key in ("ItemProcessor", "Iterator", "Branches"):
                    continue
                yield from walk(child, str(child_key))
        elif isinstance(value, list):
            for item in value:
                yield from walk(item, key)
        elif isinstance(value, str) and (key.endswith((".$", "Path")) or key == "Variable"):
            yield from (path for path in _JSON_PATH_IN_TEXT.findall(value) if not path.startswith("$$"))

    return walk(state)


def _reads(path: str, field: str) -> bool:
    return path == field or path.startswith((field + ".", field + "["))


def _guarding_targets(choice: Mapping[str, Any], field: str) -> set[str]:
    """The Choice's branches taken only when `field` is present."""

    def proves(rule: Mapping[str, Any]) -> bool:
        if "And" in rule:
            return any(proves(part) for part in rule["And"])
        variable = str(rule.get("Variable", ""))
        if rule.get("IsPresent") is True and _reads(variable, field):
            return True
        leaf = field.rsplit(".", 1)
        if len(leaf) == 2 and leaf[1] in _COUNT_IMPLIES:
            count = f"{leaf[0]}.{_COUNT_IMPLIES[leaf[1]]}"
            return variable == count and rule.get("NumericGreaterThan") == 0
        return False

    return {rule["Next"] for rule in choice.get("Choices", []) if proves(rule)}


def _replaces(state: Mapping[str, Any], result_path: str) -> bool:
    """Whether the state's output no longer holds what was at `result_path`."""
    if "ResultPath" in state:
        target = state["ResultPath"]
        return target is not None and (target == "$" or result_path.startswith(str(target)))
    return state.get("Type") in ("Task", "Map", "Parallel") or (
        state.get("Type") == "Pass" and ("Parameters" in state or "Result" in state)
    )


def unguarded_read_problems(definition: Mapping[str, Any]) -> list[str]:
    """A JSONPath into a service result's optional field (OPTIONAL_RESULT_FIELDS) raises `States.Runtime` on AWS
    when the field is absent, which no Catch can handle: read it only after a Choice found it present."""
    found: list[str] = []
    for scope, machine in scopes(definition):
        states: Mapping[str, Any] = machine.get("States", {})
        for name, state in states.items():
            if state.get("Type") != "Task":
                continue
            try:
                _, service, action = aws_rules.integration(str(state.get("Resource", "")))
            except aws_rules.UnknownIntegration:
                continue
            optional = OPTIONAL_RESULT_FIELDS.get((service, action), ())
            for field_name in optional:
                for path in _paths_read({"ResultSelector": state.get("ResultSelector", {})}):
                    if _reads(path, f"$.{field_name}"):
                        found.append(f"{scope}{name}: ResultSelector reads {path}, which the service may leave out")
            if "ResultSelector" in state or state.get("ResultPath", "$") is None:
                continue
            base = str(state.get("ResultPath", "$"))
            for field_name in optional:
                field = f"{base}.{field_name}" if base != "$" else f"$.{field_name}"
                found += [
                    f"{scope}{reader}: reads {field} of {name}'s result without a Choice finding it present"
                    for reader in _unguarded_readers(states, name, field, base)
                ]
    return found


def _unsafe_choice_reads(rule: Mapping[str, Any], field: str) -> list[str]:
    """A Choice may test a field's presence; any other comparison on an absent field is a runtime error,
    unless an earlier part of the same And proved it present."""
    parts = rule.get("And") or rule.get("Or") or ([rule["Not"]] if "Not" in rule else [rule])
    unsafe: list[str] = []
    proven = False
    for part in parts:
        if any(key in part for key in ("And", "Or", "Not")):
            unsafe += _unsafe_choice_reads(part, field)
            continue
        variable = str(part.get("Variable", ""))
        if not _reads(variable, field):
            continue
        if "IsPresent" in part:
            proven = proven or (part["IsPresent"] is True and "And" in rule)
        elif not proven:
            unsafe.append(variable)
    return unsafe


def _unguarded_readers(states: Mapping[str, Any], task: str, field: str, base: str) -> list[str]:
    readers: list[str] = []
    seen: set[str] = set()
    frontier = [str(states[task]["Next"])] if "Next" in states[task] else []
    while frontier:
        name = frontier.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        reads = [path for path in _paths_read(state) if _reads(path, field)]
        if state.get("Type") == "Choice":
            guarded = _guarding_targets(state, field)
            reads = [path for rule in state.get("Choices", []) for path in _unsafe_choice_reads(rule, field)]
            frontier += [target for target in _targets(state) if target not in guarded]
        else:
            if _replaces(state, base):
                if reads:
                    readers.append(name)
                continue
            frontier += [
                target for target in _targets(state) if target not in [c["Next"] for c in state.get("Catch", [])]
            ]
        if reads:
            readers.append(name)
    return sorted(set(readers))


if __name__ == "__main__":
    sys.exit(main())
