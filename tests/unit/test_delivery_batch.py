"""One DeliverOutcomes attempt over a batch, shaped by pure steps (domain/delivery_batch.py): only the outcomes the
execution holds are sent, only to the sinks that lack them, batched within each API's limits, each answer paired
with its own outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest

from incremental_analytics.adapters.dynamodb_items import outbox_item
from incremental_analytics.domain import delivery_batch
from incremental_analytics.domain.delivery import delivery_item, request_of_item
from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local.cfn import read_template
from incremental_analytics_local.product import TEMPLATE
from tests.unit.helpers import first_outcome

ME = "arn:aws:states:us-east-1:1:express:deliver:me"
(UNDELIVERED_INDEX,) = read_template(TEMPLATE)["Resources"]["AuditTable"]["Properties"]["GlobalSecondaryIndexes"]
SETTINGS = {
    "event_bus": "bus",
    "pinpoint_application_id": "app",
    "profiles_domain": "domain",
    "profiles_key_name": "_profileId",
    "profiles_object_type": "Outcome",
}


def _item(
    user: str,
    kind: OutcomeKind = OutcomeKind.QUALIFIED,
    *,
    rule: str = "r",
    endpoint_id: str | None = None,
    holder: str | None = ME,
    attempts: int = 1,
    delivery: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An outbox item as TransactGetItems answers it once an execution claimed it."""
    rule_ = Rule(rule, RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0), reset=True)
    outcome = first_outcome(rule_, user, kind)
    request = delivery_item(outcome, endpoint_id=endpoint_id, profile_key="_profileId", profile_endpoint_key="ep")
    item = outbox_item(request, "2026-01-01T00:00:00.000Z", 4)
    item["delivery_attempts"] = {"N": str(attempts)}
    if holder:
        item["claimed_by"] = {"S": delivery_batch.holder(holder)}
    if delivery:
        item["delivery"] = {"M": {sink: {"S": status} for sink, status in delivery.items()}}
    return {"Item": item}


def _id(answer: dict[str, Any]) -> str:
    return str(answer["Item"]["outcome_id"]["S"])


def test_the_input_keys_are_the_streams_records_or_the_page_due_each_once() -> None:
    record = {"eventName": "INSERT", "dynamodb": {"Keys": {"user_id": {"S": "u"}, "outcome_id": {"S": "o"}}}}
    assert delivery_batch.input_keys([record, record]) == [
        {"user_id": "u", "outcome_id": "o", "attempts": 0, "stale_before": delivery_batch.NEVER_STALE}
    ]
    page = {
        "outcomes": [{"user_id": "u", "outcome_id": "o", "attempts": 3, "stale_before": "2026-01-01T00:00:00.000Z"}]
    }
    assert delivery_batch.input_keys(page) == page["outcomes"]


def test_each_claim_is_a_conditional_update_of_its_own_for_this_execution() -> None:
    page = {
        "outcomes": [{"user_id": f"u{n}", "outcome_id": f"o{n}", "attempts": n, "stale_before": "T"} for n in range(3)]
    }
    shaped = delivery_batch.claims(page, table="audit", execution=ME, now="N")
    assert shaped["count"] == 3 and len(shaped["claims"]) == len(shaped["reads"]) == 3
    claim = shaped["claims"][2]
    assert claim["Statement"].startswith('UPDATE "audit" SET "claimed_by" = ?')
    assert 'begins_with("undelivered", ?)' in claim["Statement"]
    # this execution's mark, when it holds it, when the attempt began, one attempt more, the key, pending, the
    # attempts it had, the staleness bound (of a hold, and of a hold timed by its attempt)
    assert claim["Parameters"] == [
        {"S": delivery_batch.holder(ME)},
        {"S": "N"},
        {"S": "N"},
        {"N": "3"},
        {"S": "u2"},
        {"S": "o2"},
        {"S": "P"},
        {"N": "2"},
        {"S": "T"},
        {"S": "T"},
    ]


