"""Does each state machine's role grant exactly what its Tasks call? (Read from the SAM template and the ASL.)

Every Task needs its API's IAM action on the resource it names ("How Step Functions generates IAM policies for
integrated services", and each integration's page): `lambda:InvokeFunction` on the function,
`dynamodb:<Operation>` on the table (or `table/index/<name>`), `s3:<Operation>` on `bucket/key`,
`events:PutEvents` on the bus, `states:StartExecution` on the state machine, and for `.sync` also
`states:DescribeExecution` and `states:StopExecution` on the child's executions (`...:execution:<name>:*`, and
`...:express:<name>:*` for an Express child) and `events:PutTargets`, `events:PutRule`, `events:DescribeRule` on
the managed rule `StepFunctionsGetEventsForStepFunctionsExecutionRule`. Logging to CloudWatch Logs needs the log
delivery actions on `*` ("Logging using CloudWatch Logs"). A grant that nothing needs is reported too.

Resources are compared symbolically: `arn:<LogicalId>` stands for a resource's ARN, `name:<LogicalId>` for its
name. A Task whose resource is only known at run time (a bucket from the event, items built by a function)
needs its action on some resource: that is all a static check can know.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incremental_analytics_local import aws_rules
from incremental_analytics_local.cfn import PLACEHOLDER, Context, read_template, resolve

REGION, ACCOUNT = "us-east-1", "123456789012"
SYNC_RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
# The IAM service prefix of an `aws-sdk:` service, where it differs.
IAM_PREFIX = {"customerprofiles": "profile", "pinpoint": "mobiletargeting", "sfn": "states", "eventbridge": "events"}
# What a dynamic TransactWriteItems may do (its items are built at run time): granting any of these is a use.
TRANSACTION_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem")
# What a dynamic BatchExecuteStatement may do: there is no BatchExecuteStatement action, each statement is
# authorised by its verb ("IAM policies with PartiQL for DynamoDB"), and its statements are built at run time.
PARTIQL_ACTIONS = (
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLSelect",
)
ANY = "*"


@dataclass(frozen=True)
class Need:
    action: str
    resource: str  # a symbolic ARN, possibly with wildcards; "*" when only known at run time
    state: str
    required: bool = True  # False: a possible use (a dynamic transaction's item kinds), not a demand


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str


class _Attributes(dict[str, str]):
    """Every attribute of a resource, symbolically."""

    def __init__(self, logical_id: str) -> None:
        super().__init__()
        self.logical_id = logical_id

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{key.lower()}:{self.logical_id}"


def symbolic_context(template: Mapping[str, Any]) -> Context:
    resources: dict[str, tuple[Any, dict[str, Any]]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = str(resource.get("Type", ""))
        ref = f"arn:{logical_id}" if kind.endswith(("StateMachine", "Topic")) else f"name:{logical_id}"
        resources[logical_id] = (ref, _Attributes(logical_id))
    parameters = {name: f"param:{name}" for name in template.get("Parameters") or {}}
    conditions = dict.fromkeys(template.get("Conditions") or {}, True)  # every optional statement is checked
    return Context("stack", REGION, ACCOUNT, parameters, conditions, resources)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(properties: Mapping[str, Any], context: Context) -> tuple[list[Grant], list[str]]:
    """The role's grants from a state machine's `Policies` (statements and the SAM policy templates it uses)."""
    found: list[Grant] = []
    problems: list[str] = []
    for policy in _as_list(resolve(properties.get("Policies") or [], context)):
        if not isinstance(policy, Mapping):
            problems.append(f"policy {policy!r}: only inline statements and SAM policy templates are read")
            continue
        for key, value in policy.items():
            if key == "Statement":
                for statement in _as_list(value):
                    if statement.get("Effect") != "Allow":
                        continue
                    found += [
                        Grant(str(action), str(resource))
                        for action in _as_list(statement.get("Action"))
                        for resource in _as_list(statement.get("Resource"))
                    ]
            elif key == "LambdaInvokePolicy":
                function = str(value["FunctionName"]).removeprefix("name:")
                found.append(Grant("lambda:InvokeFunction", f"arn:{function}*"))
            elif key == "EventBridgePutEventsPolicy":
                found.append(Grant("events:PutEvents", f"arn:{str(value['EventBusName']).removeprefix('name:')}"))
            else:
                problems.append(f"SAM policy template {key}: not known to iam_checks (add what it grants)")
    return found, problems


def _arn_of(value: Any) -> str:
    text = str(value)
    if text.startswith("name:"):
        return "arn:" + text.removeprefix("name:")
    return text if text.startswith("arn:") else ANY


def _literal_prefix(value: Any, key: str, parameters: Mapping[str, Any]) -> str:
    """A key's known start: the literal, or the text before the first {} of a States.Format, then `*`."""
    if key in parameters:
        return str(parameters[key])
    dynamic = str(parameters.get(f"{key}.$", ""))
    formatted = re.match(r"States\.Format\('([^{']*)", dynamic)
    return (formatted.group(1) if formatted else "") + "*"


