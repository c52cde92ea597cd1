"""Rules files: how long loading takes and how much memory it peaks at, per kind of file, valid or hostile; and a
10,000-rule sheet through the real SyncRules workflow on the local AWS. Figures, not pass/fail."""

from __future__ import annotations

import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct

HEADER = (
    "RuleType,EventName,AttributeName,AttributeValue,Operator-C,Target-C,Operator-V,Target-V,"
    "ResetWhenReachTarget,StartDate,FinishDate,Key\n"
)
ROW = "aggregator,event-{n:05d},product,item-{n:05d},greater,{target},na,999,no,9999-99-99,9999-99-99,k\n"
BOMB = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]\n".encode()
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def _sheet(rules: int) -> bytes:
    return (HEADER + "".join(ROW.format(n=n, target=n % 50) for n in range(rules))).encode()


def _documents(rules: int) -> list[dict[str, object]]:
    return [
        {
            "rule_id": f"rule-{n:05d}",
            "type": "aggregate",
            "event_type": f"event-{n:05d}",
            "attribute": {"name": "product", "value": f"item-{n:05d}"},
            "count": {"operator": "greater", "target": n % 50},
        }
        for n in range(rules)
    ]


def _yaml(rules: int) -> bytes:
    lines = [
        f"- {{rule_id: rule-{n:05d}, type: aggregate, event_type: event-{n:05d}, "
        f"attribute: {{name: product, value: item-{n:05d}}}, count: {{operator: greater, target: {n % 50}}}}}\n"
        for n in range(rules)
    ]
    return "".join(lines).encode()


INPUTS: dict[str, Callable[[], tuple[str, bytes]]] = {
    "10,000-row CSV": lambda: ("rules.csv", _sheet(10_000)),
    "10,000-rule JSON (indented)": lambda: ("rules.json", json.dumps(_documents(10_000), indent=2).encode()),
    "10,000-rule YAML": lambda: ("rules.yaml", _yaml(10_000)),
    "342-byte YAML alias bomb": lambda: ("rules.yaml", BOMB),
    "JSON nested 5,000 deep": lambda: ("rules.json", b"[" * 5000 + b"]" * 5000),
    "CSV cell of 131,073 characters": lambda: ("rules.csv", (HEADER + "aggregator," + "x" * 131_073 + "\n").encode()),
    "Windows-1252 CSV": lambda: (
        "rules.csv",
        (HEADER + "aggregator,café,na,999,greater,3,na,999,no,,,k\n").encode("cp1252"),
    ),
    "4 MiB of random bytes": lambda: ("rules.csv", random.Random(0).randbytes(4 * 1024 * 1024)),
}


def _load(name: str, content: bytes) -> str:
    try:
        return f"{len(load_rules_file(name, content))} rules"
    except RulesError as error:
        return f"{error.total} problem(s): {error.problems[0][:60]}"


def loading(runs: int = 3) -> list[dict[str, object]]:
    rows = []
    for label, make in INPUTS.items():
        name, content = make()
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            answer = _load(name, content)
            timings.append(time.perf_counter() - started)
        tracemalloc.start()
        _load(name, content)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            {
                "file": label,
                "bytes": f"{len(content):,}",
                "median_ms": round(statistics.median(timings) * 1000, 1),
                "peak_MB": round(peak / 1e6, 1),
                "answer": answer,
            }
        )
    return rows


def sync_workflow(rules: int = 10_000) -> dict[str, object]:
    content = _sheet(rules)
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws, parameters={"FunctionLogLevel": "WARNING"})
        started = time.perf_counter()
        result = product.upload_rules_file("rules.csv", content)
        seconds = time.perf_counter() - started
        sizes = [
            len(value.encode())
            for event in aws.history(result.arn)
            for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict)
            for field, value in details.items()
            if field in ("input", "output") and isinstance(value, str)
        ]
        states = aws.entered_states(result.arn)
    return {
        "rules": rules,
        "file_bytes": f"{len(content):,}",
        "status": result.status,
        "seconds": round(seconds, 1),
        "pages": states.count("WritePage"),
        "largest_state_bytes": f"{max(sizes):,}",
        "state_limit_bytes": "262,144",
    }
