"""`trace --stack`: an execution of a deployed stack, read into the record the trace page draws.

A Standard execution's history comes from GetExecutionHistory (every page). An Express execution has none there
(the API refuses it): its history is its state machine's CloudWatch Logs, which hold it whole only when the
state machine logs at ALL (the stack's `ExpressLogLevel`), and with inputs and outputs only with execution data
(`IncludeExecutionData`); see docs/tracing.md. The stack's state machines are its resources of type
`AWS::StepFunctions::StateMachine`, so an execution can be named by its ARN or by its name alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics_cli.stacks import StackError
from incremental_analytics_local import execution_logs

STATE_MACHINE = "AWS::StepFunctions::StateMachine"
ENABLE_LOGS = (
    "deploy the stack with ExpressLogLevel=ALL (and IncludeExecutionData=true for inputs and outputs) to trace "
    "its Express executions: see docs/tracing.md"
)


class TraceError(StackError):
    """The execution cannot be found or traced: the message is the one-line reason."""


def stack_trace_record(stack_name: str, execution: str, session: Any) -> dict[str, Any]:
    """{execution, name, state_machine, status, definition, history, execution_data} of one execution."""
    machines = _state_machines(stack_name, session)
    if execution.startswith("arn:"):
        try:
            machine_arn = execution_logs.state_machine_arn(execution)
        except ValueError as error:
            raise TraceError(str(error)) from None
        if machine_arn not in machines:
            raise TraceError(f"{execution} is not an execution of a state machine of stack {stack_name}")
        candidates = [machine_arn]
    else:
        candidates = list(machines)
    sfn = session.client("stepfunctions")
    described = [sfn.describe_state_machine(stateMachineArn=machine_arn) for machine_arn in candidates]
    # Standard ones first: DescribeExecution answers at once, a log search reads the log group.
    described.sort(key=lambda machine: str(machine.get("type", "STANDARD")) == "EXPRESS")
    unlogged: list[str] = []
    for machine in described:
        if str(machine.get("type", "STANDARD")) == "EXPRESS":
            configuration = machine.get("loggingConfiguration") or {}
            if str(configuration.get("level", "OFF")) != "ALL" or execution_logs.log_group_name(configuration) is None:
                unlogged.append(f"{machine['name']} (logged at {configuration.get('level', 'OFF')})")
                continue
            found = _express(session, machine, execution)
        else:
            found = _standard(sfn, machine, execution)
        if found is not None:
            return found
    where = f"stack {stack_name}"
    if unlogged:
        raise TraceError(
            f"no execution {execution} found in {where}; Express workflows whose history is not logged: "
            f"{', '.join(unlogged)}: {ENABLE_LOGS}"
        )
    raise TraceError(f"no execution {execution} in {where}")


def _state_machines(stack_name: str, session: Any) -> list[str]:
    cloudformation = session.client("cloudformation")
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        arns = [
            str(summary["PhysicalResourceId"])
            for page in pages
            for summary in page["StackResourceSummaries"]
            if summary["ResourceType"] == STATE_MACHINE
        ]
    except ClientError as error:
        raise TraceError(f"cannot read stack {stack_name}: {error}") from None
    if not arns:
        raise TraceError(f"stack {stack_name} has no state machines")
    return arns


def _record(machine: Mapping[str, Any], arn: str, status: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "execution": arn,
        "name": execution_logs.execution_name(arn),
        "state_machine": machine["name"],
        "status": status,
        "definition": json.loads(machine["definition"]),
        "history": history,
    }


def _standard(sfn: Any, machine: Mapping[str, Any], execution: str) -> dict[str, Any] | None:
    machine_arn = str(machine["stateMachineArn"])
    arn = execution if execution.startswith("arn:") else f"{_execution_prefix(machine_arn)}:{execution}"
    try:
        described = sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return None
        raise
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn, includeExecutionData=True)
    history = [dict(event) for page in pages for event in page["events"]]
    record = _record(machine, arn, str(described["status"]), history)
    record["execution_data"] = True
    return record


def _execution_prefix(machine_arn: str) -> str:
    return machine_arn.replace(":stateMachine:", ":execution:", 1)


def _express(session: Any, machine: Mapping[str, Any], execution: str) -> dict[str, Any] | None:
    configuration = machine["loggingConfiguration"]
    group = str(execution_logs.log_group_name(configuration))
    name = execution_logs.execution_name(execution) if execution.startswith("arn:") else execution
    by_execution: dict[str, list[dict[str, Any]]] = {}
    for record in _log_records(session, group, name):
        arn = str(record.get("execution_arn") or "")
        wanted = arn == execution if execution.startswith("arn:") else execution_logs.execution_name(arn) == name
        if wanted and execution_logs.state_machine_arn(arn) == machine["stateMachineArn"]:
            by_execution.setdefault(arn, []).append(record)
    if not by_execution:
        return None
    if len(by_execution) > 1:
        raise TraceError(f"{len(by_execution)} executions are named {name}: pass one ARN of {', '.join(by_execution)}")
    ((arn, records),) = by_execution.items()
    history = execution_logs.history(records)
    record = _record(machine, arn, execution_logs.status(history), history)
    record["execution_data"] = bool(configuration.get("includeExecutionData"))
    return record


def _log_records(session: Any, group: str, name: str) -> Iterator[dict[str, Any]]:
    """The records of the log group that mention the execution's name (a quoted-term filter: the name is in every
    record's execution_arn); the caller keeps the execution's own."""
    logs = session.client("logs")
    try:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, filterPattern=f'"{name}"')
        for page in pages:
            for event in page["events"]:
                try:
                    record = json.loads(event["message"])
                except ValueError:
                    continue
                if isinstance(record, dict) and "execution_arn" in record:
                    yield record
    except ClientError as error:
        raise TraceError(f"cannot read log group {group}: {error}") from None
