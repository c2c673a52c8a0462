"""The simulator package's import graph: the handlers never reach back into the server (issue 14, item 5).

Read with `ast`, so that an import under TYPE_CHECKING or inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import qqworker.simulator

PACKAGE = "qqworker.simulator"
ROOT = Path(qqworker.simulator.__file__).parent
MODULES = sorted(f"{PACKAGE}.{p.stem}" for p in ROOT.glob("*.py"))
# The entry points that build a Simulator: the package's API and `python -m qqworker.simulator`.
MAY_IMPORT_SERVER = {f"{PACKAGE}.__init__", f"{PACKAGE}.__main__"}


def _target(node: ast.ImportFrom, module: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.rsplit(".", node.level)[0]
    return f"{base}.{node.module}" if node.module else base


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, anywhere in its source."""
    path = ROOT / f"{module.rsplit('.', 1)[1]}.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE:
                    found.add(f"{PACKAGE}.__init__")
                elif alias.name in MODULES:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _target(node, module)
            if target in MODULES:
                found.add(target)
            elif target == PACKAGE:
                # `from qqworker.simulator import rest` names a module; any other name comes from __init__.
                for alias in node.names:
                    name = f"{PACKAGE}.{alias.name}"
                    found.add(name if name in MODULES else f"{PACKAGE}.__init__")
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_graph_sees_the_known_edges() -> None:
    # Guards the reader itself: a parser that found nothing would pass every other test here.
    assert f"{PACKAGE}.server" in GRAPH[f"{PACKAGE}.__init__"]
    assert f"{PACKAGE}.context" in GRAPH[f"{PACKAGE}.gateway"]
    assert f"{PACKAGE}.state" in GRAPH[f"{PACKAGE}.context"]


@pytest.mark.parametrize("module", sorted(set(MODULES) - MAY_IMPORT_SERVER))
def test_only_the_entry_points_import_the_server(module: str) -> None:
    assert f"{PACKAGE}.server" not in GRAPH[module]


def test_the_package_graph_is_acyclic() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


def test_the_context_imports_no_handler() -> None:
    handlers = {f"{PACKAGE}.{name}" for name in ("gateway", "rest", "control", "dispatch", "server")}
    assert not GRAPH[f"{PACKAGE}.context"] & handlers


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)
