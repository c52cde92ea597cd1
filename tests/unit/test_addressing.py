"""Whom the sinks address (docs/delivery.md):
a user id by its user, an `endpoint:<id>` identity by that endpoint; the keys
that carry identities and event ids stay within DynamoDB's limits; the `Identity` setting."""

from __future__ import annotations

import json

import pytest

from incremental_analytics.adapters.dynamodb_items import claim_key, timeseries_events, timeseries_items
from incremental_analytics.domain.delivery import delivery_item, profile_object, user_attribute
from incremental_analytics.domain.events import Event, IdentityMode
from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics.settings import Settings, SettingsError
from tests.unit.helpers import ENVIRONMENT, first_outcome

RULE = Rule("r", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0), reset=True)


def _delivery(identity: str, kind: OutcomeKind, endpoint_id: str | None = "named-by-an-event") -> dict[str, object]:
    outcome = first_outcome(RULE, identity, kind)
    return delivery_item(outcome, endpoint_id=endpoint_id, profile_key="_profileId", profile_endpoint_key="ep")


def test_a_user_is_addressed_by_the_endpoint_its_event_named_and_its_profile_key() -> None:
    item = _delivery("u1", OutcomeKind.QUALIFIED)
    assert item["endpoint_id"] == "named-by-an-event"
    assert "endpoint_identity" not in item and item["profile_search"] == {"key_name": "_profileId", "value": "u1"}
    assert user_attribute(item["outcome"]) == "ready"
    reached = _delivery("u1", OutcomeKind.REACHED)
    owner = json.loads(profile_object(reached["outcome"], reached["profile_search"]))
    assert owner["_profileId"] == "u1"


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_an_endpoint_identity_is_addressed_by_its_endpoint(kind: OutcomeKind) -> None:
    item = _delivery("endpoint:e-42", kind)
    assert item["endpoint_id"] == "e-42"  # never the endpoint some event named
    assert item["endpoint_identity"] is True
    assert item["profile_search"] == {"key_name": "ep", "value": "e-42"}
    assert item["outcome"]["user_id"] == "endpoint:e-42"  # the outcome keeps the identity
    if kind is OutcomeKind.REACHED:
        owner = json.loads(profile_object(item["outcome"], item["profile_search"]))
        assert owner["ep"] == "e-42" and "_profileId" not in owner


def test_an_endpoint_id_unfit_for_the_workflows_json_is_not_addressed() -> None:
    assert _delivery('endpoint:e"}', OutcomeKind.QUALIFIED)["endpoint_id"] is None


def test_anonymous_identities_are_user_ids_to_the_sinks() -> None:
    item = _delivery("anonymous:a1", OutcomeKind.QUALIFIED, endpoint_id=None)
    assert item["endpoint_id"] is None and "endpoint_identity" not in item
    assert item["profile_search"] == {"key_name": "_profileId", "value": "anonymous:a1"}


def test_a_long_event_id_is_claimed_by_its_hash_within_the_sort_key_limit() -> None:
    short = claim_key("u", "rule", "0123456789abcdef", "e" * 256)
    assert short["sk"]["S"].endswith("#" + "e" * 256)
    wide = claim_key("u" * 256, "r" * 64, "0123456789abcdef", "€" * 256)  # 768 bytes of id
    assert len(wide["sk"]["S"].encode()) <= 1024 and len(wide["pk"]["S"].encode()) <= 2048
    assert wide != claim_key("u" * 256, "r" * 64, "0123456789abcdef", "€" * 255 + "e")


def test_the_time_series_keeps_users_sharing_an_id_apart() -> None:
    users = ["ann", "bob", "€" * 256]
    (item,) = timeseries_items([Event("1", user, "x", 1_600_000_000_000) for user in users], shards=1, ttl_seconds=60)
    assert sorted((event.user_id, event.event_id) for event in timeseries_events(item)) == [(u, "1") for u in users]
    assert len(item["sk"]["S"].encode()) < 1024


def test_the_time_series_setting() -> None:
    assert Settings.from_environment(ENVIRONMENT).timeseries_for_all_events is True  # the stronger guarantee
    assert (
        Settings.from_environment({**ENVIRONMENT, "TIMESERIES_FOR_ALL_EVENTS": "false"}).timeseries_for_all_events
        is False
    )
    with pytest.raises(SettingsError, match="TIMESERIES_FOR_ALL_EVENTS must be true or false"):
        Settings.from_environment({**ENVIRONMENT, "TIMESERIES_FOR_ALL_EVENTS": "yes"})


def test_the_identity_setting() -> None:
    assert Settings.from_environment(ENVIRONMENT).identity is IdentityMode.USER_OR_ENDPOINT
    assert Settings.from_environment({**ENVIRONMENT, "IDENTITY": "user"}).identity is IdentityMode.USER
    with pytest.raises(SettingsError, match="IDENTITY must be one of user-or-endpoint, user"):
        Settings.from_environment({**ENVIRONMENT, "IDENTITY": "everyone"})
    assert (
        Settings.from_environment({**ENVIRONMENT, "PROFILES_ENDPOINT_KEY_NAME": "pe"}).profiles_endpoint_key_name
        == "pe"
    )
