"""The ingest workflow through the real ASL on the local AWS, batches fed by the emulated Pipe; its outcomes
reach the sinks through the outbox's stream (tests/statemachines/test_delivery.py covers the delivery itself)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from incremental_analytics.adapters.dynamodb_items import claim_key, counter_key, item_to_dynamo
from incremental_analytics.domain import dedupe
from incremental_analytics.domain.rules import (
    AttributeFilter,
    CountCondition,
    Operator,
    Rule,
    RuleType,
    SumCondition,
    iso_instant,
)
from incremental_analytics.handlers import match_and_evaluate
from incremental_analytics.logic.intake import handed_events
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.lambdas import LocalFunction
from incremental_analytics_local.product import PINPOINT_APPLICATION, LocalProduct, seed_endpoints, seed_profiles
from tests.statemachines.expected import actual, commit_tries, expected, pipes_batch

NOW_MS = int(time.time() * 1000)
GREENBUTTON = Rule(
    "aggregate-greenbutton", RuleType.AGGREGATE, "greenbutton", count=CountCondition(Operator.GREATER, 5)
)
REDBUTTON = Rule(
    "aggregate-redbutton", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 3), reset=True
)


def click(user: str, event_type: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": NOW_MS - 3_600_000 + n, **extra}


def _all_succeeded(report: Any) -> None:
    assert report.executions and {execution.status for execution in report.executions} == {"SUCCEEDED"}, [
        (execution.error, execution.cause) for execution in report.executions if execution.status != "SUCCEEDED"
    ]


def test_guide_case_1_the_attribute_reaches_the_sinks_once(aws: LocalAws, product: LocalProduct) -> None:
    seed_endpoints(aws, ["u1"])
    seed_profiles(aws, ["u1"])
    product.put_rules([GREENBUTTON])
    product.put_events(click("u1", "greenbutton", n) for n in range(8))
    _all_succeeded(product.ingest())
    _all_succeeded(product.deliver())

    (outcome,) = product.outcomes()
    assert (outcome["kind"], outcome["output"], outcome["evidence"]["count"]) == ("qualified", "trk_greenbutton", 6)
    assert outcome["execution"].startswith("arn:aws:states:")
    sets = [
        params
        for operation, params in aws.pinpoint.calls
        if operation == "UpdateEndpoint"
        and "trk_greenbutton" in params["EndpointRequest"]["User"].get("UserAttributes", {})
    ]
    assert len(sets) == 1
    assert sets[0]["EndpointRequest"] == {"User": {"UserId": "u1", "UserAttributes": {"trk_greenbutton": ["ready"]}}}
    assert product.sink_attributes() == {
        "pinpoint": {"u1": {"trk_greenbutton": "ready"}},
        "profiles": {"u1": {"trk_greenbutton": "ready"}},
    }
    endpoint = aws.client("pinpoint").get_endpoint(ApplicationId=PINPOINT_APPLICATION, EndpointId="endpoint-u1")
    assert endpoint["EndpointResponse"]["ChannelType"] == "EMAIL"  # the channel is left as it was
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 8
    (audit,) = product.audit_items()
    assert audit["delivery"] == {"eventbridge": "delivered", "pinpoint": "delivered", "profiles": "delivered"}
    assert "undelivered" not in audit and int(audit["delivery_attempts"]) == 1


def test_guide_case_2_reset_fires_at_the_fourth_and_eighth(aws: LocalAws, product: LocalProduct) -> None:
    product.put_rules([REDBUTTON])
    seed_endpoints(aws, ["u1"])
    aws.client("pinpoint").update_endpoint(
        ApplicationId=PINPOINT_APPLICATION, EndpointId="phone-1", EndpointRequest={"User": {"UserId": "u1"}}
    )
    product.put_events(click("u1", "redbutton", n, endpoint_id="phone-1") for n in range(8))
    _all_succeeded(product.ingest())
    _all_succeeded(product.deliver())

    fired = product.fired_events()  # delivered in parallel: compare in cycle order
    assert sorted((event["EndpointId"], event["EventType"], event["Attributes"]["cycle"]) for event in fired) == [
        ("phone-1", "trk_redbutton", "1"),
        ("phone-1", "trk_redbutton", "2"),
    ]
    counter = product.counters()[("u1", "aggregate-redbutton")]
    assert (counter.count, counter.cycle) == (0, 2)
    outcomes = product.outcomes()
    assert [(o["kind"], o["cycle"], o["evidence"]["count"]) for o in outcomes] == [("reached", 1, 4), ("reached", 2, 4)]
    objects = aws.profiles.domains["local-profiles"].objects
    assert sorted(json.loads(item["Object"])["cycle"] for item in objects) == [1, 2]
    # Both outcomes reached the bus (in one PutEvents: DeliverOutcomes batches a batch's entries).
    assert sorted(event["detail"]["cycle"] for event in product.bus_events()) == [1, 2]


def test_the_same_batch_delivered_again_and_split_counts_once(product: LocalProduct) -> None:
    rules = [GREENBUTTON, REDBUTTON]
    events = [click(f"u{n % 3}", "redbutton" if n % 2 else "greenbutton", n) for n in range(60)]
    product.put_rules(rules)
    product.put_events(events)
    report = product.ingest(redeliver=1.0, seed=11)
    _all_succeeded(report)
    assert report.redeliveries == report.batches
    assert actual(product) == expected(rules, events)
    # Each redelivered event was dropped before any write: its counter remembered it (docs/design.md).
    summaries = [execution.output["summary"] for execution in report.executions]
    assert sum(summary["already_counted"] for summary in summaries) == len(events)


def test_records_repeated_inside_a_batch_and_across_batches(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "5"})
    rules = [REDBUTTON]
    distinct = [click("u1", "redbutton", n, event_id=f"order-{n}") for n in range(9)]
    events = [distinct[0], distinct[0], *distinct[1:5], distinct[2], *distinct[5:], distinct[1], distinct[8]]
    product.put_rules(rules)
    product.put_events(events)
    _all_succeeded(product.ingest())
    assert actual(product) == expected(rules, distinct)
    assert product.counters()[("u1", "aggregate-redbutton")].cycle == 2
    assert product.remembered() == 9


def test_two_executions_committing_one_user_and_rule_concurrently(aws: LocalAws, product: LocalProduct) -> None:
    """One execution reads the counter, another commits the same (user, rule), then the first commits."""
    rules = [REDBUTTON]
    first = [click("u1", "redbutton", n) for n in range(5)]
    second = [click("u1", "redbutton", n) for n in range(100, 105)]
    product.put_rules(rules)
    machine = product.stack.ref("IngestBatchStateMachine")
    match_function = product.stack.ref("MatchAndEvaluateFunction")
    interleaved: list[Any] = []
    started: list[bool] = []

    def commit_second_in_between(function: LocalFunction, event: Any) -> None:
        if function.name == match_function and not started:
            started.append(True)
            interleaved.append(aws.start_sync_execution(machine, product.enrich(pipes_batch(second)), name="second"))

    aws.lambdas.after_invoke.append(commit_second_in_between)
    result = aws.start_sync_execution(machine, product.enrich(pipes_batch(first)), name="first")
    assert result.status == "SUCCEEDED" and interleaved[0].status == "SUCCEEDED"
    assert "ResolveConflict" in aws.entered_states(result.arn)
    assert "ConflictBackoff" in aws.entered_states(result.arn)  # not committed again at once
    assert "ResolveConflict" not in aws.entered_states(interleaved[0].arn)
    assert actual(product) == expected(rules, second + first)  # the commit order is the stream order
    assert product.counters()[("u1", "aggregate-redbutton")].version == 2


def test_two_executions_writing_one_counter_by_statement_concurrently(
    aws: LocalAws, product: LocalProduct, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No outcome: both commits are PartiQL statements. Between the first execution's read of the counter and its
    write, another MatchAndEvaluate counts a second batch of the same user: the first's UPDATE expects a version
    that moved on, fails its condition, and is read and planned again inside MatchAndEvaluate, then written.
    (The local runtime runs one function call at a time, so the second batch is evaluated in that call.)"""
    rules = [GREENBUTTON]
    first = [click("u1", "greenbutton", n, event_id=f"a{n}") for n in range(2)]
    second = [click("u1", "greenbutton", n, event_id=f"b{n}") for n in range(100, 102)]
    product.put_rules(rules)
    machine = product.stack.ref("IngestBatchStateMachine")
    second_batch = product.enrich(pipes_batch(second))[0]
    writes = match_and_evaluate.execute_statements
    interleaved: list[Any] = []

    def second_writes_first(client: Any, statements: Any) -> list[str | None]:
        if not interleaved:
            interleaved.append(None)
            config = match_and_evaluate.settings()
            events = handed_events(second_batch, aws.client("s3"), config.data_bucket)
            interleaved[0] = match_and_evaluate.evaluate_batch(config, rules, events, "second", dt.datetime.now(dt.UTC))
        return writes(client, statements)

    monkeypatch.setattr(match_and_evaluate, "execute_statements", second_writes_first)
    result = aws.start_sync_execution(machine, product.enrich(pipes_batch(first)), name="first")
    assert result.status == "SUCCEEDED"
    assert result.output["summary"]["statement_conflicts"] == 1
    assert interleaved[0]["summary"]["statement_conflicts"] == 0 and interleaved[0]["groups"] == []
    assert "CommitChunk" not in aws.entered_states(result.arn)  # nothing needed a transaction
    assert actual(product) == expected(rules, second + first)
    assert product.counters()[("u1", "aggregate-greenbutton")].version == 2
    assert product.remembered() == 4