def test_a_claim_from_the_stream_sets_only_the_hold_which_the_index_does_not_project() -> None:
    record = {"eventName": "INSERT", "dynamodb": {"Keys": {"user_id": {"S": "u"}, "outcome_id": {"S": "o"}}}}
    (claim,) = delivery_batch.claims([record], table="audit", execution=ME, now="N")["claims"]
    assert claim["Statement"] == (
        'UPDATE "audit" SET "claimed_by" = ? SET "claimed_at" = ? WHERE "user_id" = ? AND "outcome_id" = ? '
        'AND begins_with("undelivered", ?) AND "delivery_attempts" = ? AND "claimed_by" IS MISSING'
    )
    assert claim["Parameters"] == [
        {"S": delivery_batch.holder(ME)},
        {"S": "N"},
        {"S": "u"},
        {"S": "o"},
        {"S": "P"},
        {"N": "0"},
    ]
    projected = set(UNDELIVERED_INDEX["Projection"]["NonKeyAttributes"]) | {"undelivered", "committed_at"}
    assert not projected & {"claimed_by", "claimed_at"}


def test_too_many_outcomes_for_one_claim_request_are_refused() -> None:
    too_many = {
        "outcomes": [{"user_id": "u", "outcome_id": f"o{n}", "attempts": 0, "stale_before": "T"} for n in range(26)]
    }
    with pytest.raises(ValueError, match="at most 25"):
        delivery_batch.claims(too_many, table="audit", execution=ME, now="N")


def test_an_outcome_committed_before_the_outbox_kept_it_alone_is_still_delivered() -> None:
    old = _item("ann", OutcomeKind.REACHED)
    request = request_of_item(old["Item"])
    del request["profile_search"]  # what a user's request lacked, besides pieces now derived when sent
    request |= {"kind": "reached", "detail_type": "TargetReached", "pinpoint_event": {}, "profile_object": "{}"}
    old["Item"]["request"] = {"S": json.dumps(request)}
    plan = delivery_batch.sends([old], execution=ME, settings=SETTINGS)
    assert json.loads(plan["profile_objects"][0]["object"])["_profileId"] == "ann"
    assert plan["pinpoint_users"] == ["ann"] and plan["eventbridge"][0]["entries"][0]["DetailType"] == "TargetReached"


def test_only_the_outcomes_this_execution_holds_are_sent() -> None:
    read = [_item("ann"), _item("bob", holder="another execution"), {}]
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    assert [outcome["user_id"] for outcome in plan["held"]] == ["ann"]
    assert plan["pinpoint_users"] == ["ann"]


def test_event_bridge_entries_go_ten_a_request_only_to_outcomes_that_lack_them() -> None:
    read = [_item(f"u{n:02}") for n in range(12)]
    read.append(_item("has-it", delivery={"eventbridge": "delivered", "pinpoint": "failed", "profiles": "delivered"}))
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    assert [len(request["entries"]) for request in plan["eventbridge"]] == [10, 2]
    sent = [outcome_id for request in plan["eventbridge"] for outcome_id in request["outcomes"]]
    assert sent == [_id(answer) for answer in read[:12]]
    entry = plan["eventbridge"][0]["entries"][0]
    assert entry["DetailType"] == "UserQualified" and json.loads(entry["Detail"])["user_id"] == "u00"
    # The outcome EventBridge had is only tried again where it lacks: Pinpoint, not Customer Profiles.
    assert plan["decided"][_id(read[12])] == {"eventbridge": "delivered", "profiles": "delivered"}
    assert "has-it" in plan["pinpoint_users"] and len(plan["profile_searches"]) == 12


def test_each_user_is_looked_up_once_and_an_endpoint_identity_not_at_all() -> None:
    read = [
        _item("ann", rule="a"),
        _item("ann", rule="b"),
        _item("ann", OutcomeKind.REACHED, rule="c"),
        _item("endpoint:e-1"),
    ]
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    assert plan["pinpoint_users"] == ["ann"]
    assert plan["profile_searches"] == [
        {"key_name": "_profileId", "value": "ann"},
        {"key_name": "ep", "value": "e-1"},
    ]
    assert [json.loads(o["object"])["_profileId"] for o in plan["profile_objects"]] == ["ann"]


def test_sinks_not_configured_are_off() -> None:
    settings = {**SETTINGS, "pinpoint_application_id": "", "profiles_object_type": ""}
    read = [_item("ann", OutcomeKind.REACHED)]
    plan = delivery_batch.sends(read, execution=ME, settings=settings)
    assert plan["decided"][_id(read[0])] == {"pinpoint": "off", "profiles": "off"}
    assert plan["pinpoint_users"] == [] and plan["profile_objects"] == []


