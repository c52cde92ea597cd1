"""The rules lifecycle through the real SyncRules and RulesChanged ASL on the local AWS: a rules file uploaded to
the data bucket (S3 -> EventBridge -> SyncRules), the rules table's stream through its Pipe (-> RulesChanged)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from moto.dynamodb.models import dynamodb_backends

from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics.adapters.dynamodb_items import claim_key, counter_key, item_from_dynamo, item_to_dynamo
from incremental_analytics.adapters.rules_store import rules_from_items
from incremental_analytics.domain.dedupe import Seen
from incremental_analytics.domain.rules import Rule
from incremental_analytics_local.engine import ACCOUNT_ID, LocalAws
from incremental_analytics_local.product import LocalProduct

NOW_MS = int(time.time() * 1000)
HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)
GREEN = "aggregator,greenbutton,na,999,greater,{target},na,999,no,9999-99-99,9999-99-99,g\n"
RED = "aggregator,redbutton,na,999,greater,3,na,999,yes,9999-99-99,9999-99-99,r\n"
TABLES = "aggregator,purchase,product,{product},greater,1,na,999,no,9999-99-99,9999-99-99,p\n"


def sheet(*rows: str) -> str:
    return HEADER + "".join(rows)


def rules_table(product: LocalProduct) -> dict[str, Rule]:
    with product.aws.uncounted():
        items = scan_all(product.aws.client("dynamodb"), product.table("RulesTable"))
        return {rule.rule_id: rule for rule in rules_from_items(items)}


def synced(product: LocalProduct, name: str, content: str) -> dict[str, Any]:
    result = product.upload_rules_file(name, content)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output is not None
    summary: dict[str, Any] = result.output["summary"]
    return summary


def click(user: str, event_type: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_type": event_type, "timestamp": NOW_MS - 600_000 + n, **extra}


def ingest(product: LocalProduct, events: list[dict[str, Any]]) -> None:
    product.put_events(events)
    assert {execution.status for execution in product.ingest().executions} <= {"SUCCEEDED"}


def test_the_sample_sheet_fills_the_rules_table_and_again_changes_nothing(
    aws: LocalAws, product: LocalProduct, samples: Path
) -> None:
    content = (samples / "honeycode_rules.csv").read_text()
    first = synced(product, "honeycode_rules.csv", content)
    assert (
        sorted(first["created"])
        == sorted(rules_table(product))
        == [
            "aggregate-greenbutton",
            "aggregate-pageview",
            "aggregate-redbutton",
            "date-greenbutton",
            "date-purchase-product-table",
        ]
    )
    changes = product.apply_rule_changes()
    assert changes.records_read == 5 and changes.succeeded == 1

    aws.reset_request_counts()
    again = synced(product, "honeycode_rules.csv", content)
    counts = {"created": 0, "changed": 0, "deleted": 0, "unchanged": 5}
    assert again == {"created": [], "changed": [], "deleted": [], "unchanged": 5, "counts": counts}
    assert "events.PutEvents" not in aws.request_counts()  # no RulesSynced, nothing else either
    assert product.apply_rule_changes().records_read == 0  # nothing written: no purge, no evaluation


def test_a_file_with_one_invalid_row_changes_nothing_and_gets_a_report(aws: LocalAws, product: LocalProduct) -> None:
    synced(product, "rules.csv", sheet(GREEN.format(target=5), RED))
    before = rules_table(product)
    aws.reset_request_counts()
    result = product.upload_rules_file("rules.csv", sheet(GREEN.format(target="five"), RED, TABLES.format(product="x")))
    assert (result.status, result.error) == ("FAILED", "RulesRejected")
    assert rules_table(product) == before
    report_object = aws.client("s3").get_object(Bucket=product.table("DataBucket"), Key="rules/rules.csv.errors.json")
    report = json.loads(report_object["Body"].read())
    assert report == {
        "file": "rules/rules.csv",
        "problems": ["row 2, column Target-C: 'five' is not a whole number"],
        "problems_total": 1,
    }
    assert aws.request_counts().get("events.PutEvents") == 1  # RulesRejected
    assert "WriteRules" not in aws.entered_states(result.arn)

    fixed = synced(product, "rules.csv", sheet(GREEN.format(target=6), RED))
    assert fixed["changed"] == ["aggregate-greenbutton"]
    with pytest.raises(aws.client("s3").exceptions.NoSuchKey):
        aws.client("s3").get_object(Bucket=product.table("DataBucket"), Key="rules/rules.csv.errors.json")


def test_deleting_one_of_three_rules_purges_exactly_its_state_for_10000_users(
    aws: LocalAws, product: LocalProduct
) -> None:
    synced(product, "rules.csv", sheet(GREEN.format(target=5), RED, TABLES.format(product="table")))
    product.apply_rule_changes()
    rules = rules_table(product)
    ingest(product, [click("real", "redbutton", n) for n in range(4)])  # one reached outcome in the audit
    audit_before = product.audit_items()
    _counters_and_claims(aws, product, rules.values(), users=10_000)
    counted_before = _state_by_rule(product)
    assert counted_before["aggregate-redbutton"] == (10_001, 10_004)

    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=product.table("CountersTable"))
    stored = sum(page["Count"] for page in pages)

    summary = synced(product, "rules.csv", sheet(GREEN.format(target=5), TABLES.format(product="table")))
    assert summary["deleted"] == ["aggregate-redbutton"]
    report = product.apply_rule_changes()
    assert report.succeeded == 1
    (execution,) = report.executions
    entered = aws.entered_states(execution.arn)
    # The table read once, 1,000 items a page (no index by rule); a page with none of the rule's is not purged.
    assert entered.count("FindCounters") + entered.count("FindMoreCounters") == -(-stored // 1000)
    assert 11 <= entered.count("PurgePage") <= -(-stored // 1000)

    counted = _state_by_rule(product)
    assert "aggregate-redbutton" not in counted
    assert counted == {
        rule: counted_before[rule] for rule in ("aggregate-greenbutton", "aggregate-purchase-product-table")
    }
    assert product.audit_items() == audit_before
    ingest(product, [click("real", "redbutton", 10 + n) for n in range(4)])
    assert _state_by_rule(product).get("aggregate-redbutton") is None


def test_raising_a_target_keeps_counters_and_a_new_filter_restarts_them(aws: LocalAws, product: LocalProduct) -> None:
    synced(product, "rules.csv", sheet(GREEN.format(target=3), TABLES.format(product="table")))
    product.apply_rule_changes()
    ingest(product, [click("u1", "greenbutton", n) for n in range(3)])
    ingest(product, [click("u1", "purchase", n, attributes={"product": "table"}) for n in range(2)])

    synced(product, "rules.csv", sheet(GREEN.format(target=4), TABLES.format(product="table")))
    changes = product.apply_rule_changes()
    assert "FindCounters" not in aws.entered_states(changes.executions[0].arn)  # nothing purged
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 3
    ingest(product, [click("u1", "greenbutton", 3)])  # the 4th: "greater 3" would hold, "greater 4" does not
    assert product.counters()[("u1", "aggregate-greenbutton")].count == 4 and not _outcomes_of(product, "greenbutton")
    ingest(product, [click("u1", "greenbutton", 4)])
    (qualified,) = _outcomes_of(product, "greenbutton")
    assert qualified["evidence"]["conditions"][0] == {
        "on": "count",
        "operator": "greater",
        "target": 4,
        "actual": 5,
        "holds": True,
    }

    summary = synced(product, "rules.csv", sheet(GREEN.format(target=4), TABLES.format(product="chair")))
    # The attribute filter is part of the rule id in the Honeycode layout: the table rule goes, a chair rule comes.
    assert summary["deleted"] == ["aggregate-purchase-product-table"]
    product.apply_rule_changes()
    assert ("u1", "aggregate-purchase-product-table") not in product.counters()
    assert product.remembered() == 5  # the greenbutton events only

    json_rule = {
        "rule_id": "tables",
        "type": "aggregate",
        "event_type": "purchase",
        "count": {"operator": "greater", "target": 1},
    }
    synced(product, "rules.json", json.dumps([{**json_rule, "attribute": {"name": "product", "value": "table"}}]))
    product.apply_rule_changes()
    ingest(product, [click("u2", "purchase", n, attributes={"product": "table"}) for n in range(2)])
    assert product.counters()[("u2", "tables")].count == 2
    synced(product, "rules.json", json.dumps([{**json_rule, "attribute": {"name": "product", "value": "lamp"}}]))
    changes = product.apply_rule_changes()
    assert "PurgePage" in aws.entered_states(changes.executions[0].arn)
    assert ("u2", "tables") not in product.counters()
    ingest(product, [click("u2", "purchase", 9, attributes={"product": "lamp"})])
    assert product.counters()[("u2", "tables")].count == 1  # restarted under the new filter


def test_a_new_date_rule_is_evaluated_without_waiting_for_the_schedule(aws: LocalAws, product: LocalProduct) -> None:
    today = dt.datetime.now(dt.UTC).date()
    ingest(product, [{**click("u1", "purchase", n), "metrics": {"price": 300}} for n in range(2)])
    start, finish = today - dt.timedelta(days=3), today + dt.timedelta(days=3)
    rule = f"date,purchase,na,999,na,999,greater,500,no,{start},{finish},d\n"
    synced(product, "rules.csv", sheet(rule))
    product.apply_rule_changes()  # RulesChanged starts EvaluatePeriods for the rule, and it finishes
    (outcome,) = product.outcomes()
    assert (outcome["user_id"], outcome["rule_id"], outcome["kind"]) == ("u1", "date-purchase", "qualified")
    assert ":rule-" in outcome["execution"]  # started by the change, not the schedule


# -- helpers ---------------------------------------------------------------------------------------------------


def _outcomes_of(product: LocalProduct, event_type: str) -> list[dict[str, Any]]:
    return [o for o in product.outcomes() if o["evidence"]["rule"]["event_type"] == event_type]


def _counters_and_claims(aws: LocalAws, product: LocalProduct, rules: Any, users: int) -> None:
    """A counter and a claim per (user, rule), straight into the table (ingesting 60,000 events would take long)."""
    table = dynamodb_backends[ACCOUNT_ID][aws.region].tables[product.table("CountersTable")]
    for rule in rules:
        for n in range(users):
            user = f"user-{n:05d}"
            state = {"count": 1, "sum": 0, "cycle": 0, "qualified": False}
            plain = {
                "rule_id": rule.rule_id,
                "user_id": user,
                "identity": rule.counting_identity,
                "version": 1,
                "st": state,
            }
            table.put_item({**counter_key(user, rule.rule_id), **item_to_dynamo(plain)})
            claim = claim_key(user, rule.rule_id, rule.counting_identity, f"event-{n}")
            table.put_item({**claim, **item_to_dynamo({"expires_at": NOW_MS // 1000 + 86_400})})


def _state_by_rule(product: LocalProduct) -> dict[str, tuple[int, int]]:
    """(counters, remembered event ids: the counters' own and the claims) per rule id, read from the local table
    itself (a scan of 60,000 items takes a minute)."""
    table = dynamodb_backends[ACCOUNT_ID][product.aws.region].tables[product.table("CountersTable")]
    found: dict[str, list[int]] = {}
    for partition in table.items.values():
        for item in partition.values():
            sk = item.range_key.value
            if sk.startswith("R#"):
                counter = found.setdefault(sk[2:], [0, 0])
                counter[0] += 1
                if "seen" in item.attrs:
                    counter[1] += len(Seen(item_from_dynamo(item.to_json()["Attributes"])["seen"]))
            elif sk.startswith("D#"):
                found.setdefault(sk.split("#")[1], [0, 0])[1] += 1
    return {rule: (counters, remembered) for rule, (counters, remembered) in found.items()}
