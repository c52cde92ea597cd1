"""AWS's rules that both the local engine (glue.py) and the static checks (asl_checks.py) enforce, defined once.

Each rule names the AWS documentation it follows. The engine refuses what AWS refuses; the checks refuse a
definition that relies on something AWS never does.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import botocore.session

# Step Functions, "Service quotas" (quotas related to state machine executions): the maximum input or output
# size for a task, state or execution is 256 KiB of UTF-8 encoded data; over it, `States.DataLimitExceeded`.
# The API reference gives the same bound as the maximum length of every input/output field: 262144 bytes.
# EventBridge Pipes, "Batching and concurrency": a Step Functions target takes at most 262144 of payload.
PAYLOAD_LIMIT_BYTES = 262_144


# Lambda, "Lambda quotas": the invocation payload of a synchronous invocation is 6 MB for the request and 6 MB
# for the response. A larger request is refused with RequestEntityTooLargeException (413: "Request must be smaller
# than 6291456 bytes for the InvokeFunction operation"); a larger response fails the invocation with the function
# error `Function.ResponseSizeTooLarge`. EventBridge Pipes, "Batching and concurrency": a Lambda enrichment or
# target receives the whole batch and is bounded by that 6 MB, not by the batch size.
LAMBDA_SYNC_PAYLOAD_BYTES = 6_291_456
LAMBDA_RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"

# Kinesis Data Streams API reference, PutRecord: `Data` is at most 1048576 bytes (1 MiB) before base64 encoding
# ("Quotas and limits": a record's data payload is at most 1 MiB); `PartitionKey` is 1 to 256 Unicode characters.
KINESIS_RECORD_DATA_BYTES = 1_048_576
KINESIS_PARTITION_KEY_CHARACTERS = 256


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts: the UTF-8 bytes of the value as JSON text (a string counts as it is)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


# Step Functions, "Handling errors in Step Functions workflows": `States.ALL` cannot catch the terminal
# `States.DataLimitExceeded` nor `States.Runtime`.
NOT_MATCHED_BY_STATES_ALL = frozenset({"States.DataLimitExceeded", "States.Runtime"})

# Step Functions, "Learning to use AWS service SDK integrations": an AWS SDK integration's error is
# `ServiceName.ErrorName`, both in PascalCase, always with the `Exception` suffix (S3's `BucketAlreadyExists` is
# `S3.BucketAlreadyExistsException`, ACM PCA's service is `AcmPca`). The service names are the AWS SDK's
# client names; an error code the service model does not declare surfaces as the SDK's base exception
# (`S3.S3Exception`, `DynamoDb.DynamoDbException`), and a client-side failure as `<Service>.SdkClientException`.
SDK_SERVICE_ERROR_NAMES = {
    "appflow": "Appflow",
    "cloudwatch": "CloudWatch",
    "customerprofiles": "CustomerProfiles",
    "dynamodb": "DynamoDb",
    "eventbridge": "EventBridge",
    "kinesis": "Kinesis",
    "lambda": "Lambda",
    "pinpoint": "Pinpoint",
    "s3": "S3",
    "sfn": "Sfn",
    "sns": "Sns",
    "sqs": "Sqs",
}

# The service name in an `aws-sdk:` Resource -> botocore's (where they differ).
SDK_TO_BOTOCORE = {"customerprofiles": "customer-profiles", "sfn": "stepfunctions", "eventbridge": "events"}

# The optimised integrations each raise under their own prefix (ENGINEERING.md 2b, checked against each
# integration's page): `dynamodb:*` (Java SDK v1: `DynamoDB.ConditionalCheckFailedException`,
# `DynamoDB.AmazonDynamoDBException`), `lambda:invoke` (`Lambda.ServiceException`, ...), `states:startExecution*`
# ("Start workflow executions from a task state": `StepFunctions.ExecutionLimitExceeded`, the API's error code
# as it stands), `events:putEvents` ("Add EventBridge events": a non-zero FailedEntryCount fails the Task with
# `EventBridge.FailedEntry`).
OPTIMISED_PREFIXES = {
    "dynamodb": "DynamoDB",
    "lambda": "Lambda",
    "states": "StepFunctions",
    "events": "EventBridge",
}
OPTIMISED_BOTOCORE = {"dynamodb": "dynamodb", "lambda": "lambda", "states": "stepfunctions", "events": "events"}
# The error of an optimised integration for a code its service model does not declare.
OPTIMISED_BASE_ERRORS = {
    "dynamodb": "DynamoDB.AmazonDynamoDBException",
    "lambda": "Lambda.AWSLambdaException",
    "states": "StepFunctions.AWSStepFunctionsException",
    "events": "EventBridge.AmazonEventBridgeException",
}
# Raised by the service integration itself, not by the service's API.
INTEGRATION_ERRORS = {
    "events": frozenset({"EventBridge.FailedEntry"}),
    "lambda": frozenset({"Lambda.ServiceException", "Lambda.SdkClientException", "Lambda.Unknown"}),
    "states": frozenset({"StepFunctions.SdkClientException"}),
    "dynamodb": frozenset({"DynamoDB.SdkClientException"}),
}


class UnknownIntegration(ValueError):
    pass


def integration(resource: str) -> tuple[str, str, str]:
    """A Task's Resource as (kind, service, action): kind is "aws-sdk", "optimised" or "lambda-arn"."""
    if resource.startswith("arn:aws:lambda:"):
        return "lambda-arn", "lambda", "invoke"
    prefix = "arn:aws:states:::"
    if not resource.startswith(prefix):
        raise UnknownIntegration(f"not a service integration: {resource}")
    parts = resource[len(prefix) :].split(":")
    if parts[0] == "aws-sdk" and len(parts) >= 3:
        return "aws-sdk", parts[1], parts[2].split(".")[0]
    if parts[0] in OPTIMISED_PREFIXES and len(parts) >= 2:
        return "optimised", parts[0], parts[1].split(".")[0]
    raise UnknownIntegration(f"no error-name rule for {resource}")


