"""Every retrier of the product's ASL, exercised: each Task's service throttles it once through the local engine,
and the Task must be tried again (table-driven over the ASL: a new Task is covered or this test says so).

The product's workflows run once (ingest, delivery from the outbox's stream, rules sync and changes, period
evaluation, redelivery, abandonment) and each Task's real input is taken from the history. Each Task then runs
alone, with its own Retry and that input, while the engine fails its API call once with each throttling code of its
service (aws_rules.THROTTLING_CODES).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local import aws_rules
from incremental_analytics_local.asl_checks import scopes
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct, seed_endpoint_identities, seed_endpoints, seed_profiles
from tests.statemachines.expected import pipes_batch
from tests.unit.helpers import GREENBUTTON_DATE

UTC = dt.UTC
ROLE = "arn:aws:iam::123456789012:role/retries"
GREEN = Rule("aggregate-greenbutton", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 2))
RED = Rule(
    "aggregate-redbutton", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 1), reset=True
)
SHEET = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
    "aggregator,greenbutton,na,999,greater,2,na,999,no,9999-99-99,9999-99-99,g\n"
)


def _event(user: str, moment: dt.datetime, event_type: str = "greenbutton", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": int(moment.timestamp() * 1000), **extra}


def _succeeded(executions: Any) -> None:
    assert {execution.status for execution in executions} == {"SUCCEEDED"}, [
        (execution.error, execution.cause) for execution in executions if execution.status != "SUCCEEDED"
    ]


def _ingest(
    product: LocalProduct, events: list[dict[str, Any]], *, deliver_twice: bool = False, **options: Any
) -> None:
    """Count the events, then deliver their outcomes from the outbox's stream (a sink that fails is recorded);
    `deliver_twice`: the outbox's Pipe delivers each batch again (its outcomes are then claimed one by one)."""
    product.put_events(events)
    _succeeded(product.ingest(**options).executions)
    _succeeded(product.deliver(redeliver=1.0 if deliver_twice else 0.0, seed=3).executions)


