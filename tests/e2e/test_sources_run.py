"""`run` on real sources (docs/events.md, docs/run.md):
a file mixing the AWS guide's Pinpoint records, Segment's spec calls and
generic events is counted per identity, and users numbering their events alike are counted apart at any batch
size and with every batch delivered twice."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_cli.cli import main
from tests.conftest import FIXTURES
from tests.unit.test_sources import unwrapped

EMAIL_ENDPOINT = "endpoint:49c1413e-a69c-46dc-b1c4-6470eexample"
CAMPAIGN_ENDPOINT = "endpoint:d8dcf7c5-e81a-48ae-8313-f540cexample"


def _rule(rule_id: str, event_type: str, target: int = 1) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "type": "aggregate",
        "event_type": event_type,
        "count": {"operator": "greater_or_equal", "target": target},
    }


RULES = {
    "rules": [
        _rule("purchases", "purchase", 2),
        _rule("clicks", "_email.click", 2),
        _rule("sends", "_campaign.send"),
        _rule("journeys", "_journey.send"),
        _rule("courses", "Course Clicked"),
        _rule("pages", "page"),
        _rule("screens", "screen"),
    ]
}


def _fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(unwrapped((FIXTURES / name).read_text(encoding="utf-8")))
    return document


def _mixed_lines() -> list[str]:
    second_click = copy.deepcopy(_fixture("pinpoint/email_click.json"))
    second_click["arrival_timestamp"] += 60_000  # the same link of the same message, clicked a minute later
    now = dt.datetime.now(dt.UTC)
    documents = [
        _fixture("samples/pinpoint_app_event.json"),  # user-0001 buys a table (Pinpoint app event)
        _fixture("pinpoint/email_click.json"),
        second_click,
        _fixture("pinpoint/email_delivered.json"),  # no rule names it: ignored
        _fixture("pinpoint/sms_success.json"),  # no rule names it: ignored (it names nobody either)
        _fixture("pinpoint/campaign_send.json"),
        _fixture("pinpoint/journey_send.json"),  # the same endpoint as the campaign's
        _fixture("segment/track.json"),
        _fixture("segment/page.json"),
        _fixture("segment/screen.json"),  # the page's messageId and user, another call: counted for its rules
        _fixture("segment/identify.json"),  # not an action: ignored
        {"type": "track", "anonymousId": "anon-7", "event": "Course Clicked", "timestamp": now.isoformat()},
        {"user_id": "user-0001", "event_type": "purchase", "timestamp": int(now.timestamp() * 1000)},
    ]
    lines = [json.dumps(document) for document in documents]
    lines.insert(5, "{not json")
    return lines


def _run(tmp_path: Path, lines: list[str], *args: str) -> Path:
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    command = ["run", "--rules", str(tmp_path / "rules.json"), "--events", str(tmp_path / "events.jsonl")]
    assert main([*command, "--out", str(out), *args]) == 0
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _figures(out: Path) -> tuple[tuple[int, ...], list[tuple[str, str]], dict[tuple[str, str], int]]:
    summary = json.loads((out / "summary.json").read_text())
    counts = tuple(summary[name] for name in ("records", "accepted", "ignored", "rejected", "duplicates"))
    outcomes = sorted((o["user_id"], o["rule_id"]) for o in _jsonl(out / "outcomes.jsonl") if o["kind"] == "qualified")
    counters = {(row["user_id"], row["rule_id"]): row["count"] for row in _jsonl(out / "counters.jsonl")}
    return counts, outcomes, counters


@pytest.mark.parametrize("args", [["--batch-size", "5"], ["--batch-size", "100", "--redeliver", "1.0"]])
def test_a_file_mixing_the_three_shapes_counts_each_right(tmp_path: Path, args: list[str]) -> None:
    out = _run(tmp_path, _mixed_lines(), *args)
    counts, outcomes, counters = _figures(out)
    # 14 lines: 1 not JSON; ignored: the delivery, the SMS and the identify call; the screen reuses the page's id.
    assert counts == (14, 10, 3, 1, 1)
    assert _jsonl(out / "rejected.jsonl") == [{"line": 6, "reason": "not_json"}]
    assert outcomes == sorted(
        [
            ("user-0001", "purchases"),  # a Pinpoint app event and a generic event of one user
            (EMAIL_ENDPOINT, "clicks"),  # two clicks on one e-mail are two events
            (CAMPAIGN_ENDPOINT, "sends"),
            (CAMPAIGN_ENDPOINT, "journeys"),
            ("AiUGstSDIg", "courses"),
            ("anonymous:anon-7", "courses"),
            ("97980cfea0067", "pages"),
            ("97980cfea0067", "screens"),  # an id names one event per rule: batching never decides (docs/design.md)
        ]
    )
    assert counters[(EMAIL_ENDPOINT, "clicks")] == 2 and counters[("user-0001", "purchases")] == 2
    # Both attribute sinks hold every identity they can address: users by their id, endpoints on that endpoint
    # (the anonymous visitor has neither a Pinpoint endpoint nor a profile).
    assert json.loads((out / "attributes.json").read_text()) == {
        "user-0001": {"trk_purchase": "ready"},
        EMAIL_ENDPOINT: {"trk__email.click": "ready"},
        CAMPAIGN_ENDPOINT: {"trk__campaign.send": "ready", "trk__journey.send": "ready"},
        "AiUGstSDIg": {"trk_Course Clicked": "ready"},
        "97980cfea0067": {"trk_page": "ready", "trk_screen": "ready"},
    }
    # Through the outbox's delivery, each sink took each outcome it can address once; the anonymous visitor's
    # outcome went to EventBridge only, and is final for the two others.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["deliveries"] == {"eventbridge": 8, "pinpoint": 7, "profiles": 7}
    assert summary["undelivered"] == {"pending": 0, "abandoned": 0}
    (anonymous,) = [row for row in _jsonl(out / "deliveries.jsonl") if row["user_id"] == "anonymous:anon-7"]
    assert (anonymous["eventbridge"], anonymous["pinpoint"], anonymous["profiles"]) == (
        "delivered",
        "no_endpoint",
        "no_profile",
    )


def test_identity_user_counts_user_ids_only(tmp_path: Path) -> None:
    out = _run(tmp_path, _mixed_lines(), "--identity", "user")
    counts, outcomes, _ = _figures(out)
    assert counts == (14, 5, 3, 6, 1)
    assert sorted(row["reason"] for row in _jsonl(out / "rejected.jsonl")) == ["missing_user_id"] * 5 + ["not_json"]
    assert outcomes == [
        ("97980cfea0067", "pages"),
        ("97980cfea0067", "screens"),
        ("AiUGstSDIg", "courses"),
        ("user-0001", "purchases"),
    ]


SHARED_IDS_RULES = {
    "rules": [
        {
            "rule_id": "taps",
            "type": "aggregate",
            "event_type": "tap",
            "count": {"operator": "greater_or_equal", "target": 30},
        },
        {
            "rule_id": "taps-today",
            "type": "window",
            "event_type": "tap",
            "days": 1,
            "count": {"operator": "greater_or_equal", "target": 30},
        },
    ]
}


@pytest.mark.parametrize(
    "args", [["--batch-size", "100"], ["--batch-size", "10"], ["--batch-size", "100", "--redeliver", "1.0"]]
)
def test_twenty_users_numbering_their_events_1_to_30_are_600_events(tmp_path: Path, args: list[str]) -> None:
    """The issue's figures were 121, 138 and 122 counted; the answer is 600, and each user qualifies for both the
    all-time rule and the rolling day (the period evaluation reads the time series per user)."""
    now_ms = int(time.time() * 1000)
    lines = [
        json.dumps({"user_id": f"user-{u:02d}", "event_type": "tap", "event_id": str(n), "timestamp": now_ms - n})
        for n in range(1, 31)
        for u in range(20)
    ]
    (tmp_path / "rules.json").write_text(json.dumps(SHARED_IDS_RULES))
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    command = ["run", "--rules", str(tmp_path / "rules.json"), "--events", str(tmp_path / "events.jsonl")]
    assert main([*command, "--out", str(out), *args]) == 0
    counts, outcomes, counters = _figures(out)
    assert counts == (600, 600, 0, 0, 0)
    assert sum(count for (_, rule), count in counters.items() if rule == "taps") == 600
    assert outcomes == sorted((f"user-{u:02d}", rule) for u in range(20) for rule in ("taps", "taps-today"))