def error_prefix(resource: str) -> str:
    """The prefix of every service error the Task can raise (`States.*` aside)."""
    kind, service, _ = integration(resource)
    if kind == "aws-sdk":
        if service not in SDK_SERVICE_ERROR_NAMES:
            raise UnknownIntegration(
                f"no SDK error name known for aws-sdk:{service}: add it to SDK_SERVICE_ERROR_NAMES"
            )
        return SDK_SERVICE_ERROR_NAMES[service]
    return OPTIMISED_PREFIXES[service]


@functools.cache
def modelled_errors(botocore_service: str) -> frozenset[str]:
    """The error shapes botocore's model of the service declares (the same models the AWS SDKs are built from)."""
    model = botocore.session.get_session().get_service_model(botocore_service)
    return frozenset(name for name in model.shape_names if model.shape_for(name).metadata.get("exception"))


@functools.cache
def _error_shapes_by_code(botocore_service: str) -> dict[str, str]:
    """The wire error code -> the error shape (the SDK's exception class) of each modelled error. They differ in
    the query-protocol services: CloudWatch answers `InternalServiceError` for its `InternalServiceFault` shape."""
    model = botocore.session.get_session().get_service_model(botocore_service)
    return {
        str(model.shape_for(name).metadata.get("error", {}).get("code", name)): name
        for name in modelled_errors(botocore_service)
    }


def _suffixed(name: str) -> str:
    return name if name.endswith("Exception") else f"{name}Exception"


