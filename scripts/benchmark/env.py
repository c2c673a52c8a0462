"""The benchmark's own environment: a venv under .bench/ (git-ignored) with the peers it compares
against, from PyPI: the official SDK (qq-botpy) and supervisord, plus pyinstrument for the profile and
the project itself (editable, so the profile runs the current code). Made on first use, redone when the
package list or the project's pyproject.toml (its own dependencies) changes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"
VENV = BENCH_DIR / "venv"
PACKAGES = ("qq-botpy==1.2.1", "supervisor>=4.2", "pyinstrument>=4.6")


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(log: object = print) -> Path:
    """The bench venv's python, creating and filling the venv when it is missing or out of date."""
    stamp = VENV / ".bench-packages"
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    wanted = "\n".join((*PACKAGES, f"-e {ROOT} (pyproject.toml {project})"))
    if python().exists() and stamp.exists() and stamp.read_text() == wanted:
        return python()
    log(f"bench: setting up {VENV.relative_to(ROOT)} (qq-botpy, supervisor, pyinstrument) - first use only")
    if not python().exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *PACKAGES], check=True, stdout=sys.stderr)
    subprocess.run([*pip, "-e", str(ROOT)], check=True, stdout=sys.stderr)
    stamp.write_text(wanted)
    return python()
