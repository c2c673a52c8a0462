"""Suite-wide options and the fixtures every process test shares. `pytest_addoption` only works in the
root conftest, so the fault matrix's `--run-slow` switch lives here; the matrix's own fixtures (its
simulator with the matrix timings, `supervise`, `link`) are in tests/faults/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.supervised import Supervised
from tests.support import SimulatorProcess


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


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[SimulatorProcess]:
    """`python -m qqworker.simulator` for one test, with the test module's `SIMULATOR_FLAGS` and, through
    indirect parametrization, the case's own flags."""
    flags = [*getattr(request.module, "SIMULATOR_FLAGS", ()), *getattr(request, "param", ())]
    simulator = SimulatorProcess(*flags)
    yield simulator
    simulator.stop()


@pytest.fixture
def cleanup() -> Iterator[list[Supervised]]:
    """Watchdog runs a test appends here are torn down afterwards, tree and all, whatever happened."""
    runs: list[Supervised] = []
    yield runs
    for run in runs:
        run.close()
