"""Run by the NoneBot2 venv (never the project's): a NoneBot2 bot in webhook mode, configured the way
its users do it (a `.env` in the working directory, written by the test), with one plugin that appends
every event it is handed to the file $PROBE_FILE, one JSON line each."""

from __future__ import annotations

import contextlib
import json
import os

import nonebot
from nonebot.adapters.qq import Adapter, Event

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)

probe = nonebot.on(priority=1, block=False)


@probe.handle()
async def record(event: Event) -> None:
    line: dict[str, object] = {"event_id": event.event_id, "type": event.get_event_name()}
    with contextlib.suppress(ValueError):  # an event without a message
        line["content"] = event.get_plaintext()
    _append(json.dumps(line, ensure_ascii=False))


def _append(text: str) -> None:
    with open(os.environ["PROBE_FILE"], "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    nonebot.run()
