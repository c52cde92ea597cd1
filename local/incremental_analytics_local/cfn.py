"""Reading a SAM/CloudFormation template with its tags, and resolving its intrinsic functions.

`cfnlint.decode` reads the YAML short forms (`!Ref`, `!GetAtt`, `!Sub`, ...) into their long forms; this module
evaluates them against parameters, conditions and the attributes of resources already created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cfnlint.decode

NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")
# A DefinitionSubstitutions placeholder in a state machine definition.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class TemplateError(ValueError):
    """A template the local AWS cannot deploy, with the reason."""


def read_template(path: Path) -> dict[str, Any]:
    template, matches = cfnlint.decode.decode(str(path))
    if matches or template is None:
        raise TemplateError(f"{path}: cannot be read: {'; '.join(str(m) for m in matches)}")
    plain: dict[str, Any] = _plain(template)
    return plain


def _plain(value: Any) -> Any:
    """cfn-lint's node classes as plain dicts, lists and strings."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


@dataclass
class Context:
    """What intrinsic functions resolve against."""

    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    # logical id -> (Ref value, {attribute: value})
    resources: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name][0]
        raise TemplateError(f"Ref to {name}, which is neither a parameter nor a created resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: no such resource (yet)")
        attributes = self.resources[logical_id][1]
        if attribute not in attributes:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: the local AWS has no such attribute")
        return attributes[attribute]


def resolve(value: Any, context: Context) -> Any:
    """Evaluate every intrinsic function in a value; `AWS::NoValue` removes the key or item it stands in."""
    if isinstance(value, list):
        items = [resolve(item, context) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        function = _FUNCTIONS.get(key)
        if function is not None:
            return function(argument, context)
        if key.startswith("Fn::"):
            raise TemplateError(f"{key} is not supported by the local AWS")
    resolved = {key: resolve(item, context) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def _ref(argument: Any, context: Context) -> Any:
    return context.ref(str(argument))


def _get_att(argument: Any, context: Context) -> Any:
    if isinstance(argument, str):
        logical_id, _, attribute = argument.partition(".")
    else:
        logical_id, attribute = argument[0], resolve(argument[1], context)
    return context.get_att(logical_id, attribute)


def _sub(argument: Any, context: Context) -> str:
    if isinstance(argument, list):
        text, variables = argument[0], {k: resolve(v, context) for k, v in argument[1].items()}
    else:
        text, variables = argument, {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return str(context.get_att(logical_id, attribute))
        return str(context.ref(name))

    return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _join(argument: Any, context: Context) -> str:
    delimiter, items = argument
    return str(delimiter).join(str(item) for item in resolve(items, context))


def _select(argument: Any, context: Context) -> Any:
    index, items = resolve(argument, context)
    return items[int(index)]


def _split(argument: Any, context: Context) -> list[str]:
    delimiter, text = resolve(argument, context)
    return str(text).split(delimiter)


def _if(argument: Any, context: Context) -> Any:
    name, when_true, when_false = argument
    if name not in context.conditions:
        raise TemplateError(f"Fn::If names an unknown condition {name}")
    return resolve(when_true if context.conditions[name] else when_false, context)


def _equals(argument: Any, context: Context) -> bool:
    left, right = resolve(argument, context)
    return bool(str(left) == str(right))


def _not(argument: Any, context: Context) -> bool:
    return not _condition_value(argument[0], context)


def _and(argument: Any, context: Context) -> bool:
    return all(_condition_value(item, context) for item in argument)


def _or(argument: Any, context: Context) -> bool:
    return any(_condition_value(item, context) for item in argument)


def _condition(argument: Any, context: Context) -> bool:
    return context.conditions[str(argument)]


def _condition_value(value: Any, context: Context) -> bool:
    return bool(resolve(value, context))


def _get_azs(argument: Any, context: Context) -> list[str]:
    return [f"{context.region}{zone}" for zone in "abc"]


_FUNCTIONS: dict[str, Callable[[Any, Context], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Condition": _condition,
    "Fn::GetAZs": _get_azs,
}


def evaluate_conditions(template: Mapping[str, Any], context: Context) -> dict[str, bool]:
    """Every condition, in any order of reference (a condition may use another)."""
    definitions: dict[str, Any] = dict(template.get("Conditions") or {})
    pending = dict(definitions)
    while pending:
        progressed = False
        for name, definition in list(pending.items()):
            try:
                context.conditions[name] = _condition_value(definition, context)
            except KeyError:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise TemplateError(f"conditions that cannot be evaluated: {', '.join(sorted(pending))}")
    return context.conditions


def references(value: Any) -> set[str]:
    """The logical ids a value refers to (Ref, GetAtt, Sub), for ordering creation."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item.split(".")[0] if isinstance(item, str) else item[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(text)}
                if isinstance(item, list):
                    found |= references(item[1])
            else:
                found |= references(item)
    return found
