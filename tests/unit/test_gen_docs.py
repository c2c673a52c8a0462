"""The README's reference tables (settings, events, exit codes, close codes) are gen_docs.py's output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_reference_tables_are_generated_from_the_code() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_contract_exit_codes_and_core_events_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for needle in (
        "| 75 |",
        "| 78 |",
        "| 69 |",
        "`reconnect.scheduled`",
        "`child.attempt_overdue`",
        "scripts/run.sh --demo",
        "scripts/test.sh",
    ):
        assert needle in readme


def test_every_close_code_appears_in_the_readme_table() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_docs import closecodes_table

    from qqworker.closecodes import CLOSE_RULES

    table = closecodes_table()
    for code, rule in CLOSE_RULES.items():
        assert str(code) in table or rule.meaning in table
