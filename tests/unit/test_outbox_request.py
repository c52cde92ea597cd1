"""An outcome's request as the outbox stores it (domain/delivery.py's `pack_request`, `request_of_item`): read
back exactly as `delivery_item` made it, whatever the outcome, and small enough that a typical outcome's item is
one write unit through its commit, claim and record."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.adapters.dynamodb_items import outbox_item, outcome_from_item
from incremental_analytics.adapters.item_size import item_size
from incremental_analytics.domain.delivery import PACKED, delivery_item, request_of_item
from incremental_analytics.domain.outcomes import Contribution, OutcomeKind, make_outcome
from incremental_analytics.domain.rules import Operator, Rule, RuleType, SumCondition

RULE = Rule("big-spender", RuleType.AGGREGATE, "purchase", sum=SumCondition(Operator.GREATER, Decimal(500), "price"))
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:stack-IngestBatchStateMachine-07E08990F878:run-1"


def _request(user: str, events: list[tuple[str, int, Decimal]], kind: OutcomeKind) -> dict[str, Any]:
    contributions = [Contribution(event_id, ms, value) for event_id, ms, value in events]
    total = sum((c.value for c in contributions), Decimal(0))
    outcome = make_outcome(
        RULE,
        user,
        kind,
        occasion=len(events) if kind is OutcomeKind.REACHED else None,
        occurred_at_ms=1_796_000_100_000,
        checks=RULE.check(len(events), total),
        count=len(events),
        total=total,
        contributions=contributions,
    ).with_execution(EXECUTION)
    return delivery_item(outcome, endpoint_id="ep-1", profile_key="_profileId", profile_endpoint_key="ep")


@settings(max_examples=60, deadline=None)
@given(
    user=st.one_of(st.text(min_size=1, max_size=40), st.just("endpoint:ep-9")),
    events=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=64),
            st.integers(0, 4_102_444_800_000),
            st.decimals(-(10**9), 10**9, places=2, allow_nan=False, allow_infinity=False),
        ),
        max_size=25,
    ),
    kind=st.sampled_from(list(OutcomeKind)),
)
def test_a_stored_request_reads_back_as_it_was_made(
    user: str, events: list[tuple[str, int, Decimal]], kind: OutcomeKind
) -> None:
    request = _request(user, events, kind)
    item = outbox_item(request, "2026-12-01T20:15:18.328Z", 4)
    assert item["request"]["S"].startswith(PACKED)
    assert request_of_item(item) == json.loads(json.dumps(request))
    assert outcome_from_item(item) == json.loads(json.dumps(request["outcome"]))


def test_a_request_stored_as_plain_json_before_packing_reads_as_it_was_written() -> None:
    request = _request("ann", [("e1", 1_796_000_000_000, Decimal("12.50"))], OutcomeKind.QUALIFIED)
    item = outbox_item(request, "2026-12-01T20:15:18.328Z", 4)
    item["request"] = {"S": json.dumps(request, sort_keys=True, separators=(",", ":"))}
    assert request_of_item(item) == json.loads(json.dumps(request))


def test_a_typical_outcome_stays_one_write_unit_while_it_is_held() -> None:
    """Six evidence events of 32-hex ids (the benchmark's outcomes have three to seven): under 1 KB with the
    attributes a claim adds, so its commit, claim and record each cost 1 write unit, not 2."""
    ids = [hashlib.sha256(str(n).encode()).hexdigest()[:32] for n in range(6)]  # as random as uuid4().hex
    events = [(ids[n], 1_796_000_000_000 + n * 7_919_013, Decimal(n * 37) / 4) for n in range(6)]
    item = outbox_item(_request("user-0047", events, OutcomeKind.QUALIFIED), "2026-12-01T20:15:18.328Z", 4)
    item |= {"claimed_by": {"S": "0" * 20}, "attempted_at": {"S": "2026-12-01T20:15:23.168Z"}}
    assert item_size(item) < 1024
