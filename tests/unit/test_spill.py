"""Spilling the largest groups' transactions to S3 (adapters/spill.py): one object a batch, each transaction read
back by its byte range, and what stays in the payload within the budget."""

from __future__ import annotations

import json
import re
from typing import Any

from incremental_analytics.adapters.spill import size_of, spill_largest


def group(user: str, transactions: int, width: int) -> dict[str, Any]:
    chunks = [
        [{"Put": {"Item": {"pk": {"S": f"U#{user}"}, "n": {"S": f"{n}-" + "é" * width}}}}] for n in range(transactions)
    ]
    return {
        "user_id": user,
        "rule_id": "r",
        "attempt": 0,
        "chunks": chunks,
        "chunk_ranges": [],
        "spill_key": "",
        "spilled": False,
    }


def read_range(body: bytes, header: str) -> Any:
    first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", header).groups())  # type: ignore[union-attr]
    return json.loads(body[first : last + 1])  # S3's ranges are inclusive (RFC 9110)


def test_the_largest_groups_go_to_one_object_and_each_transaction_reads_back_by_its_range() -> None:
    groups = [group("small", 1, 10), group("big", 3, 20_000), group("bigger", 2, 40_000)]
    originals = {g["user_id"]: list(g["chunks"]) for g in groups}
    puts: dict[str, bytes] = {}
    moved = spill_largest(groups, 0, lambda key, body: puts.__setitem__(key, body.encode()), "exec-1", budget=60_000)

    assert moved == 2 and len(puts) == 1
    ((key, body),) = puts.items()
    assert key.startswith("spill/exec-1/")
    for g in groups:
        if g["user_id"] == "small":
            assert not g["spilled"] and g["chunks"] == originals["small"]
            continue
        assert g["spilled"] and g["chunks"] == [] and g["spill_key"] == key
        assert [read_range(body, header) for header in g["chunk_ranges"]] == originals[g["user_id"]]
    assert size_of(groups) <= 60_000


def test_nothing_to_spill_puts_nothing() -> None:
    groups = [group("small", 1, 10)]
    assert spill_largest(groups, 0, lambda key, body: (_ for _ in ()).throw(AssertionError(key)), "exec-1") == 0
