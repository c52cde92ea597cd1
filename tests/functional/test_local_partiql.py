"""Canaries for BatchExecuteStatement on the local AWS (dynamodb_partiql.py): DynamoDB's per-statement errors and
limits, and the counter writes the product sends, which must leave the item a transaction's write would."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from incremental_analytics.adapters.dynamodb_io import execute_statements
from incremental_analytics.adapters.dynamodb_items import (
    counter_change,
    counter_from_item,
    counter_statement,
    counter_write,
)
from incremental_analytics.domain.commits import plan_commits
from incremental_analytics.domain.dedupe import Seen, record
from incremental_analytics.domain.delivery_batch import claims, holder
from incremental_analytics.domain.outcomes import Contribution
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_local.engine import LocalAws
from tests.functional.conftest import create_audit_table

TABLE = "counters"
RULE = Rule("r", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 100))
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamodb(aws: LocalAws) -> Any:
    client = aws.client("dynamodb")
    _create_table(client, TABLE)
    return client


def _update(pk: str, version: int, count: int) -> dict[str, Any]:
    return {
        "Statement": f'UPDATE "{TABLE}" SET "count" = ? SET "version" = ? '
        'WHERE "pk" = ? AND "sk" = ? AND "version" = ?',
        "Parameters": [{"N": str(count)}, {"N": str(version + 1)}, {"S": pk}, {"S": "c"}, {"N": str(version)}],
    }


def _insert(pk: str) -> dict[str, Any]:
    return {
        "Statement": f"INSERT INTO \"{TABLE}\" VALUE {{'pk': ?, 'sk': ?, 'version': ?}}",
        "Parameters": [{"S": pk}, {"S": "c"}, {"N": "1"}],
    }


def _item(dynamodb: Any, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": "c"}}, ConsistentRead=True
    ).get("Item")
    return found


def test_an_update_of_a_missing_item_fails_its_condition_and_creates_nothing(dynamodb: Any) -> None:
    """ "PartiQL update statements for DynamoDB": UPDATE is no upsert; the WHERE clause's key must exist."""
    (response,) = dynamodb.batch_execute_statement(Statements=[_update("nobody", 0, 1)])["Responses"]
    assert response["Error"]["Code"] == "ConditionalCheckFailed"
    assert _item(dynamodb, "nobody") is None


def test_each_statement_fails_or_is_written_on_its_own(dynamodb: Any) -> None:
    dynamodb.batch_execute_statement(Statements=[_insert("a"), _insert("b"), _insert("d")])
    responses = dynamodb.batch_execute_statement(
        Statements=[_update("a", 1, 5), _update("b", 7, 5), _insert("d"), _insert("c")]
    )["Responses"]
    assert [response.get("Error", {}).get("Code") for response in responses] == [
        None,
        "ConditionalCheckFailed",  # the version moved on
        "DuplicateItem",  # an INSERT of a key that exists
        None,
    ]
    assert _item(dynamodb, "a") == {"pk": {"S": "a"}, "sk": {"S": "c"}, "version": {"N": "2"}, "count": {"N": "5"}}
    assert _item(dynamodb, "b") == {"pk": {"S": "b"}, "sk": {"S": "c"}, "version": {"N": "1"}}
    assert _item(dynamodb, "c") is not None


def test_a_batch_holds_one_to_25_statements_each_on_its_own_item(dynamodb: Any) -> None:
    """ "Running batch operations with PartiQL for DynamoDB": no more than 25 statements a batch."""
    dynamodb.batch_execute_statement(Statements=[_insert(f"u{n}") for n in range(25)])
    for statements in ([_insert(f"v{n}") for n in range(26)], [_update("u1", 1, 2), _update("u1", 1, 3)]):
        with pytest.raises(ClientError) as refused:
            dynamodb.batch_execute_statement(Statements=statements)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert _item(dynamodb, "v0") is None and _item(dynamodb, "u1")["version"] == {"N": "1"}  # type: ignore[index]


