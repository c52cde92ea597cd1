"""One DeliverOutcomes attempt over a batch of outcomes, shaped in four pure steps (docs/delivery.md).

The workflow does the I/O; these functions only shape it, because JSONPath can neither build a map keyed by data
(Pinpoint's `BatchItem`), nor pair a batched answer with the outcome it belongs to:

1. `claims`: the keys of the execution's input, the one `BatchExecuteStatement` that holds them for this
   execution (a conditional update each), and the one `TransactGetItems` that reads them back;
2. `sends`: from the items this execution holds, what each sink that lacks an outcome is sent first:
   EventBridge entries (10 a `PutEvents`), the users whose Pinpoint endpoints to look up (once a user), the
   Customer Profiles searches (once a key) and profile objects;
3. `writes`: once the lookups answered, each outcome's Pinpoint endpoint (one of the user's own), its
   `UpdateEndpoint`, the reached outcomes' Pinpoint events (up to 100 a `PutEvents`), each `UpdateProfile`;
4. `settle`: every sink's result per outcome, the outbox items as they are to be put back (`BatchWriteItem`,
   25 a request), and the abandoned deliveries to count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from incremental_analytics.domain.delivery import (
    LACKING,
    SINKS,
    SinkStatus,
    detail_type,
    pinpoint_event,
    profile_object,
    request_of_item,
    user_attribute,
)

# EventBridge API reference, PutEvents: `Entries` holds 1 to 10 entries.
EVENTBRIDGE_ENTRIES_PER_REQUEST = 10
# Amazon Pinpoint developer guide, "Amazon Pinpoint quotas", Event ingestion quotas
# (docs.aws.amazon.com/pinpoint/latest/developerguide/quotas.html): at most 100 events a PutEvents request.
PINPOINT_EVENTS_PER_REQUEST = 100
# DynamoDB API reference, BatchWriteItem: at most 25 put or delete requests; BatchExecuteStatement: at most 25
# statements ("Running batch operations with PartiQL for DynamoDB").
WRITES_PER_BATCH = 25
STATEMENTS_PER_BATCH = 25
NAMESPACE = "IncrementalAnalytics"
ABANDONED_METRIC = "AbandonedDeliveries"
NEVER_STALE = "1970-01-01T00:00:00.000Z"  # a new outcome from the stream is never taken from an execution


def abandoned_metric(sink: str, count: int) -> dict[str, Any]:
    """One `MetricData` datum of the abandoned-deliveries metric, which AbandonedDeliveriesAlarm sums."""
    return {
        "MetricName": ABANDONED_METRIC,
        "Unit": "Count",
        "Value": count,
        "Dimensions": [{"Name": "service", "Value": "incremental-analytics"}, {"Name": "sink", "Value": sink}],
    }


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def _key(user_id: str, outcome_id: str) -> dict[str, Any]:
    return {"user_id": {"S": user_id}, "outcome_id": {"S": outcome_id}}


# -- 1. claims --------------------------------------------------------------------------------------------------


def input_keys(raw: Any) -> list[dict[str, Any]]:
    """The outcomes of an execution's input, each once: DynamoDB stream records (keys only) of new outcomes from
    the Pipe, or a page of outcomes due again from the scheduled redelivery (`{"outcomes": [...]}`, each with the
    attempts it has had and `stale_before`, the time before which another execution's hold is taken over)."""
    if isinstance(raw, Mapping):
        found = [
            {
                "user_id": str(k["user_id"]),
                "outcome_id": str(k["outcome_id"]),
                "attempts": int(k["attempts"]),
                "stale_before": str(k["stale_before"]),
            }
            for k in raw.get("outcomes") or []
        ]
    else:
        found = [
            {
                "user_id": str(record["dynamodb"]["Keys"]["user_id"]["S"]),
                "outcome_id": str(record["dynamodb"]["Keys"]["outcome_id"]["S"]),
                "attempts": 0,
                "stale_before": NEVER_STALE,
            }
            for record in raw or []
        ]
    seen: set[tuple[Any, Any]] = set()
    keys = []
    for key in found:
        if (key["user_id"], key["outcome_id"]) not in seen:
            seen.add((key["user_id"], key["outcome_id"]))
            keys.append(key)
    return keys


def holder(execution: str) -> str:
    """What `claimed_by` holds while an execution delivers an outcome: a digest of the execution's ARN (an ARN is
    up to 256 characters the item would carry, and be billed for, while it is held)."""
    return hashlib.sha256(execution.encode()).hexdigest()[:20]


def claims(raw: Any, *, table: str, execution: str, now: str) -> dict[str, Any]:
    """The claim of every outcome of the input (held by this execution while it sends) and the reads that follow
    it. Each claim is a PartiQL statement of one `BatchExecuteStatement` (1 write unit per KB, not a transaction's
    2; each succeeds or fails alone), and succeeds only for an outcome still pending, with the attempts the input
    says it had, that no other execution holds.

    A new outcome from the stream has had no attempt. Its claim sets only the hold (`claimed_by`, `claimed_at`),
    which the `undelivered` index does not project, so the index entry is not written again; the record counts the
    attempt. A stream batch the Pipe retries while or after an attempt ran is left to the scheduled redelivery.
    A page of the scheduled redelivery counts the attempt in the claim, with when it began (the index projects
    both, for the backoff), and takes over a hold older than `stale_before` (its holder died)."""
    keys = input_keys(raw)
    if len(keys) > STATEMENTS_PER_BATCH:
        raise ValueError(f"at most {STATEMENTS_PER_BATCH} outcomes an execution, not {len(keys)}")
    me = holder(execution)
    pending = 'WHERE "user_id" = ? AND "outcome_id" = ? AND begins_with("undelivered", ?) AND "delivery_attempts" = ?'
    statements = []
    for key in keys:
        where = [{"S": key["user_id"]}, {"S": key["outcome_id"]}, {"S": "P"}, {"N": str(key["attempts"])}]
        if key["stale_before"] == NEVER_STALE:  # from the stream
            statements.append(
                {
                    "Statement": f'UPDATE "{table}" SET "claimed_by" = ? SET "claimed_at" = ? {pending} '
                    'AND "claimed_by" IS MISSING',
                    "Parameters": [{"S": me}, {"S": now}, *where],
                }
            )
            continue
        # A hold taken before holds were timed by `claimed_at` was timed by `attempted_at`.
        statements.append(
            {
                "Statement": f'UPDATE "{table}" SET "claimed_by" = ? SET "claimed_at" = ? SET "attempted_at" = ? '
                f'SET "delivery_attempts" = ? {pending} '
                'AND ("claimed_by" IS MISSING OR "claimed_at" < ? OR "attempted_at" < ?)',
                "Parameters": [
                    {"S": me},
                    {"S": now},
                    {"S": now},
                    {"N": str(key["attempts"] + 1)},
                    *where,
                    {"S": key["stale_before"]},
                    {"S": key["stale_before"]},
                ],
            }
        )
    reads = [{"Get": {"TableName": table, "Key": _key(key["user_id"], key["outcome_id"])}} for key in keys]
    return {"count": len(keys), "claims": statements, "reads": reads}


# -- 2. sends ---------------------------------------------------------------------------------------------------


def _plain(value: Mapping[str, Any]) -> Any:
    ((kind, data),) = value.items()
    if kind == "M":
        return {name: _plain(element) for name, element in data.items()}
    if kind == "L":
        return [_plain(element) for element in data]
    return data


def _lacks(delivery: Mapping[str, str], sink: str) -> bool:
    return SinkStatus(delivery.get(sink, SinkStatus.PENDING)) in LACKING


def _request(item: Mapping[str, Any], profile_key: str) -> dict[str, Any]:
    """An outbox item's request. An item committed before the outbox kept the outcome alone names no profile
    search for a user id: the user's is by `profile_key` (the pieces it kept pre-shaped are derived again)."""
    request = request_of_item(item)
    if "profile_search" not in request:
        request["profile_search"] = {"key_name": profile_key, "value": request["outcome"]["user_id"]}
    return request


def held_outcomes(
    read: Sequence[Mapping[str, Any]], execution: str, profile_key: str, max_attempts: int | None = None
) -> list[dict[str, Any]]:
    """The outcomes this execution holds (its claim succeeded): each one's request, sinks' states and attempts.
    An outcome no sink lacks any more, abandoned, or held by another execution is not among them.

    An outcome claimed for an attempt beyond `max_attempts` is `spent`: its attempts were all made and the last was
    not recorded (its execution died before the record, which would have given up). It is not sent again, and its
    request is not read (it may be what made them die): `sends` gives up on it. The claim is counted as the
    redelivery's claims are, so such an outcome shows more attempts than `max_attempts`."""
    held, me = [], holder(execution)
    for answer in read:
        item = answer.get("Item") or {}
        if item.get("claimed_by", {}).get("S") != me:
            continue
        attempts = int(item["delivery_attempts"]["N"])
        spent = max_attempts is not None and attempts > max_attempts
        held.append(
            {
                "user_id": item["user_id"]["S"],
                "outcome_id": item["outcome_id"]["S"],
                "kind": item.get("kind", {}).get("S"),
                "request": None if spent else _request(item, profile_key),
                "delivery": {sink: str(_plain(item.get("delivery", {"M": {}})).get(sink, "pending")) for sink in SINKS},
                # This attempt: a claim from the stream leaves it to the record to count.
                "attempts": max(1, attempts),
                "spent": spent,
            }
        )
    return held


def sends(
    read: Sequence[Mapping[str, Any]],
    *,
    execution: str,
    settings: Mapping[str, str],
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """What each sink that lacks a held outcome is sent first, and what is already decided without a call. A
    spent outcome (`held_outcomes`) is sent nothing: each sink that lacks it failed its last attempt, which
    `settle` turns into `abandoned`, counted."""
    held = held_outcomes(read, execution, settings["profiles_key_name"], max_attempts)
    decided: dict[str, dict[str, str]] = {}
    entries, eventbridge_of = [], []
    users: list[str] = []
    searches: list[dict[str, str]] = []
    objects = []
    for outcome in held:
        outcome_id, request, delivery = outcome["outcome_id"], outcome["request"], outcome["delivery"]
        mine = decided.setdefault(outcome_id, {})
        if outcome["spent"]:
            for sink in SINKS:  # compared as text: a status this release does not know is left as it is
                mine[sink] = SinkStatus.FAILED.value if delivery[sink] in LACKING else delivery[sink]
            continue
        for sink in SINKS:
            if not _lacks(delivery, sink):
                mine[sink] = delivery[sink]  # taken before (or final): never sent again
        if "eventbridge" not in mine:
            entries.append(
                {
                    "EventBusName": settings["event_bus"],
                    "Source": "incremental-analytics",
                    "DetailType": detail_type(request["outcome"]),
                    "Detail": json.dumps(request["outcome"], sort_keys=True, separators=(",", ":")),
                }
            )
            eventbridge_of.append(outcome_id)
        if "pinpoint" not in mine:
            if not settings["pinpoint_application_id"]:
                mine["pinpoint"] = SinkStatus.OFF.value
            elif request.get("endpoint_identity"):
                if request.get("endpoint_id") is None:
                    mine["pinpoint"] = SinkStatus.NO_ENDPOINT.value
            elif outcome["user_id"] not in users:
                users.append(outcome["user_id"])
        if "profiles" not in mine:
            kind = request["outcome"]["kind"]
            if not settings["profiles_domain"] or (kind == "reached" and not settings["profiles_object_type"]):
                mine["profiles"] = SinkStatus.OFF.value
            elif kind == "reached":
                objects.append(
                    {"outcome_id": outcome_id, "object": profile_object(request["outcome"], request["profile_search"])}
                )
            elif request["profile_search"] not in searches:
                searches.append(request["profile_search"])
    return {
        "held": [
            {key: outcome[key] for key in ("user_id", "outcome_id", "attempts")}
            | (
                {"kind": outcome["kind"], "request": {}}
                if outcome["spent"]
                else {"kind": outcome["request"]["outcome"]["kind"], "request": _pieces(outcome["request"])}
            )
            for outcome in held
        ],
        "decided": decided,
        "eventbridge": [
            {"entries": chunk, "outcomes": eventbridge_of[n * EVENTBRIDGE_ENTRIES_PER_REQUEST :][: len(chunk)]}
            for n, chunk in enumerate(_chunks(entries, EVENTBRIDGE_ENTRIES_PER_REQUEST))
        ],
        "pinpoint_users": users,
        "profile_searches": searches,
        "profile_objects": objects,
    }


def _pieces(request: Mapping[str, Any]) -> dict[str, Any]:
    """What the later steps need of a request (not the whole outcome, which EventBridge's entry carries)."""
    outcome = request["outcome"]
    pieces = {name: request[name] for name in ("endpoint_id", "endpoint_identity", "profile_search") if name in request}
    if outcome["kind"] == "reached":
        return pieces | {"pinpoint_event": pinpoint_event(outcome)}
    value = user_attribute(outcome)
    return pieces | {"user_attributes": {outcome["output"]: [value]}, "profile_attributes": {outcome["output"]: value}}


# -- 3. writes --------------------------------------------------------------------------------------------------


def _failed(answer: Mapping[str, Any]) -> bool:
    return "error" in answer


def writes(plan: Mapping[str, Any], first: Mapping[str, Any]) -> dict[str, Any]:
    """Once Pinpoint's GetUserEndpoints and Customer Profiles' SearchProfiles answered: each outcome's endpoint
    (the one its user's latest event named only if it is one of the user's own, else the user's first), the
    `UpdateEndpoint`s, the Pinpoint events in `PutEvents` requests, the `UpdateProfile`s; and the results these
    lookups already decide (`no_endpoint`, `no_profile`, or a failed lookup)."""
    endpoints_of: dict[str, list[str] | None] = {}  # user -> their endpoint ids; None: the lookup failed
    for user, answer in zip(plan["pinpoint_users"], first["pinpoint"], strict=True):
        items = ((answer.get("found") or {}).get("EndpointsResponse") or {}).get("Item") or []
        endpoints_of[user] = None if _failed(answer) else [str(item["Id"]) for item in items]
    profile_of: dict[tuple[str, str], str | None] = {}  # (key, value) -> profile id, "" none, None failed
    for search, answer in zip(plan["profile_searches"], first["profiles"], strict=True):
        items = (answer.get("found") or {}).get("Items") or []
        profile_of[(search["key_name"], search["value"])] = (
            None if _failed(answer) else (str(items[0]["ProfileId"]) if items else "")
        )
    decided: dict[str, dict[str, str]] = {key: dict(value) for key, value in plan["decided"].items()}
    update_endpoints, update_profiles = [], []
    events: list[tuple[str, str, dict[str, Any]]] = []
    for outcome in plan["held"]:
        outcome_id, request, mine = outcome["outcome_id"], outcome["request"], decided[outcome["outcome_id"]]
        if "pinpoint" not in mine:
            endpoint = _endpoint(outcome, endpoints_of)
            if endpoint is None:
                mine["pinpoint"] = SinkStatus.FAILED.value
            elif endpoint == "":
                mine["pinpoint"] = SinkStatus.NO_ENDPOINT.value
            elif outcome["kind"] == "reached":
                events.append((endpoint, outcome_id, request["pinpoint_event"]))
            else:
                user = {} if request.get("endpoint_identity") else {"UserId": outcome["user_id"]}
                update_endpoints.append(
                    {
                        "outcome_id": outcome_id,
                        "endpoint_id": endpoint,
                        # Only the user's attribute: nothing that changes the endpoint's channel or opt-out; an
                        # endpoint:<id> identity names no user id, so the endpoint keeps whatever user it has.
                        "request": {"User": {**user, "UserAttributes": request["user_attributes"]}},
                    }
                )
        if "profiles" not in mine and outcome["kind"] != "reached":
            search = request["profile_search"]
            profile = profile_of[(search["key_name"], search["value"])]
            if profile is None:
                mine["profiles"] = SinkStatus.FAILED.value
            elif profile == "":
                mine["profiles"] = SinkStatus.NO_PROFILE.value
            else:
                update_profiles.append(
                    {"outcome_id": outcome_id, "profile_id": profile, "attributes": request["profile_attributes"]}
                )
    return {
        "decided": decided,
        "update_endpoints": update_endpoints,
        "pinpoint_events": list(_event_requests(events)),
        "update_profiles": update_profiles,
    }


def _endpoint(outcome: Mapping[str, Any], endpoints_of: Mapping[str, list[str] | None]) -> str | None:
    """The endpoint to mark: "" when there is none, None when the lookup failed."""
    request = outcome["request"]
    if request.get("endpoint_identity"):
        return str(request["endpoint_id"])
    ids = endpoints_of[outcome["user_id"]]
    if ids is None:
        return None
    if not ids:
        return ""
    named = request.get("endpoint_id")
    # An event naming another user's endpoint must never move it: the named endpoint only if it is theirs.
    return str(named) if named in ids else ids[0]


def _event_requests(events: Sequence[tuple[str, str, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Pinpoint `PutEvents` requests of at most PINPOINT_EVENTS_PER_REQUEST events, several endpoints each; an
    endpoint's events keyed by outcome id, with no endpoint fields (nothing of the endpoint changes)."""
    for chunk in _chunks(events, PINPOINT_EVENTS_PER_REQUEST):
        batch: dict[str, dict[str, Any]] = {}
        for endpoint, outcome_id, event in chunk:
            batch.setdefault(endpoint, {"Endpoint": {}, "Events": {}})["Events"][outcome_id] = event
        yield {"BatchItem": batch, "outcomes": [[endpoint, outcome_id] for endpoint, outcome_id, _ in chunk]}


# -- 4. settle --------------------------------------------------------------------------------------------------


def _accepted(status: Any) -> bool:
    return status in (200, 202)


def settle(
    plan: Mapping[str, Any],
    wrote: Mapping[str, Any],
    first: Mapping[str, Any],
    second: Mapping[str, Any],
    read: Sequence[Mapping[str, Any]],
    *,
    table: str,
    execution: str,
    now: str,
    max_attempts: int,
) -> dict[str, Any]:
    """Every sink's result per held outcome; the items as they are put back (the hold released, each sink's
    state, out of the `undelivered` index once no sink lacks the outcome, `ABANDONED` once a sink gave up on
    its last attempt); and the deliveries abandoned, per sink, for the metric an alarm watches."""
    results: dict[str, dict[str, str]] = {key: dict(value) for key, value in wrote["decided"].items()}

    def mark(outcome_id: str, sink: str, ok: bool) -> None:
        results[outcome_id][sink] = SinkStatus.DELIVERED.value if ok else SinkStatus.FAILED.value

    for request, answer in zip(plan["eventbridge"], first["eventbridge"], strict=True):
        answered = answer.get("answer") or {}
        entries = answered.get("Entries") or []
        for index, outcome_id in enumerate(request["outcomes"]):
            # Each entry of PutEvents' answer matches the request's entry at its index; one with an ErrorCode
            # failed, whatever the others did.
            entry = entries[index] if index < len(entries) else {}
            mark(outcome_id, "eventbridge", not _failed(answer) and "EventId" in entry and "ErrorCode" not in entry)
    for item, answer in zip(plan["profile_objects"], first["objects"], strict=True):
        mark(item["outcome_id"], "profiles", not _failed(answer))
    for item, answer in zip(wrote["update_endpoints"], second["endpoints"], strict=True):
        mark(item["outcome_id"], "pinpoint", not _failed(answer))
    for request, answer in zip(wrote["pinpoint_events"], second["events"], strict=True):
        answered = ((answer.get("answer") or {}).get("EventsResponse") or {}).get("Results") or {}
        for endpoint, outcome_id in request["outcomes"]:
            # Per-item answers: the endpoint's and the event's status must both be 200 or 202.
            result = answered.get(endpoint) or {}
            event = (result.get("EventsItemResponse") or {}).get(outcome_id) or {}
            ok = (
                not _failed(answer)
                and _accepted((result.get("EndpointItemResponse") or {}).get("StatusCode"))
                and _accepted(event.get("StatusCode"))
            )
            mark(outcome_id, "pinpoint", ok)
    for item, answer in zip(wrote["update_profiles"], second["profiles"], strict=True):
        mark(item["outcome_id"], "profiles", not _failed(answer))

    stored = {(a["Item"]["user_id"]["S"], a["Item"]["outcome_id"]["S"]): a["Item"] for a in read if a.get("Item")}
    puts, abandoned, outcomes = [], dict.fromkeys(SINKS, 0), []
    for outcome in plan["held"]:
        statuses = results[outcome["outcome_id"]]
        last = outcome["attempts"] >= max_attempts
        for sink in SINKS:
            if statuses[sink] == SinkStatus.FAILED and last:
                statuses[sink] = SinkStatus.ABANDONED.value
                abandoned[sink] += 1
        item = dict(stored[(outcome["user_id"], outcome["outcome_id"])])
        held_at = item.pop("claimed_at", None)
        item.pop("claimed_by", None)  # the hold released
        if int(item["delivery_attempts"]["N"]) < outcome["attempts"]:  # claimed from the stream: counted here
            item["delivery_attempts"] = {"N": str(outcome["attempts"])}
            item["attempted_at"] = held_at or {"S": now}
        item["delivery"] = {"M": {sink: {"S": statuses[sink]} for sink in SINKS}}
        values = set(statuses.values())
        if SinkStatus.FAILED in values:
            state = "pending"  # the scheduled redelivery tries the failed sinks again after a backoff
        elif SinkStatus.ABANDONED in values:
            state = "abandoned"
            item["undelivered"] = {"S": "ABANDONED"}
            item["abandoned_at"] = {"S": now}
        else:
            state = "delivered"
            item.pop("undelivered", None)
            item["delivered_at"] = {"S": now}
        puts.append({"PutRequest": {"Item": item}})
        outcomes.append(
            {"outcome_id": outcome["outcome_id"], "attempt": outcome["attempts"], "state": state, "sinks": statuses}
        )
    return {
        "records": [{table: chunk} for chunk in _chunks(puts, WRITES_PER_BATCH)],
        "abandoned": [abandoned_metric(sink, count) for sink, count in abandoned.items() if count],
        "outcomes": outcomes,
        "execution": execution,
    }
