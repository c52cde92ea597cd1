"""The Pinpoint and Customer Profiles fakes answer through botocore, in AWS's shapes, and fail on request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from incremental_analytics_local.engine import LocalAws
from tests.functional.shapes import problems

APP = "app-1"


def test_pinpoint_endpoints_and_user_attributes(aws: LocalAws) -> None:
    pinpoint = aws.client("pinpoint")
    answer = pinpoint.update_endpoint(
        ApplicationId=APP,
        EndpointId="e1",
        EndpointRequest={"ChannelType": "EMAIL", "Address": "a@example.com", "User": {"UserId": "u1"}},
    )
    assert problems("pinpoint", "UpdateEndpoint", answer) == []
    pinpoint.update_endpoint(
        ApplicationId=APP,
        EndpointId="e1",
        EndpointRequest={"User": {"UserAttributes": {"trk_greenbutton": ["ready"]}}},
    )
    endpoint = pinpoint.get_endpoint(ApplicationId=APP, EndpointId="e1")
    assert problems("pinpoint", "GetEndpoint", endpoint) == []
    response = endpoint["EndpointResponse"]
    # Setting a user attribute leaves the channel and address as they were.
    assert (response["ChannelType"], response["Address"]) == ("EMAIL", "a@example.com")
    assert response["User"] == {"UserId": "u1", "UserAttributes": {"trk_greenbutton": ["ready"]}}
    users = pinpoint.get_user_endpoints(ApplicationId=APP, UserId="u1")
    assert problems("pinpoint", "GetUserEndpoints", users) == []
    assert [item["Id"] for item in users["EndpointsResponse"]["Item"]] == ["e1"]
    assert aws.pinpoint.user_attributes(APP) == {"u1": {"trk_greenbutton": ["ready"]}}


def test_pinpoint_endpoint_ids_are_case_insensitive_and_refuse_braces(aws: LocalAws) -> None:
    """As the API reference says of EndpointId: case-insensitive, and it can't contain $, { or }."""
    pinpoint = aws.client("pinpoint")
    pinpoint.update_endpoint(ApplicationId=APP, EndpointId="Ep-1", EndpointRequest={"User": {"UserId": "u1"}})
    pinpoint.update_endpoint(
        ApplicationId=APP, EndpointId="ep-1", EndpointRequest={"User": {"UserAttributes": {"a": ["b"]}}}
    )
    found = pinpoint.get_endpoint(ApplicationId=APP, EndpointId="EP-1")["EndpointResponse"]
    assert found["Id"] == "Ep-1" and found["User"] == {"UserId": "u1", "UserAttributes": {"a": ["b"]}}
    for refused in ("e$1", "e{1", "e}1"):
        with pytest.raises(ClientError) as raised:
            pinpoint.update_endpoint(ApplicationId=APP, EndpointId=refused, EndpointRequest={})
        assert raised.value.response["Error"]["Code"] == "BadRequestException"


def test_pinpoint_batch_update_and_events(aws: LocalAws) -> None:
    pinpoint = aws.client("pinpoint")
    batch = pinpoint.update_endpoints_batch(
        ApplicationId=APP,
        EndpointBatchRequest={"Item": [{"Id": f"e{n}", "User": {"UserId": f"u{n}"}} for n in range(3)]},
    )
    assert problems("pinpoint", "UpdateEndpointsBatch", batch) == []
    events = pinpoint.put_events(
        ApplicationId=APP,
        EventsRequest={
            "BatchItem": {
                "e1": {
                    "Endpoint": {},
                    "Events": {"o-1": {"EventType": "trk_redbutton", "Timestamp": "2021-01-28T16:00:00Z"}},
                }
            }
        },
    )
    assert problems("pinpoint", "PutEvents", events) == []
    assert events["EventsResponse"]["Results"]["e1"]["EventsItemResponse"]["o-1"]["StatusCode"] == 202
    assert [(event["EndpointId"], event["EventType"]) for event in aws.pinpoint.events] == [("e1", "trk_redbutton")]


