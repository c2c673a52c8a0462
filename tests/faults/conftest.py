"""Fixtures of the fault matrix: the results recorder, the simulator, the supervised worker, the link.

Each case is declared with `@fault(group, "what breaks", "its bound")`; the recorder keeps that row even
when the case is skipped, and adds the figures the case measured and its outcome.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qqworker.simulator import netns
from tests.faults import results
from tests.supervised import Platform, Supervised
from tests.support import RunTimings, SimulatorProcess

_RESULTS_KEY = pytest.StashKey[results.CaseResult]()
_collected: list[results.CaseResult] = []
_started = time.monotonic()
_tags = itertools.count(1)


def fault(group: str, name: str, bound: str) -> pytest.MarkDecorator:
    """Declares a case of the matrix: its group (link, platform, process), the fault, the bound."""
    assert group in results.GROUPS, group
    return pytest.mark.fault(group=group, name=name, bound=bound)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault(group, name, bound): a case of the fault matrix")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for order, item in enumerate(items):
        mark = item.get_closest_marker("fault")
        if mark is None:
            continue
        case_id = item.nodeid.split("tests/faults/", 1)[-1]
        result = results.CaseResult(
            case_id, mark.kwargs["group"], mark.kwargs["name"], mark.kwargs["bound"], order
        )
        item.stash[_RESULTS_KEY] = result
        _collected.append(result)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    result = item.stash.get(_RESULTS_KEY, None)
    if result is None:
        return report
    if report.skipped and result.outcome in ("not run", "passed"):
        result.outcome = "skipped"
        longrepr = report.longrepr
        result.reason = (
            longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)
        )
    elif report.failed:
        result.outcome = "failed"
        result.reason = f"{report.when}: {str(report.longrepr).strip().splitlines()[-1][:200]}"
    elif report.when == "call" and report.passed and result.outcome == "not run":
        result.outcome = "passed"
    if report.when == "call":
        result.duration_s = round(report.duration, 2)
        result.at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ran = [r for r in _collected if r.outcome != "not run"]
    if not ran:
        return
    results.merge(
        ran,
        {
            "run_slow": bool(session.config.getoption("--run-slow")),
            "matrix_s": round(time.monotonic() - _started, 1),
        },
    )


@pytest.fixture
def record(request: pytest.FixtureRequest) -> results.CaseResult:
    """The case's row in the results: `record.measure("detect_s", value, bound)`."""
    result = request.node.stash.get(_RESULTS_KEY, None)
    if result is None:
        raise RuntimeError("a fault case needs the @fault(...) marker")
    return result


@pytest.fixture
def timings() -> RunTimings:
    return RunTimings()


@pytest.fixture
def sim(timings: RunTimings) -> Iterator[SimulatorProcess]:
    """The simulator on 127.0.0.1 in the host namespace."""
    made = SimulatorProcess(*timings.simulator_flags())
    yield made
    made.stop()


@pytest.fixture
def supervise(tmp_path: Path, timings: RunTimings) -> Iterator[Callable[..., Supervised]]:
    """Starts `python -m watchdog run` against a simulator; every run is torn down, tree and all."""
    runs: list[Supervised] = []

    def start(sim: Platform, **kwargs: Any) -> Supervised:
        kwargs.setdefault("timings", timings)
        run = Supervised(sim, tmp_path / f"run{len(runs)}", **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


@pytest.fixture
def link() -> Iterator[netns.Link]:
    """Two fresh namespaces joined by a veth (simulator/netns.py); skips when this machine has none."""
    try:
        netns.ensure_tools()
    except netns.NetnsUnavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    made = netns.Link(f"{os.getpid()}-{next(_tags)}")
    yield made
    made.close()
