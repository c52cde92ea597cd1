from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = FIXTURES / "samples"


@pytest.fixture
def samples() -> Path:
    """A Pinpoint event-stream record and a rules sheet in the 2021 Honeycode column layout."""
    return SAMPLES
