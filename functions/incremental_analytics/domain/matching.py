"""Events to rules, through an index by event type (never a scan of every rule per event)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from incremental_analytics.domain.events import SYSTEM_EVENT_PREFIX, Event
from incremental_analytics.domain.rules import Rule, RuleType


@dataclass(frozen=True, slots=True)
class Match:
    rule: Rule
    event: Event


class RuleIndex:
    """The enabled rules, indexed by the exact event type they count."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_type: defaultdict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            if rule.enabled:
                by_type[rule.event_type].append(rule)
        self._by_type: dict[str, tuple[Rule, ...]] = {key: tuple(found) for key, found in by_type.items()}

    @property
    def system_event_types(self) -> frozenset[str]:
        """The `_`-prefixed event types some rule names: those are counted, not ignored (docs/events.md)."""
        return frozenset(key for key in self._by_type if key.startswith(SYSTEM_EVENT_PREFIX))

    def rules_for(self, event: Event) -> Iterator[Rule]:
        for rule in self._by_type.get(event.event_type, ()):
            if rule.matches(event.event_type, event.attributes):
                yield rule

    def matches(self, events: Sequence[Event]) -> Iterator[Match]:
        for event in events:
            for rule in self.rules_for(event):
                yield Match(rule, event)

    def group_aggregate(self, events: Sequence[Event]) -> dict[tuple[str, str], list[Event]]:
        """(user_id, rule_id) -> that user's matching events for an aggregate rule, in stream order, each event
        (`Event.key`) once: the first record of an id that matches a rule is the one that rule counts.

        This is the claims' own rule (docs/design.md: a dedupe record per (rule, identity, event_id)), applied inside a
        batch too, so that batching never changes what is counted, even where a producer reuses an id for
        records that differ (which then count, each for the rules the first of them matches)."""
        groups: dict[tuple[str, str], list[Event]] = {}
        seen: set[tuple[str, str, str]] = set()
        for match in self.matches(events):
            claim = (match.rule.rule_id, *match.event.key)
            if match.rule.type is RuleType.AGGREGATE and claim not in seen:
                seen.add(claim)
                groups.setdefault((match.event.user_id, match.rule.rule_id), []).append(match.event)
        return groups


class TimeSeriesSelection:
    """Which accepted events the time-series table keeps (docs/periods.md): every one (`for_all_events`, the
    stack's default: a date or window rule created later counts the events before it, within the retention), or
    only those some date or window rule, enabled or not, would count (its event type and attribute filter), which
    saves a write per event that no period rule reads."""

    def __init__(self, rules: Iterable[Rule], *, for_all_events: bool) -> None:
        self.for_all_events = for_all_events
        by_type: defaultdict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            if rule.type is not RuleType.AGGREGATE:
                by_type[rule.event_type].append(rule)
        self._by_type = dict(by_type)

    def keeps(self, event: Event) -> bool:
        if self.for_all_events:
            return True
        return any(rule.matches(event.event_type, event.attributes) for rule in self._by_type.get(event.event_type, ()))


def first_occurrences(events: Iterable[Event], already_seen: Iterable[tuple[str, str]] = ()) -> list[Event]:
    """The events not seen before, in order: the first copy of each wins. An event is its (identity, event_id)
    (`Event.key`): ids are scoped to the identity, so two users' events never collapse, whatever their ids."""
    seen = set(already_seen)
    fresh: list[Event] = []
    for event in events:
        if event.key not in seen:
            seen.add(event.key)
            fresh.append(event)
    return fresh
