"""The README's close-code table is rendered from qqworker/closecodes.py, so the two cannot drift.

`python tests/worker/test_worker_readme.py` rewrites the block; the test fails when it is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when run as a script
    sys.path.insert(0, str(ROOT))

from qqworker.closecodes import CLOSE_RULES, NO_CLOSE_FRAME, CloseRule, close_rule  # noqa: E402

README = ROOT / "README.md"
BLOCK = re.compile(
    r"(<!-- BEGIN generated:closecodes [^\n]*-->\n).*?(<!-- END generated:closecodes -->)", re.DOTALL
)


def _row(codes: str, rule: CloseRule) -> str:
    token = "yes" if rule.refresh_token else ""
    return f"| {codes} | {rule.meaning} | `{rule.action.value}` | {token} |"


def closecodes_table() -> str:
    """One row per code; consecutive codes with the same rule share a row (4900–4901, ...)."""
    rows = ["| close code | meaning | action | new token first |", "| --- | --- | --- | --- |"]
    rows.append(_row("none (dropped)", NO_CLOSE_FRAME))
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
        rows.append(_row(label, CLOSE_RULES[start]))
        if code is not None:
            start = prev = code
    rows.append(_row("other 1xxx", close_rule(1999)))
    rows.append(_row("other 4xxx", close_rule(4999)))
    return "\n".join(rows)


def render(text: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit("README.md has no generated:closecodes block")
    return BLOCK.sub(lambda m: m.group(1) + closecodes_table() + "\n" + m.group(2), text)


def test_readme_close_code_table_is_rendered_from_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "stale: run python tests/worker/test_worker_readme.py"


def test_every_close_code_appears_in_the_table() -> None:
    table = closecodes_table()
    for code, rule in CLOSE_RULES.items():
        assert str(code) in table or rule.meaning in table


if __name__ == "__main__":
    README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
