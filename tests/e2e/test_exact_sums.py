"""Sums through the whole product (`run`): exact to 38 digits in the counters table, the outcomes and the files."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from incremental_analytics_cli.cli import main

NOW_MS = int(time.time() * 1000)
RULES = {
    "rules": [
        {
            "rule_id": "over-1e30",
            "type": "aggregate",
            "event_type": "purchase",
            "sum": {"operator": "greater", "target": 1e30},
        }
    ]
}


def _purchase(user: str, n: int, price: str) -> str:
    # The price is written as a JSON number with every digit (json.dumps of a float would round it).
    line = json.dumps({"user_id": user, "event_type": "purchase", "timestamp": NOW_MS - 60_000 + n, "metrics": {}})
    return line.replace('"metrics": {}', f'"metrics": {{"price": {price}}}')


def test_sums_beyond_28_digits_are_exact_in_counters_outcomes_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        _purchase("ann", 1, "1e30"),
        _purchase("ann", 2, "0.25"),  # 1e30 + 0.25 > 1e30: only if the 0.25 is kept
        _purchase("bob", 3, "5000000000000000000000000000.5"),
        _purchase("bob", 4, "5000000000000000000000000000.5"),  # 1e28 + 1: `run` used to crash writing it
    ]
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    files = ["--rules", str(tmp_path / "rules.json"), "--events", str(tmp_path / "events.jsonl"), "--out", str(out)]
    code = main(["run", *files])
    assert code == 0, capsys.readouterr().err

    counters = {row["user_id"]: row for row in map(json.loads, (out / "counters.jsonl").read_text().splitlines())}
    assert Decimal(str(counters["ann"]["sum"])) == Decimal("1000000000000000000000000000000.25")
    assert counters["bob"]["sum"] == 10**28 + 1 and counters["bob"]["count"] == 2
    (outcome,) = map(json.loads, (out / "outcomes.jsonl").read_text().splitlines())
    assert (outcome["user_id"], outcome["kind"]) == ("ann", "qualified")
    assert outcome["evidence"]["sum"] == "1000000000000000000000000000000.25"

    capsys.readouterr()
    assert main(["explain", "--from", str(out), "--user", "ann"]) == 0
    assert "sum 1000000000000000000000000000000.25 greater 1000000000000000000000000000000: holds" in (
        capsys.readouterr().out
    )
