"""Step Functions' execution history in CloudWatch Logs: the records the local engine writes, and `trace --stack`
reads back as GetExecutionHistory's events.

AWS keeps an Express execution's history nowhere else ("Logging using CloudWatch Logs", Step Functions Developer
Guide: "Express Workflows don't record execution history in AWS Step Functions"). Each history event is one log
event whose message is a JSON object with the fields AWS names for Express logs records (`id`, `type`, `details`,
`previous_event_id`, `event_timestamp`, `execution_arn`, `redrive_count`): ids and the time are strings, the time
in epoch milliseconds, and `details` is what GetExecutionHistory holds under the event's `<type>EventDetails`
member. A record as AWS writes it (an Express execution's first event, as a log subscription receives it):

    {"id": "1", "type": "ExecutionStarted", "details": {"input": "{}", "inputDetails": {"truncated": false},
     "roleArn": "arn:aws:iam::123456789012:role/..."}, "previous_event_id": "0",
     "event_timestamp": "1668095539607",
     "execution_arn": "arn:aws:states:sa-east-1:123456789012:express:my-machine:<name>:<uuid>"}

Which event types a level logs is the "Log levels" table of the same guide. Without execution data
(`includeExecutionData` false) no input or output is written; an input or output whose escaped text exceeds
248 KB is cut, and its `inputDetails`/`outputDetails` say `truncated` ("CloudWatch Logs payloads").
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import botocore.session

# "CloudWatch Logs payloads": escaped input or output over 248 KB is truncated.
LOG_PAYLOAD_LIMIT_BYTES = 248 * 1024

_DATA_FIELDS = {"input": "inputDetails", "output": "outputDetails"}
_ENDINGS = {"Succeeded": "SUCCEEDED", "Failed": "FAILED", "TimedOut": "TIMED_OUT", "Aborted": "ABORTED"}


@functools.cache
def _details_members() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("stepfunctions")
    return frozenset(name for name in model.shape_for("HistoryEvent").members if name.endswith("EventDetails"))


def details_member(event_type: str) -> str:
    """The member of GetExecutionHistory's HistoryEvent that holds an event type's details (botocore's model)."""
    own = event_type[:1].lower() + event_type[1:] + "EventDetails"
    if own in _details_members():
        return own
    if event_type.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if event_type.endswith("StateExited"):
        return "stateExitedEventDetails"
    return own


def log_record(event: Mapping[str, Any], execution_arn: str, *, include_execution_data: bool) -> dict[str, Any]:
    """A history event (GetExecutionHistory's shape) as the log record Step Functions writes for it."""
    event_type = str(event["type"])
    record: dict[str, Any] = {"id": str(event["id"]), "type": event_type}
    details = next((value for key, value in event.items() if key.endswith("EventDetails")), None)
    if details is not None:
        record["details"] = _logged_details(details, include_execution_data)
    record["previous_event_id"] = str(event.get("previousEventId") or 0)
    record["event_timestamp"] = str(_epoch_ms(event["timestamp"]))
    record["execution_arn"] = execution_arn
    record["redrive_count"] = "0"
    return record


def _logged_details(details: Mapping[str, Any], include_execution_data: bool) -> dict[str, Any]:
    logged = dict(details)
    for field, about in _DATA_FIELDS.items():
        if field not in logged:
            continue
        if not include_execution_data:
            logged.pop(field)
            logged.pop(about, None)
            continue
        text, truncated = _within_log_limit(str(logged[field]))
        logged[field] = text
        logged[about] = {**dict(logged.get(about) or {}), "truncated": truncated}
    return logged


def _within_log_limit(text: str) -> tuple[str, bool]:
    """The text cut so that its JSON-escaped form fits LOG_PAYLOAD_LIMIT_BYTES, and whether it was cut."""

    def escaped_size(value: str) -> int:
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) - 2

    if escaped_size(text) <= LOG_PAYLOAD_LIMIT_BYTES:
        return text, False
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if escaped_size(text[:middle]) <= LOG_PAYLOAD_LIMIT_BYTES:
            low = middle
        else:
            high = middle - 1
    return text[:low], True


def _epoch_ms(moment: Any) -> int:
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if isinstance(moment, dt.datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return round(aware.timestamp() * 1000)
    return int(moment)


def history_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """A log record back in GetExecutionHistory's shape: what the trace page reads."""
    event_type = str(record["type"])
    event: dict[str, Any] = {
        "id": int(record["id"]),
        "previousEventId": int(record.get("previous_event_id") or 0),
        "type": event_type,
        "timestamp": dt.datetime.fromtimestamp(int(record["event_timestamp"]) / 1000, tz=dt.UTC),
    }
    if record.get("details") is not None:
        event[details_member(event_type)] = dict(record["details"])
    return event


def history(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One execution's log records (in any order, repeats dropped) as its history, oldest first."""
    by_id = {int(record["id"]): record for record in records}
    return [history_event(by_id[event_id]) for event_id in sorted(by_id)]


def status(events: Iterable[Mapping[str, Any]]) -> str:
    """DescribeExecution's status, read from the history: RUNNING until an Execution* event ends it."""
    for event in events:
        event_type = str(event["type"])
        if event_type.startswith("Execution"):
            for ending, found in _ENDINGS.items():
                if event_type == "Execution" + ending:
                    return found
    return "RUNNING"


def log_stream_name(state_machine_name: str, at: dt.datetime) -> str:
    """Where Step Functions writes a state machine's records: `states/<name>/<yyyy-mm-dd-HH-MM>/<id>`, as the
    streams of a vended log group are named."""
    minute = at.astimezone(dt.UTC).strftime("%Y-%m-%d-%H-%M")
    suffix = hashlib.sha256(f"{state_machine_name}/{minute}".encode()).hexdigest()[:8]
    return f"states/{state_machine_name}/{minute}/{suffix}"


def execution_name(execution_arn: str) -> str:
    """An execution's name from its ARN: `...:execution:<machine>:<name>` (Standard), or
    `...:express:<machine>:<name>:<id>` (Express)."""
    parts = execution_arn.split(":")
    if len(parts) >= 9 and parts[5] == "express":
        return parts[7]
    return parts[-1]


def state_machine_arn(execution_arn: str) -> str:
    """The ARN of the state machine an execution ARN names."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] not in ("execution", "express"):
        raise ValueError(f"{execution_arn!r} is not a Step Functions execution ARN")
    return ":".join([*parts[:5], "stateMachine", parts[6]])


def log_group_name(logging_configuration: Mapping[str, Any]) -> str | None:
    """The log group a state machine's LoggingConfiguration (DescribeStateMachine's shape) writes to."""
    destinations = logging_configuration.get("destinations") or []
    if not destinations:
        return None
    arn = str((destinations[0].get("cloudWatchLogsLogGroup") or {}).get("logGroupArn") or "")
    if ":log-group:" not in arn:
        return None
    return arn.split(":log-group:", 1)[1].removesuffix(":*")