def task_needs(name: str, state: Mapping[str, Any], express_machines: set[str]) -> list[Need]:
    resource = str(state.get("Resource", ""))
    _kind, service, action = aws_rules.integration(resource)
    parameters: Mapping[str, Any] = state.get("Parameters") or {}
    operation = action[:1].upper() + action[1:]
    if service == "lambda":
        return [Need("lambda:InvokeFunction", _arn_of(parameters.get("FunctionName")), name)]
    if service == "dynamodb":
        table = _arn_of(parameters.get("TableName"))
        if action == "transactWriteItems":
            return [Need(item, ANY, name, required=False) for item in TRANSACTION_ACTIONS]
        if action in ("batchExecuteStatement", "executeStatement"):
            return [Need(item, ANY, name, required=False) for item in PARTIQL_ACTIONS]
        if action == "transactGetItems":
            # DynamoDB developer guide, "Using IAM with DynamoDB transactions": TransactGetItems needs
            # dynamodb:GetItem on each item it reads (there is no TransactGetItems action).
            return [Need("dynamodb:GetItem", ANY, name)]
        if table != ANY and "IndexName" in parameters:
            table = f"{table}/index/{parameters['IndexName']}"
        return [Need(f"dynamodb:{operation}", table, name)]
    if service == "s3":
        bucket = _arn_of(parameters.get("Bucket"))
        where = f"{bucket}/{_literal_prefix(None, 'Key', parameters)}" if bucket != ANY else ANY
        return [Need(f"s3:{operation}", where, name)]
    if service == "events":
        buses = {_arn_of(entry.get("EventBusName")) for entry in parameters.get("Entries") or [{}]}
        return [Need("events:PutEvents", bus, name) for bus in sorted(buses)]
    if service in ("states", "sfn"):
        machine = _arn_of(parameters.get("StateMachineArn"))
        needs = [Need("states:StartExecution", machine, name)]
        if ".sync" in resource:
            child = machine.removeprefix("arn:")
            executions = [f"arn:aws:states:{REGION}:{ACCOUNT}:execution:name:{child}:*"]
            if machine in express_machines:
                executions.append(f"arn:aws:states:{REGION}:{ACCOUNT}:express:name:{child}:*")
            needs += [Need(f"states:{verb}", arn, name) for verb in ("DescribeExecution", "StopExecution")
                      for arn in executions]  # fmt: skip
            needs += [Need(f"events:{verb}", SYNC_RULE, name) for verb in ("PutTargets", "PutRule", "DescribeRule")]
        return needs
    return [Need(f"{IAM_PREFIX.get(service, service)}:{operation}", ANY, name)]


def _scoped_tasks(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for state_name, state in (definition.get("States") or {}).items():
        if state.get("Type") == "Task":
            yield state_name, state
        for branch in state.get("Branches", []):
            yield from _scoped_tasks(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _scoped_tasks(processor)


def _overlap(one: str, other: str) -> bool:
    return ANY in (one, other) or fnmatch.fnmatchcase(one, other) or fnmatch.fnmatchcase(other, one)


def _action_matches(needed: str, granted: str) -> bool:
    return fnmatch.fnmatchcase(needed.lower(), granted.lower())


def role_problems(needs: list[Need], granted: list[Grant]) -> list[str]:
    found = [
        f"{need.state}: needs {need.action} on {need.resource}, which the role does not grant"
        for need in needs
        if need.required
        and not any(_action_matches(need.action, g.action) and _overlap(need.resource, g.resource) for g in granted)
    ]
    found += [
        f"the role grants {grant.action} on {grant.resource}, which no Task needs"
        for grant in granted
        if not any(
            _action_matches(need.action, grant.action) and _overlap(need.resource, grant.resource) for need in needs
        )
    ]
    return sorted(set(found))


def _substitute(values: Mapping[str, Any]) -> Callable[[re.Match[str]], str]:
    return lambda match: str(values.get(match.group(1), match.group(0)))


def problems(template_path: Path) -> dict[str, list[str]]:
    """logical id of each state machine -> what its role lacks or has in excess."""
    template = read_template(template_path)
    context = symbolic_context(template)
    machines = {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == "AWS::Serverless::StateMachine"
    }
    express = {
        f"arn:{logical_id}"
        for logical_id, resource in machines.items()
        if str((resource.get("Properties") or {}).get("Type", "STANDARD")).upper() == "EXPRESS"
    }
    report: dict[str, list[str]] = {}
    for logical_id, resource in machines.items():
        properties = resource.get("Properties") or {}
        substitutions = resolve(properties.get("DefinitionSubstitutions") or {}, context)
        text = (template_path.parent / str(properties["DefinitionUri"])).read_text()
        definition = json.loads(PLACEHOLDER.sub(_substitute(substitutions), text))
        needs = [need for name, state in _scoped_tasks(definition) for need in task_needs(name, state, express)]
        if properties.get("Logging"):
            needs += [Need(action, ANY, "(Logging)") for action in LOG_DELIVERY_ACTIONS]
        granted, unreadable = grants(properties, context)
        report[logical_id] = unreadable + role_problems(needs, granted)
    return report
