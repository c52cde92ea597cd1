"""A deployed stack of the product, found by name: its CloudFormation outputs name its tables and bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StackError(Exception):
    """The stack cannot be read, or is not this product's: the message is the one-line reason."""


def stack_outputs(stack_name: str, session: Any, needed: Sequence[str]) -> dict[str, str]:
    cloudformation = session.client("cloudformation")
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as error:
        raise StackError(f"cannot read stack {stack_name}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    missing = set(needed) - set(outputs)
    if missing:
        raise StackError(f"stack {stack_name} is not an incremental-analytics stack (no {', '.join(sorted(missing))})")
    return outputs
