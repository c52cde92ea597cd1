from __future__ import annotations

from collections.abc import Iterator

import pytest

from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.product import LocalProduct


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    with LocalAws(time_scale=0.001) as local:
        yield local


@pytest.fixture
def product(aws: LocalAws) -> LocalProduct:
    return LocalProduct(aws)
