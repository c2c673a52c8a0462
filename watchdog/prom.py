"""prometheus-client's registry, metric families and OpenMetrics writer, without its package `__init__`.

That `__init__` always imports `exposition.py` (the text-format writer, next to the library's HTTP/WSGI
servers and push-gateway clients), which loads ssl, http.server, http.client, urllib.request, email and
wsgiref: 6.3 MB resident in the watchdog (`scripts/import_rss.py prometheus_client`). The registry, the
metric families and the OpenMetrics writer (what Prometheus asks for first) need none of that, so `load()`
imports those public submodules under a package module whose `__init__` has not run yet, then takes that
module out of `sys.modules`: a later `import prometheus_client` runs the real `__init__`, which reuses the
same submodules (same classes). If a release moves them, the light import fails and `load()` falls back to
the full import: only the memory is lost (tests/unit/test_prom.py tells which path ran).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["load"]

PACKAGE = "prometheus_client"
LIGHT = (f"{PACKAGE}.registry", f"{PACKAGE}.metrics_core", f"{PACKAGE}.openmetrics.exposition")


def load(names: tuple[str, ...] = LIGHT) -> bool:
    """Makes `names` importable; True when done without the package `__init__` (and its ssl)."""
    if PACKAGE not in sys.modules:
        try:
            _import_bare(names)
            return True
        except Exception:  # the layout moved: the full import below still gives every name
            pass
    importlib.import_module(PACKAGE)  # the real __init__ imports every submodule the names are in
    return False


def _import_bare(names: tuple[str, ...]) -> None:
    # Called from the watchdog's one loop thread, before anything else imports prometheus_client:
    # no other thread can see the bare package module while it is in sys.modules.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{PACKAGE} is not an installed package")
    bare = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    sys.modules[PACKAGE] = bare
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        if sys.modules.get(PACKAGE) is bare:
            del sys.modules[PACKAGE]