def test_a_bad_record_is_quarantined_and_the_good_ones_count(product: LocalProduct) -> None:
    product.put_rules([GREENBUTTON])
    product.put_records(
        [
            ("u1", json.dumps(click("u1", "greenbutton", 1)).encode()),
            ("u1", b"{broken json"),
            ("u1", json.dumps({"user_id": "u1", "event_type": "greenbutton", "timestamp": "yesterday"}).encode()),
            ("u1", json.dumps(click("u1", "greenbutton", 2)).encode()),
        ]
    )
    _all_succeeded(product.ingest())
    quarantined = product.quarantined()
    assert [(item["reason"], item["partition_key"]) for item in quarantined] == [
        ("not_json", "u1"),
        ("bad_timestamp", "u1"),
    ]
    assert quarantined[0]["sequence_number"] and quarantined[0]["data"]
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 2


def test_several_rules_an_attribute_filter_and_reset_with_count_and_sum(product: LocalProduct) -> None:
    tables = Rule(
        "tables",
        RuleType.AGGREGATE,
        "purchase",
        attribute=AttributeFilter("product", "table"),
        count=CountCondition(Operator.GREATER_OR_EQUAL, 2),
    )
    spend = Rule(
        "spend",
        RuleType.AGGREGATE,
        "purchase",
        count=CountCondition(Operator.GREATER_OR_EQUAL, 2),
        sum=SumCondition(Operator.GREATER, Decimal(100), "price"),
        reset=True,
    )
    purchases = Rule("purchases", RuleType.AGGREGATE, "purchase", count=CountCondition(Operator.EQUAL, 3))
    rules = [tables, spend, purchases]
    values = [("table", "99.99"), ("chair", "0.01"), ("table", "0.01"), ("table", "150"), ("lamp", "1")]
    events = [
        click("u1", "purchase", n, attributes={"product": product_name}, metrics={"price": float(price)})
        for n, (product_name, price) in enumerate(values)
    ]
    product.put_rules(rules)
    product.put_events(events)
    _all_succeeded(product.ingest())
    assert actual(product) == expected(rules, events)
    by_rule = {(o["rule_id"], o["kind"], o["cycle"]) for o in product.outcomes()}
    # spend: 99.99, 100.00 (not greater), 100.01 at the third -> reached; then 150, 151 at the second -> reached.
    assert by_rule == {
        ("tables", "qualified", None),
        ("spend", "reached", 1),
        ("spend", "reached", 2),
        ("purchases", "qualified", None),
    }
    spend_counter = product.counters()[("u1", "spend")]
    assert (spend_counter.count, spend_counter.sum, spend_counter.cycle) == (0, Decimal(0), 2)


