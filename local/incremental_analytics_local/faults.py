"""`run --inject-fault SERVICE.Operation[:N]`: the next N calls of an AWS operation fail, whoever makes them (an
IngestBatch Task, a Lambda function's own client, a sink in DeliverOutcomes), with that service's throttling or
unavailable error, as AWS answers under load."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import botocore.session

# The error each service answers when it sheds load, as its API reference names it (code, HTTP status).
THROTTLING: dict[str, tuple[str, int]] = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),  # DynamoDB API reference, Common errors
    "lambda": ("TooManyRequestsException", 429),  # Lambda Invoke: concurrency or request rate exceeded
    "pinpoint": ("TooManyRequestsException", 429),  # Pinpoint REST API reference: 429 for every resource
    "customer-profiles": ("ThrottlingException", 429),  # Customer Profiles API reference, Common errors
    "events": ("ThrottlingException", 400),  # EventBridge PutEvents: ThrottlingException
    "s3": ("SlowDown", 503),  # S3: "Please reduce your request rate"
    "stepfunctions": ("ThrottlingException", 400),  # Step Functions: StartExecution, StartSyncExecution
    "cloudwatch": ("Throttling", 400),  # CloudWatch PutMetricData: rate exceeded
    "kinesis": ("ProvisionedThroughputExceededException", 400),
    "sqs": ("RequestThrottled", 403),
}
DEFAULT_ERROR = ("ServiceUnavailable", 503)
_FORM = re.compile(r"^(?P<service>[a-z0-9-]+)\.(?P<operation>[A-Za-z0-9]+)(?::(?P<count>\d+))?$")


class FaultError(ValueError):
    """A fault that names no AWS operation: the message is the one-line reason."""


@dataclass(frozen=True)
class Fault:
    service: str  # botocore's service name, as `aws_requests` in summary.json names requests
    operation: str
    count: int = 1

    @property
    def error(self) -> tuple[str, int]:
        return THROTTLING.get(self.service, DEFAULT_ERROR)

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}:{self.count}"


@functools.cache
def _operations(service: str) -> frozenset[str]:
    session = botocore.session.get_session()
    if service not in session.get_available_services():
        return frozenset()
    return frozenset(session.get_service_model(service).operation_names)


def parse_fault(text: str) -> Fault:
    """`dynamodb.TransactWriteItems:20`, `pinpoint.UpdateEndpoint` (once): checked against botocore's models."""
    found = _FORM.match(text.strip())
    if not found:
        raise FaultError(f"{text!r} is not SERVICE.Operation[:N], e.g. pinpoint.UpdateEndpoint:5")
    service, operation = found["service"], found["operation"]
    count = int(found["count"] or 1)
    if count < 1:
        raise FaultError(f"{text!r}: N must be at least 1")
    operations = _operations(service)
    if not operations:
        raise FaultError(f"{text!r}: no AWS service is called {service!r} (use botocore's names, e.g. dynamodb)")
    if operation not in operations:
        raise FaultError(f"{text!r}: {service} has no operation {operation!r}")
    return Fault(service, operation, count)