def _commit_concurrently(
    aws: LocalAws, product: LocalProduct, first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    """`second` is counted while `first`'s execution is between reading the counter and committing it."""
    machine = product.stack.ref("IngestBatchStateMachine")
    match_function = product.stack.ref("MatchAndEvaluateFunction")
    started: list[bool] = []
    between: list[Any] = []

    def commit_second(function: Any, event: Any) -> None:
        if function.name == match_function and not started:
            started.append(True)
            between.append(aws.start_sync_execution(machine, product.enrich(pipes_batch(second)), name="between"))

    aws.lambdas.after_invoke.append(commit_second)
    try:
        result = aws.start_sync_execution(machine, product.enrich(pipes_batch(first)), name="around")
    finally:
        aws.lambdas.after_invoke.remove(commit_second)
    _succeeded([result, *between])
    assert "ResolveConflict" in aws.entered_states(result.arn)
    _succeeded(product.deliver().executions)


def _run_the_product(aws: LocalAws, product: LocalProduct) -> None:
    now = dt.datetime.now(UTC)
    seed_endpoints(aws, ["u1"])
    seed_profiles(aws, ["u1", "u2"])
    # SyncRules: a valid file (put, announce), a rejected one (report), one that deletes (RulesChanged purges).
    assert product.upload_rules_file("rules.csv", SHEET).status == "SUCCEEDED"
    assert product.upload_rules_file("bad.csv", SHEET.replace("greater,2", "greater,two")).status == "FAILED"
    # A check that itself fails (its read of the file refused): the upload is reported all the same.
    aws.fail_next("s3", "GetObject", 1, "AccessDenied", 403)
    assert product.upload_rules_file("unread.csv", SHEET).error == "RulesRejected"
    product.put_rules([GREEN, RED, GREENBUTTON_DATE])
    # IngestBatch: outcomes to every sink, a reset rule's events, a bad record, a redelivered batch;
    # DeliverOutcomes: each batch of the outbox's stream delivered twice.
    product.put_records([("u1", b"{broken json")])
    _ingest(
        product,
        [
            *(_event("u1", now - dt.timedelta(minutes=9, seconds=n)) for n in range(3)),
            *(_event("u1", now - dt.timedelta(minutes=8, seconds=n), "redbutton", endpoint_id="e-1") for n in range(2)),
            *(_event("u2", dt.datetime(2021, 1, 5, 9, n, tzinfo=UTC), metrics={"price": 600}) for n in range(3)),
        ],
        redeliver=1.0,
        seed=3,
        deliver_twice=True,
    )
    # Two executions commit one user and rule at once: the later transaction is cancelled, then resolved.
    _commit_concurrently(
        aws,
        product,
        [_event("u7", now - dt.timedelta(minutes=9, seconds=n), "redbutton") for n in range(2)],
        [_event("u7", now - dt.timedelta(minutes=8, seconds=n), "redbutton") for n in range(2)],
    )
    # An endpoint:<id> identity (a Pinpoint record naming no user): marked on that endpoint and its profile.
    seed_endpoint_identities(aws, {"ep-9": None})
    seed_profiles(aws, [], {"ep-9": None})
    moment = int((now - dt.timedelta(minutes=8)).timestamp() * 1000)
    product.put_records(
        (
            "ep-9",
            json.dumps(
                {"event_type": "greenbutton", "event_timestamp": moment + n, "endpoint": {"Id": "ep-9"}}
            ).encode(),
        )
        for n in range(3)
    )
    _succeeded(product.ingest().executions)
    _succeeded(product.deliver().executions)
    # A batch of 250 events of one user and rule: its transactions are spilled to S3 and loaded back.
    _ingest(product, [_event("u3", now - dt.timedelta(minutes=7), "redbutton", event_id=f"r{n}") for n in range(250)])
    # A batch of 100 events of 2 KB of attributes each: their time-series writes go through S3 too.
    wide = {f"a{n}": "w" * 190 for n in range(10)}
    _ingest(product, [_event("u6", now - dt.timedelta(minutes=7, seconds=n), attributes=wide) for n in range(100)])
    # A sink down for a while: the outcome stays pending for it, then the scheduled run delivers it again.
    aws.profiles.fail_next(1000, "InternalServerException")
    _ingest(product, [_event("u4", now - dt.timedelta(minutes=6, seconds=n)) for n in range(3)])
    aws.profiles.recover()
    # EvaluatePeriods: an open date rule (evaluated), then closed; and redelivery of the pending outcome.
    assert product.evaluate_periods(dt.datetime(2021, 1, 20, tzinfo=UTC)).status == "SUCCEEDED"
    assert product.evaluate_periods(dt.datetime(2021, 2, 10, tzinfo=UTC)).status == "SUCCEEDED"
    assert product.fire_schedule(now + dt.timedelta(minutes=70)).status == "SUCCEEDED"
    _succeeded(product.last_deliveries)
    # Every sink down through MaxDeliveryAttempts (2 here): each gives up, counted for the alarm, and the
    # outcome is recorded abandoned.
    seed_endpoints(aws, ["u5"])
    seed_profiles(aws, ["u5"])
    aws.fail_next("events", "PutEvents", 1000, "InternalException", 500)
    aws.pinpoint.fail_next(1000, "InternalServerErrorException")
    aws.profiles.fail_next(1000, "InternalServerException")
    _ingest(product, [_event("u5", now - dt.timedelta(minutes=5, seconds=n)) for n in range(3)])
    assert product.fire_schedule(now + dt.timedelta(minutes=130)).status == "SUCCEEDED"
    _succeeded(product.last_deliveries)
    aws.fail_next("events", "PutEvents", 0, "InternalException", 500)
    aws.pinpoint.recover()
    aws.profiles.recover()
    (abandoned,) = [item for item in product.audit_items() if item.get("undelivered") == "ABANDONED"]
    assert abandoned["delivery"] == {"eventbridge": "abandoned", "pinpoint": "abandoned", "profiles": "abandoned"}
    # The file is the whole rule set: the reset and date rules are deleted. RulesChanged, from the rules table's
    # stream, purges the deleted rule's counters (and the date rule's arrival started an evaluation).
    assert product.upload_rules_file("rules.csv", SHEET + "\n").status == "SUCCEEDED"
    product.apply_rule_changes()


def _throttled_tasks(product: LocalProduct) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(state machine, Task name, the Task's state) of every Task whose service throttles."""
    for logical_id in product.stack.of_type("AWS::Serverless::StateMachine"):
        machine = product.stack.ref(logical_id)
        definition = json.loads(
            product.aws.client("stepfunctions").describe_state_machine(stateMachineArn=machine)["definition"]
        )
        for _, scope in scopes(definition):
            for name, state in scope.get("States", {}).items():
                if state.get("Type") == "Task" and aws_rules.throttling_errors(state["Resource"]):
                    yield logical_id, name, state


def _inputs(aws: LocalAws, product: LocalProduct) -> dict[tuple[str, str], Any]:
    """(state machine, state) -> the input the state first ran with, from every execution's history."""
    found: dict[tuple[str, str], Any] = {}
    for logical_id, machine in product.stack.of_type("AWS::Serverless::StateMachine").items():
        for execution in aws.executions(machine):
            for event in aws.history(execution):
                entered = event.get("stateEnteredEventDetails")
                if entered and (logical_id, entered["name"]) not in found:
                    found[(logical_id, entered["name"])] = json.loads(entered["input"])
    return found


def _derived(inputs: dict[tuple[str, str], Any]) -> None:
    """Inputs of the pages after the first, which a small run does not reach: the first page's input and a key."""
    rules_changed = inputs.get(("RulesChangedStateMachine", "FindCounters"))
    if rules_changed is not None:
        rule = rules_changed["change"]["rule_id"]
        key = {"rule_id": {"S": rule}, "pk": {"S": "U#u1"}, "sk": {"S": f"R#{rule}"}}
        inputs.setdefault(
            ("RulesChangedStateMachine", "FindMoreCounters"), {**rules_changed, "page": {"LastEvaluatedKey": key}}
        )
    evaluated = inputs.get(("EvaluatePeriodsStateMachine", "MarkEvaluated"))
    if evaluated is not None:
        inputs.setdefault(("EvaluatePeriodsStateMachine", "ReleaseClaim"), evaluated)


@pytest.fixture(scope="module")
def ran() -> Iterator[tuple[LocalAws, LocalProduct, dict[tuple[str, str], Any]]]:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"BatchSize": "300", "MaxDeliveryAttempts": "2"})
        _run_the_product(aws, product)
        inputs = _inputs(aws, product)
        _derived(inputs)
        yield aws, product, inputs


