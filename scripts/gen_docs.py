"""Renders the README's reference tables from the code's own tables, so the two cannot drift.

`python scripts/gen_docs.py [--write]` rewrites the generated blocks in README.md (through
scripts/readme_blocks.py); `--check` exits 1 if they are stale (the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import readme_blocks

from qqworker.closecodes import CLOSE_RULES, NO_CLOSE_FRAME, CloseRule, close_rule
from qqworker.contract.events import EVENT_DOCS, LogEvent
from qqworker.contract.exitcodes import ExitCode, exit_meaning
from qqworker.contract.rules import RELATIONS, field_rule
from qqworker.contract.settings import PRODUCTION_APIS, SANDBOX_API, Settings

README = readme_blocks.README


def settings_table() -> str:
    rows = ["| flag | config file | environment | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in fields(Settings):
        meta = f.metadata
        flag = f"`--{f.name.replace('_', '-')}`" if meta["flag"] else "—"
        env = f"`{meta['env']}`" if meta["env"] else "—"
        key = "—" if meta["secret"] else f"`[{meta['section']}] {f.name}`"
        default = "(required)" if f.name in ("app_id", "app_secret") else f"`{f.default}`"
        if f.name == "api_base":
            default = f"`{','.join(PRODUCTION_APIS)}` (with `--sandbox`: `{SANDBOX_API}`)"
        rows.append(f"| {flag} | {key} | {env} | {default} | {meta['help']} |")
    return "\n".join(rows)


def settings_rules() -> str:
    """The rules `Settings.validate` checks, from the same table (qqworker/contract/rules.py)."""
    rows = ["| setting | rule |", "| --- | --- |"]
    rows += [f"| `{f.name}` | {field_rule(f)} |" for f in fields(Settings) if field_rule(f)]
    rows += [f"| `{r.key}` | {r.rule} |" for r in RELATIONS]
    return "\n".join(rows)


def exitcodes_table() -> str:
    owners = {
        ExitCode.OK: "both",
        ExitCode.GAVE_UP: "worker (the watchdog respawns it)",
        ExitCode.UNAVAILABLE: "watchdog",
        ExitCode.CONFIG: "both (never respawned)",
        ExitCode.LOCKED: "watchdog (refused to start)",
    }
    rows = ["| code | who | meaning |", "| --- | --- | --- |"]
    rows += [f"| {code.value} | {owners[code]} | {exit_meaning(code)} |" for code in ExitCode]
    rows.append("| other | worker | crash or signal: respawned |")
    return "\n".join(rows)


# Events whose name does not say who logs them.
ROLE_OVERRIDES = {LogEvent.EVENTS_SKIPPED: "watchdog", LogEvent.EVENTS_ABANDONED: "worker, watchdog"}


def events_table() -> str:
    rows = ["| event | role | extra fields | when |", "| --- | --- | --- | --- |"]
    for event in LogEvent:
        extra, when = EVENT_DOCS[event]
        watchdog_side = event.value.split(".")[0] in ("watchdog", "child", "respawn", "log", "push")
        role = ROLE_OVERRIDES.get(event, "watchdog" if watchdog_side else "worker")
        if event is LogEvent.LIBRARY_LOG:
            role = "both"
        rows.append(f"| `{event.value}` | {role} | {extra} | {when} |")
    return "\n".join(rows)


def _close_row(codes: str, rule: CloseRule) -> str:
    token = "yes" if rule.refresh_token else ""
    return f"| {codes} | {rule.meaning} | `{rule.action.value}` | {token} |"


def closecodes_table() -> str:
    """One row per code; consecutive codes with the same rule share a row (4900–4901, ...)."""
    rows = ["| close code | meaning | action | new token first |", "| --- | --- | --- | --- |"]
    rows.append(_close_row("none (dropped)", NO_CLOSE_FRAME))
    codes = sorted(CLOSE_RULES)
    start = prev = codes[0]

    def same(a: int, b: int) -> bool:
        ra, rb = CLOSE_RULES[a], CLOSE_RULES[b]
        return (ra.meaning, ra.action, ra.refresh_token) == (rb.meaning, rb.action, rb.refresh_token)

    for code in [*codes[1:], None]:
        if code is not None and code == prev + 1 and same(start, code):
            prev = code
            continue
        label = str(start) if start == prev else f"{start}–{prev}"
        rows.append(_close_row(label, CLOSE_RULES[start]))
        if code is not None:
            start = prev = code
    rows.append(_close_row("other 1xxx", close_rule(1999)))
    rows.append(_close_row("other 4xxx", close_rule(4999)))
    return "\n".join(rows)


BLOCKS = {
    "settings": settings_table,
    "settings-rules": settings_rules,
    "exitcodes": exitcodes_table,
    "events": events_table,
    "closecodes": closecodes_table,
}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        try:
            text = readme_blocks.replace(text, name, make())
        except readme_blocks.MissingBlock as exc:
            raise SystemExit(str(exc)) from None
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    action.add_argument("--write", action="store_true", help="rewrite the blocks (the default)")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is stale: run python scripts/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
