"""Every example record of the AWS Pinpoint Developer Guide's event-stream pages and of the Segment Spec, read as
docs/events.md says: counted (for whom, when, with what), ignored, or rejected (tests/fixtures/*/README.md names
each record's page)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from incremental_analytics.domain.events import (
    Event,
    IdentityMode,
    Ignored,
    IgnoreReason,
    Normalised,
    Rejected,
    RejectReason,
    normalise,
)
from incremental_analytics.domain.rules import epoch_ms
from tests.conftest import FIXTURES

NOW_MS = epoch_ms(dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
APP_ID = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"


def unwrapped(text: str) -> str:
    """The guide's pages wrap a long line with a `↳` continuation mark; the record is the line unwrapped."""
    return re.sub(r"\n\s*↳", "", text)


def record(name: str) -> bytes:
    return unwrapped((FIXTURES / name).read_text(encoding="utf-8")).encode()


@dataclass(frozen=True)
class Counted:
    identity: str
    timestamp_ms: int
    event_type: str
    attributes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Decimal] = field(default_factory=dict)
    endpoint_id: str | None = None
    event_id: str | None = None  # a given id; None: derived (docs/events.md)


def _outcome(result: Normalised) -> Counted | Ignored | RejectReason:
    if isinstance(result, Rejected):
        return result.reason
    if isinstance(result, Ignored):
        return result
    return Counted(
        result.user_id,
        result.timestamp_ms,
        result.event_type,
        dict(result.attributes),
        dict(result.metrics),
        result.endpoint_id,
        result.event_id if not re.fullmatch(r"[0-9a-f]{32}", result.event_id) else None,
    )


EMAIL_SENT_MS = 1564618621380
SEGMENT_2015_02_23 = epoch_ms(dt.datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=dt.UTC))

