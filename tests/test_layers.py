"""The layers of the tree, enforced in one place:

- `qqworker/contract/` is a leaf: it imports nothing else of the project;
- nothing in `qqworker/` imports the watchdog;
- the local gateway (production code) needs nothing of the simulator, and what it is built on does not
  import it back;
- in the simulator package only the entry points import the server, the context imports no handler,
  and the package's import graph has no cycle;
- a running watchdog process never has asyncio loaded (its loop is a `selectors` poll loop).

The import checks read every module's source with `ast` (imports inside functions and under
TYPE_CHECKING count too); the asyncio check reads a real running watchdog's memory maps, beside its
worker's as the control.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.support import PYTHON, ROOT, LineProcess, RunTimings, SimulatorProcess

PROJECT = ("qqworker", "watchdog")
SIMULATOR = "qqworker.simulator"
LOCAL_GATEWAY = ("localgw", "localws", "gwbuffer", "localtokens", "gwserver", "wire")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def project_imports(path: Path, module: str | None = None, roots: tuple[str, ...] = PROJECT) -> set[str]:
    """Every module of `roots` (the project's) that `path` (the module `module`, by default its own)
    imports, wherever it is written, as absolute dotted names: `from a.b import c` is `a.b.c` when c is
    a module of the project, else `a.b`."""
    here = module or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] in roots}


def test_the_import_reader_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from watchdog.policy import Decision\n"
        "def f():\n    import qqworker.worker\nfrom . import state\nfrom ..contract import beat\n"
        "from qqworker.simulator import Simulator\n"
    )
    assert project_imports(sample, "qqworker.simulator.sample") == {
        "watchdog.policy", "qqworker.worker", "qqworker.simulator.state", "qqworker.contract.beat",
        "qqworker.simulator",
    }  # fmt: skip


# The two processes and what they share ----------------------------------------------------------------


@pytest.mark.parametrize("path", source_files("qqworker.contract"), ids=lambda p: p.name)
def test_the_contract_is_a_leaf(path: Path) -> None:
    outside = sorted(n for n in project_imports(path) if not n.startswith("qqworker.contract"))
    assert not outside, f"{path.relative_to(ROOT)} imports beyond the contract: {outside}"


@pytest.mark.parametrize(
    "path", source_files("qqworker"), ids=lambda p: str(p.relative_to(ROOT / "qqworker"))
)
def test_the_worker_never_imports_the_watchdog(path: Path) -> None:
    found = sorted(n for n in project_imports(path) if n.split(".")[0] == "watchdog")
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


# The local gateway ------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", LOCAL_GATEWAY)
def test_the_local_gateway_needs_nothing_of_the_simulator(module: str) -> None:
    found = sorted(n for n in project_imports(ROOT / "qqworker" / f"{module}.py") if n.startswith(SIMULATOR))
    assert not found, f"qqworker/{module}.py imports the simulator: {found}"


def test_the_server_side_gateway_session_is_pure() -> None:
    """qqworker/gwserver.py decides for the simulator and the local gateway alike: no I/O, no project."""
    roots = (*PROJECT, "aiohttp", "asyncio", "websockets", "socket")
    assert not project_imports(ROOT / "qqworker" / "gwserver.py", roots=roots)


@pytest.mark.parametrize("module", [m for m in LOCAL_GATEWAY if m != "localgw"])
def test_nothing_below_the_local_gateway_imports_it_back(module: str) -> None:
    assert "qqworker.localgw" not in project_imports(ROOT / "qqworker" / f"{module}.py")


# The simulator package --------------------------------------------------------------------------------


SIMULATOR_FILES = {module_name(p): p for p in source_files(SIMULATOR) if p.parent.name == "simulator"}
# The entry points that build a Simulator: the package's API and `python -m qqworker.simulator`.
MAY_IMPORT_SERVER = {SIMULATOR, f"{SIMULATOR}.__main__"}


def package_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (a name imported from the package is its __init__'s)."""
    graph: dict[str, set[str]] = {}
    for module, path in SIMULATOR_FILES.items():
        targets = set()
        for name in project_imports(path):
            while name and name not in SIMULATOR_FILES:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


GRAPH = package_graph()


def test_the_graph_sees_the_known_edges() -> None:
    # Guards the reader itself: a parser that found nothing would pass every other test here.
    assert f"{SIMULATOR}.server" in GRAPH[SIMULATOR]
    assert f"{SIMULATOR}.context" in GRAPH[f"{SIMULATOR}.gateway"]
    assert f"{SIMULATOR}.state" in GRAPH[f"{SIMULATOR}.context"]


@pytest.mark.parametrize("module", sorted(set(SIMULATOR_FILES) - MAY_IMPORT_SERVER))
def test_only_the_entry_points_import_the_server(module: str) -> None:
    assert f"{SIMULATOR}.server" not in GRAPH[module]


def test_the_context_imports_no_handler() -> None:
    handlers = {f"{SIMULATOR}.{name}" for name in ("gateway", "rest", "control", "dispatch", "server")}
    assert not GRAPH[f"{SIMULATOR}.context"] & handlers


def test_the_simulator_package_has_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in GRAPH:
        visit(module, [])


@pytest.mark.parametrize("module", sorted(SIMULATOR_FILES))
def test_every_simulator_module_imports(module: str) -> None:
    importlib.import_module(module)
