"""scripts/run.sh as a black box: argument handling, the env file, the credentials check, background mode.

A fake venv (QQW_VENV) whose `bin/python` records how it was called shows exactly what the launcher would
exec, without starting anything; the checks that must fail before Python runs prove it by never calling it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "scripts" / "run.sh"
SECRET = "s3cr3t-Value-for-tests"

FAKE_PYTHON = """#!/usr/bin/env bash
# Records how run.sh called "python -m MODULE [COMMAND]" or "python SCRIPT", per module, command or
# script; the renderer passes its input through, anything else prints one line and exits with $FAKE_EXIT.
if [ "$1" = -m ]; then key="$2"; else key="$(basename "$1" .py)"; fi
if [ "$1 $2 $3" = "-m watchdog pretty" ]; then key=watchdog.pretty; fi
printf '%s\\n' "$@" > "$FAKE_OUT/args.$key"
env > "$FAKE_OUT/env.$key"
pwd > "$FAKE_OUT/cwd.$key"
if [ "$key" = watchdog.pretty ]; then
    sed 's/^/pretty: /'
    exit 0
fi
echo '{"event": "fake.started"}'
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    (venv / ".qqwatchdog-installed").touch()  # installed after pyproject.toml changed: no pip run
    out = tmp_path / "out"
    out.mkdir()
    return tmp_path


