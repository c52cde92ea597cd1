"""A deployed template, registered as the CloudFormation stack `sam deploy` would leave.

DescribeStacks answers its outputs and parameters, ListStackResources and DescribeStackResources its resources
(SAM's types as the transform leaves them: a function is an `AWS::Lambda::Function`, a state machine an
`AWS::StepFunctions::StateMachine` whose physical id is its ARN), GetTemplate the template's text. So every
command that finds a stack by name (`--stack`) works against the local AWS as against AWS. moto's own CreateStack
would create the resources again from the template, which it cannot read (SAM): the stack is put in moto's
CloudFormation backend as a moto Stack whose outputs and resources are the deployed ones.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moto.cloudformation.models import Stack as MotoStack
from moto.cloudformation.models import cloudformation_backends

# What the SAM transform makes of a serverless resource (the type CloudFormation then reports).
TRANSFORMED_TYPES = {
    "AWS::Serverless::Function": "AWS::Lambda::Function",
    "AWS::Serverless::StateMachine": "AWS::StepFunctions::StateMachine",
}


def stack_id(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:cloudformation:{region}:{account_id}:stack/{name}/local"


class _RegisteredStack(MotoStack):
    """A moto Stack that answers with what the local deployment made, not with what moto would parse."""

    def __init__(
        self,
        *,
        name: str,
        region: str,
        account_id: str,
        template_text: str,
        description: str | None,
        parameters: Mapping[str, Any],
        outputs: list[dict[str, str]],
        resources: list[tuple[str, str, str]],
    ) -> None:
        super().__init__(stack_id(region, account_id, name), name, {}, {}, account_id, region)
        self.template = template_text
        self.description = description
        self.status = "CREATE_COMPLETE"
        self._parameters = {key: str(value) for key, value in parameters.items()}
        self._outputs = outputs
        self._resources = [
            types.SimpleNamespace(logical_resource_id=logical, physical_resource_id=physical, cf_resource_type=kind)
            for logical, kind, physical in resources
        ]

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    def is_created(self) -> bool:
        return True

    # moto's serializer finds StackName and StackStatus on a class named Stack by its prefix; ListStacks'
    # StackSummary needs them under their own names.
    @property
    def stack_name(self) -> str:
        return str(self.name)

    @property
    def stack_status(self) -> str:
        return str(self.status)

    @property
    def parameter_list(self) -> list[dict[str, Any]]:
        return [{"ParameterKey": key, "ParameterValue": value} for key, value in self._parameters.items()]

    @property
    def stack_parameters(self) -> dict[str, Any]:
        return dict(self._parameters)

    @property
    def stack_resources(self) -> list[Any]:
        return list(self._resources)

    @property
    def outputs(self) -> list[dict[str, Any]] | None:
        return [dict(output) for output in self._outputs] or None

    @property
    def exports(self) -> list[Any]:
        return []


def register(
    *,
    region: str,
    account_id: str,
    name: str,
    template_path: Path,
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    outputs: Mapping[str, Any],
    resources: Mapping[str, tuple[str, Any, dict[str, Any]]],
) -> str:
    """Put the deployed stack in the local CloudFormation (replacing one of that name); returns its stack id."""
    declared = template.get("Outputs") or {}
    listed_outputs = []
    for key, value in outputs.items():
        output = {"OutputKey": key, "OutputValue": str(value)}
        if (declared.get(key) or {}).get("Description"):
            output["Description"] = str(declared[key]["Description"])
        listed_outputs.append(output)
    listed_resources = [
        (logical_id, TRANSFORMED_TYPES.get(kind, kind), str(ref)) for logical_id, (kind, ref, _) in resources.items()
    ]
    stack = _RegisteredStack(
        name=name,
        region=region,
        account_id=account_id,
        template_text=template_path.read_text(),
        description=str(template["Description"]).strip() if template.get("Description") else None,
        parameters=parameters,
        outputs=listed_outputs,
        resources=listed_resources,
    )
    backend = cloudformation_backends[account_id][region]
    for existing in [key for key, found in backend.stacks.items() if found.name == name]:
        del backend.stacks[existing]
    backend.stacks[stack.stack_id] = stack
    return str(stack.stack_id)
