"""Debian packages a test needs (rsyslog, logrotate): found, or installed with apt-get, or a clear skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _which(binary: str) -> str | None:
    return shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/sbin") / binary) if p.exists()), None
    )


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=600)


def ensure_binary(binary: str, package: str) -> str:
    """The path of `binary`, installing `package` when missing (CI runs as root with registries reachable)."""
    found = _which(binary)
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip(f"{binary} is not installed and there is no apt-get to install {package}")
    if os.geteuid() != 0:
        pytest.skip(f"{binary} is not installed and installing it needs root (apt-get install {package})")
    # The package must not start a system-wide daemon: block service starts during the install unless a
    # policy already does (the Debian convention, as in container images).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ("install", "-y", "--no-install-recommends", package)
        result = _apt(*install)
        if result.returncode != 0:
            _apt("update")
            result = _apt(*install)
    finally:
        if made_policy:
            policy.unlink()
    found = _which(binary)
    if result.returncode != 0 or not found:
        pytest.skip(f"apt-get install {package} failed: {(result.stderr or result.stdout)[-500:]}")
    return found