def error_name(resource: str, code: str) -> str:
    """The error name Step Functions gives a service's error `code` (as the service answers it) in a Task with
    this Resource: the SDK's exception class for the code, or the SDK's base exception for a code it does not model."""
    kind, service, _ = integration(resource)
    prefix = error_prefix(resource)
    if kind == "aws-sdk":
        shape = _error_shapes_by_code(SDK_TO_BOTOCORE.get(service, service)).get(code, code)
        modelled = modelled_errors(SDK_TO_BOTOCORE.get(service, service))
        return f"{prefix}.{_suffixed(shape) if shape in modelled else prefix + 'Exception'}"
    if service == "states":
        return f"{prefix}.{code}"
    shape = _error_shapes_by_code(OPTIMISED_BOTOCORE[service]).get(code, code)
    modelled = modelled_errors(OPTIMISED_BOTOCORE[service])
    return f"{prefix}.{_suffixed(shape)}" if shape in modelled else OPTIMISED_BASE_ERRORS[service]


def raisable_errors(resource: str) -> frozenset[str]:
    """Every service error name a Task with this Resource can raise (`States.*` and Lambda's function errors
    aside): a Retry or Catch naming anything else waits for an error that never comes."""
    kind, service, _ = integration(resource)
    prefix = error_prefix(resource)
    if kind == "aws-sdk":
        modelled = modelled_errors(SDK_TO_BOTOCORE.get(service, service))
        names = {f"{prefix}.{_suffixed(code)}" for code in modelled}
        return frozenset(names | {f"{prefix}.{prefix}Exception", f"{prefix}.SdkClientException"})
    botocore_service = OPTIMISED_BOTOCORE[service]
    names = {error_name(resource, code) for code in modelled_errors(botocore_service)}
    names |= {OPTIMISED_BASE_ERRORS[service]} | INTEGRATION_ERRORS.get(service, frozenset())
    if service == "states":  # the API's throttling code is not in its model but is documented for every API
        names.add("StepFunctions.ThrottlingException")
    return frozenset(names)


# The error codes each service answers when it throttles a caller (its API reference's error lists; S3's
# `SlowDown` and CloudWatch's `Throttling` are not in their models, so the SDK raises its base exception).
THROTTLING_CODES = {
    "dynamodb": ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"),
    "s3": ("SlowDown",),
    "pinpoint": ("TooManyRequestsException",),
    "customerprofiles": ("ThrottlingException",),
    "cloudwatch": ("Throttling",),
    "events": ("ThrottlingException",),
    "eventbridge": ("ThrottlingException",),  # the AWS SDK integration's name for the same service
    "states": ("ThrottlingException",),
    "lambda": ("TooManyRequestsException",),
}


def throttling_errors(resource: str) -> dict[str, str]:
    """error name -> the service's error code, for each way the Task's service throttles it."""
    _, service, _ = integration(resource)
    return {error_name(resource, code): code for code in THROTTLING_CODES.get(service, ())}


# Step Functions API reference, LoggingConfiguration: `destinations` is "limited to size 1" and "required, if your
# log level is not set to OFF"; CloudWatchLogsLogGroup: the log group ARN "must end with :*". CreateStateMachine
# and UpdateStateMachine answer anything else with InvalidLoggingConfiguration.
LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")


def logging_configuration_problem(configuration: Any) -> str | None:
    """Why CreateStateMachine would refuse a LoggingConfiguration (its API shape), or None."""
    if not configuration:
        return None
    level = str(configuration.get("level") or "OFF")
    if level not in LOG_LEVELS:
        return f"level {level!r} is not one of {', '.join(LOG_LEVELS)}"
    destinations = configuration.get("destinations") or []
    if len(destinations) > 1:
        return "at most one log destination"
    if level != "OFF" and not destinations:
        return f"a log destination is required at level {level}"
    for destination in destinations:
        arn = str((destination.get("cloudWatchLogsLogGroup") or {}).get("logGroupArn") or "")
        if not arn.startswith("arn:") or ":log-group:" not in arn or not arn.endswith(":*"):
            return f"the log group ARN {arn!r} must be a CloudWatch Logs log group's ARN ending with :*"
    return None
