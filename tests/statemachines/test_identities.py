"""Identities through the real ASL (docs/events.md and 5): an `endpoint:<id>` identity is counted, then marked and fired
on its endpoint through the outbox's delivery; the `Identity` parameter reaches ParseRecords, which ignores unruled
system events before any user check; users sharing event ids are counted apart."""

from __future__ import annotations

import json
import time
from typing import Any

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import (
    PINPOINT_APPLICATION,
    PROFILES_DOMAIN,
    LocalProduct,
    seed_endpoint_identities,
    seed_profiles,
)
from tests.statemachines.expected import actual, expected

NOW_MS = int(time.time() * 1000)
CLICKS = Rule("clicks", RuleType.AGGREGATE, "_email.click", count=CountCondition(Operator.GREATER_OR_EQUAL, 2))
OPENS = Rule("opens", RuleType.AGGREGATE, "_email.open", count=CountCondition(Operator.GREATER_OR_EQUAL, 1), reset=True)


def email(event_type: str, endpoint_id: str, arrival_ms: int, link: str = "") -> dict[str, Any]:
    """A Pinpoint e-mail event as the guide shows them: the endpoint in client.client_id, the send time in
    event_timestamp, the event's own time in arrival_timestamp."""
    return {
        "event_type": event_type,
        "event_timestamp": NOW_MS - 600_000,
        "arrival_timestamp": arrival_ms,
        "application": {"app_id": "app"},
        "client": {"client_id": endpoint_id},
        "attributes": {"feedback": link or "opened"},
        "awsAccountId": "123456789012",
        "facets": {"email_channel": {"mail_event": {"click" if link else "open": {"link": link}}}},
    }


def _put(product: LocalProduct, documents: list[dict[str, Any]]) -> None:
    product.put_records(
        (str(doc.get("client", {}).get("client_id", "-")), json.dumps(doc).encode()) for doc in documents
    )


def _all_succeeded(report: Any) -> None:
    assert report.executions and {execution.status for execution in report.executions} == {"SUCCEEDED"}, [
        (execution.error, execution.cause) for execution in report.executions if execution.status != "SUCCEEDED"
    ]


def test_an_endpoint_identity_is_marked_and_fired_on_its_endpoint(aws: LocalAws, product: LocalProduct) -> None:
    endpoints: dict[str, str | None] = {"ep-1": None}
    seed_endpoint_identities(aws, endpoints)
    seed_profiles(aws, [], endpoints)
    product.put_rules([CLICKS, OPENS])
    _put(
        product,
        [
            email("_email.click", "ep-1", NOW_MS - 5000, "https://example.com/a"),
            email("_email.click", "ep-1", NOW_MS - 4000, "https://example.com/a"),  # the same link, clicked again
            email("_email.open", "ep-1", NOW_MS - 3000),
        ],
    )
    _all_succeeded(product.ingest())

    assert sorted((o["user_id"], o["rule_id"], o["kind"]) for o in product.outcomes()) == [
        ("endpoint:ep-1", "clicks", "qualified"),
        ("endpoint:ep-1", "opens", "reached"),
    ]
    assert product.counters()[("endpoint:ep-1", "clicks")].count == 2
    # Counting touched no sink: the outcomes leave through the outbox's stream, into DeliverOutcomes.
    assert [operation for operation, _ in aws.pinpoint.calls] == ["UpdateEndpoint"]  # the seeding
    _all_succeeded(product.deliver())
    # Addressed by the identity's own endpoint: no user's endpoints are looked up, none other is touched.
    assert "GetUserEndpoints" not in [operation for operation, _ in aws.pinpoint.calls]
    (marked,) = [params for operation, params in aws.pinpoint.calls if operation == "UpdateEndpoint"][1:]
    assert marked["EndpointId"] == "ep-1"
    assert marked["EndpointRequest"] == {"User": {"UserAttributes": {"trk__email.click": ["ready"]}}}
    endpoint = aws.client("pinpoint").get_endpoint(ApplicationId=PINPOINT_APPLICATION, EndpointId="ep-1")
    assert "UserId" not in endpoint["EndpointResponse"]["User"]
    assert endpoint["EndpointResponse"]["ChannelType"] == "EMAIL"
    (fired,) = product.fired_events()
    assert (fired["EndpointId"], fired["EventType"]) == ("ep-1", "trk__email.open")
    assert product.sink_attributes() == {
        "pinpoint": {"endpoint:ep-1": {"trk__email.click": "ready"}},
        "profiles": {"endpoint:ep-1": {"trk__email.click": "ready"}},
    }
    (reached,) = aws.profiles.domains[PROFILES_DOMAIN].objects
    assert json.loads(reached["Object"])["endpoint_id"] == "ep-1"
    profile = aws.profiles.domains[PROFILES_DOMAIN].profiles[reached["ProfileId"]]
    assert profile["Attributes"]["endpoint_id"] == "ep-1"  # the endpoint's own profile, not a new one
    (audit, _) = sorted(product.audit_items(), key=lambda item: item["rule_id"])
    assert audit["delivery"] == {"eventbridge": "delivered", "pinpoint": "delivered", "profiles": "delivered"}


def test_identity_user_rejects_what_names_no_user_and_still_ignores_unruled_system_events(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"Identity": "user"})
    product.put_rules([CLICKS])
    _put(
        product,
        [
            email("_email.click", "ep-1", NOW_MS - 5000, "https://example.com/a"),  # ruled: no user, rejected
            email("_email.delivered", "ep-1", NOW_MS - 4000),  # unruled: ignored before its user is looked for
        ],
    )
    report = product.ingest()
    # Nothing to count: the Pipe's enrichment quarantined one, ignored the other, and started no execution.
    assert report.nothing_to_deliver == 1 and report.executions == []
    assert [item["reason"] for item in product.quarantined()] == ["missing_user_id"]
    published = product.metrics("ParseRecordsFunction")
    assert (published["Records"], published["IgnoredRecords"], published["Rejected_missing_user_id"]) == (2, 1, 1)
    assert product.counters() == {}


def test_users_numbering_their_events_alike_are_counted_apart(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "7"})
    rule = Rule("taps", RuleType.AGGREGATE, "tap", count=CountCondition(Operator.GREATER_OR_EQUAL, 4), reset=True)
    events = [
        {"user_id": f"u{user}", "event_type": "tap", "event_id": str(n), "timestamp": NOW_MS - 60_000 + n}
        for n in range(1, 9)
        for user in range(3)
    ]
    product.put_rules([rule])
    product.put_events(events)
    _all_succeeded(product.ingest(redeliver=1.0, seed=3))
    assert actual(product) == expected([rule], events)
    assert {user: counter.cycle for (user, _), counter in product.counters().items()} == {"u0": 2, "u1": 2, "u2": 2}
    assert product.remembered() == 24
