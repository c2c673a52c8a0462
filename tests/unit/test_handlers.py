"""The handler API a bot author uses is declared (`qqworker.handlers.__all__`) and documented."""

from __future__ import annotations

import re
from pathlib import Path

from qqworker import handlers
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
