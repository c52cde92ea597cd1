"""Deploying a SAM template into the embedded local AWS.

Creates what the product uses (DynamoDB tables, S3 buckets, Kinesis streams, SQS queues, EventBridge buses and
rules, Lambda functions run in-process, state machines from their `DefinitionUri`), records what moto cannot run
(EventBridge Pipes, Scheduler schedules) for the emulators in pipes.py, creates log groups (state machines with a
`Logging` level write their executions' history there, as on AWS), puts CloudWatch dashboards, and accepts IAM, KMS
and alarm resources, which have no local effect. A resource type it does not know is an error that names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incremental_analytics_local import stack_registry
from incremental_analytics_local.cfn import (
    PLACEHOLDER,
    Context,
    TemplateError,
    evaluate_conditions,
    read_template,
    references,
    resolve,
)
from incremental_analytics_local.engine import ACCOUNT_ID, LocalAws
from incremental_analytics_local.lambdas import LocalFunction

# Accepted and not created: permissions and logging are not enforced or kept by the local AWS.
NO_LOCAL_EFFECT = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Serverless::Connector",
        "AWS::Lambda::Permission",
        "AWS::SQS::QueuePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::CloudWatch::Alarm",
        "AWS::Events::Archive",
    }
)


@dataclass
class Pipe:
    logical_id: str
    name: str
    source: str
    target: str
    source_parameters: dict[str, Any]
    target_parameters: dict[str, Any]
    enrichment: str | None = None  # a Lambda function's ARN


@dataclass
class Schedule:
    logical_id: str
    name: str
    expression: str
    target: dict[str, Any]
    state: str = "ENABLED"


@dataclass
class Stack:
    name: str
    template_path: Path
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    # logical id -> (type, Ref value, attributes)
    resources: dict[str, tuple[str, Any, dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    pipes: dict[str, Pipe] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def ref(self, logical_id: str) -> Any:
        return self.resources[logical_id][1]

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.resources[logical_id][2][name]

    def of_type(self, resource_type: str) -> dict[str, Any]:
        return {key: ref for key, (kind, ref, _) in self.resources.items() if kind == resource_type}


def physical_name(stack: str, logical_id: str, limit: int = 64) -> str:
    """What CloudFormation would call an unnamed resource: stack-logical-suffix."""
    suffix = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12].upper()
    return f"{stack}-{logical_id}"[: limit - 13] + f"-{suffix}"


def deploy(
    aws: LocalAws,
    template_path: Path,
    *,
    stack_name: str,
    parameters: Mapping[str, Any] | None = None,
) -> Stack:
    """Create every resource of the template, in dependency order (parameters override the defaults), and
    register the stack in the local CloudFormation with its outputs and resources, as `sam deploy` leaves it."""
    template = read_template(template_path)
    resolved_parameters = _parameters(template, dict(parameters or {}))
    context = Context(stack_name, aws.region, ACCOUNT_ID, resolved_parameters)
    conditions = evaluate_conditions(template, context)
    stack = Stack(stack_name, template_path, resolved_parameters, conditions)
    resources: dict[str, Any] = _with_globals(template)
    unknown = sorted(
        f"{logical_id} ({definition['Type']})"
        for logical_id, definition in resources.items()
        if definition["Type"] not in _CREATORS and definition["Type"] not in NO_LOCAL_EFFECT
    )
    if unknown:
        raise TemplateError(f"resource types the local AWS does not know: {', '.join(unknown)}")

    with aws.uncounted():
        for logical_id in _creation_order(resources):
            definition = resources[logical_id]
            if "Condition" in definition and not conditions[definition["Condition"]]:
                stack.skipped.append(logical_id)
                continue
            kind = definition["Type"]
            if kind in NO_LOCAL_EFFECT:
                arn = f"arn:aws:local:{aws.region}:{ACCOUNT_ID}:{logical_id}"
                context.resources[logical_id] = (logical_id, {"Arn": arn})
                stack.resources[logical_id] = (kind, logical_id, {"Arn": arn})
                continue
            properties = resolve(definition.get("Properties") or {}, context)
            ref, attributes = _CREATORS[kind](aws, stack, logical_id, properties)
            context.resources[logical_id] = (ref, attributes)
            stack.resources[logical_id] = (kind, ref, attributes)
    stack.outputs = {
        name: resolve(output["Value"], context)
        for name, output in (template.get("Outputs") or {}).items()
        if "Condition" not in output or conditions[output["Condition"]]
    }
    stack_registry.register(
        region=aws.region,
        account_id=ACCOUNT_ID,
        name=stack_name,
        template_path=template_path,
        template=template,
        parameters=resolved_parameters,
        outputs=stack.outputs,
        resources=stack.resources,
    )
    return stack


def _parameters(template: Mapping[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = dict(template.get("Parameters") or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameters the template does not declare: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in declaration:
            value = declaration["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default and no value")
        allowed = declaration.get("AllowedValues")
        if allowed is not None and str(value) not in [str(item) for item in allowed]:
            raise TemplateError(f"parameter {name}: {value!r} is not one of {allowed}")
        values[name] = str(value) if declaration.get("Type") == "String" else value
    return values


_GLOBAL_SECTIONS = {"Function": "AWS::Serverless::Function", "StateMachine": "AWS::Serverless::StateMachine"}


def _with_globals(template: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals merged under each resource's own properties."""
    globals_ = template.get("Globals") or {}
    resources: dict[str, Any] = {}
    for logical_id, definition in (template.get("Resources") or {}).items():
        merged = dict(definition)
        for section, kind in _GLOBAL_SECTIONS.items():
            if definition.get("Type") == kind and section in globals_:
                merged["Properties"] = _merge(globals_[section], definition.get("Properties") or {})
        resources[logical_id] = merged
    return resources


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not _is_intrinsic(value):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))


