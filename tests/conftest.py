from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The product's shared samples live beside the checkout (../shared)."""
    return ROOT.parent / "shared"


@pytest.fixture
def samples() -> Path:
    return shared_dir() / "samples"