@pytest.mark.parametrize(
    "statement",
    [
        'SELECT * FROM "counters" WHERE "pk" = ? AND "sk" = ?',
        'DELETE FROM "counters" WHERE "pk" = ? AND "sk" = ?',
        'UPDATE "counters" SET "n" = "n" + 1 WHERE "pk" = ? AND "sk" = ?',
        'UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ? AND "n" > 3',
    ],
)
def test_statements_outside_the_local_subset_are_refused_by_name(dynamodb: Any, statement: str) -> None:
    """The engine may be stricter than DynamoDB, never kinder: what it does not run, it refuses as such."""
    parameters = [{"N": "1"}, {"S": "a"}, {"S": "c"}][-statement.count("?") :]
    with pytest.raises(ClientError) as refused:
        dynamodb.batch_execute_statement(Statements=[{"Statement": statement, "Parameters": parameters}])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "runs only PartiQL writes" in refused.value.response["Error"]["Message"]


_A = [{"S": "a"}, {"S": "c"}]  # the key of the item `_insert("a")` puts
_ONE = {"N": "1"}


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        # UpdateExpression: "Two document paths overlap with each other" (the same path, or one inside another).
        ('UPDATE "counters" SET "m" = ? SET "m"."a" = ? WHERE "pk" = ? AND "sk" = ?', [{"M": {}}, _ONE, *_A]),
        ("INSERT INTO \"counters\" VALUE {'pk': ?, 'sk': ?, 'n': ?, 'n': ?}", [{"S": "b"}, {"S": "c"}, _ONE, _ONE]),
        # "Supported data types and naming rules in Amazon DynamoDB": no empty sets.
        ('UPDATE "counters" SET "tags" = ? WHERE "pk" = ? AND "sk" = ?', [{"SS": []}, *_A]),
        ('UPDATE "counters" SET "m" = ? WHERE "pk" = ? AND "sk" = ?', [{"M": {"ids": {"NS": []}}}, *_A]),
        # Key attributes (of the table, or of an index) are never empty, and of their defined type.
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ?', [_ONE, {"S": ""}, {"S": "c"}]),
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ?', [_ONE, _ONE, {"S": "c"}]),
        ("INSERT INTO \"counters\" VALUE {'pk': ?, 'sk': ?}", [{"S": "b"}, {"S": ""}]),
        ('UPDATE "counters" SET "gk" = ? WHERE "pk" = ? AND "sk" = ?', [{"S": ""}, *_A]),
        ('UPDATE "counters" SET "gk" = ? WHERE "pk" = ? AND "sk" = ?', [_ONE, *_A]),
        # "PartiQL update statements for DynamoDB": the condition resolves to a single primary key value.
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ? AND "pk" = ?', [_ONE, *_A, {"S": "b"}]),
        # API reference, Condition: LT compares a string, number or binary; BEGINS_WITH a string or binary.
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ? AND "m" < ?', [_ONE, *_A, {"M": {}}]),
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ? AND "n" < ?', [_ONE, *_A, {"BOOL": True}]),
        ('UPDATE "counters" SET "n" = ? WHERE "pk" = ? AND "sk" = ? AND begins_with("gk", ?)', [_ONE, *_A, _ONE]),
    ],
)
def test_values_dynamodb_refuses_are_the_statements_validation_error(
    aws: LocalAws, statement: str, parameters: list[dict[str, Any]]
) -> None:
    """The engine may be stricter than DynamoDB, never kinder: each of these is refused, and nothing is written."""
    client = aws.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gk")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gk",
                "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.batch_execute_statement(Statements=[_insert("a")])
    before = _item(client, "a")
    statements = [{"Statement": statement, "Parameters": parameters}]
    (response,) = client.batch_execute_statement(Statements=statements)["Responses"]
    assert response["Error"]["Code"] == "ValidationError"
    assert _item(client, "a") == before and _item(client, "b") is None


