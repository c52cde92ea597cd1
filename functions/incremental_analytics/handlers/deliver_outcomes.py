"""ShapeDelivery: the pure steps of one DeliverOutcomes attempt (domain/delivery_batch.py); the workflow does the
I/O between them. `step` names which: claims, sends, writes or settle."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from incremental_analytics.domain import delivery_batch
from incremental_analytics.observability import logger, tracer


def shape(event: dict[str, Any]) -> dict[str, Any]:
    step = event["step"]
    if step == "claims":
        return delivery_batch.claims(
            event["input"], table=event["table"], execution=event["execution"], now=event["now"]
        )
    if step == "sends":
        # A definition older than the function (CloudFormation updates the function first) passes no limit.
        limit = event.get("max_attempts")
        return delivery_batch.sends(
            event["read"],
            execution=event["execution"],
            settings=event["settings"],
            max_attempts=None if limit is None else int(limit),
        )
    if step == "writes":
        return delivery_batch.writes(event["plan"], event["first"])
    if step == "settle":
        return delivery_batch.settle(
            event["plan"],
            event["wrote"],
            event["first"],
            event["second"],
            event["read"],
            table=event["table"],
            execution=event["execution"],
            now=event["now"],
            max_attempts=int(event["max_attempts"]),
        )
    raise ValueError(f"unknown step {step!r}")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return shape(event)
