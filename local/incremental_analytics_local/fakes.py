"""In-memory fakes of the APIs moto lacks: Amazon Pinpoint endpoints and events, Amazon Connect Customer Profiles.

They answer through botocore (see botocore_hooks), so our Lambda code and the state machines' `aws-sdk:` tasks
reach them alike, with the request and response shapes of botocore's service models and AWS's error names.
`fail_next` makes the next N calls fail with a given error, and `slow` makes every call take that long, for fault
tests; `answered` keeps each call that succeeded, which is how a run counts what each sink took.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incremental_analytics_local.botocore_hooks import ServiceError

_RETRYABLE_STATUS = {
    "TooManyRequestsException": 429,
    "InternalServerErrorException": 500,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}


@dataclass
class _Fault:
    remaining: int
    code: str
    operations: frozenset[str]


class _FakeService:
    """Dispatch by operation name to `op_<Operation>` methods; injected faults first; a lock around state."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answered: list[tuple[str, dict[str, Any]]] = []  # the calls that succeeded, in order
        self.delay_seconds = 0.0

    def slow(self, seconds: float) -> None:
        """Every call takes this long (real time) before it is answered, as a struggling service would."""
        self.delay_seconds = seconds

    def fail_next(self, count: int, code: str = "TooManyRequestsException", *operations: str) -> None:
        """The next `count` calls (of these operations, or any) fail with `code`."""
        with self._lock:
            self._faults.append(_Fault(count, code, frozenset(operations)))

    def recover(self) -> None:
        """The outage is over: faults not yet used up are dropped."""
        with self._lock:
            self._faults.clear()

    def __call__(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(self, f"op_{operation}", None)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (not fault.operations or operation in fault.operations):
                    fault.remaining -= 1
                    self.calls.append((operation, params))
                    raise ServiceError(fault.code, "injected fault", _RETRYABLE_STATUS.get(fault.code, 400))
            if method is None:
                raise ServiceError("UnknownOperationException", f"{operation} is not implemented by the local fake")
            self.calls.append((operation, params))
            answer = method(params)
            self.answered.append((operation, params))
            return answer


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Pinpoint -------------------------------------------------------------------------------------------------

_ENDPOINT_FIELDS = (
    "Address",
    "ChannelType",
    "Demographic",
    "EffectiveDate",
    "EndpointStatus",
    "Location",
    "Metrics",
    "OptOut",
    "RequestId",
)


# Amazon Pinpoint quotas, "Event ingestion quotas" (docs.aws.amazon.com/pinpoint/latest/developerguide/quotas.html):
# at most 100 events a PutEvents request; at most 40 attribute and metric keys an event, attribute keys of at most
# 50 characters, values of at most 200.
_EVENTS_PER_REQUEST = 100
_EVENT_KEYS = 40
_EVENT_KEY_LENGTH = 50
_EVENT_VALUE_LENGTH = 200


class FakePinpoint(_FakeService):
    """Endpoints per application; events recorded as received.

    PutEvents answers per item, as Pinpoint does (API reference, Events resource, EventsResponse): each endpoint
    gets an EndpointItemResponse, each event an EventItemResponse, 202 when accepted and 400 when it is not
    valid, while the request itself succeeds. `fail_events_next` makes the next events answer an item failure.
    """

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._event_faults: list[tuple[int, str]] = []

    def fail_events_next(self, count: int, message: str = "Event rejected") -> None:
        """The next `count` events put are answered with an item failure (StatusCode 400) instead of 202."""
        with self._lock:
            self._event_faults.append((count, message))

    def _event_fault(self) -> str | None:
        for index, (remaining, message) in enumerate(self._event_faults):
            if remaining > 0:
                self._event_faults[index] = (remaining - 1, message)
                return message
        return None

    @staticmethod
    def _endpoint_key(endpoint_id: str) -> str:
        """An endpoint id is case-insensitive and can't contain $, { or } (the API reference of
        https://docs.aws.amazon.com/pinpoint/latest/apireference/apps-application-id-endpoints-endpoint-id.html)."""
        if any(character in endpoint_id for character in "${}"):
            raise ServiceError("BadRequestException", "The endpoint ID can't contain $, { or }")
        return endpoint_id.lower()

    def _update(self, application_id: str, endpoint_id: str, request: dict[str, Any]) -> None:
        endpoints = self.endpoints.setdefault(application_id, {})
        endpoint = endpoints.setdefault(
            self._endpoint_key(endpoint_id),
            {
                "ApplicationId": application_id,
                "Id": endpoint_id,
                "CreationDate": _now(),
                "Attributes": {},
                "User": {"UserAttributes": {}},
                "CohortId": str(hash(endpoint_id) % 100),
            },
        )
        for name in _ENDPOINT_FIELDS:
            if name in request:
                endpoint[name] = request[name]
        if "Attributes" in request:
            endpoint["Attributes"].update(request["Attributes"])
        user = request.get("User") or {}
        if "UserId" in user:
            endpoint["User"]["UserId"] = user["UserId"]
        endpoint["User"]["UserAttributes"].update(user.get("UserAttributes") or {})

    def op_UpdateEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        self._update(params["ApplicationId"], params["EndpointId"], params.get("EndpointRequest") or {})
        return {"MessageBody": {"Message": "Accepted", "RequestID": str(uuid.uuid4())}}

    def op_UpdateEndpointsBatch(self, params: dict[str, Any]) -> dict[str, Any]:
        items = (params.get("EndpointBatchRequest") or {}).get("Item") or []
        if len(items) > 100:
            raise ServiceError("BadRequestException", "at most 100 endpoints a batch")
        for item in items:
            self._update(params["ApplicationId"], item["Id"], item)
        return {"MessageBody": {"Message": "Accepted", "RequestID": str(uuid.uuid4())}}

    def op_GetEndpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.endpoints.get(params["ApplicationId"], {}).get(self._endpoint_key(params["EndpointId"]))
        if endpoint is None:
            raise ServiceError("NotFoundException", "Resource not found", 404)
        return {"EndpointResponse": json.loads(json.dumps(endpoint))}

    def op_GetUserEndpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            json.loads(json.dumps(endpoint))
            for endpoint in self.endpoints.get(params["ApplicationId"], {}).values()
            if endpoint["User"].get("UserId") == params["UserId"]
        ]
        if not found:
            raise ServiceError("NotFoundException", "Resource not found", 404)
        return {"EndpointsResponse": {"Item": found}}

    def op_PutEvents(self, params: dict[str, Any]) -> dict[str, Any]:
        application_id = params["ApplicationId"]
        batch = (params.get("EventsRequest") or {}).get("BatchItem") or {}
        if sum(len(item.get("Events") or {}) for item in batch.values()) > _EVENTS_PER_REQUEST:
            raise ServiceError("BadRequestException", f"at most {_EVENTS_PER_REQUEST} events a request")
        results: dict[str, Any] = {}
        for endpoint_id, item in batch.items():
            endpoint_request = item.get("Endpoint") or {}
            if endpoint_request:
                self._update(application_id, endpoint_id, endpoint_request)
            responses = {}
            for event_id, event in (item.get("Events") or {}).items():
                problem = _event_problem(event)
                injected = None if problem else self._event_fault()
                if problem or injected:
                    responses[event_id] = {"Message": problem or injected, "StatusCode": 400}
                    continue
                self.events.append(
                    {"ApplicationId": application_id, "EndpointId": endpoint_id, "EventId": event_id, **event}
                )
                responses[event_id] = {"Message": "Accepted", "StatusCode": 202}
            results[endpoint_id] = {
                "EndpointItemResponse": {"Message": "Accepted", "StatusCode": 202},
                "EventsItemResponse": responses,
            }
        return {"EventsResponse": {"Results": results}}

    def user_attributes(self, application_id: str) -> dict[str, dict[str, list[str]]]:
        """user id -> the user attributes on that user's endpoints (merged)."""
        merged: dict[str, dict[str, list[str]]] = {}
        for endpoint in self.endpoints.get(application_id, {}).values():
            user_id = endpoint["User"].get("UserId")
            if user_id:
                merged.setdefault(user_id, {}).update(endpoint["User"]["UserAttributes"])
        return merged


