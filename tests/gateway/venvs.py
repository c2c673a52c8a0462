"""Framework venvs for the tests that run real frameworks (the gateway tests, NoneBot's event parser and
its webhook mode): one per use under build/, made once from PyPI with the pinned versions and then
reused; a skip, saying why, when the packages cannot be installed here."""

from __future__ import annotations

import glob
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support import ROOT

INSTALL_TIMEOUT_S = 300


def find_interpreter(name: str) -> str | None:
    """A working `name` (python3.12, ...): on PATH, else a pyenv version's (whose shim may refuse it
    when that version is not selected)."""
    candidates = [shutil.which(name), *sorted(glob.glob(str(Path.home() / ".pyenv/versions/*/bin" / name)))]
    for candidate in filter(None, candidates):
        try:
            subprocess.run([candidate, "-c", "pass"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return None


def framework_python(name: str, packages: tuple[str, ...], interpreter: str | None = None) -> Path:
    """The python of build/<name>-venv with exactly `packages` installed (made on first use)."""
    home = ROOT / "build" / f"{name}-venv"
    python = home / "bin" / "python"
    stamp = home / ".packages"
    wanted = "\n".join((interpreter or "", *packages))
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        if interpreter is None:
            venv.EnvBuilder(with_pip=True, clear=True).create(home)
        else:
            found = find_interpreter(interpreter)
            if found is None:
                pytest.skip(f"{interpreter} is not installed here")
            subprocess.run([found, "-m", "venv", "--clear", str(home)], check=True, timeout=120)
    try:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"installing {', '.join(packages)} took over {INSTALL_TIMEOUT_S}s")
    if result.returncode != 0:
        pytest.skip(f"cannot install {', '.join(packages)}: {result.stderr[-400:]}")
    stamp.write_text(wanted)
    return python