def test_a_500_event_group_commits_in_order_in_chunks(aws: LocalAws) -> None:
    product = LocalProduct(aws, parameters={"BatchSize": "500"})
    rules = [Rule("pairs", RuleType.AGGREGATE, "tap", count=CountCondition(Operator.GREATER_OR_EQUAL, 2), reset=True)]
    events = [click("u1", "tap", n) for n in range(500)]
    product.put_rules(rules)
    product.put_events(events)
    report = product.ingest()
    _all_succeeded(report)
    assert report.batches == 1
    states = aws.entered_states(report.executions[0].arn)
    # 500 claims and 250 outcomes need eight transactions; too large for a state's payload, they went through
    # S3 and were read back one at a time.
    assert states.count("LoadChunk") == 8 and states.count("CommitLoadedChunk") == 8
    assert report.executions[0].output["summary"]["spilled_groups"] == 1
    assert actual(product) == expected(rules, events)
    assert product.counters()[("u1", "pairs")].version == 8


@pytest.mark.parametrize("event_type", ["_session.start", "trk_greenbutton"])
def test_system_events_and_own_outputs_are_ignored(product: LocalProduct, event_type: str) -> None:
    product.put_rules([GREENBUTTON])
    product.put_events([click("u1", event_type, 1), click("u1", "greenbutton", 2)])
    _all_succeeded(product.ingest())
    assert list(product.counters()) == [("u1", "aggregate-greenbutton")]