def _event_problem(event: dict[str, Any]) -> str | None:
    """Why Pinpoint would not accept an event (a 400 item answer), or None."""
    try:
        dt.datetime.fromisoformat(str(event.get("Timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        return "Timestamp must be ISO 8601"
    attributes = event.get("Attributes") or {}
    if len(attributes) + len(event.get("Metrics") or {}) > _EVENT_KEYS:
        return f"An event has at most {_EVENT_KEYS} attributes and metrics"
    for name, value in attributes.items():
        if len(name) > _EVENT_KEY_LENGTH or len(str(value)) > _EVENT_VALUE_LENGTH:
            return f"Attribute {name[:_EVENT_KEY_LENGTH]!r} is too long"
    return None


# -- Customer Profiles ----------------------------------------------------------------------------------------

_STANDARD_KEYS = {
    "_profileId": "ProfileId",
    "_account": "AccountNumber",
    "_email": "EmailAddress",
    "_phone": "PhoneNumber",
}
_PROFILE_FIELDS = (
    "AccountNumber",
    "AdditionalInformation",
    "PartyType",
    "BusinessName",
    "FirstName",
    "MiddleName",
    "LastName",
    "BirthDate",
    "Gender",
    "PhoneNumber",
    "MobilePhoneNumber",
    "HomePhoneNumber",
    "BusinessPhoneNumber",
    "EmailAddress",
    "PersonalEmailAddress",
    "BusinessEmailAddress",
    "Address",
    "ShippingAddress",
    "MailingAddress",
    "BillingAddress",
    "PartyTypeString",
    "GenderString",
)


@dataclass
class _Domain:
    name: str
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    # more values of a search key on a profile, as objects of several endpoints (say) give one profile:
    # (key, value) -> profile id
    more_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # object type -> the keys of its mapping: (field of the object, search key it fills on the profile), in order
    object_keys: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


class FakeCustomerProfiles(_FakeService):
    """Domains of profiles. Search keys other than the standard ones match profile Attributes of that name."""

    def __init__(self) -> None:
        super().__init__()
        self.domains: dict[str, _Domain] = {}

    def create_domain(self, name: str, object_keys: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> None:
        with self._lock:
            known = self.domains.setdefault(name, _Domain(name)).object_keys
            known.update({object_type: tuple(keys) for object_type, keys in (object_keys or {}).items()})

    def _domain(self, params: dict[str, Any]) -> _Domain:
        domain = self.domains.get(params["DomainName"])
        if domain is None:
            raise ServiceError("ResourceNotFoundException", f"Domain {params['DomainName']} not found", 404)
        return domain

    def op_CreateDomain(self, params: dict[str, Any]) -> dict[str, Any]:
        self.create_domain(params["DomainName"])
        return {
            "DomainName": params["DomainName"],
            "DefaultExpirationDays": params.get("DefaultExpirationDays", 366),
            "CreatedAt": dt.datetime.now(dt.UTC),
            "LastUpdatedAt": dt.datetime.now(dt.UTC),
        }

    def op_CreateProfile(self, params: dict[str, Any]) -> dict[str, Any]:
        domain = self._domain(params)
        profile_id = uuid.uuid4().hex
        profile = {"ProfileId": profile_id, "Attributes": dict(params.get("Attributes") or {})}
        profile.update({name: params[name] for name in _PROFILE_FIELDS if name in params})
        domain.profiles[profile_id] = profile
        return {"ProfileId": profile_id}

    def op_UpdateProfile(self, params: dict[str, Any]) -> dict[str, Any]:
        domain = self._domain(params)
        profile = domain.profiles.get(params["ProfileId"])
        if profile is None:
            raise ServiceError("ResourceNotFoundException", "Profile not found", 404)
        for name, value in (params.get("Attributes") or {}).items():
            if value == "":
                profile["Attributes"].pop(name, None)  # an empty value removes the attribute, as on AWS
            else:
                profile["Attributes"][name] = value
        profile.update({name: params[name] for name in _PROFILE_FIELDS if name in params})
        return {"ProfileId": profile["ProfileId"]}

    def add_key(self, domain_name: str, profile_id: str, key: str, value: str) -> None:
        """Another value of a search key on a profile (what an integration's objects would index)."""
        with self._lock:
            self.domains[domain_name].more_keys[(key, value)] = profile_id

    def _matches(self, domain: _Domain, profile: dict[str, Any], key: str, values: list[str]) -> bool:
        if any(domain.more_keys.get((key, value)) == profile["ProfileId"] for value in values):
            return True
        if key in _STANDARD_KEYS:
            return profile.get(_STANDARD_KEYS[key]) in values
        return profile["Attributes"].get(key) in values

    def op_SearchProfiles(self, params: dict[str, Any]) -> dict[str, Any]:
        domain = self._domain(params)
        values = list(params.get("Values") or [])
        if len(values) != 1:
            raise ServiceError("BadRequestException", "Values must hold exactly one value")
        key = params["KeyName"]
        found = [json.loads(json.dumps(p)) for p in domain.profiles.values() if self._matches(domain, p, key, values)]
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 20)
        page = found[start : start + size]
        response: dict[str, Any] = {"Items": page}
        if start + size < len(found):
            response["NextToken"] = str(start + size)
        return response

    def op_PutProfileObject(self, params: dict[str, Any]) -> dict[str, Any]:
        domain = self._domain(params)
        object_type = params["ObjectTypeName"]
        try:
            body = json.loads(params["Object"])
        except (TypeError, ValueError):
            raise ServiceError("BadRequestException", "Object must be a JSON string") from None
        keys = [
            (key, str(body[field_name]))
            for field_name, key in domain.object_keys.get(object_type, (("user_id", "user_id"),))
            if body.get(field_name) is not None
        ]
        profile = next(
            (p for key, value in keys for p in domain.profiles.values() if self._matches(domain, p, key, [value])), None
        )
        if profile is None:
            profile_id = uuid.uuid4().hex
            profile = {"ProfileId": profile_id, "Attributes": dict(keys)}
            domain.profiles[profile_id] = profile
        unique_key = uuid.uuid4().hex
        domain.objects.append(
            {
                "ObjectTypeName": object_type,
                "ProfileObjectUniqueKey": unique_key,
                "Object": params["Object"],
                "ProfileId": profile["ProfileId"],
            }
        )
        return {"ProfileObjectUniqueKey": unique_key}

    def op_ListProfileObjects(self, params: dict[str, Any]) -> dict[str, Any]:
        domain = self._domain(params)
        found = [
            {name: item[name] for name in ("ObjectTypeName", "ProfileObjectUniqueKey", "Object")}
            for item in domain.objects
            if item["ObjectTypeName"] == params["ObjectTypeName"] and item["ProfileId"] == params["ProfileId"]
        ]
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 20)
        response: dict[str, Any] = {"Items": found[start : start + size]}
        if start + size < len(found):
            response["NextToken"] = str(start + size)
        return response
