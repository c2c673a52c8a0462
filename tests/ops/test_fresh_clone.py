"""From a fresh clone of the committed tree: the first `scripts/run.sh` really creates .venv and installs the
project, the demo runs from another directory, and a later change of pyproject.toml reinstalls."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def test_first_run_creates_the_venv_and_the_demo_works(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60)
    assert not (clone / ".venv").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_", "VIRTUAL_ENV"))}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    started = time.monotonic()
    first = run(
        ["bash", str(clone / "scripts" / "run.sh"), "--demo", "--json", "--duration", "10"],
        elsewhere,
        env,
        300,
    )
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    assert "(first run)" in first.stderr and "installing the project" in first.stderr
    venv_python = clone / ".venv" / "bin" / "python"
    assert venv_python.exists() and (clone / ".venv" / ".qqwatchdog-installed").exists()
    # The project is installed in the new venv, from the clone (editable), not borrowed from ours.
    where = run([str(venv_python), "-c", "import qqworker; print(qqworker.__file__)"], tmp_path, env, 30)
    assert where.stdout.strip() == str(clone / "qqworker" / "__init__.py")
    records = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    messages = [r["message"] for r in records]
    assert any(r["event"] == "gateway.connected" for r in records)
    assert any(m.startswith("3 replies received") for m in messages)
    assert "Everything stopped; no process left." in messages
    print(f"first run (venv + install + 10 s demo): {took:.1f}s")

    # Installed and current: nothing is installed again.
    second = run(["bash", str(clone / "scripts" / "run.sh"), "status"], elsewhere, env, 60)
    assert second.returncode == 3 and "installing" not in second.stderr

    # pyproject.toml changed (a pull): the next start reinstalls.
    future = time.time() + 5
    os.utime(clone / "pyproject.toml", (future, future))
    third = run(["bash", str(clone / "scripts" / "run.sh"), "status"], elsewhere, env, 300)
    assert third.returncode == 3 and "installing the project" in third.stderr
    assert "(first run)" not in third.stderr
