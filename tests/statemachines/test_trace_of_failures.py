"""The trace of a failed ingest execution, read from the local AWS's own history: the text names the error and
cause, the page shows them and where they started."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics.handlers import match_and_evaluate
from incremental_analytics_cli import trace
from incremental_analytics_cli.runner import trace_record
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct
from tests.statemachines.expected import commit_tries

CLICKS = [{"user_id": "u1", "event_type": "redbutton", "timestamp": 1_796_132_827_854 + n} for n in range(2)]


class EventsUnreadableError(Exception):
    pass


def _record(aws: LocalAws, arn: str) -> dict[str, Any]:
    """What `run` keeps of an execution for `trace`, as JSON gives it back."""
    return json.loads(json.dumps(trace_record(aws, arn), default=str))


def test_a_lambda_error_is_named_with_its_message(aws: LocalAws, product: LocalProduct) -> None:
    def unreadable(event: Any, context: Any) -> Any:
        raise EventsUnreadableError("the batch could not be decoded")

    product.put_events(CLICKS[:1])
    with mock.patch.object(match_and_evaluate, "handler", unreadable):
        report = product.ingest()
    failed = next(e for e in report.executions if e.status == "FAILED")
    record = _record(aws, failed.arn)
    text = trace.text_path(record)
    assert "  failed: MatchAndEvaluate x1 (EventsUnreadableError: the batch could not be decoded)" in text.splitlines()
    page = trace.render_html(record)
    assert "<b>EventsUnreadableError</b> in <a href='#s1'>MatchAndEvaluate (#1)</a>" in page
    assert '"errorMessage": "the batch could not be decoded"' in page  # the whole cause, under the error
    assert "<details id='s1' class='failed' open>" in page


def test_a_failure_inside_a_map_names_the_state_it_started_in(aws: LocalAws, product: LocalProduct) -> None:
    product.put_rules([Rule("red", RuleType.AGGREGATE, "redbutton", count=CountCondition(Operator.GREATER, 1))])
    product.put_events(CLICKS)
    # The second click qualifies u1: the outcome is committed in a transaction, inside the commit Map.
    # More throttling than the commit's retries absorb: the execution fails inside that Map.
    aws.fail_next("dynamodb", "TransactWriteItems", commit_tries(), "ProvisionedThroughputExceededException")
    report = product.ingest()
    failed = next(e for e in report.executions if e.status == "FAILED")
    record = _record(aws, failed.arn)
    read = trace.read_trace(record)
    origin = next(s for s in read.steps if s.errors and s.errors[-1].inner is None)
    assert origin.errors[-1].error == "DynamoDb.ProvisionedThroughputExceededException" and origin.retries >= 1
    enclosing = [s for s in read.steps if s.errors and s.errors[-1].inner is not None]
    assert enclosing and all(s.kind in ("Map", "Parallel") for s in enclosing)
    failed_line = next(line for line in trace.text_path(record).splitlines() if line.startswith("  failed: "))
    assert failed_line.startswith(f"  failed: {origin.name} x1 (DynamoDb.ProvisionedThroughputExceededException: ")
    assert all(f"{s.name} x1 (from " in failed_line for s in enclosing)
    page = trace.render_html(record)
    assert f"<a href='#s{origin.number}'>{origin.name} (#{origin.number})</a>" in page
