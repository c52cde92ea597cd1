"""`run` with issue 14's poison lines among good ones: no traceback, every line accounted for once, each bad one
in rejected.jsonl with its reason, whatever its size (docs/run.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

NOW_MS = int(time.time() * 1000) - 600_000
RULES = {
    "rules": [
        {"rule_id": "fans", "type": "aggregate", "event_type": "tap", "count": {"operator": "greater", "target": 2}}
    ]
}


def _tap(user: str, n: int, **extra: Any) -> bytes:
    return json.dumps({"user_id": user, "event_type": "tap", "timestamp": NOW_MS + n, **extra}).encode()


def _padded_to(size: int) -> bytes:
    head = _tap("big", 0)[:-1] + b', "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


LINES: list[tuple[bytes, str | None]] = [
    (_tap("ann", 1), None),
    (_tap("ann", 2), None),
    (_tap("ann", 3), None),
    (_tap("deep", 4)[:-1] + b', "deep": ' + b"[" * 999 + b"]" * 999 + b"}", "not_json"),
    (_tap("u", 5).replace(b'"u"', b'"u\\ud800"'), "not_json"),
    (_padded_to(1_100_000), "too_large"),  # more than Kinesis takes: never a record, rejected all the same
    (_padded_to(1_048_576), "too_large"),
    (_padded_to(200_000), "too_large"),
    (_tap("u" * 3000, 9), "bad_user_id"),
    (_tap("bob", 10).replace(str(NOW_MS + 10).encode(), b"1e800000"), "bad_timestamp"),
    (_tap("bob", 11)[:-1] + b', "metrics": {"m": 1e200}}', "bad_metric"),
    (_tap("ann", 12), None),
]


def test_poison_lines_are_rejected_with_their_reasons_and_the_rest_counted(tmp_path: Path) -> None:
    rules, events, out = tmp_path / "rules.json", tmp_path / "events.jsonl", tmp_path / "out"
    rules.write_text(json.dumps(RULES))
    events.write_bytes(b"\n".join(line for line, _ in LINES) + b"\n")
    command = ["run", "--rules", str(rules), "--events", str(events), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "incremental_analytics_cli", *command, "--batch-size", "5", "--redeliver", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["records"], summary["accepted"], summary["ignored"]) == (12, 4, 0)
    assert (summary["rejected"], summary["dead_lettered"]) == (8, 0)
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert rejected == [
        {"line": number, "reason": reason} for number, (_, reason) in enumerate(LINES, start=1) if reason
    ]
    counters = [json.loads(line) for line in (out / "counters.jsonl").read_text().splitlines()]
    assert [(c["user_id"], c["rule_id"], c["count"], c["qualified"]) for c in counters] == [("ann", "fans", 4, True)]
