"""Large intermediate sets go through S3, not through state payloads (Step Functions caps them at 256 KiB).

A batch whose commits would not fit writes the transactions of its largest groups to the data bucket, in one
object under `spill/`; the workflow reads each transaction back (a byte range of it) just before committing it.
Time-series writes that still do not fit go the same way, one object per BatchWriteItem request.
"""

from __future__ import annotations

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
    """Move the transactions of the largest groups to S3 until the payload fits; returns how many moved.

    All the moved transactions go into one object, one after the other, and each group keeps the object's key
    and the byte range of each of its transactions (`Range: bytes=first-last`, which S3's GetObject reads):
    one PutObject a batch instead of one per transaction (S3 bills each PUT ten times a GET)."""
    total = other_bytes + sum(size_of(group) for group in groups)
    attempts = "-".join(sorted({str(group["attempt"]) for group in groups}))
    key = f"{SPILL_PREFIX}{execution_name}/groups-{attempts}.json"
    # no offset in the object can be longer than the size of all the transactions
    widest = "9" * len(str(sum(size_of(transaction) for group in groups for transaction in group["chunks"])))
    moved: list[dict[str, Any]] = []
    for group in sorted(groups, key=lambda g: size_of(g["chunks"]), reverse=True):
        if total <= budget:
            break
        moved.append(group)
        before = size_of(group)
        ranges = [f"bytes={widest}-{widest}"] * len(group["chunks"])  # at least as long as the real ones
        after = size_of({**group, "chunks": [], "chunk_ranges": ranges, "spill_key": key, "spilled": True})
        total -= before - after
    if not moved:
        return 0
    pieces: list[bytes] = []
    offset = 0
    for group in moved:
        ranges = []
        for transaction in group["chunks"]:
            piece = json.dumps(transaction, separators=(",", ":")).encode()
            ranges.append(f"bytes={offset}-{offset + len(piece) - 1}")
            pieces.append(piece)
            offset += len(piece)
        group["chunks"], group["chunk_ranges"], group["spill_key"], group["spilled"] = [], ranges, key, True
    put(key, b"".join(pieces).decode())
    return len(moved)


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
