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
