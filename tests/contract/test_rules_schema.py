"""rules_schema.json is the rules contract: the fixtures say what it accepts and rejects, and why."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from incremental_analytics.domain.rules_loading import RulesError, rules_from_document
from incremental_analytics.domain.rules_validation import rules_schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "rules"
VALID = sorted((FIXTURES / "valid").glob("*.json"))
INVALID = sorted((FIXTURES / "invalid").glob("*.json"))
VALID_DOCUMENTS = sorted((FIXTURES / "documents" / "valid").glob("*.json"))
INVALID_DOCUMENTS = sorted((FIXTURES / "documents" / "invalid").glob("*.json"))


def _read(path: Path) -> Any:
    """A fixture as the loader reads JSON: numbers with a fraction or exponent as exact decimals."""
    return json.loads(path.read_text(), parse_float=Decimal)


def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "rules_schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads((ROOT / "rules_schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schema_at_the_root_is_the_one_the_runtime_package_ships() -> None:
    assert json.loads((ROOT / "rules_schema.json").read_text()) == rules_schema()


def test_there_are_fixtures_both_ways() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 15


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_fixture_passes_the_schema_and_the_loader(path: Path) -> None:
    rule = _read(path)
    _schema_validator().validate([rule])
    _schema_validator().validate({"rules": [rule]})
    (loaded,) = rules_from_document([rule])
    assert loaded.rule_id == rule["rule_id"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture_fails_for_its_stated_reason(path: Path) -> None:
    fixture: dict[str, Any] = _read(path)
    with pytest.raises(RulesError) as raised:
        rules_from_document([fixture["rule"]])
    assert any(problem.startswith(fixture["why"]) for problem in raised.value.problems), raised.value.problems
    if not fixture.get("beyond_schema"):
        assert not _schema_validator().is_valid([fixture["rule"]]), "the bare schema should reject it too"


@pytest.mark.parametrize("path", VALID_DOCUMENTS, ids=lambda p: p.stem)
def test_valid_document_passes_the_schema_and_the_loader(path: Path) -> None:
    document = _read(path)
    _schema_validator().validate(document)
    rules = rules_from_document(document)
    assert len(rules) == len(document if isinstance(document, list) else document["rules"])


@pytest.mark.parametrize("path", INVALID_DOCUMENTS, ids=lambda p: p.stem)
def test_invalid_document_fails_for_its_stated_reason(path: Path) -> None:
    fixture: dict[str, Any] = _read(path)
    with pytest.raises(RulesError) as raised:
        rules_from_document(fixture["document"])
    assert any(problem.startswith(fixture["why"]) for problem in raised.value.problems), raised.value.problems
    assert not _schema_validator().is_valid(fixture["document"]), "the bare schema should reject it too"


def test_a_file_holds_at_most_the_contracts_number_of_rules() -> None:
    limit = rules_schema()["$defs"]["ruleList"]["maxItems"]
    rules = [
        {"rule_id": f"r{n}", "type": "aggregate", "event_type": "x", "count": {"operator": "greater", "target": 1}}
        for n in range(limit + 1)
    ]
    assert len(rules_from_document(rules[:limit])) == limit
    with pytest.raises(RulesError) as raised:
        rules_from_document(rules)
    assert raised.value.problems == [f"{limit + 1:,} rules; a rules file may hold at most {limit:,}"]
    assert not _schema_validator().is_valid(rules)
