"""The handler API: declared (`qqworker.handlers.__all__`) and documented, and which import errors of
the handler are permanent (exit 78) and which are retried."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from qqworker import handlers
from qqworker.contract.settings import ConfigError
from qqworker.handlers import HandlerImportFailed, load_handler
from qqworker.protocol import Dispatch

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_handler_api_is_declared() -> None:
    assert sorted(handlers.__all__) == ["DispatchEvent", "Handler", "Reply"]
    assert handlers.DispatchEvent is Dispatch  # the event type the protocol produces, not a copy
    namespace: dict[str, object] = {}
    exec("from qqworker.handlers import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(handlers.__all__)


def test_the_readmes_handler_section_names_the_api() -> None:
    readme = README.read_text()
    section = readme[readme.index("**Handlers.**") : readme.index("Handlers run off the receive path")]
    declared = re.search(r"declares in `__all__`: (.*?);", section, re.S)
    assert declared is not None, "the Handlers section says which names are the API"
    named = set(re.findall(r"`(\w+)` \(", declared.group(1)))
    assert named == set(handlers.__all__)
    assert "from qqworker.handlers import DispatchEvent, Reply" in section


@pytest.fixture
def modules(tmp_path: Path):
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("qqw_probe_")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("body", "permanent"),
    [
        ("raise ConnectionError('broker not up')", False),
        ("raise OSError(111, 'refused')", False),
        ("raise RuntimeError('not yet')", False),
        ("import qqw_no_such_module_anywhere", True),
        ("def broken(:\n    pass", True),
        ("import os\nos.no_such_attribute", True),
        ("def handle(event):\n    pass", False),
    ],
)
def test_only_errors_of_the_spec_itself_are_permanent(modules: Path, body: str, permanent: bool) -> None:
    name = f"qqw_probe_{abs(hash(body))}"
    (modules / f"{name}.py").write_text(body + "\n")
    if body.startswith("def handle"):
        assert callable(load_handler(f"{name}:handle"))
        with pytest.raises(ConfigError, match="has no"):
            load_handler(f"{name}:missing")
        return
    with pytest.raises(ConfigError if permanent else HandlerImportFailed):
        load_handler(f"{name}:handle")
