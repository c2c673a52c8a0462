"""Configuration through the real launcher and watchdog: errors name the key and exit 78, before any
connection; the precedence config file < environment < flags holds end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import LineProcess, SimulatorProcess, kill_session

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "scripts" / "run.sh")
SECRET = "cfgTestSecret0000000000000000000"


def run_launcher(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
    # Loopback only: should a bug let the worker start, it must not reach out to the real platform.
    full_env.update(
        QQ_APP_ID="102000001",
        QQ_APP_SECRET=SECRET,
        QQ_API_BASE="http://127.0.0.1:9",
        QQ_TOKEN_URL="http://127.0.0.1:9/token",
        QQW_STATUS_FILE=str(tmp_path / "status.json"),
        QQW_STATE_FILE=str(tmp_path / "session.json"),
    )
    full_env.update(env)
    proc = subprocess.Popen(
        ["bash", RUN, "--json", *args],
        cwd=tmp_path,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)  # it started instead of refusing: leave no worker behind
        stdout, stderr = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one JSON line the watchdog writes before exiting 78; never a traceback, never the secret."""
    assert result.returncode == 78, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    (line,) = lines
    assert line["level"] == "CRITICAL" and line["exitcode"] == 78
    return line["message"]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[worker]\nretry_inital = 1\n", "unknown key 'retry_inital' in [worker]"),
        ('[worker]\nretry_max = "soon"\n', "retry_max: bad value 'soon'"),
        ("[watchdog]\nheartbeat_timeout = -1\n", "heartbeat_timeout: must be at least"),
        ("[wrker]\nretry_max = 3\n", "unknown table [wrker]"),
        ('[qq]\napp_secret = "x"\n', "app_secret belongs in the environment"),
        ('[qq]\nintents = "guilds,no_such_intent"\n', "unknown intent 'no_such_intent'"),
        ("[worker\nretry_max = 3\n", "config file"),
    ],
)
def test_config_file_errors_name_the_key(tmp_path: Path, toml: str, named: str) -> None:
    (tmp_path / "qq.toml").write_text(toml)
    message = the_error(run_launcher(tmp_path, "--config", "qq.toml"))
    assert named in message


def test_bad_flag_and_environment_values(tmp_path: Path) -> None:
    assert "max_attempts" in the_error(run_launcher(tmp_path, "--max-attempts", "many"))
    assert "QQ_SANDBOX" in the_error(run_launcher(tmp_path, QQ_SANDBOX="perhaps"))
    assert "--no-such-flag" in the_error(run_launcher(tmp_path, "--no-such-flag"))
    message = the_error(run_launcher(tmp_path, QQ_API_BASE="http://example.com"))
    assert "plain http:// is allowed only for loopback" in message


def test_missing_config_file(tmp_path: Path) -> None:
    assert "nope.toml" in the_error(run_launcher(tmp_path, "--config", "nope.toml"))


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    """The effective values, read back from the watchdog's own `watchdog.started` line."""
    (tmp_path / "qq.toml").write_text(
        "[qq]\n"
        'intents = "guilds"\n'
        'handler = "echo"\n'
        "[worker]\n"
        "retry_max = 9.0\n"
        "[watchdog]\n"
        "heartbeat_timeout = 12.0\n"
        "[logging]\n"
        'status_file = "from-file.json"\n'
    )
    sim = SimulatorProcess()
    try:
        env = sim.env(QQ_INTENTS="public_guild_messages", QQW_STATUS_FILE=str(tmp_path / "from-env.json"))
        env = {k: v for k, v in env.items() if k != "QQ_HANDLER"}
        proc = LineProcess(
            ["bash", RUN, "--json", "--config", "qq.toml", "--retry-max", "11", "--status-file", "flag.json"],
            env=env,
            cwd=tmp_path,
        )
        try:
            _, started = proc.wait_for("watchdog.started", 30)
        finally:
            assert proc.stop(20) == 0
    finally:
        sim.stop()
    config = started["config"]
    assert config["retry_max"] == 11.0  # flag over file
    assert config["heartbeat_timeout"] == 12.0  # file over default
    assert config["handler"] == "echo"  # file (no env given)
    assert config["intents"] == "public_guild_messages"  # environment over file
    assert config["status_file"] == str(tmp_path / "flag.json")  # flag over environment over file
    assert "app_secret" not in config and SECRET not in json.dumps(started)


@pytest.mark.parametrize(
    ("args", "env", "toml", "named"),
    [
        (["--heartbeat-timeout", "nan"], {}, None, "heartbeat_timeout: must be a finite number"),
        (["--retry-max", "inf"], {}, None, "retry_max: must be a finite number"),
        ([], {}, "[watchdog]\nheartbeat_timeout = nan\n", "heartbeat_timeout: must be a finite number"),
        ([], {}, "[worker]\nretry_max = inf\n", "retry_max: must be a finite number"),
        ([], {"QQ_INTENTS": "0"}, None, "intents: 0 subscribes to nothing"),
        (
            [],
            {"QQ_INTENTS": "99999999999999999999999"},
            None,
            "intents: 99999999999999999999999 is out of range",
        ),
        (
            ["--heartbeat-timeout", "0.5"],
            {},
            None,
            "heartbeat_timeout: 0.5 (from --heartbeat-timeout) breaks",
        ),
        (["--memory-limit-mb", "30"], {}, None, "memory_limit_mb: 30.0 (from --memory-limit-mb) breaks"),
        (["--attempt-grace", "0"], {}, None, "attempt_grace: must be at least 0.5"),
    ],
)
def test_a_broken_rule_is_one_line_and_exit_78_from_flag_environment_and_file(
    tmp_path: Path, args: list[str], env: dict[str, str], toml: str | None, named: str
) -> None:
    if toml is not None:
        (tmp_path / "qq.toml").write_text(toml)
        args = ["--config", "qq.toml", *args]
    message = the_error(run_launcher(tmp_path, *args, **env))
    assert named in message, message
    if toml is not None:
        assert "(from config file " in message and "qq.toml)" in message


def test_the_worker_alone_applies_the_same_rules(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
    env.update(QQ_APP_ID="102000001", QQ_APP_SECRET=SECRET, QQ_API_BASE="http://127.0.0.1:9")
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "qqworker", "--connect-timeout", "nan"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 78, result.stdout + result.stderr
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["event"] == "worker.fatal"
    assert "connect_timeout: must be a finite number" in line["reason"]
    assert "(from --connect-timeout)" in line["reason"]
