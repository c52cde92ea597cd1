"""Large intermediate sets go through S3, not through state payloads (Step Functions caps them at 256 KiB).

A batch whose commits would not fit writes the transactions of its largest groups to the data bucket, one
object per transaction, under `spill/`; the workflow reads each back just before committing it. Time-series
writes that still do not fit go the same way, one object per BatchWriteItem request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

# What a state may carry, leaving room for the rest of the execution's data beside it.
PAYLOAD_BUDGET_BYTES = 200_000
SPILL_PREFIX = "spill/"


def size_of(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def spill_largest(
    groups: Sequence[dict[str, Any]],
    other_bytes: int,
    put: Callable[[str, str], None],
    execution_name: str,
    budget: int = PAYLOAD_BUDGET_BYTES,
) -> int:
    """Move the transactions of the largest groups to S3 until the payload fits; returns how many moved."""
    total = other_bytes + sum(size_of(group) for group in groups)
    moved = 0
    for group in sorted(groups, key=lambda g: size_of(g["chunks"]), reverse=True):
        if total <= budget:
            break
        before = size_of(group)
        digest = hashlib.sha256(f"{group['user_id']}/{group['rule_id']}/{group['attempt']}".encode()).hexdigest()
        keys = []
        for index, transaction in enumerate(group["chunks"]):
            key = f"{SPILL_PREFIX}{execution_name}/{digest[:24]}/{group['attempt']}-{index}.json"
            put(key, json.dumps(transaction, separators=(",", ":")))
            keys.append(key)
        group["chunks"], group["chunk_keys"], group["spilled"] = [], keys, True
        total -= before - size_of(group)
        moved += 1
    return moved


def spill_writes(
    batches: list[dict[str, Any]],
    other_bytes: int,
    put: Callable[[str, str], None],
    execution_name: str,
    budget: int = PAYLOAD_BUDGET_BYTES,
) -> int:
    """Move the largest time-series write requests (`{"RequestItems": ...}`) to S3 until the payload fits; a
    moved one becomes `{"key": <its object>}`. Returns how many moved."""
    total = other_bytes + size_of(batches)
    moved = 0
    for index in sorted(range(len(batches)), key=lambda i: size_of(batches[i]), reverse=True):
        if total <= budget:
            break
        before = size_of(batches[index])
        key = f"{SPILL_PREFIX}{execution_name}/writes-{index}.json"
        put(key, json.dumps(batches[index]["RequestItems"], separators=(",", ":")))
        batches[index] = {"key": key}
        total -= before - size_of(batches[index])
        moved += 1
    return moved
