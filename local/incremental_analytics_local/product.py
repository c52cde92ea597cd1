"""The whole product on the embedded local AWS: the real SAM template deployed, rules loaded, events put on
the stream, the Pipes and the schedule driven, and the product's state read back.

On AWS the Pipes run by themselves; here each is drained when asked: `ingest()` counts what the stream holds
(IngestBatch), `deliver()` delivers what the outbox's stream holds (DeliverOutcomes), and `fire_schedule(at)`
or `redeliver(at)` do what the hourly schedule does, waiting for the deliveries it starts."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.dynamodb_items import item_from_dynamo, outcome_from_item
from incremental_analytics.adapters.rules_store import rule_item
from incremental_analytics.domain.dedupe import Seen
from incremental_analytics.domain.delivery import DETAIL_TYPES, SINKS, SOURCE
from incremental_analytics.domain.events import ANONYMOUS_PREFIX, ENDPOINT_PREFIX, Event, endpoint_of_identity
from incremental_analytics.domain.rules import Rule
from incremental_analytics_local import glue
from incremental_analytics_local.deploy import Stack, deploy
from incremental_analytics_local.engine import ACCOUNT_ID, ExecutionResult, LocalAws
from incremental_analytics_local.pipes import PipeDriver, PipeReport, Scheduler

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
PINPOINT_APPLICATION = "localapp"
PROFILES_DOMAIN = "local-profiles"
PROFILES_KEY = "user_id"
PROFILES_ENDPOINT_KEY = "endpoint_id"
PROFILES_OBJECT_TYPE = "TargetReached"

# Every sink on, and the rules read afresh on every batch (rules change between a test's steps).
LOCAL_PARAMETERS = {
    "PinpointApplicationId": PINPOINT_APPLICATION,
    "ProfilesDomainName": PROFILES_DOMAIN,
    "ProfilesKeyName": PROFILES_KEY,
    "ProfilesEndpointKeyName": PROFILES_ENDPOINT_KEY,
    "ProfilesObjectTypeName": PROFILES_OBJECT_TYPE,
    "RulesCacheSeconds": "0",
}


@dataclass(frozen=True)
class Counter:
    count: int
    sum: Any
    cycle: int
    qualified: bool
    version: int


class LocalProduct:
    """One deployed stack of the product on a running LocalAws."""

    def __init__(
        self,
        aws: LocalAws,
        *,
        stack_name: str = "incremental-analytics",
        parameters: Mapping[str, str] | None = None,
        template: Path = TEMPLATE,
    ) -> None:
        self.aws = aws
        aws.profiles.create_domain(
            PROFILES_DOMAIN,
            {PROFILES_OBJECT_TYPE: [(PROFILES_KEY, PROFILES_KEY), (PROFILES_ENDPOINT_KEY, PROFILES_ENDPOINT_KEY)]},
        )
        self.stack: Stack = deploy(
            aws, template, stack_name=stack_name, parameters={**LOCAL_PARAMETERS, **(parameters or {})}
        )
        self._ingest_pipe: PipeDriver | None = None
        self._outbox_pipe: PipeDriver | None = None
        self._drain_pipe: PipeDriver | None = None
        self._rules_pipe: PipeDriver | None = None
        self._bus_events: list[dict[str, Any]] = []
        self.last_deliveries: list[ExecutionResult] = []  # what the last scheduled run's redeliveries did
        self._bus_queue = self._listen_to_the_bus()

    def _listen_to_the_bus(self) -> str:
        """A consumer of the outcome events on the product's bus (as any downstream would subscribe), so that a
        run can count what EventBridge accepted. Part of the local harness, not of the product."""
        with self.aws.uncounted():
            sqs, events = self.aws.client("sqs"), self.aws.client("events")
            name = f"{self.stack.name}-outcome-events"[:80]
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            bus = self.table("EventBus")
            pattern = {"source": [SOURCE], "detail-type": sorted(DETAIL_TYPES.values())}
            events.put_rule(Name=name[:64], EventBusName=bus, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name[:64], EventBusName=bus, Targets=[{"Id": "local-consumer", "Arn": arn}])
        return str(url)

    def table(self, logical_id: str) -> str:
        return str(self.stack.ref(logical_id))

    # -- input ---------------------------------------------------------------------------------------------

    def put_rules(self, rules: Iterable[Rule]) -> None:
        """Write rules straight into the rules table (the rules-file workflow does this on AWS)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        with self.aws.uncounted():
            for rule in rules:
                self.aws.client("dynamodb").put_item(TableName=self.table("RulesTable"), Item=rule_item(rule, now))

    def put_records(self, records: Iterable[tuple[str, bytes]]) -> int:
        """Put (partition key, data) records on the stream in order, as producers would."""
        count = 0
        kinesis = self.aws.client("kinesis")
        with self.aws.uncounted():
            for partition_key, data in records:
                kinesis.put_record(StreamName=self.table("EventStream"), PartitionKey=partition_key or "-", Data=data)
                count += 1
        return count

    def put_events(self, events: Iterable[Mapping[str, Any]]) -> int:
        return self.put_records((str(event.get("user_id", "")), json.dumps(event).encode()) for event in events)

    def ingest(
        self, *, redeliver: float = 0.0, seed: int = 0, on_batch: Callable[[int], None] | None = None
    ) -> PipeReport:
        """Deliver what the stream received since the last call through the Pipe to IngestBatch, then what the
        Pipe gave up on through the dead-letter Pipe (report.drained), as AWS would at once."""
        if self._ingest_pipe is None:
            self._ingest_pipe = PipeDriver(self.aws, self.stack.pipes["IngestPipe"])
        self._ingest_pipe.redeliver, self._ingest_pipe.random = redeliver, random.Random(seed)
        report = self._ingest_pipe.drain(on_batch)
        report.drained = self.drain_dead_letters()
        return report

    def enrich(self, records: Sequence[Mapping[str, Any]]) -> Any:
        """What the ingest Pipe's enrichment answers for these records (Pipes Kinesis event shape): the input
        IngestBatch is started with, as the Pipe would start it."""
        function = self.stack.pipes["IngestPipe"].enrichment
        answer = self.aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(list(records)))
        body = json.loads(answer["Payload"].read())
        if answer.get("FunctionError"):
            raise RuntimeError(f"the ingest Pipe's enrichment failed: {body}")
        return body

    def drain_dead_letters(self) -> PipeReport:
        """The dead-letter Pipe: each batch the ingest Pipe gave up on, read back from the stream and counted, or
        returned to the queue until its redrive policy parks it."""
        if self._drain_pipe is None:
            self._drain_pipe = PipeDriver(self.aws, self.stack.pipes["DrainPipe"])
        return self._drain_pipe.drain()

    def parked(self) -> list[dict[str, Any]]:
        """The `KinesisBatchInfo` of each dead-letter message that was parked: its batch could not be read back
        and counted before the queue's redrive policy gave up on it."""
        sqs = self.aws.client("sqs")
        url = self.table("IngestDeadLetterParking")
        bodies: dict[str, str] = {}
        handles: list[str] = []
        with self.aws.uncounted():
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600).get(
                "Messages", []
            ):
                bodies.update({message["MessageId"]: message["Body"] for message in messages})
                handles += [message["ReceiptHandle"] for message in messages]
            for start in range(0, len(handles), 10):  # looked at, not taken: visible again for the next reader
                sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                        for n, handle in enumerate(handles[start : start + 10])
                    ],
                )
        return [json.loads(body)["KinesisBatchInfo"] for body in bodies.values()]

    def redrive_parked(self) -> int:
        """What an operator does once the cause is fixed (the SQS console's "Start DLQ redrive"): move every parked
        message back to the ingest dead-letter queue, whose Pipe reads its batch back. Returns how many moved."""
        sqs = self.aws.client("sqs")
        parking, queue = self.table("IngestDeadLetterParking"), self.table("IngestDeadLetterQueue")
        moved = 0
        with self.aws.uncounted():
            while messages := sqs.receive_message(QueueUrl=parking, MaxNumberOfMessages=10).get("Messages", []):
                for message in messages:
                    sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])
                    sqs.delete_message(QueueUrl=parking, ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
        return moved

    def dead_letters_waiting(self) -> int:
        """Messages on the ingest dead-letter queue (waiting or being drained)."""
        with self.aws.uncounted():
            attributes = self.aws.client("sqs").get_queue_attributes(
                QueueUrl=self.table("IngestDeadLetterQueue"),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def deliver(self, *, redeliver: float = 0.0, seed: int = 0) -> PipeReport:
        """Deliver the outcomes the outbox received since the last call: its stream through the Pipe to
        DeliverOutcomes (new outcomes only; the Pipe's filter drops the outbox's own updates). `redeliver`
        sends that fraction of batches again, as the Pipe's at-least-once delivery may."""
        if self._outbox_pipe is None:
            self._outbox_pipe = PipeDriver(self.aws, self.stack.pipes["OutboxPipe"])
        self._outbox_pipe.redeliver, self._outbox_pipe.random = redeliver, random.Random(seed)
        return self._outbox_pipe.drain()

    def evaluate_periods(
        self,
        now: dt.datetime,
        *,
        rule_ids: Sequence[str] = (),
        name: str | None = None,
        evaluate: bool = True,
        deadline_seconds: float = 300,
    ) -> ExecutionResult:
        """One EvaluatePeriods execution at `now` (for the named rules, or all; none with `evaluate=False`, a
        redelivery alone), as `run --now` starts it; then the redeliveries it started, to their end."""
        payload: dict[str, Any] = {"now": now.astimezone(dt.UTC).isoformat()}
        if rule_ids:
            payload["rule_ids"] = list(rule_ids)
        if not evaluate:
            payload["evaluate"] = False
        name = name or "evaluate-" + now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")

        def evaluation() -> ExecutionResult:
            arn = self.aws.client("stepfunctions").start_execution(
                stateMachineArn=self.table("EvaluatePeriodsStateMachine"), name=name, input=json.dumps(payload)
            )["executionArn"]
            return self.aws.wait_for_execution(arn, deadline_seconds=deadline_seconds)

        return self._with_its_deliveries(evaluation)

    def redeliver(self, at: dt.datetime, *, name: str | None = None) -> ExecutionResult:
        """The scheduled run's redelivery at `at` alone (no rule evaluated): the outcomes some sink still lacks
        whose backoff has passed by then go to DeliverOutcomes."""
        name = name or "redeliver-" + at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        return self.evaluate_periods(at, name=name, evaluate=False)

    def _with_its_deliveries(self, scheduled_run: Callable[[], ExecutionResult]) -> ExecutionResult:
        """Run an EvaluatePeriods execution, then wait for the DeliverOutcomes executions it started (it does not
        wait for them itself); they are kept in `last_deliveries`."""
        machine = self.table("DeliverOutcomesStateMachine")
        before = set(self._executions(machine))
        result = scheduled_run()
        started = [arn for arn in self._executions(machine) if arn not in before]
        self.last_deliveries = [self.aws.wait_for_execution(arn) for arn in started]
        return result

    def upload_rules_file(self, name: str, content: bytes | str) -> ExecutionResult:
        """Drop a rules file under rules/ in the data bucket, as `rules push` does; S3 tells EventBridge, whose
        rule starts SyncRules. Returns that execution, finished."""
        machine = self.table("SyncRulesStateMachine")
        before = set(self._executions(machine))
        body = content.encode() if isinstance(content, str) else content
        key = f"rules/{name}"
        self.aws.client("s3").put_object(Bucket=self.table("DataBucket"), Key=key, Body=body)
        # The upload starts its execution at once; the report that execution writes (<file>.errors.json, also
        # under rules/) may start another one meanwhile: take the one started for this key.
        sfn = self.aws.client("stepfunctions")
        with self.aws.uncounted():
            (started,) = [
                arn
                for arn in set(self._executions(machine)) - before
                if json.loads(sfn.describe_execution(executionArn=arn)["input"])["detail"]["object"]["key"] == key
            ]
        return self.aws.wait_for_execution(started)

    def apply_rule_changes(self) -> PipeReport:
        """Deliver the rules table's stream to RulesChanged (through its Pipe), and wait for what it started."""
        if self._rules_pipe is None:
            self._rules_pipe = PipeDriver(self.aws, self.stack.pipes["RulesChangedPipe"])
        report = self._rules_pipe.drain()
        for arn in self._executions(self.table("EvaluatePeriodsStateMachine"), status="RUNNING"):
            self.aws.wait_for_execution(arn)
        return report

    def _executions(self, machine: str, status: str | None = None) -> list[str]:
        # From the engine: ListExecutions refuses Express workflows (DeliverOutcomes), as on AWS.
        return self.aws.executions(machine, status)

    def fire_schedule(self, at: dt.datetime) -> ExecutionResult:
        """What the hourly EventBridge Scheduler schedule does at `at`, with the redeliveries it starts."""
        schedule = self.stack.schedules["EvaluatePeriodsSchedule"]
        return self._with_its_deliveries(lambda: Scheduler(self.aws).fire(schedule, at))

    # -- state ---------------------------------------------------------------------------------------------

    def counters(self) -> dict[tuple[str, str], Counter]:
        with self.aws.uncounted():
            items = list(scan_all(self.aws.client("dynamodb"), self.table("CountersTable")))
        found = {}
        for item in items:
            if item["sk"]["S"].startswith("R#"):
                plain = item_from_dynamo(item)
                figures = plain["st"]
                found[(plain["user_id"], plain["rule_id"])] = Counter(
                    count=int(figures["count"]),
                    sum=figures["sum"],
                    cycle=int(figures["cycle"]),
                    qualified=bool(figures["qualified"]),
                    version=int(plain["version"]),
                )
        return found

    def remembered(self) -> int:
        """How many (counter, event id) pairs the counters table remembers as counted: the ids each counter keeps
        in its item, and the claim items of counters too busy for that (docs/design.md)."""
        with self.aws.uncounted():
            items = list(scan_all(self.aws.client("dynamodb"), self.table("CountersTable")))
        claims = sum(1 for item in items if item["sk"]["S"].startswith("D#"))
        kept = sum(
            len(Seen(item_from_dynamo(item).get("seen", {}))) for item in items if item["sk"]["S"].startswith("R#")
        )
        return claims + kept

    def audit_items(self) -> list[dict[str, Any]]:
        with self.aws.uncounted():
            return [item_from_dynamo(item) for item in scan_all(self.aws.client("dynamodb"), self.table("AuditTable"))]

    def outcomes(self) -> list[dict[str, Any]]:
        """Every outcome in the audit table, as docs/delivery.md shapes it, oldest first."""
        with self.aws.uncounted():
            items = list(scan_all(self.aws.client("dynamodb"), self.table("AuditTable")))
        return sorted((outcome_from_item(item) for item in items), key=lambda o: (o["occurred_at"], o["outcome_id"]))

    def sink_attributes(self) -> dict[str, dict[str, dict[str, str]]]:
        """{identity: {attribute: value}} as the attribute sinks hold them; the sinks must agree.

        Both sinks hold an attribute on whom it was set on: a Pinpoint endpoint belongs to its user id, else it
        stands for itself (`endpoint:<id>`); a profile is its user key's, else its endpoint key's."""
        pinpoint: dict[str, dict[str, str]] = {}
        for endpoint in self.aws.pinpoint.endpoints.get(PINPOINT_APPLICATION, {}).values():
            owner = endpoint["User"].get("UserId") or ENDPOINT_PREFIX + endpoint["Id"]
            values = {name: found[0] for name, found in endpoint["User"]["UserAttributes"].items() if found}
            if values:
                pinpoint.setdefault(owner, {}).update(values)
        profiles: dict[str, dict[str, str]] = {}
        domain = self.aws.profiles.domains.get(PROFILES_DOMAIN)
        for profile in domain.profiles.values() if domain else []:
            attributes = dict(profile["Attributes"])
            user = attributes.pop(PROFILES_KEY, None)
            endpoint_id = attributes.pop(PROFILES_ENDPOINT_KEY, None)
            owner = user if user is not None else None if endpoint_id is None else ENDPOINT_PREFIX + endpoint_id
            if owner is not None and attributes:
                profiles.setdefault(owner, {}).update(attributes)
        return {"pinpoint": pinpoint, "profiles": profiles}

    def metrics(self, function_logical_id: str) -> dict[str, float]:
        """The metrics a function published (Powertools' embedded metric format in its log), summed by name."""
        totals: dict[str, float] = {}
        for line in self.aws.lambdas.logs.get(self.table(function_logical_id), []):
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(
                        value if isinstance(value, list) else [value]
                    )
        return totals

    def fired_events(self) -> list[dict[str, Any]]:
        """The Pinpoint events the product put (reached outcomes)."""
        return list(self.aws.pinpoint.events)

    def bus_events(self) -> list[dict[str, Any]]:
        """Every outcome event the product's bus accepted so far (UserQualified, UserDisqualified, TargetReached),
        as a subscriber receives them."""
        queue_name = self._bus_queue.rsplit("/", 1)[-1]
        bodies = glue.take_visible_messages(ACCOUNT_ID, self.aws.region, queue_name)
        self._bus_events.extend(json.loads(body) for body in bodies)
        return list(self._bus_events)

    def sink_deliveries(self) -> dict[str, int]:
        """How many outcome deliveries each sink accepted, every repeat counted: EventBridge's events on the bus,
        Pinpoint's user-attribute updates and accepted events, Customer Profiles' updates and profile objects."""
        pinpoint = sum(
            1
            for operation, params in self.aws.pinpoint.answered
            if operation == "UpdateEndpoint" and _sets_user_attributes(params)
        )
        pinpoint += sum(1 for event in self.aws.pinpoint.events if "outcome_id" in (event.get("Attributes") or {}))
        profiles = sum(
            1 for operation, _ in self.aws.profiles.answered if operation in ("UpdateProfile", "PutProfileObject")
        )
        counts = {"eventbridge": len(self.bus_events()), "pinpoint": pinpoint, "profiles": profiles}
        return {sink: counts[sink] for sink in SINKS}

    def quarantined(self) -> list[dict[str, Any]]:
        bucket = self.table("DataBucket")
        s3 = self.aws.client("s3")
        with self.aws.uncounted():
            keys = [
                item["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/")
                for item in page.get("Contents", [])
            ]
            return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in sorted(keys)]


def _sets_user_attributes(params: Mapping[str, Any]) -> bool:
    return bool(((params.get("EndpointRequest") or {}).get("User") or {}).get("UserAttributes"))


def seed_endpoints(aws: LocalAws, users: Sequence[str]) -> None:
    """Give each user a Pinpoint endpoint (as an app using Pinpoint would have), so attributes can be set."""
    with aws.uncounted():
        pinpoint = aws.client("pinpoint")
        for user in users:
            pinpoint.update_endpoint(
                ApplicationId=PINPOINT_APPLICATION,
                EndpointId=f"endpoint-{user}",
                EndpointRequest={"ChannelType": "EMAIL", "Address": f"{user}@example.com", "User": {"UserId": user}},
            )


def seed_profiles(aws: LocalAws, users: Sequence[str], endpoints: Mapping[str, str | None] | None = None) -> None:
    """Give each user a Customer Profiles profile keyed by the product's user id; an endpoint's id goes on its
    owner's profile under the endpoint key, or on a profile of its own when no user owns it."""
    owned: dict[str, list[str]] = {}
    for endpoint_id, owner in (endpoints or {}).items():
        owned.setdefault(owner or "", []).append(endpoint_id)
    with aws.uncounted():
        profiles = aws.client("customer-profiles")
        for user in users:
            created = profiles.create_profile(DomainName=PROFILES_DOMAIN, Attributes={PROFILES_KEY: user})
            for endpoint_id in owned.get(user, []):
                aws.profiles.add_key(PROFILES_DOMAIN, created["ProfileId"], PROFILES_ENDPOINT_KEY, endpoint_id)
        for endpoint_id in owned.get("", []):
            profiles.create_profile(DomainName=PROFILES_DOMAIN, Attributes={PROFILES_ENDPOINT_KEY: endpoint_id})


def seed_endpoint_identities(aws: LocalAws, endpoints: Mapping[str, str | None]) -> None:
    """Give each endpoint that an `endpoint:<id>` identity names a Pinpoint endpoint, with its owner's user id
    when a user's events named that endpoint (a real project's endpoints are there before their events)."""
    with aws.uncounted():
        pinpoint = aws.client("pinpoint")
        for endpoint_id, owner in endpoints.items():
            request: dict[str, Any] = {"ChannelType": "EMAIL", "Address": f"{endpoint_id}@example.com"}
            if owner is not None:
                request["User"] = {"UserId": owner}
            pinpoint.update_endpoint(
                ApplicationId=PINPOINT_APPLICATION, EndpointId=endpoint_id, EndpointRequest=request
            )


def seed_for(aws: LocalAws, events: Iterable[Event]) -> None:
    """Seed the sinks with whom the events are about: users (by id) and endpoints (by `endpoint:<id>`)."""
    events = list(events)
    users = sorted({e.user_id for e in events if not e.user_id.startswith((ENDPOINT_PREFIX, ANONYMOUS_PREFIX))})
    owners = {e.endpoint_id: e.user_id for e in events if e.endpoint_id and e.user_id in users}
    addressed = {endpoint_of_identity(e.user_id) for e in events} - {None}
    endpoints = {endpoint_id: owners.get(endpoint_id) for endpoint_id in sorted(e for e in addressed if e)}
    seed_endpoints(aws, users)
    seed_endpoint_identities(aws, endpoints)
    seed_profiles(aws, users, endpoints)