def _creation_order(resources: Mapping[str, Any]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular dependency through {logical_id}")
        visiting.add(logical_id)
        definition = resources[logical_id]
        depends = definition.get("DependsOn") or []
        needed = references(definition.get("Properties") or {}) | set(
            [depends] if isinstance(depends, str) else depends
        )
        for other in sorted(needed & set(resources)):
            visit(other)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


# -- creators: (aws, stack, logical id, resolved properties) -> (Ref value, attributes) ------------------------

Created = tuple[Any, dict[str, Any]]


def _arn(aws: LocalAws, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{aws.region}:{ACCOUNT_ID}:{resource}"


def _table(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("TableName") or physical_name(stack.name, logical_id)
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if request["BillingMode"] == "PROVISIONED":
        request["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
        if key in props:
            request[key] = props[key]
    if "StreamSpecification" in request:
        request["StreamSpecification"] = {"StreamEnabled": True, **request["StreamSpecification"]}
    dynamodb = aws.client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    attributes = {"Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    return name, attributes


def _bucket(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("BucketName") or physical_name(stack.name, logical_id).lower()
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=name)
    notifications = props.get("NotificationConfiguration") or {}
    if (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true"):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com", "BucketName": name}


def _stream(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id, 128)
    mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    shards = int(props.get("ShardCount", 1 if mode == "PROVISIONED" else 4))
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return name, {"Arn": arn}


_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


def _queue(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("QueueName") or physical_name(stack.name, logical_id, 80)
    sqs = aws.client("sqs")
    attributes = {key: str(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if "RedrivePolicy" in props:  # an object in CloudFormation, JSON text in the SQS API
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, {"Arn": _arn(aws, "sqs", name), "QueueName": name, "QueueUrl": url}


def _bus(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id)
    arn = aws.client("events").create_event_bus(Name=name)["EventBusArn"]
    return name, {"Arn": arn, "Name": name}


def _rule(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id)
    events = aws.client("events")
    request: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    if "EventPattern" in props:
        request["EventPattern"] = json.dumps(props["EventPattern"])
    if "ScheduleExpression" in props:
        request["ScheduleExpression"] = props["ScheduleExpression"]
    if "EventBusName" in props:
        request["EventBusName"] = props["EventBusName"]
    arn = events.put_rule(**request)["RuleArn"]
    targets = [dict(target) for target in props.get("Targets") or []]
    if targets:
        events.put_targets(Rule=name, EventBusName=props.get("EventBusName", "default"), Targets=targets)
    return name, {"Arn": arn}


# What Lambda holds as a local function's code: the handler runs in-process, from the package in this checkout.
_FUNCTION_CODE = b"PK\x05\x06" + b"\x00" * 18  # an empty zip archive


def _function(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("FunctionName") or physical_name(stack.name, logical_id)
    arn = _arn(aws, "lambda", f"function:{name}")
    variables = {key: str(value) for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items()}
    function = LocalFunction(
        name=name,
        arn=arn,
        handler=str(props["Handler"]),
        environment=variables,
        timeout_seconds=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
    )
    aws.lambdas.register(function)
    _refuse_event_sources(logical_id, props)
    # Also in Lambda's API (ListFunctions, GetFunction), with the role SAM would make for it.
    aws.client("lambda").create_function(
        FunctionName=name,
        Runtime=str(props.get("Runtime", "python3.13")),
        Role=_function_role(aws, stack, logical_id),
        Handler=function.handler,
        Code={"ZipFile": _FUNCTION_CODE},
        Description=str(props.get("Description", "")),
        Timeout=function.timeout_seconds,
        MemorySize=function.memory_mb,
        Architectures=[str(item) for item in props.get("Architectures") or ["x86_64"]],
        Environment={"Variables": variables},
    )
    return name, {"Arn": arn}


def _function_role(aws: LocalAws, stack: Stack, logical_id: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = aws.client("iam").create_role(
        RoleName=physical_name(stack.name, f"{logical_id}Role"), AssumeRolePolicyDocument=json.dumps(trust)
    )
    return str(role["Role"]["Arn"])


def _state_machine(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id, 80)
    if "DefinitionUri" in props:
        path = (stack.template_path.parent / str(props["DefinitionUri"])).resolve()
        text = path.read_text()
    elif "Definition" in props:
        text = json.dumps(props["Definition"])
    else:
        raise TemplateError(f"{logical_id}: a state machine needs a DefinitionUri or a Definition")
    substitutions: Mapping[str, Any] = props.get("DefinitionSubstitutions") or {}
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(substitutions))
    if missing:
        raise TemplateError(f"{logical_id}: no DefinitionSubstitutions for {', '.join(missing)}")
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", str(value))
    kind = str(props.get("Type", "STANDARD")).upper()
    request: dict[str, Any] = {
        "name": name,
        "definition": text,
        "roleArn": _arn(aws, "iam", "role/local-state-machine").replace(f":{aws.region}:", "::"),
        "type": kind,
    }
    if "Logging" in props:
        request["loggingConfiguration"] = logging_configuration(props["Logging"])
    arn = aws.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    _refuse_event_sources(logical_id, props)
    return arn, {"Arn": arn, "Name": name}


def logging_configuration(logging: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's `Logging` property in the API's shape (CreateStateMachine's `loggingConfiguration`)."""
    configuration: dict[str, Any] = {
        "level": str(logging.get("Level", "OFF")),
        "includeExecutionData": str(logging.get("IncludeExecutionData", False)).lower() == "true",
    }
    destinations = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": str(destination["CloudWatchLogsLogGroup"]["LogGroupArn"])}}
        for destination in logging.get("Destinations") or []
    ]
    if destinations:
        configuration["destinations"] = destinations
    return configuration


def _log_group(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("LogGroupName") or physical_name(stack.name, logical_id, 512)
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=name)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    # Fn::GetAtt Arn of AWS::Logs::LogGroup ends with :* (the form a state machine's LogGroupArn needs).
    return name, {"Arn": f"arn:aws:logs:{aws.region}:{ACCOUNT_ID}:log-group:{name}:*"}


def _refuse_event_sources(logical_id: str, props: dict[str, Any]) -> None:
    """SAM `Events` would wire a trigger the local AWS does not run: say so rather than skip it."""
    for event_name, event in (props.get("Events") or {}).items():
        raise TemplateError(f"{logical_id}: event source {event_name} ({event.get('Type')}) is not emulated locally")


def _dashboard(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("DashboardName") or physical_name(stack.name, logical_id, 255)
    body = str(props["DashboardBody"])
    try:
        json.loads(body)
    except ValueError as error:  # PutDashboard refuses a body that is not JSON (InvalidParameterInput)
        raise TemplateError(f"{logical_id}: DashboardBody is not JSON: {error}") from None
    aws.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=body)
    return name, {}


def _pipe(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id)
    stack.pipes[logical_id] = Pipe(
        logical_id=logical_id,
        name=name,
        source=str(props["Source"]),
        target=str(props["Target"]),
        source_parameters=dict(props.get("SourceParameters") or {}),
        target_parameters=dict(props.get("TargetParameters") or {}),
        enrichment=str(props["Enrichment"]) if props.get("Enrichment") else None,
    )
    if props.get("EnrichmentParameters"):
        raise TemplateError(f"{logical_id}: EnrichmentParameters are not emulated")
    return name, {"Arn": _arn(aws, "pipes", f"pipe/{name}")}


def _schedule(aws: LocalAws, stack: Stack, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or physical_name(stack.name, logical_id)
    stack.schedules[logical_id] = Schedule(
        logical_id=logical_id,
        name=name,
        expression=str(props["ScheduleExpression"]),
        target=dict(props["Target"]),
        state=str(props.get("State", "ENABLED")),
    )
    return name, {"Arn": _arn(aws, "scheduler", f"schedule/default/{name}")}


_CREATORS: dict[str, Callable[[LocalAws, Stack, str, dict[str, Any]], Created]] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::S3::Bucket": _bucket,
    "AWS::Kinesis::Stream": _stream,
    "AWS::SQS::Queue": _queue,
    "AWS::Events::EventBus": _bus,
    "AWS::Events::Rule": _rule,
    "AWS::Serverless::Function": _function,
    "AWS::Serverless::StateMachine": _state_machine,
    "AWS::Pipes::Pipe": _pipe,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::CloudWatch::Dashboard": _dashboard,
}
