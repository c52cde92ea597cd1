"""docs/rules.md: what a rules file changes against the rules as they stand, and what each change sets off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from incremental_analytics.domain.rules import Rule, RuleType


@dataclass(frozen=True, slots=True)
class RulesDiff:
    """A rules file is the whole rule set: rules missing from it are deleted."""

    created: tuple[Rule, ...]
    changed: tuple[Rule, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def changes_anything(self) -> bool:
        return bool(self.created or self.changed or self.deleted)


def diff_rules(current: Sequence[Rule], wanted: Sequence[Rule]) -> RulesDiff:
    by_id = {rule.rule_id: rule for rule in current}
    created = tuple(rule for rule in wanted if rule.rule_id not in by_id)
    changed = tuple(rule for rule in wanted if rule.rule_id in by_id and by_id[rule.rule_id] != rule)
    unchanged = tuple(rule.rule_id for rule in wanted if by_id.get(rule.rule_id) == rule)
    wanted_ids = {rule.rule_id for rule in wanted}
    deleted = tuple(sorted(rule_id for rule_id in by_id if rule_id not in wanted_ids))
    return RulesDiff(created, changed, deleted, unchanged)


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One change to the rules table, and what it sets off.

    `purge`: the rule was deleted or its counting identity changed, so its counters and dedupe claims go
    (`kept_identity` is the identity whose state stays: the new one, or none for a deleted rule).
    `evaluate`: a date or window rule was created or changed, so it is evaluated now, not at the next hour.
    """

    rule_id: str
    kind: str  # created | changed | deleted
    purge: bool
    evaluate: bool
    old_identity: str | None
    kept_identity: str | None


def classify_change(rule_id: str, old: Rule | None, new: Rule | None) -> RuleChange | None:
    """None when nothing that matters changed (the same definition written again)."""
    if old == new:
        return None
    kind = "created" if old is None else "deleted" if new is None else "changed"
    purge = old is not None and (new is None or new.counting_identity != old.counting_identity)
    evaluate = new is not None and new.type is not RuleType.AGGREGATE and new.enabled
    return RuleChange(
        rule_id=rule_id,
        kind=kind,
        purge=purge,
        evaluate=evaluate,
        old_identity=None if old is None else old.counting_identity,
        kept_identity=None if new is None else new.counting_identity,
    )
