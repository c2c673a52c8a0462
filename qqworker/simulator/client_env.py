"""What points the worker or the watchdog at a running simulator: the environment of a process
(`client_env`), or the settings of a worker in this process (`client_settings`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from qqworker.contract.settings import Settings

__all__ = ["client_env", "client_settings"]


def client_env(
    info: Mapping[str, Any], base: Mapping[str, str] | None = None, **overrides: str
) -> dict[str, str]:
    """`base` (default: this process's environment) without any QQ_/QQW_ setting of its own, plus the
    simulator's credentials and endpoints from its startup line `info`, plus `overrides`."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(("QQ_", "QQW_"))}
    env.update(
        QQ_APP_ID=str(info["app_id"]),
        QQ_APP_SECRET=str(info["app_secret"]),
        QQ_API_BASE=str(info["api_base"]),
        QQ_TOKEN_URL=str(info["token_url"]),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def client_settings(info: Mapping[str, Any], **overrides: Any) -> Settings:
    """The defaults, with the simulator's credentials and endpoints from `info` (`Simulator.info()` or
    its startup line), plus `overrides`; validated."""
    return replace(
        Settings(),
        app_id=str(info["app_id"]),
        app_secret=str(info["app_secret"]),
        api_base=str(info["api_base"]),
        token_url=str(info["token_url"]),
        **overrides,
    ).validate()
