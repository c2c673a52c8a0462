"""The README's generated tables are their committed results rendered: never edited by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.parametrize(
    ("script", "flag", "results"),
    [
        ("fault_table.py", "--check", "tests/faults/results.json"),
        ("bench.py", "--check-readme", "scripts/benchmark/results.json"),
    ],
)
def test_readme_table_matches_results(script: str, flag: str, results: str) -> None:
    if not (ROOT / results).exists():
        pytest.fail(f"{results} is missing: run scripts/{script} to create it")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