def test_a_rule_naming_a_system_event_counts_it(product: LocalProduct) -> None:
    sessions = Rule(
        "sessions", RuleType.AGGREGATE, "_session.start", count=CountCondition(Operator.GREATER_OR_EQUAL, 2)
    )
    product.put_rules([sessions])
    product.put_events(click("u1", "_session.start", n) for n in range(3))
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "sessions")].count == 3


def test_a_throttled_batch_fails_its_execution_and_the_retry_counts_once(aws: LocalAws, product: LocalProduct) -> None:
    product.put_rules([REDBUTTON])
    events = [click("u1", "redbutton", n) for n in range(8)]
    product.put_events(events)
    # More throttling than the workflow's own retries absorb: the execution fails, the Pipe retries.
    aws.fail_next("dynamodb", "TransactWriteItems", commit_tries(), "ProvisionedThroughputExceededException")
    report = product.ingest()
    statuses = [execution.status for execution in report.executions]
    assert statuses[0] == "FAILED" and statuses[-1] == "SUCCEEDED" and report.retries + report.bisections >= 1
    assert "ProvisionedThroughputExceeded" in str(report.executions[0].error) + str(report.executions[0].cause)
    assert actual(product) == expected([REDBUTTON], events)


def test_a_transaction_cancelled_for_capacity_is_committed_again_after_a_backoff(
    aws: LocalAws, product: LocalProduct
) -> None:
    """TransactionCanceledException also means throttling or a concurrent transaction, not only a conflict: the
    group is resolved (nothing was counted yet, so the same commit), waits, and commits once."""
    product.put_rules([REDBUTTON])
    events = [click("u1", "redbutton", n) for n in range(5)]
    product.put_events(events)
    aws.fail_next("dynamodb", "TransactWriteItems", 1, "TransactionCanceledException")
    report = product.ingest()
    _all_succeeded(report)
    states = aws.entered_states(report.executions[0].arn)
    assert states.index("ResolveConflict") < states.index("ConflictBackoff") < len(states)
    assert states.count("CommitChunk") == 2
    assert actual(product) == expected([REDBUTTON], events)


def test_a_producer_retry_is_counted_once_until_its_commit_outlives_the_retention(aws: LocalAws) -> None:
    """docs/events.md: a producer's retry (a new record, a new sequence number, the same event id) is counted once
    while the counter remembers the id: from the day of the commit for DedupeRetentionDays full days. At the edge,
    once that day has left the retention, the same id counts again: that is the retention the stack chose."""
    product = LocalProduct(aws, parameters={"DedupeRetentionDays": "3"})
    product.put_rules([GREENBUTTON])
    first = click("u1", "greenbutton", 1, event_id="order-1")
    product.put_events([first])
    _all_succeeded(product.ingest())
    key = {"pk": {"S": "U#u1"}, "sk": {"S": "R#aggregate-greenbutton"}}
    table = product.table("CountersTable")

    def seen() -> dict[str, Any]:
        with aws.uncounted():
            item = aws.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        return dict(item["seen"]["M"])

    (day,) = seen()
    assert day == time.strftime("%Y-%m-%d", time.gmtime())

    product.put_events([first, {**first, "timestamp": first["timestamp"] + 5}])  # retries, the second re-timed
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 1

    def commit_day_moved(days_ago: int) -> None:
        moved = time.strftime("%Y-%m-%d", time.gmtime(time.time() - days_ago * 86_400))
        with aws.uncounted():
            aws.client("dynamodb").update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET seen = :seen",
                ExpressionAttributeValues={":seen": {"M": {moved: next(iter(seen().values()))}}},
            )

    commit_day_moved(3)  # the oldest day still inside a 3-day retention
    product.put_events([first])
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 1

    commit_day_moved(4)  # the retention has passed
    product.put_events([first])
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 2