def test_a_statement_holds_at_most_8192_characters(dynamodb: Any) -> None:
    """API reference, BatchStatementRequest: Statement, 1 to 8,192 characters."""
    name = "n" * (8_192 - len(_update("a", 1, 2)["Statement"].replace('"count"', '""')))
    longest = {**_update("a", 1, 2), "Statement": _update("a", 1, 2)["Statement"].replace('"count"', f'"{name}"')}
    assert len(longest["Statement"]) == 8_192
    dynamodb.batch_execute_statement(Statements=[_insert("a")])
    (response,) = dynamodb.batch_execute_statement(Statements=[longest])["Responses"]
    assert "Error" not in response
    longer = {**longest, "Statement": longest["Statement"].replace(name, name + "n")}
    with pytest.raises(ClientError) as refused:
        dynamodb.batch_execute_statement(Statements=[longer])
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_the_parameters_must_match_the_placeholders(dynamodb: Any) -> None:
    short = {**_insert("a"), "Parameters": _insert("a")["Parameters"][:2]}
    with pytest.raises(ClientError) as refused:
        dynamodb.batch_execute_statement(Statements=[short])
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_an_update_must_name_the_whole_key(dynamodb: Any) -> None:
    dynamodb.batch_execute_statement(Statements=[_insert("a")])
    partial = {"Statement": f'UPDATE "{TABLE}" SET "n" = ? WHERE "pk" = ?', "Parameters": [{"N": "1"}, {"S": "a"}]}
    (response,) = dynamodb.batch_execute_statement(Statements=[partial])["Responses"]
    assert response["Error"]["Code"] == "ValidationError"


def _counter_writes(stored: Any, events: list[Contribution]) -> tuple[dict[str, Any], dict[str, Any]]:
    (chunk,) = plan_commits(stored.state, stored.version, RULE, "u1", events)
    dedupe = record(stored.seen, [event.event_id for event in events], NOW, 7)
    change = counter_change(
        user_id="u1",
        rule_id=RULE.rule_id,
        identity=RULE.counting_identity,
        chunk=chunk,
        whole=stored.whole,
        exists=stored.exists,
        seen=dedupe.seen,
        updated_at="2026-12-01T12:00:00Z",
    )
    return counter_statement(TABLE, change), counter_write(TABLE, change)


def test_a_counter_written_by_statement_is_the_item_a_transaction_writes(aws: LocalAws, dynamodb: Any) -> None:
    """One definition of a counter's change (dynamodb_items.counter_change), two renderings: after the same
    commits, the PartiQL statements and the transactions leave the same item, new or updated, ring and memory."""
    other = "counters-tx"
    _create_table(dynamodb, other)
    key = {"pk": {"S": "U#u1"}, "sk": {"S": "R#r"}}
    for batch in range(3):
        events = [Contribution(f"e{batch}-{n}", 1_000 * batch + n, Decimal(n)) for n in range(3)]
        stored = counter_from_item(
            dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item"), RULE.counting_identity
        )
        statement, _ = _counter_writes(stored, events)
        assert execute_statements(dynamodb, [statement]) == [None]
        stored_tx = counter_from_item(
            dynamodb.get_item(TableName=other, Key=key, ConsistentRead=True).get("Item"), RULE.counting_identity
        )
        _, write = _counter_writes(stored_tx, events)  # written for TABLE: sent to the other table
        dynamodb.transact_write_items(TransactItems=[{kind: {**op, "TableName": other} for kind, op in write.items()}])
    by_statement = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    by_transaction = dynamodb.get_item(TableName=other, Key=key, ConsistentRead=True)["Item"]
    assert by_statement == by_transaction
    counter = counter_from_item(by_statement, RULE.counting_identity)
    assert (counter.state.count, counter.version, len(counter.seen)) == (9, 3, 9)
    assert "e2-2" in counter.seen and "e3-0" not in counter.seen
    assert counter.seen == Seen({"2026-12-01": counter.seen.days["2026-12-01"]})


AUDIT = "audit"
DELIVERER = "arn:aws:states:us-east-1:123456789012:express:DeliverOutcomes:run-1"


def _outcome(dynamodb: Any, outcome_id: str, **attributes: dict[str, str]) -> None:
    item = {
        "user_id": {"S": "u1"},
        "outcome_id": {"S": outcome_id},
        "undelivered": {"S": "P2"},
        "delivery_attempts": {"N": "0"},
    }
    dynamodb.put_item(TableName=AUDIT, Item={**item, **attributes})


def _claim(dynamodb: Any, outcome_ids: list[str], *, attempts: int = 0, stale_before: str | None = None) -> list[Any]:
    """Claims as an execution from the stream (no `stale_before`) or a page of the redelivery makes them."""
    keys = [{"user_id": "u1", "outcome_id": outcome_id} for outcome_id in outcome_ids]
    page: Any = (
        [{"dynamodb": {"Keys": {name: {"S": value} for name, value in key.items()}}} for key in keys]
        if stale_before is None
        else {"outcomes": [{**key, "attempts": attempts, "stale_before": stale_before} for key in keys]}
    )
    shaped = claims(page, table=AUDIT, execution=DELIVERER, now="2026-12-01T12:00:00.000Z")
    responses = dynamodb.batch_execute_statement(Statements=shaped["claims"])["Responses"]
    return [response.get("Error", {}).get("Code") for response in responses]