# (fixture, what its event type is when no rule names it, what it is when a rule names its event type,
#  and the same with the Identity parameter set to `user`)
CASES: list[tuple[str, object, object, object]] = [
    (
        "pinpoint/app_session_stop.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_session.stop"),
        Counted(
            "endpoint:m3n4o5p6-a1b2-c3d4-e5f6-g7h8i9j0k1l2",
            1487973802507,
            "_session.stop",
            endpoint_id="m3n4o5p6-a1b2-c3d4-e5f6-g7h8i9j0k1l2",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "pinpoint/email_send.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_email.send"),
        Counted(
            "endpoint:9a311b17-6f8e-4093-be61-4d0bbexample",
            EMAIL_SENT_MS,  # the send is the one e-mail event whose event_timestamp is its time
            "_email.send",
            {"feedback": "received"},
            endpoint_id="9a311b17-6f8e-4093-be61-4d0bbexample",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "pinpoint/email_delivered.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_email.delivered"),
        Counted(
            "endpoint:e9a3000d-daa2-40dc-ac47-1cd34example",
            1564618622690,
            "_email.delivered",
            {"feedback": "delivered"},
            endpoint_id="e9a3000d-daa2-40dc-ac47-1cd34example",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "pinpoint/email_click.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_email.click"),
        Counted(
            "endpoint:49c1413e-a69c-46dc-b1c4-6470eexample",
            1564618713751,
            "_email.click",
            {"feedback": "https://aws.amazon.com/pinpoint/"},
            endpoint_id="49c1413e-a69c-46dc-b1c4-6470eexample",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "pinpoint/email_open.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_email.open"),
        Counted(
            "endpoint:8dc1f651-b3ec-46fc-9b67-2a050example",
            1564618712316,
            "_email.open",
            {"feedback": "opened"},
            endpoint_id="8dc1f651-b3ec-46fc-9b67-2a050example",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        # client.client_id is the account, not an endpoint: the record names nobody
        "pinpoint/sms_success.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_SMS.SUCCESS"),
        RejectReason.MISSING_USER_ID,
        RejectReason.MISSING_USER_ID,
    ),
    (
        # the endpoint's JSON text has an empty User: the endpoint is client.client_id
        "pinpoint/campaign_send.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_campaign.send"),
        Counted(
            "endpoint:d8dcf7c5-e81a-48ae-8313-f540cexample",
            1562109497426,
            "_campaign.send",
            {
                "treatment_id": "0",
                "campaign_activity_id": "5473285727f04865bc673e527example",
                "delivery_type": "GCM",
                "campaign_id": "4f8d6097c2e8400fa3081d875example",
                "campaign_send_status": "SUCCESS",
            },
            endpoint_id="d8dcf7c5-e81a-48ae-8313-f540cexample",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "pinpoint/journey_send.json",
        Ignored(IgnoreReason.SYSTEM_EVENT, "_journey.send"),
        Counted(
            "endpoint:d8dcf7c5-e81a-48ae-8313-f540cexample",
            1572989078843,
            "_journey.send",
            {
                "journey_run_id": "edc9a0b577164d1daf72ebd15example",
                "journey_send_status": "SUCCESS",
                "journey_id": "546401670c5547b08811ac6a9example",
                "journey_activity_id": "0yKexample",
                "journey_activity_type": "EMAIL",
            },
            endpoint_id="d8dcf7c5-e81a-48ae-8313-f540cexample",
        ),
        RejectReason.MISSING_USER_ID,
    ),
    (
        "samples/pinpoint_app_event.json",
        Counted(
            "user-0001",
            1611849600123,
            "purchase",
            {"product": "table", "pagename": "checkout"},
            {"price": Decimal("189.99")},
            endpoint_id="example-endpoint-1",
        ),
        None,  # the same: no rule needs to name a non-system event
        None,
    ),
    (
        "segment/track.json",
        Counted(
            "AiUGstSDIg",
            epoch_ms(dt.datetime(2015, 12, 12, 19, 11, 1, 249000, tzinfo=dt.UTC)),  # `timestamp`, not the original
            "Course Clicked",
            {"title": "Intro to Analytics"},
            event_id="ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
        ),
        None,
        None,
    ),
    (
        "segment/page.json",
        Counted(
            "97980cfea0067",
            SEGMENT_2015_02_23,
            "page",
            {"title": "Welcome | Initech", "url": "http://www.example.com", "name": "Home"},
            event_id="022bb90c-bbac-11e4-8dfc-aa07a5b093db",
        ),
        None,
        None,
    ),
    (
        "segment/screen.json",
        Counted(
            "97980cfea0067",
            SEGMENT_2015_02_23,
            "screen",
            {"variation": "blue signup button", "name": "Home"},
            event_id="022bb90c-bbac-11e4-8dfc-aa07a5b093db",
        ),
        None,
        None,
    ),
    (
        "segment/identify.json",
        Ignored(IgnoreReason.NOT_AN_EVENT, "identify"),
        None,
        None,
    ),
]


@pytest.mark.parametrize(("name", "unruled", "ruled", "user_mode"), CASES, ids=[case[0] for case in CASES])
def test_every_example_record(name: str, unruled: object, ruled: object, user_mode: object) -> None:
    data = record(name)
    streamed = _outcome(normalise(data, now_ms=NOW_MS))
    assert streamed == unruled
    event_type = unruled.event_type if isinstance(unruled, Counted | Ignored) else ""
    named = (event_type,)
    assert _outcome(normalise(data, now_ms=NOW_MS, ruled_system_events=named)) == (ruled or unruled)
    in_user_mode = normalise(data, now_ms=NOW_MS, ruled_system_events=named, identity=IdentityMode.USER)
    assert _outcome(in_user_mode) == (user_mode or ruled or unruled)


