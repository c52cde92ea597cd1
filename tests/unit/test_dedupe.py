"""domain/dedupe.py: what a counter remembers of the ids it counted, and when it claims them instead."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.dynamodb_io import StatementFailed, execute_statements
from incremental_analytics.domain import dedupe
from incremental_analytics.domain.dedupe import DIGEST_CHARS, INLINE_IDS, Seen, digest, record

NOW = dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC)


def test_a_digest_is_twelve_characters_of_the_ids_hash() -> None:
    assert len(digest("order-1")) == DIGEST_CHARS
    assert digest("order-1") != digest("order-2") and digest("é" * 300) == digest("é" * 300)


def test_ids_are_remembered_by_the_day_of_their_commit() -> None:
    first = record(Seen(), ["a", "b"], NOW, 7)
    assert not first.claims and "a" in first.seen and "c" not in first.seen
    later = record(first.seen, ["c"], NOW + dt.timedelta(minutes=2), 7)
    assert sorted(later.seen.days) == ["2026-12-01", "2026-12-02"] and len(later.seen) == 3


def test_a_day_is_kept_for_the_whole_retention_then_dropped() -> None:
    seen = record(Seen(), ["a"], NOW, 3).seen
    assert "a" in seen.within(NOW + dt.timedelta(days=3), 3)  # 2026-12-04: the 1st is 3 days old
    assert "a" not in seen.within(NOW + dt.timedelta(days=3, minutes=1), 3)  # 2026-12-05
    assert record(seen, ["b"], NOW + dt.timedelta(days=4), 3).seen.days.keys() == {"2026-12-05"}


def test_past_the_limit_a_counter_claims_its_events_until_its_last_claim_outlives_the_retention() -> None:
    full = record(Seen(), [f"e{n}" for n in range(INLINE_IDS)], NOW, 7)
    assert not full.claims and len(full.seen) == INLINE_IDS
    over = record(full.seen, ["one-more"], NOW, 7)
    assert over.claims and "one-more" not in over.seen and len(over.seen) == INLINE_IDS
    assert over.seen.claims_until == int(NOW.timestamp()) + 7 * 86_400
    # Its days leave the retention, yet the claims of the last week may still stand: it keeps claiming.
    week_later = NOW + dt.timedelta(days=6)
    assert record(over.seen, ["x"], week_later, 7).claims
    # A week after its last claim, every claim has outlived the retention: it remembers ids itself again.
    after = record(over.seen, ["y"], NOW + dt.timedelta(days=8), 7)
    assert not after.claims and "y" in after.seen and "e1" not in after.seen


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.sampled_from([f"id{n}" for n in range(40)]), max_size=12), st.integers(0, 3 * 86_400)),
        max_size=12,
    )
)
def test_an_id_is_counted_once_while_remembered_whatever_the_batches(batches: list[tuple[list[str], int]]) -> None:
    """A counter that drops the ids it remembers and records the rest counts an id again only once its last
    count is more than the retention (7 days) old, whether it remembered the id in the item or claimed it (a
    claim lives from its commit to the retention's end, then TTL deletes it)."""
    seen, claims, last_counted = Seen(), {}, {}
    moment = NOW
    with mock.patch.object(dedupe, "INLINE_IDS", 5):  # a small limit, so that both ways are taken
        _count(batches, seen, claims, last_counted, moment)


def _count(batches: Any, seen: Seen, claims: dict[str, Any], last_counted: dict[str, Any], moment: Any) -> None:
    for ids, pause in batches:
        moment += dt.timedelta(seconds=pause)
        claims = {i: at for i, at in claims.items() if moment - at <= dt.timedelta(days=7)}
        fresh = list(dict.fromkeys(i for i in ids if i not in seen.within(moment, 7)))
        decision = record(seen, fresh, moment, 7)
        if decision.claims:  # the transaction writes claims: one that stands cancels it, and the id is dropped
            fresh = [i for i in fresh if i not in claims]
            decision = record(seen, fresh, moment, 7)
            claims.update(dict.fromkeys(fresh, moment))
        seen = decision.seen
        for i in fresh:
            assert i not in last_counted or moment - last_counted[i] > dt.timedelta(days=7)
            last_counted[i] = moment


class ScriptedDynamoDB:
    """Answers BatchExecuteStatement with per-statement error codes from a script, and records each request."""

    def __init__(self, script: list[list[str | None]]) -> None:
        self.script, self.requests = script, []

    def batch_execute_statement(self, Statements: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append([statement["Statement"] for statement in Statements])
        codes = self.script.pop(0)
        assert len(codes) == len(Statements)
        return {"Responses": [{"Error": {"Code": code, "Message": "m"}} if code else {} for code in codes]}


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrying, "sleep", lambda seconds: None)


def test_statements_go_25_a_request_and_only_the_throttled_are_sent_again() -> None:
    statements = [{"Statement": f"s{n}"} for n in range(27)]
    first = [None] * 25
    first[3], first[4], first[5] = "ThrottlingError", "ConditionalCheckFailed", "ProvisionedThroughputExceeded"
    client = ScriptedDynamoDB([first, ["InternalServerError", None], [None], [None, "DuplicateItem"]])
    results = execute_statements(client, statements)
    assert client.requests == [[f"s{n}" for n in range(25)], ["s3", "s5"], ["s3"], ["s25", "s26"]]
    assert [n for n, result in enumerate(results) if result] == [4, 26]
    assert results[4] == "ConditionalCheckFailed" and results[26] == "DuplicateItem"


def test_a_statement_refused_for_good_fails_the_call_and_endless_throttling_gives_up() -> None:
    with pytest.raises(StatementFailed, match="ValidationError"):
        execute_statements(ScriptedDynamoDB([["ValidationError"]]), [{"Statement": "s"}])
    endless = ScriptedDynamoDB([["ThrottlingError"]] * retrying.ATTEMPTS)
    with pytest.raises(retrying.Throttled):
        execute_statements(endless, [{"Statement": "s"}])
    assert len(endless.requests) == retrying.ATTEMPTS
