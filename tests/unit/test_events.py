"""Every log line our code writes carries an event of the table (qqworker/contract/events.py, rendered
into the README): a static check over every logging call of the worker and the watchdog."""

import ast
from pathlib import Path

import pytest

from qqworker.contract.events import EVENT_DOCS, LogEvent

ROOT = Path(__file__).resolve().parents[2]
# The simulator is a separate program with its own plain log lines, not the contract's.
SOURCES = sorted(
    p for d in ("qqworker", "watchdog") for p in (ROOT / d).rglob("*.py") if "simulator" not in p.parts
)
LEVELS = {"debug", "info", "warning", "error", "critical", "exception", "log"}


def logging_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls like `log.warning(...)` / `logger.log(...)` on a module-level logger."""
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("log", "logger", "logging")
        ):
            calls.append(node)
    return calls


def names_an_event(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
            return any(isinstance(k, ast.Constant) and k.value == "event" for k in keyword.value.keys)
    return False


def test_the_scan_sees_the_sources() -> None:
    names = {p.name for p in SOURCES}
    assert {"supervisor.py", "child.py", "rest.py", "logs.py", "gateway.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_logging_call_passes_an_event(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bare = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for call in logging_calls(tree)
        # logger.log(level, message, extra={"event": ...}) inside log_event itself passes the event
        if not names_an_event(call) and not _inside_log_event(tree, call)
    ]
    assert not bare, f"logging calls without an event (use log_event or extra={{'event': ...}}): {bare}"


def _inside_log_event(tree: ast.AST, call: ast.Call) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "log_event":
            return any(child is call for child in ast.walk(node))
    return False


def test_the_fallback_event_is_in_the_table_and_only_the_formatter_uses_it() -> None:
    assert LogEvent.LIBRARY_LOG in EVENT_DOCS
    users = [
        p.name for p in SOURCES if "LIBRARY_LOG" in p.read_text(encoding="utf-8") and p.name != "events.py"
    ]
    assert users == ["logs.py"]


def test_every_event_is_documented_and_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for event in LogEvent:
        assert event in EVENT_DOCS, event
        assert f"| `{event.value}` |" in readme, event
