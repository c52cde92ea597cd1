"""Every interleaving of the executions that may deliver one outcome, run with the product's own claims, reads and
records (domain/delivery_batch.py) against the local DynamoDB: the outbox stream's execution and the Pipe's retry
of its batch, scheduled redeliveries planned from the outcome as they find it (possibly out of date by the time
they claim), an operator's redrive, and a hold taken by the previous release (timed by `attempted_at` alone, its
attempt already counted). Any of them may die at any point; a live one records within the workflow's timeout.

What must hold in every interleaving (docs/delivery.md, "One attempt"):
- no two live executions ever hold the outcome, and no record puts back an outcome another execution holds;
- the record of an attempt numbered MaxDeliveryAttempts or beyond leaves nothing pending (it gives up on the sinks
  that failed it);
- nothing is stuck: from wherever the interleaving ends, scheduled redeliveries end the outcome (abandoned) within
  MaxDeliveryAttempts claims against a sink that keeps failing, and within MaxDeliveryAttempts + 1 when every
  execution that would send it dies before its record.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics.adapters.dynamodb_items import outbox_item
from incremental_analytics.adapters.outbox import redrive
from incremental_analytics.domain import delivery_batch
from incremental_analytics.domain.delivery import CLAIM_EXPIRY, delivery_item
from incremental_analytics.domain.outcomes import OutcomeKind
from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType, iso_instant
from incremental_analytics_local.engine import LocalAws
from tests.functional.conftest import create_audit_table
from tests.unit.helpers import first_outcome

ROOT = Path(__file__).resolve().parents[2]
# An execution lives at most its workflow's TimeoutSeconds; a hold is taken over once CLAIM_EXPIRY old.
LIFETIME = dt.timedelta(
    seconds=json.loads((ROOT / "statemachines/deliver_outcomes.asl.json").read_text())["TimeoutSeconds"]
)
AUDIT = "audit"
MAX_ATTEMPTS = 2
START = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
# Time moves on in steps longer than a hold lives: whoever held the outcome before a step is dead after it.
TICK = CLAIM_EXPIRY + dt.timedelta(minutes=1)
MAX_TICKS = 2
SETTINGS = {  # EventBridge alone: the claims, not the sinks, are under test
    "event_bus": "bus",
    "pinpoint_application_id": "",
    "profiles_domain": "",
    "profiles_key_name": "_profileId",
    "profiles_object_type": "",
}
RULE = Rule("r", RuleType.AGGREGATE, "x", count=CountCondition(Operator.GREATER, 0))
OUTCOME = outbox_item(
    delivery_item(
        first_outcome(RULE, "u1", OutcomeKind.QUALIFIED),
        endpoint_id=None,
        profile_key="_profileId",
        profile_endpoint_key="e",
    ),
    iso_instant(START - dt.timedelta(minutes=1)),
    4,
)
KEY = {"user_id": OUTCOME["user_id"], "outcome_id": OUTCOME["outcome_id"]}
PLAIN_KEY = {name: value["S"] for name, value in KEY.items()}


@dataclass(frozen=True)
class Actor:
    """One execution: `kind` stream (the outbox stream's batch, or the Pipe's retry of it), redelivery (a page of
    the scheduled run), redrive (an operator's), or legacy (an execution of the previous release, holding)."""

    name: str
    kind: str
    phase: str = "waiting"  # waiting -> (planned ->) holding -> done
    page: tuple[int, str] | None = None  # the attempts and stale_before its page says
    held_since: dt.datetime | None = None
    read: str | None = None  # the item as it read it after its claim (what its record puts back)

    def alive(self, now: dt.datetime) -> bool:
        return self.phase == "holding" and self.held_since is not None and now - self.held_since <= LIFETIME


@dataclass(frozen=True)
class State:
    item: str
    actors: tuple[Actor, ...]
    now: dt.datetime
    ticks: int


class Explorer:
    """A depth-first walk over every interleaving. What a move does to the item depends on the item, the actor and
    the time alone: that is run once on the local DynamoDB and remembered; the checks run on every path."""

    def __init__(self, dynamodb: Any) -> None:
        self.dynamodb = dynamodb
        self.seen: set[State] = set()
        self.effects: dict[tuple[str, Actor, dt.datetime, str], tuple[str, Actor, str | None]] = {}
        self.healed: set[tuple[str, dt.datetime]] = set()
        self.ends = 0
        self.stored = ""  # the item as the table holds it now
        self.happened: Counter[str] = Counter()  # what the walk went through, once each distinct move

    # -- the outbox item ----------------------------------------------------------------------------------------

    def item(self) -> dict[str, Any]:
        found: dict[str, Any] = self.dynamodb.get_item(TableName=AUDIT, Key=KEY, ConsistentRead=True)["Item"]
        self.stored = json.dumps(found, sort_keys=True)
        return found

    def restore(self, item: str) -> None:
        if item != self.stored:
            self.dynamodb.put_item(TableName=AUDIT, Item=json.loads(item))
            self.stored = item

    # -- what each execution does ----------------------------------------------------------------------------------

    def claim(self, actor: Actor, now: dt.datetime) -> Actor:
        if actor.kind == "stream":
            given: Any = [{"eventName": "INSERT", "dynamodb": {"Keys": KEY}}]
        else:
            assert actor.page is not None
            attempts, stale_before = actor.page
            given = {"outcomes": [{**PLAIN_KEY, "attempts": attempts, "stale_before": stale_before}]}
        shaped = delivery_batch.claims(given, table=AUDIT, execution=actor.name, now=iso_instant(now))
        (answer,) = self.dynamodb.batch_execute_statement(Statements=shaped["claims"])["Responses"]
        if "Error" in answer:
            assert answer["Error"]["Code"] == "ConditionalCheckFailed", answer
            return replace(actor, phase="done")
        read = self.item()
        assert delivery_batch.held_outcomes([{"Item": read}], actor.name, "_profileId", MAX_ATTEMPTS)
        return replace(actor, phase="holding", held_since=now, read=self.stored)

    def record(self, actor: Actor, now: dt.datetime, *, accepted: bool) -> str:
        """The record's put, and the attempt's result (`settle`'s state)."""
        assert actor.read is not None
        read = [{"Item": json.loads(actor.read)}]
        if actor.kind == "legacy":  # the previous release's record: the item as read, the hold released
            item = {name: value for name, value in read[0]["Item"].items() if name != "claimed_by"}
            if accepted:
                item.pop("undelivered")
                item["delivery"] = {"M": {sink: {"S": "delivered"} for sink in ("eventbridge", "pinpoint", "profiles")}}
            self.restore(json.dumps(item, sort_keys=True))
            return "delivered" if accepted else "pending"
        plan = delivery_batch.sends(read, execution=actor.name, settings=SETTINGS, max_attempts=MAX_ATTEMPTS)
        answer = {"answer": {"Entries": [{"EventId": "e"}]}} if accepted else {"error": "EventBridge.InternalException"}
        first = {"eventbridge": [answer for _ in plan["eventbridge"]], "pinpoint": [], "profiles": [], "objects": []}
        wrote = delivery_batch.writes(plan, first)
        second = {"endpoints": [], "events": [], "profiles": []}
        settled = delivery_batch.settle(
            plan,
            wrote,
            first,
            second,
            read,
            table=AUDIT,
            execution=actor.name,
            now=iso_instant(now),
            max_attempts=MAX_ATTEMPTS,
        )
        ((put,),) = (chunk[AUDIT] for chunk in settled["records"])
        self.restore(json.dumps(put["PutRequest"]["Item"], sort_keys=True))
        (result,) = settled["outcomes"]
        # MaxDeliveryAttempts counts: the record of the last attempt (or of one beyond it) leaves nothing pending.
        assert result["state"] != "pending" or result["attempt"] < MAX_ATTEMPTS, (result, self.stored)
        return str(result["state"])

    def effect(self, item: str, actor: Actor, now: dt.datetime, move: str) -> tuple[str, Actor, str | None]:
        """The item after `actor` makes `move` at `now`, the actor after it, and a record's result."""
        remembered = self.effects.get((item, actor, now, move))
        if remembered is not None:
            return remembered
        self.restore(item)
        stale_before = iso_instant(now - CLAIM_EXPIRY)
        result = None
        if move == "start" and actor.kind == "stream":
            after = self.claim(actor, now)
        elif move == "start" and actor.kind == "redelivery":  # planned from the item as the index shows it
            after = replace(
                actor, phase="planned", page=(int(json.loads(item)["delivery_attempts"]["N"]), stale_before)
            )
        elif move == "start":  # the redrive (of the outcome if it is abandoned by then), then its execution's page
            redone = redrive(self.dynamodb, AUDIT, [PLAIN_KEY], 4)
            after = replace(actor, phase="planned" if redone else "done", page=(0, stale_before))
        elif move == "claim":
            after = self.claim(actor, now)
        elif move == "die":
            after = replace(actor, phase="done")
        else:
            result = self.record(actor, now, accepted=move == "delivered")
            after = replace(actor, phase="done")
        if move == "start" and actor.kind == "redrive":
            self.item()  # what the redrive's update left
            self.happened["redriven"] += after.phase == "planned"
        if after.phase == "holding":
            self.happened["taken over" if "claimed_by" in json.loads(item) else "claimed"] += 1
        self.happened[f"recorded {result}"] += result is not None
        found = (self.stored, after, result)
        self.effects[(item, actor, now, move)] = found
        return found

    # -- the walk ----------------------------------------------------------------------------------------------

    @functools.cache  # noqa: B019 (one explorer a test)
    def undelivered(self, item: str) -> str:
        return str(json.loads(item).get("undelivered", {}).get("S", ""))

    def moves(self, state: State) -> Iterator[tuple[str, int]]:
        pending = self.undelivered(state.item).startswith("P")
        for index, actor in enumerate(state.actors):
            if actor.phase == "waiting":
                if actor.name == "pipe-retry" and state.actors[0].phase == "waiting":
                    continue  # the Pipe retries a batch it delivered
                if actor.kind == "redelivery" and not pending:
                    continue  # nothing to plan
                yield "start", index
            elif actor.phase == "planned":
                yield "claim", index
            elif actor.phase == "holding":
                if actor.alive(state.now):
                    yield "delivered", index
                    yield "failed", index
                yield "die", index
        if state.ticks < MAX_TICKS:
            yield "tick", -1

    def step(self, state: State, move: str, index: int) -> State:
        if move == "tick":
            return replace(state, now=state.now + TICK, ticks=state.ticks + 1)
        actor = state.actors[index]
        others = [other for n, other in enumerate(state.actors) if n != index]
        if move in ("delivered", "failed"):
            holder = {"S": delivery_batch.holder(actor.name)}
            assert json.loads(state.item).get("claimed_by") == holder, f"{actor.name} records what it no longer holds"
        item, after, _ = self.effect(state.item, actor, state.now, move)
        if after.phase == "holding" and actor.phase != "holding":
            live = [other.name for other in others if other.alive(state.now)]
            assert not live, f"{actor.name} holds the outcome while {live} still hold it"
        actors = tuple(after if n == index else other for n, other in enumerate(state.actors))
        return replace(state, item=item, actors=actors)

    def walk(self, state: State) -> None:
        if state in self.seen:
            return
        self.seen.add(state)
        moves = list(self.moves(state))
        if not moves:
            self.ends += 1
            self.heal(state)
            return
        for move, index in moves:
            self.walk(self.step(state, move, index))

    def heal(self, state: State) -> None:
        """From where the interleaving ended, the scheduled redeliveries alone: against a sink that keeps failing,
        the outcome ends within MaxDeliveryAttempts claims; when every execution that would send it dies before
        its record (only one that sends nothing lives), within MaxDeliveryAttempts + 1."""
        if (state.item, state.now) in self.healed:
            return
        self.healed.add((state.item, state.now))
        for dying in (False, True):
            self.restore(state.item)
            now = state.now
            for round_ in range(MAX_ATTEMPTS + 2):
                item = self.item()
                if not self.undelivered(self.stored).startswith("P"):
                    break
                assert round_ < MAX_ATTEMPTS + dying, f"pending after {round_} claims of the redelivery: {item}"
                now += TICK
                page = (int(item["delivery_attempts"]["N"]), iso_instant(now - CLAIM_EXPIRY))
                actor = self.claim(Actor(f"heal-{round_}", "redelivery", "planned", page), now)
                assert actor.phase == "holding", "the redelivery claims what is pending and unheld"
                (held,) = delivery_batch.held_outcomes(
                    [{"Item": json.loads(actor.read or "{}")}], actor.name, "_profileId", MAX_ATTEMPTS
                )
                if not dying or held["spent"]:
                    self.record(actor, now, accepted=False)


@pytest.fixture
def dynamodb(aws: LocalAws) -> Any:
    client = aws.client("dynamodb")
    create_audit_table(client, AUDIT)
    return client


def _explore(dynamodb: Any, item: dict[str, Any], actors: tuple[Actor, ...]) -> Explorer:
    explorer = Explorer(dynamodb)
    dynamodb.put_item(TableName=AUDIT, Item=item)
    explorer.walk(State(json.dumps(item, sort_keys=True), actors, START, 0))
    return explorer


def test_a_new_outcome_is_held_by_one_execution_at_a_time_and_always_ends(dynamodb: Any) -> None:
    actors = (
        Actor("stream", "stream"),
        Actor("pipe-retry", "stream"),
        Actor("scheduled-1", "redelivery"),
        Actor("scheduled-2", "redelivery"),
        Actor("redrive", "redrive"),
    )
    explorer = _explore(dynamodb, OUTCOME, actors)
    # The walk went through each case: holds taken and taken over, each result recorded, abandoned ones redriven.
    assert {"claimed", "taken over", "recorded delivered", "recorded pending", "recorded abandoned", "redriven"} <= {
        case for case, times in explorer.happened.items() if times
    }


def test_a_hold_taken_by_the_previous_release_is_respected_then_taken_over(dynamodb: Any) -> None:
    held = {
        **OUTCOME,
        "delivery_attempts": {"N": "1"},
        "attempted_at": {"S": iso_instant(START - dt.timedelta(minutes=1))},
        "claimed_by": {"S": delivery_batch.holder("legacy")},
    }
    legacy = Actor(
        "legacy", "legacy", "holding", held_since=START - dt.timedelta(minutes=1), read=json.dumps(held, sort_keys=True)
    )
    actors = (
        legacy,
        Actor("pipe-retry", "stream"),
        Actor("scheduled-1", "redelivery"),
        Actor("scheduled-2", "redelivery"),
        Actor("redrive", "redrive"),
    )
    explorer = _explore(dynamodb, held, actors)
    assert {"taken over", "recorded delivered", "recorded abandoned"} <= {
        case for case, times in explorer.happened.items() if times
    }
