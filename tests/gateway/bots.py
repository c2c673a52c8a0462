"""The frameworks under test, each started as its users configure it, pointed at the local gateway
of a watchdog's worker (`QQ_HANDLER=gateway`). Each bot script prints one `{"probe": true, ...}`
JSON line per message event it handled (and answers it with `echo <text>`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gateway.venvs import framework_python
from tests.support import ROOT, LineProcess, wait_until

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
STEP = 20.0
GROUP_AND_C2C = 1 << 25


@dataclass(frozen=True)
class Framework:
    name: str
    packages: tuple[str, ...]
    script: str
    interpreter: str | None = None  # another Python than the suite's, when the framework needs one

    def python(self) -> Path:
        return framework_python(f"{self.name}-gateway", self.packages, self.interpreter)

    def setup(self, workdir: Path, base: str, app_id: str, secret: str) -> dict[str, str]:
        """Writes the framework's own config files in `workdir`; returns its environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_", "PYTHON"))}
        env["PYTHONUNBUFFERED"] = "1"
        if self.name == "nonebot":
            bots = [{"id": app_id, "secret": secret, "intent": {"c2c_group_at_messages": True}}]
            (workdir / ".env").write_text(
                "DRIVER=~httpx+~websockets\n"
                f"QQ_API_BASE={base}/\n"
                f"QQ_AUTH_BASE={base}/app/getAppAccessToken\n"
                f"QQ_BOTS={json.dumps(bots)}\n"
            )
        elif self.name == "qqbotsdk":
            env.update(APPID=app_id, APPSECRET=secret, BASE_URL=base, INTENTS=str(GROUP_AND_C2C))
        else:  # botpy: no host setting, the script patches its hosts to GATEWAY_BASE
            env.update(GATEWAY_BASE=base, BOT_APP_ID=app_id, BOT_APP_SECRET=secret)
        return env


def pinned(*names: str) -> tuple[str, ...]:
    """The pins of these packages in pyproject.toml's `gateway-frameworks` extra (markers dropped:
    each framework's venv has the interpreter the marker asks for)."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        lines = tomllib.load(fh)["project"]["optional-dependencies"]["gateway-frameworks"]
    pins = {re.split(r"[\[=<>; ]", line, maxsplit=1)[0]: line.split(";")[0].strip() for line in lines}
    return tuple(pins[name] for name in names)


NONEBOT = Framework("nonebot", pinned("nonebot2", "nonebot-adapter-qq"), "nonebot_bot.py")
BOTPY = Framework("botpy", pinned("qq-botpy"), "botpy_bot.py")
QQBOTSDK = Framework("qqbotsdk", pinned("qqbotsdk-py"), "qqbotsdk_bot.py", interpreter="python3.12")
FRAMEWORKS = (NONEBOT, BOTPY, QQBOTSDK)


class BotProcess:
    """One run of a framework's bot process."""

    def __init__(
        self, framework: Framework, python: Path, workdir: Path, base: str, info: dict[str, Any]
    ) -> None:
        env = framework.setup(workdir, base, str(info["app_id"]), str(info["app_secret"]))
        self.process = LineProcess([str(python), str(HERE / framework.script)], env=env, cwd=workdir)

    def probes(self, what: str) -> list[dict[str, Any]]:
        return [r for r in self.process.records() if r.get("probe") and r.get("what") == what]

    def handled(self) -> list[str]:
        return [r["msg_id"] for r in self.probes("event")]

    def wait_events(self, ids: list[str]) -> None:
        try:
            wait_until(lambda: set(ids) <= set(self.handled()), STEP, f"the bot handling {len(ids)} events")
        except AssertionError as exc:
            tail = "\n".join(ln.text for ln in self.process.lines[-20:])
            raise AssertionError(f"{exc}; missing {sorted(set(ids) - set(self.handled()))}\n{tail}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