def test_a_counter_too_busy_to_remember_its_ids_claims_them(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/design.md: past INLINE_IDS ids in the retention, a counter's events are claimed, one item each, in the
    transaction with the counter; a retry of a claimed event is refused until its claim outlives the retention.
    (The limit is lowered here so that a few events reach it.)"""
    monkeypatch.setattr(dedupe, "INLINE_IDS", 2)
    product = LocalProduct(aws, parameters={"DedupeRetentionDays": "3"})
    product.put_rules([GREENBUTTON])
    events = [click("u1", "greenbutton", n, event_id=f"order-{n}") for n in range(4)]
    product.put_events(events[:2])
    _all_succeeded(product.ingest())
    before = int(time.time())
    product.put_events(events[2:])
    _all_succeeded(product.ingest())
    after = int(time.time())
    assert product.remembered() == 4  # two ids in the counter, two claims

    with aws.uncounted():
        table = product.table("CountersTable")
        claims = [
            item for item in aws.client("dynamodb").scan(TableName=table)["Items"] if item["sk"]["S"].startswith("D#")
        ]
    assert sorted(claim["sk"]["S"].rsplit("#", 1)[-1] for claim in claims) == ["order-2", "order-3"]
    for claim in claims:
        assert before + 3 * 86_400 <= int(claim["expires_at"]["N"]) <= after + 3 * 86_400

    product.put_events([events[0], events[3], {**events[3], "timestamp": events[3]["timestamp"] + 5}])
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 4

    (claim_3,) = [claim for claim in claims if claim["sk"]["S"].endswith("#order-3")]
    with aws.uncounted():  # the retention has passed and TTL has deleted the claim
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": claim_3["pk"], "sk": claim_3["sk"]})
    product.put_events([events[3]])
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 5


def test_a_counter_written_before_counters_remembered_ids_keeps_its_claims_for_the_retention(aws: LocalAws) -> None:
    """A stack updated in place: its counters have no `seen`, their events were claimed. A producer's retry of a
    claimed event is still refused, and new events are claimed too, until the retention after the counter's last
    write has passed; then the counter remembers its ids itself."""
    product = LocalProduct(aws, parameters={"DedupeRetentionDays": "3"})
    product.put_rules([GREENBUTTON])
    table = product.table("CountersTable")
    rule = GREENBUTTON
    written = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with aws.uncounted():  # the counter and claim as the release before wrote them
        dynamodb = aws.client("dynamodb")
        dynamodb.put_item(
            TableName=table,
            Item={
                **counter_key("u1", rule.rule_id),
                **item_to_dynamo(
                    {
                        "rule_id": rule.rule_id,
                        "user_id": "u1",
                        "identity": rule.counting_identity,
                        "version": 1,
                        "st": {"count": 1, "sum": 0, "cycle": 0, "qualified": False},
                        "recent": {"s1": {"i": "order-1", "t": NOW_MS, "v": 0, "n": 1, "c": 0}},
                        "updated_at": iso_instant(written),
                    }
                ),
            },
        )
        expires = int(written.timestamp()) + 3 * 86_400
        dynamodb.put_item(
            TableName=table,
            Item={
                **claim_key("u1", rule.rule_id, rule.counting_identity, "order-1"),
                "expires_at": {"N": str(expires)},
            },
        )
    retry = click("u1", "greenbutton", 1, event_id="order-1")
    product.put_events([retry, click("u1", "greenbutton", 2, event_id="order-2")])
    _all_succeeded(product.ingest())
    assert product.counters()[("u1", rule.rule_id)].count == 2  # the retry refused, order-2 counted
    assert product.remembered() == 2  # both claimed: order-1 before the update, order-2 after it