def launch(fake: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(fake),
        "QQW_VENV": str(fake / "venv"),
        "FAKE_OUT": str(fake / "out"),
    }
    return subprocess.run(
        ["bash", str(RUN), *args],
        cwd=cwd or fake,
        env={**base, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def called(fake: Path, module: str = "watchdog") -> list[str] | None:
    path = fake / "out" / f"args.{module}"
    return path.read_text().splitlines() if path.exists() else None


def nothing_called(fake: Path) -> bool:
    return not list((fake / "out").iterdir())


def env_seen(fake: Path, module: str = "watchdog") -> dict[str, str]:
    text = (fake / "out" / f"env.{module}").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_missing_credentials_is_one_line_and_78(fake: Path) -> None:
    result = launch(fake)
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "QQ_APP_ID and QQ_APP_SECRET not set" in lines[0] and "--env-file" in lines[0]
    assert nothing_called(fake)  # failed before any Python ran

    result = launch(fake, QQ_APP_ID="1")
    assert result.returncode == 78 and "QQ_APP_SECRET not set" in result.stderr
    assert "QQ_APP_ID" not in result.stderr


def test_credentials_from_the_environment_exec_the_watchdog(fake: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = launch(
        fake,
        "--config",
        "conf/qq.toml",
        "--retry-max=30",
        "--log-file=logs/q.log",
        cwd=elsewhere,
        QQ_APP_ID="1",
        QQ_APP_SECRET=SECRET,
        QQW_STATUS_FILE="st/status.json",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"event": "fake.started"}'  # not a terminal: JSON, untouched
    assert called(fake) == [
        "-m",
        "watchdog",
        "run",
        "--config",
        f"{elsewhere}/conf/qq.toml",  # relative paths are the caller's, made absolute
        "--retry-max=30",
        f"--log-file={elsewhere}/logs/q.log",
    ]
    assert (fake / "out" / "cwd.watchdog").read_text().strip() == str(ROOT)  # runs from the project directory
    seen = env_seen(fake)
    assert seen["QQ_APP_SECRET"] == SECRET and seen["QQW_STATUS_FILE"] == f"{elsewhere}/st/status.json"


def test_app_id_may_come_from_a_flag_or_the_config_file(fake: Path) -> None:
    assert launch(fake, "--app-id", "42", QQ_APP_SECRET=SECRET).returncode == 0
    assert called(fake)[-2:] == ["--app-id", "42"]
    assert launch(fake, "--config", "/etc/q.toml", QQ_APP_SECRET=SECRET).returncode == 0


def test_exit_status_is_the_watchdogs(fake: Path) -> None:
    assert launch(fake, QQ_APP_ID="1", QQ_APP_SECRET=SECRET, FAKE_EXIT="69").returncode == 69


def write_env(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_env_file_open_to_others_is_refused(fake: Path, mode: int) -> None:
    env_file = write_env(fake / "bot.env", f"QQ_APP_ID=1\nQQ_APP_SECRET={SECRET}\n", mode)
    result = launch(fake, "--env-file", "bot.env")
    assert result.returncode == 78
    assert f"refusing env file {env_file}" in result.stderr and f"chmod 600 {env_file}" in result.stderr
    assert f"mode {mode:o}" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert nothing_called(fake)


def test_env_file_is_parsed_literally(fake: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (
        "# the bot\n"
        "\n"
        "   QQ_APP_ID = 102000001  \r\n"
        f'export QQ_APP_SECRET="{SECRET}"\n'
        f"QQ_HANDLER='mybot.handlers:on_event'\n"
        f"QQ_INTENTS=$(touch {marker})\n"
        "QQW_EXTRA=a=b # not a comment\n"
        "QQW_LAST=no-newline-at-end"
    )
    write_env(fake / "bot.env", text, 0o400)
    result = launch(fake, f"--env-file={fake / 'bot.env'}")
    assert result.returncode == 0, result.stderr
    seen = env_seen(fake)
    assert seen["QQ_APP_ID"] == "102000001"
    assert seen["QQ_APP_SECRET"] == SECRET
    assert seen["QQ_HANDLER"] == "mybot.handlers:on_event"
    assert seen["QQ_INTENTS"] == f"$(touch {marker})"
    assert not marker.exists()  # never evaluated
    assert seen["QQW_EXTRA"] == "a=b # not a comment"
    assert seen["QQW_LAST"] == "no-newline-at-end"


def test_env_file_errors(fake: Path) -> None:
    result = launch(fake, "--env-file", "missing.env")
    assert result.returncode == 78 and "no such file" in result.stderr

    write_env(fake / "bad.env", f"QQ_APP_SECRET={SECRET}\nthis is not an assignment {SECRET}\n")
    result = launch(fake, "--env-file", "bad.env")
    assert result.returncode == 78 and "line 2: expected KEY=VALUE" in result.stderr
    assert SECRET not in result.stderr  # the offending text is not echoed: it may hold the secret
    assert nothing_called(fake)


def test_output_mode_flags(fake: Path) -> None:
    result = launch(fake, "--pretty", "--retry-max", "5", QQ_APP_ID="1", QQ_APP_SECRET=SECRET, FAKE_EXIT="75")
    assert result.returncode == 75  # the watchdog's status, not the renderer's
    assert result.stdout == 'pretty: {"event": "fake.started"}\n'
    assert called(fake) == ["-m", "watchdog", "run", "--retry-max", "5"]
    assert called(fake, "watchdog.pretty") == ["-m", "watchdog", "pretty"]
    for recorded in (fake / "out").iterdir():
        recorded.unlink()
    result = launch(fake, "--json", QQ_APP_ID="1", QQ_APP_SECRET=SECRET)
    assert result.stdout == '{"event": "fake.started"}\n'
    assert called(fake, "watchdog.pretty") is None


def test_demo_needs_no_credentials(fake: Path) -> None:
    result = launch(fake, "--demo", "--duration", "5", "--", "--heartbeat-timeout", "9")
    assert result.returncode == 0, result.stderr
    assert called(fake, "demo") == [
        str(ROOT / "scripts" / "demo.py"),
        "--json",
        "--duration",
        "5",
        "--",
        "--heartbeat-timeout",
        "9",
    ]


def test_status_and_stop(fake: Path) -> None:
    launch(fake, "status", "--json")
    assert called(fake) == ["-m", "watchdog", "status", "--json"]
    result = launch(fake, "stop")
    assert result.returncode == 3 and "not running" in result.stdout


def test_run_sh_is_executable_and_strict() -> None:
    assert RUN.stat().st_mode & stat.S_IXUSR
    text = RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert "\r" not in text  # LF endings, or bash on WSL fails on $'\\r'


def test_install_only_prepares_the_venv(fake: Path) -> None:
    result = launch(fake, "install")
    assert result.returncode == 0 and "is ready" in result.stdout
    assert called(fake) is None  # only `python --version`, no module run


def test_systemd_unit_matches_the_launcher() -> None:
    """The unit's promises depend on the launcher: ExecStart must exec the watchdog (JSON mode) so that it is
    the main process NotifyAccess=main listens to, and exit 78 must be the launcher's config error too."""
    unit: dict[str, list[str]] = {}
    for line in (ROOT / "scripts" / "qqwatchdog.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            unit.setdefault(key.strip(), []).append(value.strip())
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["78"]
    assert unit["WatchdogSec"] == ["30"] and unit["KillMode"] == ["mixed"]
    (exec_start,) = unit["ExecStart"]
    assert exec_start.endswith("/scripts/run.sh --json")
    assert any(v.startswith("QQW_LOG_FILE=") for v in unit["Environment"])
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    text = RUN.read_text()
    assert 'exec "$PY" -m watchdog run "${pass[@]}"' in text and "EX_CONFIG=78" in text


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    env_file = tmp_path / "qqbot.env"
    env_file.write_text("QQ_APP_ID=1\n")
    unit = tmp_path / "qqwatchdog.service"
    unit.write_text(
        (ROOT / "scripts" / "qqwatchdog.service")
        .read_text()
        .replace("/opt/qqwatchdog", str(ROOT))
        .replace("/etc/qqwatchdog/qqbot.env", str(env_file))
        .replace("User=qqbot", "User=root")
        .replace("Group=qqbot", "Group=root")
    )
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "qqwatchdog.service" not in result.stdout + result.stderr, result.stderr
