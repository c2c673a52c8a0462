"""prometheus-client without its package `__init__` (watchdog/prom.py): what a scrape loads, and that
both writers are the library's own, whichever import path ran. Import checks run in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from prometheus_client.exposition import choose_encoder

from watchdog.metrics import wants_openmetrics

PROMETHEUS_ACCEPT = (  # what Prometheus 2.x sends by default (scrape_protocols)
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

SCRAPE = """
import json, sys
from watchdog import metrics
from watchdog.monitor import Monitor
reg = metrics.registry(Monitor(beat_interval=1.0), lambda: metrics.Extra("running", 12.0, {"stdout": 3}, 1))
body, content_type = metrics.render_for(reg, sys.argv[1])
loaded = {name: name in sys.modules for name in ("ssl", "http.client", "prometheus_client.exposition")}
result = {"light": metrics.LIGHT_IMPORT, "content_type": content_type, "loaded": loaded}
if sys.argv[2] == "compare":
    import prometheus_client
    from prometheus_client.openmetrics import exposition as om
    result["same_class"] = prometheus_client.CollectorRegistry is metrics.CollectorRegistry
    writer = om.generate_latest if "openmetrics" in content_type else prometheus_client.generate_latest
    expected = writer(reg)
    result["same_body"] = body == expected
print(json.dumps(result))
"""


def scrape(accept: str, mode: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE, accept, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_an_openmetrics_scrape_loads_neither_ssl_nor_the_exposition_module() -> None:
    got = scrape(PROMETHEUS_ACCEPT)
    assert got["light"] is True, "prometheus-client's layout moved: the full import (and ssl) is back"
    assert got["content_type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert got["loaded"] == {"ssl": False, "http.client": False, "prometheus_client.exposition": False}


def test_a_text_scrape_uses_the_librarys_writer_and_loads_it() -> None:
    got = scrape("", "compare")
    assert got["content_type"].startswith("text/plain; version=")
    assert got["loaded"]["prometheus_client.exposition"] is True
    assert got["same_class"] and got["same_body"]


def test_after_the_light_import_the_full_package_is_the_same_library() -> None:
    got = scrape(PROMETHEUS_ACCEPT, "compare")
    assert got["light"] is True
    assert got["same_class"] and got["same_body"]


def test_the_fallback_is_the_full_import_when_the_light_one_fails() -> None:
    code = (
        "import sys; from watchdog import prom\n"
        "light = prom.load(('prometheus_client.no_such_module',))\n"
        "import prometheus_client\n"
        "print(light, hasattr(prometheus_client, 'generate_latest'), 'ssl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


@pytest.mark.parametrize(
    "accept",
    [
        PROMETHEUS_ACCEPT,
        "",
        "*/*",
        "text/plain",
        "text/plain;version=0.0.4",
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text;version=0.0.1",
        "application/openmetrics-text;version=0.0.1,application/openmetrics-text;version=1.0.0",
        "application/json, application/openmetrics-text;version=1.0.0;q=0.9",
        "text/plain;version=1.0.0,application/openmetrics-text;version=1.0.0",
        "text/plain;version=0.0.4,application/openmetrics-text",
        "application/openmetrics-text;version=",
    ],
)
def test_the_format_choice_is_the_librarys(accept: str) -> None:
    _encoder, content_type = choose_encoder(accept)
    assert wants_openmetrics(accept) == content_type.startswith("application/openmetrics-text")
