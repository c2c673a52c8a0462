"""scripts/readme_blocks.py: the one reader and writer of the README's generated blocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import readme_blocks

TEXT = """# Title

<!-- BEGIN generated:settings (scripts/gen_docs.py) -->
| old settings |
<!-- END generated:settings -->

<!-- BEGIN generated:settings-rules (scripts/gen_docs.py) -->
| old rules |
| second line |
<!-- END generated:settings-rules -->

## Benchmarks

Some prose.
"""


def test_read_returns_the_body_without_the_markers() -> None:
    assert readme_blocks.read(TEXT, "settings") == "| old settings |"
    assert readme_blocks.read(TEXT, "settings-rules") == "| old rules |\n| second line |"


def test_a_name_is_not_the_prefix_of_another() -> None:
    assert readme_blocks.read(TEXT, "settings-rule") is None
    assert readme_blocks.read(TEXT, "setting") is None
    changed = readme_blocks.replace(TEXT, "settings", "| new |")
    assert readme_blocks.read(changed, "settings-rules") == "| old rules |\n| second line |"


def test_replace_swaps_only_the_body_and_keeps_the_begin_line() -> None:
    changed = readme_blocks.replace(TEXT, "settings-rules", "| new |")
    assert "<!-- BEGIN generated:settings-rules (scripts/gen_docs.py) -->\n| new |\n<!-- END" in changed
    assert changed.replace("| new |", "| old rules |\n| second line |") == TEXT


def test_check_is_exact() -> None:
    assert readme_blocks.check(TEXT, "settings", "| old settings |")
    assert not readme_blocks.check(TEXT, "settings", "| old settings |\n")
    assert not readme_blocks.check(TEXT, "settings", "| other |")
    assert not readme_blocks.check(TEXT, "bench", "")


def test_a_missing_block_raises_unless_it_may_be_created() -> None:
    with pytest.raises(readme_blocks.MissingBlock, match="generated:bench"):
        readme_blocks.replace(TEXT, "bench", "| table |")


def test_a_missing_block_goes_right_under_its_section_heading() -> None:
    changed = readme_blocks.replace(
        TEXT, "bench", "| table |", how="scripts/bench.py --update-readme", section="## Benchmarks"
    )
    assert changed.endswith(
        "## Benchmarks\n\n<!-- BEGIN generated:bench (scripts/bench.py --update-readme) -->\n| table |\n"
        "<!-- END generated:bench -->\n\nSome prose.\n"
    )
    assert readme_blocks.read(changed, "bench") == "| table |"
    again = readme_blocks.replace(changed, "bench", "| other |", how="x", section="## Benchmarks")
    assert again.count("generated:bench") == 2 and readme_blocks.read(again, "bench") == "| other |"


def test_a_missing_section_is_added_at_the_end() -> None:
    changed = readme_blocks.replace(
        TEXT, "faults", "| f |", how="scripts/fault_table.py", section="## Fault matrix"
    )
    assert changed == TEXT + (
        "\n## Fault matrix\n\n<!-- BEGIN generated:faults (scripts/fault_table.py) -->\n| f |\n"
        "<!-- END generated:faults -->\n"
    )


def test_the_readme_has_every_generated_block() -> None:
    readme = readme_blocks.README.read_text(encoding="utf-8")
    for name in ("settings", "settings-rules", "exitcodes", "events", "closecodes", "faults", "bench"):
        assert readme_blocks.read(readme, name), name
