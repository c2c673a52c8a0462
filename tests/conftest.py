"""Suite-wide options. `pytest_addoption` only works in the root conftest, so the fault matrix's
`--run-slow` switch lives here; its fixtures live in tests/faults/conftest.py."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the cases marked @pytest.mark.slow (long faults, the 60 s outage)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow case: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
