"""Delivery (docs/delivery.md) through the real workflows on the local AWS: outcomes leave the outbox through its
stream into DeliverOutcomes, each sink is retried alone after a backoff until it takes the outcome or gives up,
and the scheduled run redelivers what a sink still lacks."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import time
from typing import Any

import pytest

from incremental_analytics.domain.delivery import SINKS
from incremental_analytics.domain.delivery_batch import abandoned_metric
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_cli.cli import main
from incremental_analytics_local.asl_checks import state_machines
from incremental_analytics_local.cfn import read_template
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import (
    PINPOINT_APPLICATION,
    TEMPLATE,
    LocalProduct,
    seed_endpoints,
    seed_profiles,
)

NOW_MS = int(time.time() * 1000)
HOUR = dt.timedelta(hours=1)
GREENBUTTON = Rule(
    "aggregate-greenbutton", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 2)
)
REDBUTTON = Rule(
    "aggregate-redbutton", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 1), reset=True
)


def click(user: str, event_type: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": NOW_MS - 600_000 + n, **extra}


def _counted(product: LocalProduct, users: list[str], rules: list[Rule], clicks: int = 3) -> None:
    """Users qualify for greenbutton and reach redbutton's target; the batches all succeed."""
    product.put_rules(rules)
    for user in users:
        product.put_events(click(user, "greenbutton", n) for n in range(clicks))
        product.put_events(click(user, "redbutton", n) for n in range(2))
    report = product.ingest()
    assert {execution.status for execution in report.executions} == {"SUCCEEDED"}


def _sinks_of(product: LocalProduct) -> dict[str, dict[str, str]]:
    return {item["outcome_id"]: dict(item["delivery"]) for item in product.audit_items()}


def _undelivered(product: LocalProduct) -> dict[str, str]:
    return {item["outcome_id"]: item["undelivered"] for item in product.audit_items() if "undelivered" in item}


def test_a_sink_down_for_three_hourly_runs_then_back(aws: LocalAws, product: LocalProduct) -> None:
    users = ["ann", "bob", "cyd"]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    _counted(product, users, [GREENBUTTON, REDBUTTON])
    outcomes = len(product.outcomes())
    assert outcomes == 6  # each user: qualified on greenbutton, reached on redbutton
    aws.profiles.fail_next(10_000, "InternalServerException")

    product.deliver()
    first = aws.request_counts()
    start = dt.datetime.now(dt.UTC)
    healthy = {"eventbridge": outcomes, "pinpoint": outcomes}
    for hour in (1, 2, 3):
        run = product.fire_schedule(start + hour * HOUR)
        assert run.status == "SUCCEEDED"
        assert product.last_deliveries and {e.status for e in product.last_deliveries} == {"SUCCEEDED"}
        # The healthy sinks took each outcome once: the hourly runs send only what Customer Profiles lacks.
        taken = product.sink_deliveries()
        assert {sink: taken[sink] for sink in healthy} == healthy and taken["profiles"] == 0
        assert {status["profiles"] for status in _sinks_of(product).values()} == {"failed"}
        assert {int(item["delivery_attempts"]) for item in product.audit_items()} == {hour + 1}
    requests = aws.request_counts()
    # The hourly runs called neither healthy sink again, not even to look an endpoint up.
    healthy_calls = ("events.PutEvents", "pinpoint.GetUserEndpoints", "pinpoint.UpdateEndpoint", "pinpoint.PutEvents")
    assert [requests.get(name, 0) for name in healthy_calls] == [first.get(name, 0) for name in healthy_calls]

    aws.profiles.recover()
    product.fire_schedule(start + 4 * HOUR)
    assert product.sink_deliveries() == {"eventbridge": outcomes, "pinpoint": outcomes, "profiles": outcomes}
    assert {json.dumps(status, sort_keys=True) for status in _sinks_of(product).values()} == {
        json.dumps({"eventbridge": "delivered", "pinpoint": "delivered", "profiles": "delivered"})
    }
    assert _undelivered(product) == {}  # the undelivered index is empty again
    assert product.sink_attributes()["profiles"] == product.sink_attributes()["pinpoint"]
    product.fire_schedule(start + 10 * HOUR)
    assert product.last_deliveries == [] and product.sink_deliveries()["profiles"] == outcomes


