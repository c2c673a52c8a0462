"""Run by the NoneBot2 venv (never the project's): feeds gateway frames to adapter-qq's own parsing.

Usage: python nonebot_parse.py FRAMES.json  (a JSON list of the frames' text, as the simulator sent them)
Prints one JSON line {"parsed": {type: count}, "failures": [...]} and exits 1 on any failure.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from nonebot.adapters.qq import Adapter
from nonebot.adapters.qq.models import Dispatch, PayloadType
from nonebot.compat import type_validate_json


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        frames = json.load(fh)
    parsed: Counter[str] = Counter()
    failures = []
    for text in frames:
        try:
            payload = type_validate_json(PayloadType, text)
            if not isinstance(payload, Dispatch):
                raise TypeError(f"not a Dispatch: {type(payload).__name__}")
            event = Adapter.payload_to_event(payload)
            # What a matcher touches first: the message, who sent it, the session.
            event.get_message()
            event.get_user_id()
            event.get_session_id()
            event.get_event_description()
            if type(event).__name__ == "Event":
                raise TypeError(f"no event class for {payload.type}")
            parsed[payload.type] += 1
        except Exception as exc:  # every failure is reported, as the adapter's log would
            error = f"Failed to parse event: {type(exc).__name__}: {exc}"
            failures.append({"frame": text[:400], "error": error})
    print(json.dumps({"parsed": dict(parsed), "failures": failures}, ensure_ascii=False))
    return 1 if failures or not parsed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
