from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def samples_dir() -> Path:
    """The product's samples (a Pinpoint app event, a Honeycode sheet), kept in the repository's own fixtures."""
    return FIXTURES / "samples"


@pytest.fixture
def samples() -> Path:
    return samples_dir()