def test_a_slow_sink_does_not_delay_counting(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["ann"])
    seed_profiles(aws, ["ann"])
    aws.pinpoint.slow(0.5)
    product.put_rules([GREENBUTTON])
    product.put_events(click("ann", "greenbutton", n) for n in range(3))
    report = product.ingest()
    (batch,) = report.executions
    assert batch.status == "SUCCEEDED"
    # Counting is done and no sink was called: the batch's execution holds no delivery state at all.
    assert product.counters()[("ann", "aggregate-greenbutton")].count == 3
    assert product.sink_deliveries() == {"eventbridge": 0, "pinpoint": 0, "profiles": 0}
    assert "pinpoint.GetUserEndpoints" not in aws.request_counts()
    assert not {"ClaimAll", "SendFirst", "PublishBatch", "SendSecond", "Record"} & set(aws.entered_states(batch.arn))

    (delivery,) = product.deliver().executions
    # Read from the engine: DescribeExecution refuses Express executions, as on AWS.
    counted_at = aws.describe(batch.arn)["stopDate"]
    delivery_started = aws.describe(delivery.arn)["startDate"]
    assert counted_at <= delivery_started  # the batch's execution ended before any delivery began
    assert product.sink_deliveries() == {"eventbridge": 1, "pinpoint": 1, "profiles": 1}


@pytest.mark.filterwarnings("ignore::UserWarning")  # moto: "Tried to parse AWS::CloudFormation::..."
def test_attempts_exhausted_abandoned_metric_emitted_then_redriven(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"MaxDeliveryAttempts": "3"})
    seed_endpoints(aws, ["ann"])
    seed_profiles(aws, ["ann"])
    _counted(product, ["ann"], [GREENBUTTON])
    aws.pinpoint.fail_next(10_000, "InternalServerErrorException")
    product.deliver()
    start = dt.datetime.now(dt.UTC)
    product.fire_schedule(start + HOUR)
    (pending,) = product.audit_items()
    assert pending["delivery"]["pinpoint"] == "failed" and pending["undelivered"].startswith("P")

    product.fire_schedule(start + 2 * HOUR)  # the third attempt: Pinpoint gives up
    (abandoned,) = product.audit_items()
    assert abandoned["undelivered"] == "ABANDONED" and int(abandoned["delivery_attempts"]) == 3
    assert abandoned["delivery"] == {"eventbridge": "delivered", "pinpoint": "abandoned", "profiles": "delivered"}
    assert _abandoned_metric(aws) == {"pinpoint": 1.0}
    calls = len(aws.pinpoint.calls)
    product.fire_schedule(start + 20 * HOUR)
    assert len(aws.pinpoint.calls) == calls  # abandoned: the schedule leaves it to an operator

    _register_stack(aws, product)
    listed = _cli(["outcomes", "abandoned", "--stack", "prod"])
    assert abandoned["outcome_id"] in listed and "pinpoint abandoned" in listed and "(3 attempts)" in listed
    aws.pinpoint.recover()
    redriven = _cli(["outcomes", "redrive", "--stack", "prod"])
    assert "redriven: 1 outcome(s)" in redriven
    (started,) = [line.split()[-1] for line in redriven.splitlines() if "DeliverOutcomes execution" in line]
    assert aws.wait_for_execution(started).status == "SUCCEEDED"
    (delivered,) = product.audit_items()
    assert delivered["delivery"] == {"eventbridge": "delivered", "pinpoint": "delivered", "profiles": "delivered"}
    assert "undelivered" not in delivered
    assert product.sink_deliveries() == {"eventbridge": 1, "pinpoint": 1, "profiles": 1}
    assert _cli(["outcomes", "abandoned", "--stack", "prod"]).endswith("0 outcome(s) abandoned")


