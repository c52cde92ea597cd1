"""`incremental-analytics demo`: the 2021 guide's three cases on synthetic events, end to end, locally."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections import Counter
from pathlib import Path

from incremental_analytics_cli import explain as explaining
from incremental_analytics_cli import trace as tracing
from incremental_analytics_cli.invocation import command_name
from incremental_analytics_cli.runner import RunOptions, prepare_out, run


def rules_csv(today: dt.date) -> str:
    """The sample sheet's cases in the Honeycode layout a marketer would fill in; the date rule's period is this
    week, so that the demo's events (the last hour's) fall inside it."""
    start, finish = today - dt.timedelta(days=1), today + dt.timedelta(days=5)
    return f"""RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,\
ResetWhenReachTarget,StartDate,FinishDate,Key
aggregator,greenbutton,na,999,greater,5,na,999,no,9999-99-99,9999-99-99,aggregatorgreenbutton
aggregator,redbutton,na,999,greater,3,na,999,yes,9999-99-99,9999-99-99,aggregatorredbutton
aggregator,purchase,product,table,greater,1,greater,300,no,9999-99-99,9999-99-99,aggregatorpurchasetable
date,purchase,na,999,na,999,greater,500,no,{start},{finish},datepurchase
"""


DEMO_APP = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
DEMO_ACCOUNT = "123456789012"


def _generic(user: str, kind: str, timestamp_ms: int, extra: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"user_id": user, "event_type": kind, "timestamp": timestamp_ms, **extra}


def _pinpoint(user: str, kind: str, timestamp_ms: int, extra: dict[str, dict[str, object]]) -> dict[str, object]:
    """An app event as Pinpoint streams it (the SDK's `record`, or PutEvents), for a signed-in user's endpoint."""
    return {
        "event_type": kind,
        "event_timestamp": timestamp_ms,
        "arrival_timestamp": timestamp_ms + 180,
        "event_version": "3.1",
        "application": {"app_id": DEMO_APP, "sdk": {"name": "aws-amplify", "version": "6.0.0"}},
        "client": {"client_id": f"endpoint-{user}"},
        "device": {"platform": {"name": "web"}},
        "session": {"session_id": f"session-{user}-{timestamp_ms // 900_000}"},
        "attributes": extra.get("attributes", {}),
        "metrics": extra.get("metrics", {}),
        "awsAccountId": DEMO_ACCOUNT,
        "endpoint": {"Id": f"endpoint-{user}", "ChannelType": "EMAIL", "User": {"UserId": user}},
    }


def _segment(user: str, kind: str, timestamp_ms: int, extra: dict[str, dict[str, object]]) -> dict[str, object]:
    """A Segment track call (an identify call for the session start, which is not an action and is ignored)."""
    when = dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
    call: dict[str, object] = {
        "type": "track",
        "event": kind,
        "userId": user,
        "messageId": f"demo-{user}-{timestamp_ms}",
        "timestamp": when.replace("+00:00", "Z"),
        "properties": {**extra.get("attributes", {}), **extra.get("metrics", {})},
    }
    if kind.startswith("_"):
        call = {key: value for key, value in call.items() if key not in {"event", "properties"}}
        call |= {"type": "identify", "traits": {"plan": "free"}}
    return call


SOURCES = {"generic": _generic, "pinpoint": _pinpoint, "segment": _segment}


def synthetic_events(users: int, events: int, seed: int = 2021, source: str = "generic") -> list[dict[str, object]]:
    """Clicks and purchases from `users` people over the last hour, some users far busier than others, in the
    shape of `source`."""
    shape = SOURCES[source]
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    weights = [rng.uniform(0.3, 3.0) for _ in range(users)]
    lines: list[dict[str, object]] = []
    for n in range(events):
        user = f"user-{rng.choices(range(users), weights)[0]:03d}"
        kind = rng.choices(["greenbutton", "redbutton", "purchase", "_session.start"], [5, 4, 2, 1])[0]
        extra: dict[str, dict[str, object]] = {}
        if kind == "purchase":
            extra["attributes"] = {"product": rng.choice(["table", "chair", "lamp"])}
            extra["metrics"] = {"price": round(rng.uniform(20, 250), 2)}
        lines.append(shape(user, kind, now_ms - 3_600_000 + n * 100, extra))
    return lines


def demo(out: Path, *, users: int = 50, events: int = 1500, source: str = "generic") -> None:
    prepare_out(out)
    rules_path, events_path = out / "rules.csv", out / "events.jsonl"
    rules_path.write_text(rules_csv(dt.datetime.now(dt.UTC).date()))
    lines = [json.dumps(event) for event in synthetic_events(users, events, source=source)]
    lines.insert(len(lines) // 2, "{this line is not JSON")
    events_path.write_text("\n".join(lines) + "\n")
    print(
        f"Rules (spreadsheet layout): {rules_path}\n"
        f"Events ({source} shape): {len(lines)} lines from {users} users: {events_path}\n"
    )
    started = time.monotonic()
    summary = run(RunOptions(rules=rules_path, events=events_path, out=out, batch_size=250))
    seconds = time.monotonic() - started
    print(
        f"Ran the real workflows on the local AWS in {seconds:.0f} s: {summary['records']} records, "
        f"{summary['accepted']} accepted, {summary['ignored']} ignored, {summary['rejected']} rejected, "
        f"{sum(summary['executions'].values())} executions, {sum(summary['aws_requests'].values())} AWS requests\n"
    )
    record = explaining.from_run(out)
    per_rule: dict[str, Counter[str]] = {}
    for outcome in record.outcomes:
        per_rule.setdefault(outcome["rule_id"], Counter())[outcome["kind"]] += 1
    print(f"{'rule':<36}{'qualified':>10}{'reached':>10}{'users':>8}")
    for rule_id in sorted(record.rules):
        counts = per_rule.get(rule_id, Counter())
        users_hit = len({o["user_id"] for o in record.outcomes if o["rule_id"] == rule_id})
        print(f"{rule_id:<36}{counts['qualified']:>10}{counts['reached']:>10}{users_hit:>8}")
    qualified = [o for o in record.outcomes if o["kind"] == "qualified"] or record.outcomes
    if qualified:
        chosen = qualified[0]
        user, rule_id = chosen["user_id"], chosen["rule_id"]
        print(f"\n$ {command_name()} explain --from {out} --user {user} --rule {rule_id}\n")
        print(explaining.explain(record, user, rule_id))
        execution = chosen["execution"]
        trace = tracing.load_trace(out, execution)
        page = out / "traces" / f"{trace['name']}.html"
        page.write_text(tracing.render_html(trace))
        print(f"\n{tracing.text_path(trace)}\nThe trace of that execution: {page}")
