"""Where the local gateway's modules stand: production code that needs nothing of the simulator, and a
connection module that does not import its gateway back (read with `ast`: TYPE_CHECKING and function-level
imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qqworker

ROOT = Path(qqworker.__file__).parent
LOCAL_GATEWAY = ["localgw", "localws", "gwbuffer", "localtokens", "gwserver", "wire"]


def imported_by(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_reader_sees_imports() -> None:
    assert "qqworker.localws" in imported_by(ROOT / "localgw.py")
    assert "qqworker.gwserver" in imported_by(ROOT / "localws.py")


@pytest.mark.parametrize("module", LOCAL_GATEWAY)
def test_the_local_gateway_needs_nothing_of_the_simulator(module: str) -> None:
    assert not {m for m in imported_by(ROOT / f"{module}.py") if m.startswith("qqworker.simulator")}


@pytest.mark.parametrize("module", [m for m in LOCAL_GATEWAY if m != "localgw"])
def test_nothing_below_the_gateway_imports_it_back(module: str) -> None:
    assert "qqworker.localgw" not in imported_by(ROOT / f"{module}.py")
