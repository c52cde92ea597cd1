"""`explain --stack NAME` reads a deployed stack's tables, found through its CloudFormation outputs."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_cli import explain as explaining
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct


def _register_stack(aws: LocalAws, name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack whose outputs name the product's tables, as `sam deploy` leaves one."""
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.mark.filterwarnings("ignore::UserWarning")  # moto: "Tried to parse AWS::CloudFormation::..."
def test_explain_reads_a_deployed_stack(aws_with_product: tuple[LocalAws, LocalProduct]) -> None:
    aws, product = aws_with_product
    _register_stack(
        aws,
        "prod-analytics",
        {
            "AuditTableName": product.table("AuditTable"),
            "CountersTableName": product.table("CountersTable"),
            "RulesTableName": product.table("RulesTable"),
        },
    )
    record = explaining.from_stack("prod-analytics", "u1", boto3.session.Session(region_name=aws.region))
    text = explaining.explain(record, "u1", "clicks")
    assert "QUALIFIED at" in text and "count 3 greater 2: holds" in text
    assert "sinks: eventbridge delivered" in text
    assert " trace --stack prod-analytics --execution arn:aws:states:" in text
    with pytest.raises(explaining.ExplainError, match="not an incremental-analytics stack"):
        _register_stack(aws, "other", {"Something": "else"})
        explaining.from_stack("other", "u1", boto3.session.Session(region_name=aws.region))


@pytest.fixture
def aws_with_product() -> object:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws)
        product.put_rules([Rule("clicks", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 2))])
        now = int(time.time() * 1000)
        product.put_events({"user_id": "u1", "event_type": "click", "timestamp": now - 1000 + n} for n in range(3))
        product.ingest()
        product.deliver()
        yield aws, product
