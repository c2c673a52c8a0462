"""The layers of the tree, enforced: the contract is a leaf, the worker never imports the watchdog, and the
supervisor process never loads asyncio (its loop is a poll loop; asyncio is the worker's).

The import checks read every module's source (also imports inside functions and under TYPE_CHECKING);
the asyncio check looks at a real running watchdog's memory maps, beside its worker's as the control.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PYTHON, ROOT, LineProcess, RunTimings, SimulatorProcess

PROJECT = ("qqworker", "watchdog")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def project_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a project module in this file, wherever it is written."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT:
                yield node.lineno, name


def test_the_import_reader_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from watchdog.policy import Decision\n"
        "def f():\n    import qqworker.worker\n"
    )
    assert [name for _, name in project_imports(sample)] == [
        "watchdog.policy",
        "watchdog.policy.Decision",
        "qqworker.worker",
    ]


@pytest.mark.parametrize("path", modules("qqworker/contract"), ids=lambda p: p.name)
def test_the_contract_is_a_leaf(path: Path) -> None:
    outside = [
        f"line {line}: {name}"
        for line, name in project_imports(path)
        if not (name == "qqworker.contract" or name.startswith("qqworker.contract."))
    ]
    assert not outside, f"{path.relative_to(ROOT)} imports beyond the contract: {outside}"


@pytest.mark.parametrize("path", modules("qqworker"), ids=lambda p: str(p.relative_to(ROOT / "qqworker")))
def test_the_worker_never_imports_the_watchdog(path: Path) -> None:
    found = [f"line {n}: {name}" for n, name in project_imports(path) if name.split(".")[0] == "watchdog"]
    assert not found, f"{path.relative_to(ROOT)} imports the watchdog: {found}"


def mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_supervisor_process_never_loads_asyncio() -> None:
    """asyncio's C part (`_asyncio*.so`) is mapped into a process once asyncio is imported: the worker has
    it (the control, so the check can fail), the running watchdog must not, with --http on as well."""
    simulator = SimulatorProcess(*RunTimings().simulator_flags())
    watchdog = LineProcess(
        [PYTHON, "-m", "watchdog", "run", *RunTimings().flags(), "--http", "127.0.0.1:0"],
        env=simulator.env(QQW_STATE_FILE=""),
    )
    try:
        watchdog.wait_for("gateway.connected", 30)
        _, spawned = watchdog.wait_for("child.spawned", 5)
        assert "_asyncio" in mapped_files(spawned["child_pid"]), "the control: the worker runs asyncio"
        watchdog_maps = mapped_files(watchdog.pid)
        loaded = sorted({line.split()[-1] for line in watchdog_maps.splitlines() if "_asyncio" in line})
        assert not loaded, f"the watchdog process loaded asyncio: {loaded}"
    finally:
        watchdog.stop(15)
        simulator.stop()