def _lookups(plan: dict[str, Any], endpoints: dict[str, Any], profiles: dict[str, Any]) -> dict[str, Any]:
    """The first calls' answers as the workflow gathers them: a found answer, nothing found, or an error."""

    def endpoint_answer(user: str) -> dict[str, Any]:
        found = endpoints[user]
        if found == "error":
            return {"error": "Pinpoint.InternalServerErrorException"}
        return {"found": {"EndpointsResponse": {"Item": [{"Id": e} for e in found]}} if found else {}}

    def profile_answer(value: str) -> dict[str, Any]:
        found = profiles[value]
        if found == "error":
            return {"error": "CustomerProfiles.InternalServerException"}
        return {"found": {"Items": [{"ProfileId": found}] if found else []}}

    return {
        "eventbridge": [{"answer": {"Entries": [{"EventId": "x"}] * len(r["entries"])}} for r in plan["eventbridge"]],
        "pinpoint": [endpoint_answer(user) for user in plan["pinpoint_users"]],
        "profiles": [profile_answer(search["value"]) for search in plan["profile_searches"]],
        "objects": [{"put": True} for _ in plan["profile_objects"]],
    }


def test_an_event_naming_another_users_endpoint_never_moves_it() -> None:
    read = [
        _item("mallory", endpoint_id="endpoint-victim"),
        _item("ann", endpoint_id="ann-phone"),
        _item("nobody", endpoint_id="endpoint-victim"),
        _item("flaky"),
    ]
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    first = _lookups(
        plan,
        {"mallory": ["endpoint-mallory"], "ann": ["ann-mail", "ann-phone"], "nobody": [], "flaky": "error"},
        {"mallory": "p1", "ann": "p2", "nobody": "", "flaky": "error"},
    )
    wrote = delivery_batch.writes(plan, first)
    marked = {update["endpoint_id"] for update in wrote["update_endpoints"]}
    assert marked == {"endpoint-mallory", "ann-phone"}  # the named endpoint only when it is the user's own
    assert wrote["update_endpoints"][0]["request"] == {
        "User": {"UserId": "mallory", "UserAttributes": {"trk_x": ["ready"]}}
    }
    decided = {outcome_id: wrote["decided"][outcome_id] for outcome_id in map(_id, read[2:])}
    assert decided == {
        _id(read[2]): {"pinpoint": "no_endpoint", "profiles": "no_profile"},
        _id(read[3]): {"pinpoint": "failed", "profiles": "failed"},
    }
    assert [update["profile_id"] for update in wrote["update_profiles"]] == ["p1", "p2"]


def test_an_endpoint_identity_marks_its_endpoint_without_a_user_id() -> None:
    read = [_item("endpoint:e-1")]
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    wrote = delivery_batch.writes(plan, _lookups(plan, {}, {"e-1": "p"}))
    (update,) = wrote["update_endpoints"]
    assert update["endpoint_id"] == "e-1" and update["request"] == {"User": {"UserAttributes": {"trk_x": ["ready"]}}}


def test_pinpoint_events_go_a_hundred_a_request_several_endpoints_each() -> None:
    read = [_item(f"u{n:03}", OutcomeKind.REACHED) for n in range(101)]
    read.append(_item("u000", OutcomeKind.REACHED, rule="another"))  # a second event for one endpoint
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS)
    endpoints = {user: [f"endpoint-{user}"] for user in plan["pinpoint_users"]}
    wrote = delivery_batch.writes(plan, _lookups(plan, endpoints, {}))
    requests = wrote["pinpoint_events"]
    assert [sum(len(item["Events"]) for item in r["BatchItem"].values()) for r in requests] == [100, 2]
    assert all(item["Endpoint"] == {} for r in requests for item in r["BatchItem"].values())  # nothing else moves
    assert len(requests[1]["BatchItem"]["endpoint-u000"]["Events"]) == 1
    assert len(requests[0]["BatchItem"]["endpoint-u000"]["Events"]) == 1


def _settle(read: list[dict[str, Any]], first: dict[str, Any], second: dict[str, Any], **kw: Any) -> dict[str, Any]:
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS, max_attempts=kw.get("max", 10))
    wrote = delivery_batch.writes(plan, first(plan) if callable(first) else first)
    answers = second(wrote) if callable(second) else second
    gathered = first(plan) if callable(first) else first
    return delivery_batch.settle(
        plan, wrote, gathered, answers, read, table="audit", execution=ME, now="NOW", max_attempts=kw.get("max", 10)
    )


