"""How long the watchdog takes from start to a child that answers, per `multiprocessing` start method
(`python -m watchdog.start_methods`, median of `runs`)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from benchmark.plan import PY, ROOT

__all__ = ["start_methods"]


def start_methods(runs: int) -> dict[str, Any]:
    out = subprocess.run([PY, "-m", "watchdog.start_methods", "--runs", str(runs), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])