@pytest.mark.filterwarnings("ignore::UserWarning")  # moto: "Tried to parse AWS::CloudFormation::..."
def test_an_outcome_that_makes_every_attempt_die_is_abandoned_once_its_attempts_are_spent(aws: LocalAws) -> None:
    """Every execution that claims this outcome dies before recording it (its request cannot be read: the
    ShapeDelivery step fails), so no record ever counts a failed attempt or gives up on a sink. The redelivery's
    claims count the attempts; once MaxDeliveryAttempts were made, the next claim gives up on every sink that lacks
    the outcome without sending it: abandoned, counted in AbandonedDeliveries, and left to an operator."""
    product = LocalProduct(aws, parameters={"MaxDeliveryAttempts": "3"})
    seed_endpoints(aws, ["ann"])
    seed_profiles(aws, ["ann"])
    product.put_rules([GREENBUTTON])
    product.put_events(click("ann", "greenbutton", n) for n in range(3))
    product.ingest()
    (item,) = product.audit_items()
    with aws.uncounted():
        aws.client("dynamodb").update_item(
            TableName=product.table("AuditTable"),
            Key={"user_id": {"S": "ann"}, "outcome_id": {"S": item["outcome_id"]}},
            UpdateExpression="SET #r = :r",
            ExpressionAttributeNames={"#r": "request"},
            ExpressionAttributeValues={":r": {"S": "{}"}},
        )
    report = product.deliver()
    assert report.executions and report.executions[0].status == "FAILED"  # the stream's attempt died
    start = dt.datetime.now(dt.UTC)
    for hour in range(1, 8):
        product.fire_schedule(start + hour * HOUR)
        (item,) = product.audit_items()
        if item["undelivered"] == "ABANDONED":
            break
    assert item["undelivered"] == "ABANDONED", item
    # Three attempts of the redelivery died (the stream's died uncounted); the fourth claim, counted too, gave up.
    assert int(item["delivery_attempts"]) == 4 and hour == 4
    assert item["delivery"] == dict.fromkeys(SINKS, "abandoned")
    assert "claimed_by" not in item and "claimed_at" not in item
    assert _abandoned_metric(aws) == dict.fromkeys(SINKS, 1.0)
    assert product.sink_deliveries() == {"eventbridge": 0, "pinpoint": 0, "profiles": 0}
    product.fire_schedule(start + 30 * HOUR)
    assert product.last_deliveries == []  # abandoned: the schedule leaves it to an operator


def test_the_alarm_watches_the_abandoned_deliveries_the_workflow_emits() -> None:
    """The metric DeliverOutcomes puts is the one AbandonedDeliveriesAlarm sums, sink by sink."""
    template = read_template(TEMPLATE)
    alarm = template["Resources"]["AbandonedDeliveriesAlarm"]["Properties"]
    watched = {
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"], _dims(m["MetricStat"]))
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }
    (source,) = [source for source in state_machines(TEMPLATE) if source.logical_id == "DeliverOutcomesStateMachine"]
    definition = json.loads(source.text)
    (namespace,) = [
        state["Parameters"]["Namespace"]
        for state in definition["States"].values()
        if state.get("Resource", "").endswith("cloudwatch:putMetricData")
    ]
    # The workflow puts the data ShapeDelivery's settle step counts, one datum a sink that gave up.
    emitted = {
        (namespace, datum["MetricName"], _dims(datum)) for datum in (abandoned_metric(sink, 1) for sink in SINKS)
    }
    assert emitted == watched and len(emitted) == 3


def test_the_oldest_undelivered_outcome_is_measured_every_run_for_its_alarm(
    aws: LocalAws, product: LocalProduct
) -> None:
    seed_endpoints(aws, ["ann"])
    seed_profiles(aws, ["ann"])
    _counted(product, ["ann"], [GREENBUTTON])
    aws.profiles.fail_next(10_000, "InternalServerException")
    product.deliver()
    start = dt.datetime.now(dt.UTC)
    product.fire_schedule(start + 2 * HOUR)
    function = product.table("PlanRedeliveryFunction")
    emitted = [json.loads(line) for line in aws.lambdas.logs[function] if line.startswith('{"_aws"')]
    # Embedded metric format: a value, or a list of values.
    waits = [value for blob in emitted for value in _values(blob["OldestUndeliveredSeconds"])]
    assert len(waits) == 4  # one a pending partition, zero where nothing waits: missing data means no run
    # The schedule passes its time to the second: the wait is two hours, give or take that second.
    assert sorted(waits)[:3] == [0.0, 0.0, 0.0] and 2 * 3600 - 1 <= max(waits) < 2 * 3600 + 60
    alarm = read_template(TEMPLATE)["Resources"]["OldestUndeliveredAlarm"]["Properties"]
    (declared,) = {
        (directive["Namespace"], tuple(sorted(blob[name] for name in directive["Dimensions"][0])))
        for blob in emitted
        for directive in blob["_aws"]["CloudWatchMetrics"]
        if any(metric["Name"] == alarm["MetricName"] for metric in directive["Metrics"])
    }
    assert declared == (alarm["Namespace"], tuple(d["Value"] for d in alarm["Dimensions"]))


