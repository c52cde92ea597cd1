"""Check a response against botocore's model of the operation's output: the fakes must answer in AWS's shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import botocore.session

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "double": (int, float),
    "float": (int, float),
    "timestamp": (dt.datetime, str),
    "blob": (bytes,),
}


def problems(service: str, operation: str, response: dict[str, Any]) -> list[str]:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    found: list[str] = []
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    _walk(model.output_shape, body, operation, found)
    return found


def _walk(shape: Any, value: Any, path: str, found: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            found.append(f"{path}: expected an object")
            return
        for key, item in value.items():
            if key not in shape.members:
                found.append(f"{path}.{key}: not in the model")
            else:
                _walk(shape.members[key], item, f"{path}.{key}", found)
        for key in shape.required_members:
            if key not in value:
                found.append(f"{path}.{key}: required by the model")
    elif kind == "list":
        if not isinstance(value, list):
            found.append(f"{path}: expected a list")
            return
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", found)
    elif kind == "map":
        if not isinstance(value, dict):
            found.append(f"{path}: expected a map")
            return
        for key, item in value.items():
            _walk(shape.value, item, f"{path}[{key}]", found)
    elif not isinstance(value, _SCALARS[kind]):
        found.append(f"{path}: expected {kind}, got {type(value).__name__}")
