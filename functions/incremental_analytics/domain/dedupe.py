"""docs/design.md#exactly-once-for-a-write-unit: how a (user, aggregate rule) counter remembers what it counted.

An event id, scoped to the counter's user and rule, is remembered for at least the dedupe retention after the
commit that counted it. A counter keeps the ids it counted in the retention inside its own item, as short
digests grouped by the day of their commit (`seen`), so one conditional write of one item counts events exactly
once: the figures and the memory change together. A counter that would remember more than `INLINE_IDS` ids
(a user this busy on one rule) switches to a claim item per event, written in a transaction with the counter,
until `claims_until`: the retention after its last claim, when every claim it wrote has outlived the retention.
Ids counted before the switch stay in `seen` until their day leaves the retention.

A digest is the first 9 bytes of the id's SHA-256, in base64 (12 characters). Two ids of one counter in one
retention share a digest with probability about n^2 / 2^73: about 10^-18 for 100 ids.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DIGEST_CHARS = 12
INLINE_IDS = 100  # 1,200 characters of digests at most: a counter item stays within 3 KB with a full evidence ring


def digest(event_id: str) -> str:
    return base64.b64encode(hashlib.sha256(event_id.encode()).digest()[:9]).decode()


def _day(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Seen:
    """The ids a counter counted, by the day of their commit (`yyyy-mm-dd` -> concatenated digests), and the
    epoch second until which its events are claimed by claim items instead."""

    days: Mapping[str, str] = field(default_factory=dict)
    claims_until: int = 0

    def __contains__(self, event_id: str) -> bool:
        wanted = digest(event_id)
        return any(
            text[start : start + DIGEST_CHARS] == wanted
            for text in self.days.values()
            for start in range(0, len(text), DIGEST_CHARS)
        )

    def __len__(self) -> int:
        return sum(len(text) // DIGEST_CHARS for text in self.days.values())

    def claims(self, now: dt.datetime) -> bool:
        return now.timestamp() < self.claims_until

    def within(self, now: dt.datetime, retention_days: int) -> Seen:
        """Only the days still inside the retention: a day is kept while it is at most `retention_days` old."""
        oldest = (now.astimezone(dt.UTC).date() - dt.timedelta(days=retention_days)).isoformat()
        return Seen({day: text for day, text in self.days.items() if day >= oldest}, self.claims_until)


@dataclass(frozen=True, slots=True)
class Dedupe:
    """How a commit of new events records them: `seen` as the counter will hold it, and whether each event
    also needs a claim item (in a transaction)."""

    seen: Seen
    claims: bool


def record(seen: Seen, event_ids: Iterable[str], now: dt.datetime, retention_days: int) -> Dedupe:
    """The counter's memory after a commit of `event_ids` (new to it) at `now`."""
    ids = list(event_ids)
    kept = seen.within(now, retention_days)
    if kept.claims(now) or len(kept) + len(ids) > INLINE_IDS:
        until = int(now.timestamp()) + retention_days * 86_400
        return Dedupe(Seen(kept.days, until), claims=True)
    if not ids:
        return Dedupe(kept, claims=False)
    today = _day(now)
    days = dict(kept.days)
    days[today] = days.get(today, "") + "".join(digest(event_id) for event_id in ids)
    return Dedupe(Seen(days, kept.claims_until), claims=False)