def test_pinpoint_put_events_answers_per_item(aws: LocalAws) -> None:
    """Pinpoint accepts the request and answers each event: 202, or 400 for an event it does not take (API
    reference, Events resource; the request itself still answers 202)."""
    pinpoint = aws.client("pinpoint")
    aws.pinpoint.fail_events_next(1)
    good = {"EventType": "trk_x", "Timestamp": "2021-01-28T16:00:00Z"}
    answer = pinpoint.put_events(
        ApplicationId=APP,
        EventsRequest={
            "BatchItem": {
                "e1": {"Endpoint": {}, "Events": {"injected": good, "late": {**good, "Timestamp": "yesterday"}}},
                "e2": {"Endpoint": {}, "Events": {"ok": good, "wide": {**good, "Attributes": {"k" * 51: "v"}}}},
            }
        },
    )
    assert problems("pinpoint", "PutEvents", answer) == []
    results = answer["EventsResponse"]["Results"]
    codes = {
        (endpoint, event): item["StatusCode"]
        for endpoint, result in results.items()
        for event, item in result["EventsItemResponse"].items()
    }
    assert codes == {("e1", "injected"): 400, ("e1", "late"): 400, ("e2", "ok"): 202, ("e2", "wide"): 400}
    assert {result["EndpointItemResponse"]["StatusCode"] for result in results.values()} == {202}
    assert [event["EventId"] for event in aws.pinpoint.events] == ["ok"]  # only what was accepted is kept


def test_pinpoint_put_events_takes_at_most_100_events_a_request(aws: LocalAws) -> None:
    """Amazon Pinpoint quotas, Event ingestion quotas: 100 events a request, whatever the endpoints."""
    pinpoint = aws.client("pinpoint")
    event = {"EventType": "trk_x", "Timestamp": "2021-01-28T16:00:00Z"}

    def request(events: int) -> dict[str, Any]:
        return {
            "BatchItem": {
                f"e{n % 7}": {"Endpoint": {}, "Events": {f"o-{m}": event for m in range(n, events, 7)}}
                for n in range(7)
            }
        }

    answer = pinpoint.put_events(ApplicationId=APP, EventsRequest=request(100))
    assert sum(len(result["EventsItemResponse"]) for result in answer["EventsResponse"]["Results"].values()) == 100
    with pytest.raises(ClientError) as refused:
        pinpoint.put_events(ApplicationId=APP, EventsRequest=request(101))
    assert refused.value.response["Error"]["Code"] == "BadRequestException"
    assert len(aws.pinpoint.events) == 100


def test_a_fake_keeps_the_calls_it_answered(aws: LocalAws) -> None:
    aws.profiles.create_domain("shop")
    profiles = aws.client("customer-profiles")
    profiles.create_profile(DomainName="shop", Attributes={"user_id": "u1"})
    aws.profiles.fail_next(1, "ThrottlingException")
    with pytest.raises(ClientError):
        profiles.search_profiles(DomainName="shop", KeyName="user_id", Values=["u1"])
    assert [operation for operation, _ in aws.profiles.answered] == ["CreateProfile"]
    assert [operation for operation, _ in aws.profiles.calls] == ["CreateProfile", "SearchProfiles"]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda p: p.get_endpoint(ApplicationId=APP, EndpointId="missing"), "NotFoundException"),
        (lambda p: p.get_user_endpoints(ApplicationId=APP, UserId="nobody"), "NotFoundException"),
    ],
)
def test_pinpoint_errors_are_named_as_aws_names_them(aws: LocalAws, call: object, code: str) -> None:
    with pytest.raises(ClientError) as raised:
        call(aws.client("pinpoint"))  # type: ignore[operator]
    assert raised.value.response["Error"]["Code"] == code
    assert type(raised.value).__name__ == code  # botocore's modeled exception class


def test_a_fake_fails_the_next_calls_on_request(aws: LocalAws) -> None:
    pinpoint = aws.client("pinpoint")
    aws.pinpoint.fail_next(2, "TooManyRequestsException", "UpdateEndpoint")
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            pinpoint.update_endpoint(ApplicationId=APP, EndpointId="e1", EndpointRequest={})
        assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    pinpoint.update_endpoint(ApplicationId=APP, EndpointId="e1", EndpointRequest={})
    assert aws.request_counts()["pinpoint.UpdateEndpoint"] == 3