def _all_accepted(wrote: dict[str, Any]) -> dict[str, Any]:
    return {
        "endpoints": [{"put": True} for _ in wrote["update_endpoints"]],
        "events": [
            {
                "answer": {
                    "EventsResponse": {
                        "Results": {
                            endpoint: {
                                "EndpointItemResponse": {"StatusCode": 202},
                                "EventsItemResponse": {o: {"StatusCode": 202} for o in item["Events"]},
                            }
                            for endpoint, item in r["BatchItem"].items()
                        }
                    }
                }
            }
            for r in wrote["pinpoint_events"]
        ],
        "profiles": [{"put": True} for _ in wrote["update_profiles"]],
    }


def test_one_failed_event_bridge_entry_fails_its_outcome_alone() -> None:
    read = [_item("ann"), _item("bob"), _item("cyd")]

    def first(plan: dict[str, Any]) -> dict[str, Any]:
        answers = _lookups(plan, {u: [f"e-{u}"] for u in ("ann", "bob", "cyd")}, {u: u for u in ("ann", "bob", "cyd")})
        entries = [{"EventId": "1"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}, {"EventId": "3"}]
        answers["eventbridge"] = [{"answer": {"Entries": entries}}]
        return answers

    settled = _settle(read, first, _all_accepted)
    states = {o["outcome_id"]: (o["state"], o["sinks"]["eventbridge"]) for o in settled["outcomes"]}
    assert states == {
        _id(read[0]): ("delivered", "delivered"),
        _id(read[1]): ("pending", "failed"),
        _id(read[2]): ("delivered", "delivered"),
    }
    (chunk,) = settled["records"]
    puts = [put["PutRequest"]["Item"] for put in chunk["audit"]]
    assert all("claimed_by" not in item for item in puts)  # the hold is released
    assert ["undelivered" in item for item in puts] == [False, True, False]
    assert puts[1]["delivery"]["M"]["pinpoint"] == {"S": "delivered"} and settled["abandoned"] == []


def test_an_attempt_claimed_from_the_stream_is_counted_when_it_is_recorded() -> None:
    read = [_item("ann", attempts=0), _item("bob", attempts=0), _item("cyd", attempts=2)]
    for answer in read[:2]:
        answer["Item"]["claimed_at"] = {"S": "HELD"}

    def first(plan: dict[str, Any]) -> dict[str, Any]:
        return _lookups(plan, {"ann": ["e-ann"], "bob": "error", "cyd": "error"}, {u: u for u in ("ann", "bob", "cyd")})

    settled = _settle(read, first, _all_accepted, max=3)
    assert [(o["attempt"], o["state"]) for o in settled["outcomes"]] == [
        (1, "delivered"),
        (1, "pending"),
        (2, "pending"),
    ]
    puts = [put["PutRequest"]["Item"] for put in settled["records"][0]["audit"]]
    assert [item["delivery_attempts"] for item in puts] == [{"N": "1"}, {"N": "1"}, {"N": "2"}]
    assert puts[1]["attempted_at"] == {"S": "HELD"}  # the backoff runs from when the stream's attempt began
    assert "attempted_at" not in puts[2]  # a redelivery's claim wrote its own (this test's item has none)
    assert all("claimed_by" not in item and "claimed_at" not in item for item in puts)