def _stored(dynamodb: Any, outcome_id: str) -> dict[str, Any]:
    key = {"user_id": {"S": "u1"}, "outcome_id": {"S": outcome_id}}
    found: dict[str, Any] = dynamodb.get_item(TableName=AUDIT, Key=key, ConsistentRead=True)["Item"]
    return found


def test_the_delivery_claims_hold_only_outcomes_pending_with_the_attempts_read_and_no_live_holder(
    dynamodb: Any,
) -> None:
    """The delivery's claims (domain/delivery_batch.claims) as DynamoDB runs them: begins_with, a comparison, a
    missing attribute and OR are conditions of the write ("PartiQL select statements for DynamoDB", functions
    BEGINS_WITH and MISSING); each statement fails or is written on its own."""
    create_audit_table(dynamodb, AUDIT)
    _outcome(dynamodb, "free")
    _outcome(dynamodb, "held", claimed_by={"S": "another"}, claimed_at={"S": "2026-12-01T11:55:00.000Z"})
    _outcome(dynamodb, "done")
    dynamodb.update_item(
        TableName=AUDIT,
        Key={"user_id": {"S": "u1"}, "outcome_id": {"S": "done"}},
        UpdateExpression="REMOVE undelivered",
    )
    _outcome(dynamodb, "abandoned", undelivered={"S": "ABANDONED"})
    _outcome(dynamodb, "tried", delivery_attempts={"N": "1"})
    expected = [
        None,
        "ConditionalCheckFailed",  # another execution holds it
        "ConditionalCheckFailed",  # no such item: nothing is created
        "ConditionalCheckFailed",  # no sink lacks it
        "ConditionalCheckFailed",  # abandoned
        "ConditionalCheckFailed",  # an attempt began since the input was read
    ]
    outcomes = ["free", "held", "missing", "done", "abandoned", "tried"]
    assert _claim(dynamodb, outcomes) == expected
    # From the stream: the hold alone, not the attempts or their time, which the undelivered index projects.
    claimed = _stored(dynamodb, "free")
    assert claimed["claimed_by"] == {"S": holder(DELIVERER)} and claimed["claimed_at"] == {
        "S": "2026-12-01T12:00:00.000Z"
    }
    assert claimed["delivery_attempts"] == {"N": "0"} and "attempted_at" not in claimed
    # The stream never takes a hold over, however old: a batch the Pipe retries is left to the redelivery.
    assert _claim(dynamodb, ["held"]) == ["ConditionalCheckFailed"]

    # The redelivery's page: the same refusals while the holds live; it counts the attempt and when it began.
    dynamodb.update_item(
        TableName=AUDIT, Key={"user_id": {"S": "u1"}, "outcome_id": {"S": "free"}}, UpdateExpression="REMOVE claimed_by"
    )
    assert _claim(dynamodb, outcomes, stale_before="2026-12-01T11:00:00.000Z") == expected
    claimed = _stored(dynamodb, "free")
    assert claimed["claimed_by"] == {"S": holder(DELIVERER)} and claimed["delivery_attempts"] == {"N": "1"}
    assert claimed["attempted_at"] == claimed["claimed_at"] == {"S": "2026-12-01T12:00:00.000Z"}
    # A hold older than stale_before is taken over, timed by `claimed_at` or, held by an earlier release, by
    # `attempted_at`; a missing item is still not created.
    _outcome(dynamodb, "held-before", claimed_by={"S": "another"}, attempted_at={"S": "2026-12-01T11:55:00.000Z"})
    assert _claim(dynamodb, ["held", "held-before", "missing"], stale_before="2026-12-01T11:56:00.000Z") == [
        None,
        None,
        "ConditionalCheckFailed",
    ]
    assert _claim(dynamodb, ["tried"], attempts=1, stale_before="2026-12-01T11:56:00.000Z") == [None]
    assert (
        dynamodb.get_item(TableName=AUDIT, Key={"user_id": {"S": "u1"}, "outcome_id": {"S": "missing"}}).get("Item")
        is None
    )