def test_the_campaign_page_prints_its_record_wrapped_which_is_not_json() -> None:
    text = (FIXTURES / "pinpoint/campaign_send.json").read_text(encoding="utf-8")
    assert "↳" in text
    rejected = normalise(text.encode(), now_ms=NOW_MS, ruled_system_events=("_campaign.send",))
    assert isinstance(rejected, Rejected) and rejected.reason is RejectReason.NOT_JSON


def test_every_fixture_has_a_case() -> None:
    files = {f"{path.parent.name}/{path.name}" for folder in ("pinpoint", "segment") for path in _jsons(folder)}
    assert files <= {case[0] for case in CASES}


def _jsons(folder: str) -> list[Path]:
    return sorted((FIXTURES / folder).glob("*.json"))


def test_the_email_events_of_one_message_are_four_events_of_their_endpoints() -> None:
    ruled = ("_email.send", "_email.delivered", "_email.click", "_email.open")
    names = ("email_send", "email_delivered", "email_click", "email_open")
    events = [normalise(record(f"pinpoint/{n}.json"), now_ms=NOW_MS, ruled_system_events=ruled) for n in names]
    assert all(isinstance(event, Event) for event in events)
    assert len({event.event_id for event in events if isinstance(event, Event)}) == 4
    assert {event.app_id for event in events if isinstance(event, Event)} == {APP_ID}


# -- records the guide shows no example of, built from the fields it documents ------------------------------------


def test_a_campaign_record_with_the_user_in_its_endpoint_text_and_a_null_attribute() -> None:
    """Real campaign records carry `"campaign_type": null` and, for endpoints with a user, the user in the
    endpoint's JSON text."""
    data = b"""{"event_type": "_campaign.send", "event_timestamp": 1592401347688, "arrival_timestamp": 1592401348004,
      "application": {"app_id": "app"}, "client": {"client_id": "email-a"},
      "attributes": {"campaign_send_status": "SUCCESS", "campaign_type": null, "campaign_id": "c1"},
      "client_context": {"custom": {"endpoint":
        "{\\"ChannelType\\":\\"EMAIL\\",\\"User\\":{\\"UserId\\":\\"user-a\\",\\"UserAttributes\\":{}}}"}},
      "awsAccountId": "123456789012"}"""
    event = normalise(data, now_ms=NOW_MS, ruled_system_events=("_campaign.send",), identity=IdentityMode.USER)
    assert isinstance(event, Event)
    assert (event.user_id, event.endpoint_id) == ("user-a", "email-a")
    assert event.attributes == {"campaign_send_status": "SUCCESS", "campaign_id": "c1"}


@pytest.mark.parametrize(
    ("event_type", "fields", "identity"),
    [
        # push: an opened notification carries the endpoint record, whose user may be empty
        ("_campaign.opened_notification", '"endpoint": {"ChannelType": "GCM", "Id": "gcm-a"}', "endpoint:gcm-a"),
        ("_campaign.opened_notification", '"endpoint": {"Id": "gcm-a", "User": {"UserId": "u-7"}}', "u-7"),
        # in-app messages are app events of the SDK, with the endpoint's client id
        ("_inapp.message_displayed", '"client": {"client_id": "c-9"}', "endpoint:c-9"),
        # voice, like SMS, carries the account where the endpoint would be: nobody to count it for
        ("_voice.success", '"client": {"client_id": "123456789012"}, "awsAccountId": "123456789012"', None),
    ],
)
def test_push_in_app_and_voice_records(event_type: str, fields: str, identity: str | None) -> None:
    data = f'{{"event_type": "{event_type}", "event_timestamp": 1700000000000, {fields}}}'.encode()
    assert normalise(data, now_ms=NOW_MS) == Ignored(IgnoreReason.SYSTEM_EVENT, event_type)
    counted = normalise(data, now_ms=NOW_MS, ruled_system_events=(event_type,))
    if identity is None:
        assert counted == Rejected(RejectReason.MISSING_USER_ID, "no user id")
    else:
        assert isinstance(counted, Event) and counted.user_id == identity