def _cases() -> list[tuple[str, str, str]]:
    """(state machine, Task, throttling code), read from the ASL files (no engine needed to list them)."""
    from incremental_analytics_local.asl_checks import state_machines
    from tests.statemachines.test_asl_static import ROOT

    cases = []
    for source in state_machines(ROOT / "infra" / "template.yaml"):
        for _, scope in scopes(source.substituted()):
            for name, state in scope.get("States", {}).items():
                if state.get("Type") == "Task":
                    cases += [
                        (source.logical_id, name, code)
                        for code in aws_rules.throttling_errors(state["Resource"]).values()
                    ]
    return cases


@pytest.mark.parametrize(("logical_id", "task", "code"), _cases(), ids=str)
def test_each_task_retries_its_service_throttling(
    ran: tuple[LocalAws, LocalProduct, dict[tuple[str, str], Any]], logical_id: str, task: str, code: str
) -> None:
    aws, product, inputs = ran
    state = next(state for machine, name, state in _throttled_tasks(product) if (machine, name) == (logical_id, task))
    assert (logical_id, task) in inputs, f"no scenario reaches {logical_id}.{task}: extend _run_the_product"
    alone = copy.deepcopy(state)
    for key in ("Next", "Catch"):
        alone.pop(key, None)
    alone["End"] = True
    # A Wait first: the fault is set once the execution started (StartExecution may be the throttled call); a
    # second of real time (1,000 s at the engine's time scale), so that a busy machine still sets it in time.
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 1000, "Next": task}, task: alone}}
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"alone-{abs(hash((logical_id, task, code)))}", roleArn=ROLE, definition=json.dumps(definition)
    )["stateMachineArn"]
    kind, service, action = aws_rules.integration(state["Resource"])
    botocore_service = (aws_rules.SDK_TO_BOTOCORE if kind == "aws-sdk" else aws_rules.OPTIMISED_BOTOCORE).get(
        service, service
    )
    started = sfn.start_execution(stateMachineArn=machine, input=json.dumps(inputs[(logical_id, task)]))
    aws.fail_next(botocore_service, action[:1].upper() + action[1:], 1, code)
    result = aws.wait_for_execution(started["executionArn"])
    # What the Task started runs on (StartRedelivery starts DeliverOutcomes, which calls a function): let it end,
    # so that it takes no fault of the next case.
    for machine_listed in sfn.list_state_machines()["stateMachines"]:
        for running in aws.executions(machine_listed["stateMachineArn"], "RUNNING"):
            aws.wait_for_execution(running)
    history = aws.history(result.arn)
    scheduled = [event for event in history if event["type"] == "TaskScheduled"]
    failures = [event["taskFailedEventDetails"]["error"] for event in history if event["type"] == "TaskFailed"]
    expected = aws_rules.error_name(state["Resource"], code)
    assert failures[:1] == [expected], (failures, result.cause)
    assert len(scheduled) >= 2, f"{task} was not tried again after {expected}"