def test_an_event_naming_another_users_endpoint_never_moves_it(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["victim", "mallory"])
    seed_profiles(aws, ["victim", "mallory", "nobody"])
    product.put_rules([GREENBUTTON, REDBUTTON])
    for user in ("mallory", "nobody"):  # "nobody" has no endpoint of their own
        product.put_events(click(user, "greenbutton", n, endpoint_id="endpoint-victim") for n in range(3))
        product.put_events(click(user, "redbutton", n, endpoint_id="endpoint-victim") for n in range(2))
    product.ingest()
    seeded = len(aws.pinpoint.calls)
    product.deliver()

    victim = _endpoint(aws, "endpoint-victim")
    assert victim["User"] == {"UserId": "victim", "UserAttributes": {}}
    assert _endpoint(aws, "endpoint-mallory")["User"]["UserAttributes"] == {"trk_greenbutton": ["ready"]}
    fired = [(event["EndpointId"], event["EventType"]) for event in product.fired_events()]
    assert fired == [("endpoint-mallory", "trk_redbutton")]
    statuses = {(item["user_id"], item["kind"]): item["delivery"]["pinpoint"] for item in product.audit_items()}
    assert statuses == {
        ("mallory", "qualified"): "delivered",
        ("mallory", "reached"): "delivered",
        ("nobody", "qualified"): "no_endpoint",
        ("nobody", "reached"): "no_endpoint",
    }
    writes = ("UpdateEndpoint", "PutEvents")
    touched = [params for operation, params in aws.pinpoint.calls[seeded:] if operation in writes]
    assert touched and not any("endpoint-victim" in json.dumps(params) for params in touched)


def test_a_put_events_item_failure_is_a_failure_and_is_retried(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["ann"])
    seed_profiles(aws, ["ann"])
    product.put_rules([REDBUTTON])
    product.put_events(click("ann", "redbutton", n) for n in range(2))
    product.ingest()
    aws.pinpoint.fail_events_next(1)
    product.deliver()
    (item,) = product.audit_items()
    assert item["delivery"] == {"eventbridge": "delivered", "pinpoint": "failed", "profiles": "delivered"}
    assert product.fired_events() == []  # the request succeeded, its one event was refused

    product.fire_schedule(dt.datetime.now(dt.UTC) + HOUR)
    (item,) = product.audit_items()
    assert item["delivery"]["pinpoint"] == "delivered" and "undelivered" not in item
    assert len(product.fired_events()) == 1
    assert product.sink_deliveries() == {"eventbridge": 1, "pinpoint": 1, "profiles": 1}
    assert aws.request_counts()["pinpoint.PutEvents"] == 2


def test_one_failed_event_bridge_entry_of_a_batch_fails_that_outcome_alone(
    aws: LocalAws, product: LocalProduct
) -> None:
    users = ["ann", "bob"]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    _counted(product, users, [GREENBUTTON, REDBUTTON])
    aws.fail_event_entries_next(1)  # the first entry of the batch's PutEvents fails, the other three go through
    (delivery,) = product.deliver().executions
    assert aws.request_counts()["events.PutEvents"] == 1  # the four outcomes in one request
    failed = [item for item in product.audit_items() if item["delivery"]["eventbridge"] == "failed"]
    assert len(failed) == 1 and failed[0]["undelivered"].startswith("P")
    assert {item["delivery"]["eventbridge"] for item in product.audit_items() if item not in failed} == {"delivered"}
    assert {
        status for item in product.audit_items() for sink, status in item["delivery"].items() if sink != "eventbridge"
    } == {"delivered"}
    assert len(product.bus_events()) == 3

    product.fire_schedule(dt.datetime.now(dt.UTC) + HOUR)
    assert {item["delivery"]["eventbridge"] for item in product.audit_items()} == {"delivered"}
    assert _undelivered(product) == {}
    # The redelivery sent the one outcome to EventBridge alone: the other sinks had it.
    assert product.sink_deliveries() == {"eventbridge": 4, "pinpoint": 4, "profiles": 4}
    assert delivery.status == "SUCCEEDED"


