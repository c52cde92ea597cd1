"""Whatever is uploaded under rules/, the real SyncRules workflow applies it or reports it (rules/<file>.errors.json
and a RulesRejected event), and never carries the rules in its state: a 10,000-rule file stays far below Step
Functions' 256 KiB per state (the local engine runs the same ASL; this measures the payloads it records)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from incremental_analytics.adapters.dynamodb_io import scan_all
from incremental_analytics_local.engine import ExecutionResult, LocalAws
from incremental_analytics_local.product import LocalProduct
from tests.unit.test_rules_files_hostile import ALIAS_BOMB, HEADER, ROW

STATE_DATA_LIMIT = 262_144  # bytes: Step Functions' limit on an execution's input, output and each state's data
GOOD = HEADER + "aggregator,greenbutton,na,999,greater,5,na,999,no,9999-99-99,9999-99-99,g\n"


class Watched:
    """A deployed product, and an SQS queue that receives every RulesSynced and RulesRejected event of its bus."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.product = LocalProduct(aws, parameters={"FunctionLogLevel": "WARNING"})
        sqs = aws.client("sqs")
        self.queue = sqs.create_queue(QueueName="rules-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = aws.client("events")
        bus = self.product.table("EventBus")
        pattern = {"source": ["incremental-analytics"], "detail-type": ["RulesSynced", "RulesRejected"]}
        events.put_rule(Name="rules-events", EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="rules-events", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def upload(self, name: str, content: bytes | str) -> ExecutionResult:
        return self.product.upload_rules_file(name, content)

    def announced(self) -> list[dict[str, Any]]:
        sqs = self.aws.client("sqs")
        found = []
        while messages := sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def report(self, key: str) -> dict[str, Any]:
        s3 = self.aws.client("s3")
        body = s3.get_object(Bucket=self.product.table("DataBucket"), Key=f"{key}.errors.json")["Body"].read()
        report: dict[str, Any] = json.loads(body)
        return report

    def rule_ids(self) -> list[str]:
        with self.aws.uncounted():
            items = scan_all(self.aws.client("dynamodb"), self.product.table("RulesTable"))
        return sorted(item["rule_id"]["S"] for item in items)

    def largest_state_data(self, execution: ExecutionResult) -> int:
        """The largest input or output any state, task or the execution itself had, in bytes."""
        sizes = [
            len(value.encode())
            for event in self.aws.history(execution.arn)
            for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict)
            for field, value in details.items()
            if field in ("input", "output") and isinstance(value, str)
        ]
        return max(sizes)


@pytest.fixture(scope="module")
def watched() -> Iterator[Watched]:
    with LocalAws(time_scale=0.001) as aws:
        yield Watched(aws)


HOSTILE = [
    ("cp1252.csv", (HEADER + ROW).encode("cp1252"), "the file is not UTF-8 text: byte 0xE9 at line 2, column 15"),
    ("random.csv", bytes(range(128, 256)) * 40, "the file is not UTF-8 text: byte 0x80 at line 1, column 1"),
    ("cell.csv", HEADER + ROW.replace("café", "x" * 131_073), "row 2, column EventName: 131,073 characters"),
    ("deep.json", "[" * 5000 + "]" * 5000, "not valid rules: nested 5000 levels deep, more than 16"),
    ("bomb.yaml", ALIAS_BOMB, "not valid YAML: more than 500,000 values, counting what each alias repeats"),
    ("header.csv", HEADER, "no rules: the file has a header row but no rule rows"),
    ("empty.csv", b"", "no rules: the file is empty"),
    ("extra.csv", HEADER + ROW.strip() + ",surprise\n", "row 2, column M: 'surprise' is in a column with no header"),
    ("tz.json", json.dumps([{"rule_id": "d", "type": "date", "event_type": "x", "count": {"operator": "greater",
     "target": 1}, "start_date": "2021-01-01", "finish_date": "2021-01-02", "timezone": "posixrules"}]),
     "rules[0].timezone: 'posixrules' is not an IANA time zone name"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "first_problem"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_file_changes_nothing_and_is_reported(
    watched: Watched, name: str, content: bytes | str, first_problem: str
) -> None:
    if not watched.rule_ids():
        assert watched.upload("good.csv", GOOD).status == "SUCCEEDED"
        watched.announced()
    before = watched.rule_ids()

    result = watched.upload(name, content)
    assert (result.status, result.error) == ("FAILED", "RulesRejected")
    report = watched.report(f"rules/{name}")
    assert report["file"] == f"rules/{name}" and report["problems"][0].startswith(first_problem)
    assert report["problems_total"] == len(report["problems"]) == 1
    (event,) = watched.announced()
    assert event["detail-type"] == "RulesRejected"
    assert event["detail"] == {**report, "report": f"rules/{name}.errors.json"}
    assert watched.rule_ids() == before == ["aggregate-greenbutton"]
    assert watched.largest_state_data(result) < 4_000


def test_ten_thousand_rules_go_through_s3_not_the_state(watched: Watched) -> None:
    row = "aggregator,event-{n:05d},product,item-{n:05d},greater,{target},na,999,no,9999-99-99,9999-99-99,k\n"
    rows = "".join(row.format(n=n, target=n % 50) for n in range(10_000))
    content = HEADER + rows
    assert len(content.encode()) > 700_000  # the file: 718 KB, refused by a 256 KiB state

    result = watched.upload("many.csv", content)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output is not None
    summary = result.output["summary"]
    assert summary["counts"] == {"created": 10_000, "changed": 0, "deleted": 1, "unchanged": 0}
    assert len(summary["created"]) == 100 and summary["deleted"] == ["aggregate-greenbutton"]
    ids = watched.rule_ids()
    assert len(ids) == 10_000 and ids[0] == "aggregate-event-00000-product-item-00000"
    largest = watched.largest_state_data(result)
    assert largest < STATE_DATA_LIMIT // 4
    (event,) = watched.announced()
    assert event["detail-type"] == "RulesSynced" and event["detail"]["counts"]["created"] == 10_000

    again = watched.upload("many.csv", content)
    assert again.status == "SUCCEEDED" and again.output is not None
    assert again.output["summary"]["counts"] == {"created": 0, "changed": 0, "deleted": 0, "unchanged": 10_000}
    assert "WriteRules" not in watched.aws.entered_states(again.arn)
    watched.announced()


def test_ten_thousand_bad_rows_are_all_counted_and_reported(watched: Watched) -> None:
    rows = "".join(f"weekly,event-{n},na,999,more,3,na,999,no,,,k\n" for n in range(10_000))
    result = watched.upload("bad.csv", HEADER + rows)
    assert (result.status, result.error) == ("FAILED", "RulesRejected")
    report = watched.report("rules/bad.csv")
    assert report["problems_total"] == 20_000 and len(report["problems"]) == 1_000
    (event,) = watched.announced()
    assert event["detail"]["problems_total"] == 20_000 and len(event["detail"]["problems"]) == 20
    assert watched.largest_state_data(result) < 16_000


def test_deleting_every_rule_takes_saying_so_and_a_folder_marker_is_no_rules_file(watched: Watched) -> None:
    assert watched.upload("keep.csv", GOOD).status == "SUCCEEDED"
    assert watched.upload("none.json", "[]").error == "RulesRejected"
    assert watched.rule_ids() == ["aggregate-greenbutton"]
    emptied = watched.upload("none.json", '{"rules": [], "allow_empty": true}')
    assert emptied.status == "SUCCEEDED" and emptied.output is not None
    assert emptied.output["summary"]["deleted"] == ["aggregate-greenbutton"]
    assert watched.rule_ids() == []
    marker = watched.upload("folder/", b"")
    assert marker.status == "SUCCEEDED" and watched.aws.entered_states(marker.arn) == ["IsRulesFile", "NotARulesFile"]
    watched.announced()


def test_a_check_that_fails_is_reported_too(watched: Watched) -> None:
    watched.aws.fail_next("s3", "GetObject", 1, "SlowDown", 503)  # the function's read of the file
    result = watched.upload("slow.csv", GOOD)
    assert (result.status, result.error) == ("FAILED", "RulesRejected")
    assert "CouldNotValidate" in watched.aws.entered_states(result.arn)
    assert watched.report("rules/slow.csv")["problems"] == [
        "the file could not be checked (ClientError); nothing was changed"
    ]
    (event,) = watched.announced()
    assert event["detail-type"] == "RulesRejected"
