"""Where the fault matrix's measured figures go: one JSON file, merged run over run, that
scripts/fault_table.py renders into the README (and copies to tests/faults/results.json)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = Path(os.environ.get("QQW_FAULT_RESULTS", ROOT / "build" / "fault-results" / "results.json"))
SLOW_SKIP = "slow case: run with --run-slow"
GROUPS = ("link", "platform", "process")


@dataclass
class Figure:
    value: float | None
    bound: float | None = None
    unit: str = "s"

    @property
    def within(self) -> bool | None:
        if self.value is None or self.bound is None:
            return None
        return self.value <= self.bound


@dataclass
class CaseResult:
    id: str
    group: str
    fault: str
    bound: str
    order: int = 0
    outcome: str = "not run"
    reason: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    duration_s: float | None = None
    at: str = ""

    def measure(
        self, name: str, value: float | None, bound: float | None = None, unit: str = "s"
    ) -> float | None:
        self.figures[name] = Figure(None if value is None else round(value, 3), bound, unit)
        return value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CaseResult:
        figures = {k: Figure(**v) for k, v in raw.get("figures", {}).items()}
        return cls(**{**raw, "figures": figures})


def load(path: Path = RESULTS_FILE) -> dict[str, Any]:
    if not path.exists():
        return {"run": {}, "cases": []}
    return json.loads(path.read_text(encoding="utf-8"))


def merge(results: list[CaseResult], run_info: dict[str, Any], path: Path = RESULTS_FILE) -> None:
    """Adds this run's cases to the file. A case skipped only for being slow keeps its last real result."""
    old = {c["id"]: c for c in load(path).get("cases", [])}
    for result in results:
        previous = old.get(result.id)
        slow_skip = result.outcome == "skipped" and result.reason == SLOW_SKIP
        if slow_skip and previous and previous.get("outcome") != "skipped":
            previous.update(order=result.order, fault=result.fault, bound=result.bound, group=result.group)
            continue
        old[result.id] = result.to_json()
    cases = sorted(
        old.values(), key=lambda c: (GROUPS.index(c["group"]) if c["group"] in GROUPS else 9, c["order"])
    )
    info = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}",
        **run_info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"run": info, "cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