def test_one_failed_item_of_a_pinpoint_batch_fails_that_outcome_alone(aws: LocalAws, product: LocalProduct) -> None:
    users = ["ann", "bob", "cyd"]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    product.put_rules([REDBUTTON])
    for user in users:
        product.put_events(click(user, "redbutton", n) for n in range(2))
    product.ingest()
    aws.pinpoint.fail_events_next(1)  # Pinpoint answers the request, one of its three events with a 400
    product.deliver()
    assert aws.request_counts()["pinpoint.PutEvents"] == 1  # three users' endpoints in one request
    statuses = sorted(item["delivery"]["pinpoint"] for item in product.audit_items())
    assert statuses == ["delivered", "delivered", "failed"] and len(product.fired_events()) == 2

    product.fire_schedule(dt.datetime.now(dt.UTC) + HOUR)
    assert {item["delivery"]["pinpoint"] for item in product.audit_items()} == {"delivered"}
    assert sorted(event["EndpointId"] for event in product.fired_events()) == [f"endpoint-{user}" for user in users]
    assert product.sink_deliveries() == {"eventbridge": 3, "pinpoint": 3, "profiles": 3}


def test_an_outbox_batch_delivered_twice_reaches_each_sink_once(aws: LocalAws, product: LocalProduct) -> None:
    users = ["ann", "bob"]
    seed_endpoints(aws, users)
    seed_profiles(aws, users)
    _counted(product, users, [GREENBUTTON, REDBUTTON])
    report = product.deliver(redeliver=1.0, seed=3)  # every batch of the outbox's stream delivered twice
    assert report.redeliveries == report.batches >= 1 and {e.status for e in report.executions} == {"SUCCEEDED"}
    assert product.sink_deliveries() == {"eventbridge": 4, "pinpoint": 4, "profiles": 4}
    again = report.executions[1:]
    assert again and all("NothingToDo" in aws.entered_states(e.arn) for e in again)


def test_the_operations_dashboard_is_deployed(aws: LocalAws, product: LocalProduct) -> None:
    name = product.table("OperationsDashboard")
    body = json.loads(aws.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])
    metrics = json.dumps(body["widgets"])
    assert product.table("IngestBatchStateMachine") in metrics and "AbandonedDeliveries" in metrics
    assert product.stack.attribute("DeadLetterQueue", "QueueName") in metrics


# -- helpers ---------------------------------------------------------------------------------------------------


def _values(value: Any) -> list[float]:
    return [float(item) for item in value] if isinstance(value, list) else [float(value)]


def _dims(stat: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    dimensions = stat["Metric"]["Dimensions"] if "Metric" in stat else stat["Dimensions"]
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions))


def _abandoned_metric(aws: LocalAws) -> dict[str, float]:
    cloudwatch = aws.client("cloudwatch")
    found = cloudwatch.list_metrics(Namespace="IncrementalAnalytics", MetricName="AbandonedDeliveries")["Metrics"]
    totals = {}
    for metric in found:
        sink = next(d["Value"] for d in metric["Dimensions"] if d["Name"] == "sink")
        points = cloudwatch.get_metric_statistics(
            Namespace="IncrementalAnalytics",
            MetricName="AbandonedDeliveries",
            Dimensions=metric["Dimensions"],
            StartTime=dt.datetime.now(dt.UTC) - HOUR,
            EndTime=dt.datetime.now(dt.UTC) + HOUR,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        totals[sink] = sum(point["Sum"] for point in points)
    return totals


def _endpoint(aws: LocalAws, endpoint_id: str) -> dict[str, Any]:
    answer = aws.client("pinpoint").get_endpoint(ApplicationId=PINPOINT_APPLICATION, EndpointId=endpoint_id)
    endpoint: dict[str, Any] = answer["EndpointResponse"]
    return endpoint


def _register_stack(aws: LocalAws, product: LocalProduct) -> None:
    """A CloudFormation stack whose outputs name the product's resources, as `sam deploy` leaves one."""
    outputs = {
        "AuditTableName": product.table("AuditTable"),
        "DeliverOutcomesStateMachineArn": product.table("DeliverOutcomesStateMachine"),
    }
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName="prod", TemplateBody=json.dumps(template))


def _cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue().strip()
