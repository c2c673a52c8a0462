#!/usr/bin/env python3
"""Renders the fault matrix's last results as the README's table.

    scripts/fault_table.py             print the table of build/fault-results/results.json
    scripts/fault_table.py --update    copy those results to tests/faults/results.json and rewrite the
                                       README's generated block from them
    scripts/fault_table.py --check     exit 1 when the README's block differs from tests/faults/results.json

The results file is written by the fault tests themselves (tests/faults/results.py), one row per case
with the figures it measured: nothing in the table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import readme_blocks
from readme_blocks import README

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "build" / "fault-results" / "results.json"
COMMITTED = ROOT / "tests" / "faults" / "results.json"  # beside the module that writes the results
BLOCK = "faults"
HOW = "scripts/fault_table.py"
SECTION = "## Fault matrix"

LABELS = {
    "detect_s": "detected",
    "recover_s": "recovered",
    "silence_s": "longest silence",
    "exit_s": "exited",
    "baseline_rss_mb": "worker RSS before",
    "freeze_to_connected_s": "freeze → connected",
    "delivered_300_s": "300 events delivered in",
    "handled_20_s": "20 events handled in",
    "others_handled_s": "20 other events handled in",
    "stop_s": "stopped in",
    "child_gone_s": "worker gone",
    "reopened_s": "log reopened",
}


def figure_text(name: str, figure: dict[str, Any]) -> str:
    value, bound, unit = figure.get("value"), figure.get("bound"), figure.get("unit", "s")
    label = LABELS.get(name, name.removesuffix("_s").replace("_", " "))
    if value is None:
        return f"{label} —"
    number = f"{value:.2f}" if unit == "s" else f"{value:.0f}" if unit == "MB" else f"{value:g}"
    text = f"{label} {number}{' ' + unit if unit else ''}"
    if bound is not None:
        text += f" (≤ {bound:g})"
    return text


def outcome_text(case: dict[str, Any]) -> str:
    outcome = case.get("outcome", "not run")
    if outcome == "passed":
        return "pass"
    if outcome == "failed":
        return f"**FAIL**: {escape(case.get('reason', ''))}"
    if outcome == "skipped":
        return f"skipped: {escape(case.get('reason', ''))}"
    return outcome


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(data: dict[str, Any]) -> str:
    run = data.get("run", {})
    lines = [
        f"Last run: {run.get('finished', '?')} on {run.get('machine', '?')}; "
        f"{'with' if run.get('run_slow') else 'without'} the slow cases; "
        f"pytest session {run.get('matrix_s', '?')} s.",
        "",
        "| # | group | fault | bound | measured | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for number, case in enumerate(data.get("cases", []), 1):
        measured = "; ".join(figure_text(k, v) for k, v in case.get("figures", {}).items()) or "—"
        lines.append(
            f"| {number} | {case['group']} | {escape(case['fault'])} | {escape(case['bound'])} | "
            f"{escape(measured)} | {outcome_text(case)} |"
        )
    counts: dict[str, int] = {}
    for case in data.get("cases", []):
        counts[case.get("outcome", "not run")] = counts.get(case.get("outcome", "not run"), 0) + 1
    lines += ["", ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="the results file the fault tests wrote"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--update", action="store_true", help="commit-ready: tests/faults/results.json + README"
    )
    action.add_argument("--check", action="store_true", help="README block == tests/faults/results.json")
    args = parser.parse_args(argv)

    if args.check:
        data = json.loads(COMMITTED.read_text(encoding="utf-8"))
        if not readme_blocks.check(README.read_text(encoding="utf-8"), BLOCK, render(data)):
            print(
                f"README's fault table is not {COMMITTED.name} rendered: run scripts/fault_table.py --update"
            )
            return 1
        return 0
    if not args.results.exists():
        print(f"no results at {args.results}: run the fault matrix first (scripts/test.sh tests/faults)")
        return 2
    data = json.loads(args.results.read_text(encoding="utf-8"))
    if args.update:
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        if args.results.resolve() != COMMITTED.resolve():
            shutil.copyfile(args.results, COMMITTED)
        readme = readme_blocks.replace(
            README.read_text(encoding="utf-8"), BLOCK, render(data), how=HOW, section=SECTION
        )
        README.write_text(readme, encoding="utf-8")
        print(
            f"updated {COMMITTED.relative_to(ROOT)} and the README's fault table ({len(data['cases'])} cases)"
        )
        return 0
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