def test_an_outcome_claimed_beyond_its_attempts_is_given_up_on_unsent_and_unread() -> None:
    """Every execution that held it died before its record: the claim beyond MaxDeliveryAttempts sends it nowhere
    and does not read its request (what made them die), and gives up on each sink that lacks it (counted); the
    claim that gave up is counted as every claim of the redelivery is."""
    spent = _item("ann", attempts=4, delivery={"eventbridge": "delivered", "pinpoint": "failed", "profiles": "pending"})
    spent["Item"]["request"] = {"S": "{}"}  # unreadable
    read = [spent, _item("bob", attempts=3)]
    plan = delivery_batch.sends(read, execution=ME, settings=SETTINGS, max_attempts=3)
    (ann_id, bob_id) = (_id(answer) for answer in read)
    assert plan["decided"][ann_id] == {"eventbridge": "delivered", "pinpoint": "failed", "profiles": "failed"}
    assert [len(request["entries"]) for request in plan["eventbridge"]] == [1]  # bob's alone
    assert plan["pinpoint_users"] == ["bob"] and [s["value"] for s in plan["profile_searches"]] == ["bob"]

    def first(plan: dict[str, Any]) -> dict[str, Any]:
        return _lookups(plan, {"bob": ["e-bob"]}, {"bob": "bob"})

    settled = _settle(read, first, _all_accepted, max=3)
    assert [(o["outcome_id"], o["attempt"], o["state"]) for o in settled["outcomes"]] == [
        (ann_id, 4, "abandoned"),
        (bob_id, 3, "delivered"),
    ]
    ann = settled["records"][0]["audit"][0]["PutRequest"]["Item"]
    assert ann["delivery_attempts"] == {"N": "4"} and ann["undelivered"] == {"S": "ABANDONED"}
    assert ann["delivery"]["M"] == {
        "eventbridge": {"S": "delivered"},
        "pinpoint": {"S": "abandoned"},
        "profiles": {"S": "abandoned"},
    }
    assert "claimed_by" not in ann
    assert {m["Dimensions"][1]["Value"]: m["Value"] for m in settled["abandoned"]} == {"pinpoint": 1, "profiles": 1}
    # Without the limit (a definition older than the function), nothing is spent.
    unlimited = delivery_batch.held_outcomes([_item("bob", attempts=30)], ME, "_profileId")
    assert [outcome["spent"] for outcome in unlimited] == [False]


def test_a_failed_pinpoint_event_fails_its_outcome_alone() -> None:
    read = [_item("ann", OutcomeKind.REACHED), _item("bob", OutcomeKind.REACHED)]

    def first(plan: dict[str, Any]) -> dict[str, Any]:
        return _lookups(plan, {"ann": ["e-ann"], "bob": ["e-bob"]}, {})

    def second(wrote: dict[str, Any]) -> dict[str, Any]:
        answers = _all_accepted(wrote)
        results = answers["events"][0]["answer"]["EventsResponse"]["Results"]
        (event,) = results["e-bob"]["EventsItemResponse"]
        results["e-bob"]["EventsItemResponse"][event] = {"StatusCode": 400, "Message": "Event rejected"}
        return answers

    settled = _settle(read, first, second)
    assert [o["sinks"]["pinpoint"] for o in settled["outcomes"]] == ["delivered", "failed"]


def test_the_last_allowed_attempt_abandons_the_failing_sinks_and_counts_them() -> None:
    read = [_item("ann", attempts=3), _item("bob", attempts=2)]

    def first(plan: dict[str, Any]) -> dict[str, Any]:
        return _lookups(plan, {"ann": "error", "bob": "error"}, {"ann": "p", "bob": "p"})

    settled = _settle(read, first, _all_accepted, max=3)
    assert [(o["state"], o["sinks"]["pinpoint"]) for o in settled["outcomes"]] == [
        ("abandoned", "abandoned"),
        ("pending", "failed"),
    ]
    assert settled["abandoned"] == [delivery_batch.abandoned_metric("pinpoint", 1)]
    puts = [put["PutRequest"]["Item"] for put in settled["records"][0]["audit"]]
    assert puts[0]["undelivered"] == {"S": "ABANDONED"} and puts[0]["abandoned_at"] == {"S": "NOW"}


def test_records_go_twenty_five_a_request() -> None:
    read = [_item(f"u{n:02}", OutcomeKind.REACHED) for n in range(30)]
    settings_without_sinks = {**SETTINGS, "pinpoint_application_id": "", "profiles_domain": ""}
    plan = delivery_batch.sends(read, execution=ME, settings=settings_without_sinks)
    first = {
        "eventbridge": [{"answer": {"Entries": [{"EventId": "x"}] * len(r["entries"])}} for r in plan["eventbridge"]],
        "pinpoint": [],
        "profiles": [],
        "objects": [],
    }
    wrote = delivery_batch.writes(plan, first)
    settled = delivery_batch.settle(
        plan, wrote, first, _all_accepted(wrote), read, table="t", execution=ME, now="N", max_attempts=10
    )
    assert [len(chunk["t"]) for chunk in settled["records"]] == [25, 5]
    assert {o["state"] for o in settled["outcomes"]} == {"delivered"}
