"""The shapes that cross state boundaries (Step Functions task input and output), parsed at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from incremental_analytics.domain.events import Event
from incremental_analytics.domain.outcomes import Contribution


def event_to_task(event: Event) -> dict[str, Any]:
    """An event as it travels between states: metrics as decimal text, so no digit is lost to floats."""
    data: dict[str, Any] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "event_type": event.event_type,
        "timestamp_ms": event.timestamp_ms,
    }
    if event.attributes:
        data["attributes"] = dict(event.attributes)
    if event.metrics:
        data["metrics"] = {name: str(value) for name, value in event.metrics.items()}
    if event.endpoint_id:
        data["endpoint_id"] = event.endpoint_id
    return data


def event_from_task(data: Mapping[str, Any]) -> Event:
    return Event(
        event_id=str(data["event_id"]),
        user_id=str(data["user_id"]),
        event_type=str(data["event_type"]),
        timestamp_ms=int(data["timestamp_ms"]),
        attributes=dict(data.get("attributes") or {}),
        metrics={name: Decimal(value) for name, value in (data.get("metrics") or {}).items()},
        endpoint_id=data.get("endpoint_id"),
    )


def contribution_to_task(contribution: Contribution) -> list[Any]:
    return [contribution.event_id, contribution.timestamp_ms, str(contribution.value)]


def contribution_from_task(data: list[Any]) -> Contribution:
    event_id, timestamp_ms, value = data
    return Contribution(str(event_id), int(timestamp_ms), Decimal(value))
