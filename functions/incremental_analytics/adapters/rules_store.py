"""Rules as the rules table keeps them: the definition as JSON text (exact numbers), plus the attributes that
its stream consumers filter on (`identity`, the counting identity)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from incremental_analytics.domain.rules import Rule, canonical_json


def rule_item(rule: Rule, updated_at: str) -> dict[str, Any]:
    return {
        "rule_id": {"S": rule.rule_id},
        "definition": {"S": canonical_json(rule.to_dict())},
        "identity": {"S": rule.counting_identity},
        "type": {"S": rule.type.value},
        "event_type": {"S": rule.event_type},
        "enabled": {"BOOL": rule.enabled},
        "updated_at": {"S": updated_at},
    }


def rule_from_item(item: Mapping[str, Any]) -> Rule:
    return Rule.from_dict(json.loads(item["definition"]["S"], parse_float=Decimal))


def rules_from_items(items: Iterable[Mapping[str, Any]]) -> list[Rule]:
    return sorted((rule_from_item(item) for item in items), key=lambda rule: rule.rule_id)
