"""What each sink receives for an outcome (SPEC section 5), shaped once so that the state machine only moves it.

Step Functions' JSONPath cannot build a map whose key is data (an attribute named after the rule's output), so
those pieces are built here; the workflow passes them to the sinks' APIs unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from incremental_analytics.domain.events import endpoint_of_identity
from incremental_analytics.domain.outcomes import Outcome, OutcomeKind

SOURCE = "incremental-analytics"
DETAIL_TYPES = {
    OutcomeKind.QUALIFIED: "UserQualified",
    OutcomeKind.DISQUALIFIED: "UserDisqualified",
    OutcomeKind.REACHED: "TargetReached",
}
_ATTRIBUTE_VALUE = {OutcomeKind.QUALIFIED: "ready", OutcomeKind.DISQUALIFIED: "notready"}
# An endpoint id goes into a JSON text built by the workflow (States.Format): only plain ids are used.
_SAFE_ENDPOINT = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}$")


def safe_endpoint(endpoint_id: str | None) -> str | None:
    return endpoint_id if endpoint_id is not None and _SAFE_ENDPOINT.match(endpoint_id) else None


def delivery_item(
    outcome: Outcome, *, endpoint_id: str | None, profile_key: str, profile_endpoint_key: str
) -> dict[str, Any]:
    """One outcome as the DeliverOutcomes map iterates it: the outcome plus each sink's request pieces.

    An `endpoint:<id>` identity (SPEC 2.1) is addressed by that endpoint, whatever an event named: Pinpoint
    updates that endpoint (its user attributes, never its user id) or puts the event to it, and Customer Profiles
    finds the profile by `profile_endpoint_key`. Any other identity is a user id: `endpoint_id` is then the
    endpoint its latest event named, and the profile is found by `profile_key`.
    """
    addressed = endpoint_of_identity(outcome.user_id)
    item: dict[str, Any] = {
        "outcome": outcome.to_dict(),
        "user_id": outcome.user_id,
        "outcome_id": outcome.outcome_id,
        "kind": outcome.kind.value,
        "detail_type": DETAIL_TYPES[outcome.kind],
        "endpoint_id": safe_endpoint(endpoint_id if addressed is None else addressed),
    }
    if addressed is not None:
        item["endpoint_identity"] = True
        item["profile_search"] = {"key_name": profile_endpoint_key, "value": addressed}
    profile_owner = {profile_key: outcome.user_id} if addressed is None else {profile_endpoint_key: addressed}
    if outcome.kind is OutcomeKind.REACHED:
        item["pinpoint_event"] = {
            "EventType": outcome.output,
            "Timestamp": outcome.occurred_at,
            "Attributes": {"rule_id": outcome.rule_id, "outcome_id": outcome.outcome_id, "cycle": str(outcome.cycle)},
        }
        item["profile_object"] = json.dumps(
            {
                **profile_owner,
                "event_type": outcome.output,
                "rule_id": outcome.rule_id,
                "outcome_id": outcome.outcome_id,
                "cycle": outcome.cycle,
                "occurred_at": outcome.occurred_at,
            },
            sort_keys=True,
        )
    else:
        value = _ATTRIBUTE_VALUE[outcome.kind]
        item["pinpoint_user_attributes"] = {outcome.output: [value]}
        item["profile_attributes"] = {outcome.output: value}
    return item