def test_customer_profiles_search_update_and_objects(aws: LocalAws) -> None:
    aws.profiles.create_domain("shop", {"TargetReached": [("user_id", "user_id"), ("endpoint_id", "endpoint_id")]})
    profiles = aws.client("customer-profiles")
    created = profiles.create_profile(DomainName="shop", AccountNumber="acct-1", Attributes={"user_id": "u1"})
    assert problems("customer-profiles", "CreateProfile", created) == []
    found = profiles.search_profiles(DomainName="shop", KeyName="user_id", Values=["u1"])
    assert problems("customer-profiles", "SearchProfiles", found) == []
    (profile,) = found["Items"]
    assert profile["ProfileId"] == created["ProfileId"]
    assert profiles.search_profiles(DomainName="shop", KeyName="_account", Values=["acct-1"])["Items"] == [profile]
    updated = profiles.update_profile(
        DomainName="shop", ProfileId=created["ProfileId"], Attributes={"trk_greenbutton": "ready"}
    )
    assert problems("customer-profiles", "UpdateProfile", updated) == []
    profiles.update_profile(DomainName="shop", ProfileId=created["ProfileId"], Attributes={"user_id": "u1", "x": ""})
    (again,) = profiles.search_profiles(DomainName="shop", KeyName="user_id", Values=["u1"])["Items"]
    assert again["Attributes"] == {"user_id": "u1", "trk_greenbutton": "ready"}

    put = profiles.put_profile_object(
        DomainName="shop", ObjectTypeName="TargetReached", Object=json.dumps({"user_id": "u1", "cycle": 1})
    )
    assert problems("customer-profiles", "PutProfileObject", put) == []
    listed = profiles.list_profile_objects(
        DomainName="shop", ObjectTypeName="TargetReached", ProfileId=created["ProfileId"]
    )
    assert problems("customer-profiles", "ListProfileObjects", listed) == []
    assert [json.loads(item["Object"]) for item in listed["Items"]] == [{"user_id": "u1", "cycle": 1}]

    # An object is matched by any key of its type's mapping: here the endpoint key of an endpoint's profile.
    by_endpoint = profiles.create_profile(DomainName="shop", Attributes={"endpoint_id": "e9"})
    profiles.put_profile_object(
        DomainName="shop", ObjectTypeName="TargetReached", Object=json.dumps({"endpoint_id": "e9", "cycle": 2})
    )
    listed = profiles.list_profile_objects(
        DomainName="shop", ObjectTypeName="TargetReached", ProfileId=by_endpoint["ProfileId"]
    )
    assert [json.loads(item["Object"]) for item in listed["Items"]] == [{"endpoint_id": "e9", "cycle": 2}]


def test_customer_profiles_search_pages(aws: LocalAws) -> None:
    aws.profiles.create_domain("shop")
    profiles = aws.client("customer-profiles")
    for _ in range(5):
        profiles.create_profile(DomainName="shop", Attributes={"segment": "vip"})
    first = profiles.search_profiles(DomainName="shop", KeyName="segment", Values=["vip"], MaxResults=3)
    second = profiles.search_profiles(
        DomainName="shop", KeyName="segment", Values=["vip"], MaxResults=3, NextToken=first["NextToken"]
    )
    assert len(first["Items"]) == 3 and len(second["Items"]) == 2 and "NextToken" not in second


def test_customer_profiles_unknown_domain(aws: LocalAws) -> None:
    with pytest.raises(ClientError) as raised:
        aws.client("customer-profiles").search_profiles(DomainName="nope", KeyName="_profileId", Values=["x"])
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_state_machines_reach_the_fakes_through_aws_sdk_tasks(aws: LocalAws) -> None:
    aws.profiles.create_domain("shop")
    aws.client("customer-profiles").create_profile(DomainName="shop", Attributes={"user_id": "u7"})
    aws.pinpoint.fail_next(1, "TooManyRequestsException")
    definition = {
        "StartAt": "Mark",
        "States": {
            "Mark": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:pinpoint:updateEndpoint",
                "Parameters": {
                    "ApplicationId": APP,
                    "EndpointId": "e7",
                    "EndpointRequest": {"User": {"UserId": "u7", "UserAttributes": {"trk_x": ["ready"]}}},
                },
                "Retry": [{"ErrorEquals": ["Pinpoint.TooManyRequestsException"], "IntervalSeconds": 1}],
                "ResultPath": None,
                "Next": "Find",
            },
            "Find": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:customerprofiles:searchProfiles",
                "Parameters": {"DomainName": "shop", "KeyName": "user_id", "Values": ["u7"]},
                "ResultSelector": {"profile_id.$": "$.Items[0].ProfileId"},
                "End": True,
            },
        },
    }
    arn = aws.client("stepfunctions").create_state_machine(
        name="sinks", roleArn="arn:aws:iam::123456789012:role/r", type="EXPRESS", definition=json.dumps(definition)
    )["stateMachineArn"]
    result = aws.start_sync_execution(arn, {}, name="sinks-1")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["profile_id"]
    assert aws.pinpoint.user_attributes(APP) == {"u7": {"trk_x": ["ready"]}}
    assert aws.request_counts()["pinpoint.UpdateEndpoint"] == 2  # one throttled, one retried
