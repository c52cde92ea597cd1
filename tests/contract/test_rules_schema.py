"""rules_schema.json is the rules contract: the fixtures say what it accepts and rejects, and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from incremental_analytics.domain.rules_loading import RulesError, rules_from_document, rules_schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "rules"
VALID = sorted((FIXTURES / "valid").glob("*.json"))
INVALID = sorted((FIXTURES / "invalid").glob("*.json"))


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
    rule = json.loads(path.read_text())
    _schema_validator().validate([rule])
    _schema_validator().validate({"rules": [rule]})
    (loaded,) = rules_from_document([rule])
    assert loaded.rule_id == rule["rule_id"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture_fails_for_its_stated_reason(path: Path) -> None:
    fixture: dict[str, Any] = json.loads(path.read_text())
    with pytest.raises(RulesError) as raised:
        rules_from_document([fixture["rule"]])
    assert any(problem.startswith(fixture["why"]) for problem in raised.value.problems), raised.value.problems
    if not fixture.get("beyond_schema"):
        assert not _schema_validator().is_valid([fixture["rule"]]), "the bare schema should reject it too"
