"""The supervisors at idle: the watchdog and supervisord, each supervising `python -m qqworker` connected
to one simulator over the same idle seconds, and what one HTTP request costs the watchdog."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from benchmark.plan import PY, ROOT, SCRIPTS, WORK, Plan
from benchmark.recovery import watchdog_args
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["SCRAPED", "SCRAPE_AS", "SCRAPE_EVERY_S", "idle"]

SUPERVISORD_CONF = """\
[supervisord]
nodaemon=true
logfile={work}/supervisord.log
pidfile={work}/supervisord.pid
childlogdir={work}
loglevel=warn

[program:worker]
command={python} -m qqworker
directory={root}
environment={environment}
autostart=true
autorestart=true
startsecs=1
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={work}/supervisord-worker.log
"""

SCRAPE_EVERY_S = 15.0  # a common Prometheus scrape interval
SCRAPED = {"metrics": "/readyz + /metrics", "text": "/readyz + /metrics", "probes": "/healthz + /readyz"}
SCRAPE_AS = {"metrics": " (OpenMetrics, as Prometheus asks)", "text": " (text format, no Accept header)",
             "probes": ""}  # fmt: skip
# Prometheus 2.x's default Accept (scrape_protocols): OpenMetrics first. `--scrape text` sends none, as curl.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int, how: str) -> None:
    """What a Prometheus and a readiness probe ask, every SCRAPE_EVERY_S: /readyz and /metrics with
    Prometheus's Accept header (`how` text: with none, so the text format; probes: /healthz and /readyz
    only, as Kubernetes probes or an Uptime Kuma HTTP monitor)."""
    headers = {"Accept": PROMETHEUS_ACCEPT} if how == "metrics" else {}
    for path in SCRAPED[how].split(" + "):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
        except urllib.error.HTTPError:
            pass  # a 503 from /readyz is an answer too


def request_cost(port: int, handle: psutil.Process, path: str, n: int = 200) -> dict[str, float]:
    """The watchdog's CPU per request of `path` and the client-side median latency, over n requests."""
    scrape_url = f"http://127.0.0.1:{port}{path}"

    def one() -> float:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(scrape_url, timeout=5) as answer:
                answer.read()
        except urllib.error.HTTPError:
            pass
        return time.perf_counter() - started

    one()
    cpu0 = sum(handle.cpu_times()[:2])
    latencies = [one() for _ in range(n)]
    cpu = sum(handle.cpu_times()[:2]) - cpu0
    return {"cpu_ms": cpu / n * 1000, "median_ms": statistics.median(latencies) * 1000}


def supervisor_side_mb(
    handle: psutil.Process, worker: Callable[[psutil.Process], bool], kind: str = "rss"
) -> float:
    """The supervisor and every process it started that is not the worker (or under it): helpers such as
    a resource tracker count, the bot does not. `kind` rss, or pss (shared pages split among the
    processes mapping them: libpython and libcrypto are shared with the worker)."""
    procs = [handle]
    for child in handle.children():
        try:
            if not worker(child):
                procs += [child, *child.children(recursive=True)]
        except psutil.Error:
            pass
    total = 0
    for proc in procs:
        try:
            info = proc.memory_full_info() if kind == "pss" else proc.memory_info()
            total += getattr(info, kind)
        except psutil.Error:
            pass
    return total / 2**20


def idle(plan: Plan, bench_py: Path | None, how: str = "metrics") -> dict[str, Any]:
    """The watchdog and supervisord (given the bench venv's python), each supervising `python -m qqworker`
    connected to the same simulator, measured over the same idle seconds: the supervisor process alone
    (RSS at the end, CPU in the window) and every supervisor-side process in total. The watchdog serves
    its HTTP endpoints, scraped every SCRAPE_EVERY_S as Prometheus and a readiness probe would (`how`:
    a key of SCRAPED)."""
    WORK.mkdir(parents=True, exist_ok=True)
    sim = SimulatorProcess()
    procs: dict[str, LineProcess] = {}
    port = free_port()
    status_file = WORK / "idle.status.json"
    try:
        env = sim.env(PYTHONPATH=str(SCRIPTS))
        http = ("--http", f"127.0.0.1:{port}")
        procs["watchdog"] = LineProcess(watchdog_args(status_file, http), env=env, cwd=WORK)
        if bench_py is not None:
            names = ("QQ_APP_ID", "QQ_APP_SECRET", "QQ_API_BASE", "QQ_TOKEN_URL", "PYTHONPATH")
            environment = ",".join(f'{k}="{env[k]}"' for k in names)
            conf = WORK / "supervisord.conf"
            conf.write_text(SUPERVISORD_CONF.format(work=WORK, python=PY, root=ROOT, environment=environment))
            supervisord = bench_py.parent / "supervisord"
            # Its worker keeps a session file of its own: two workers must not resume each other's session.
            own = {**env, "QQW_STATE_FILE": str(sim.state_file.with_name("supervisord.session.json"))}
            procs["supervisord"] = LineProcess([str(supervisord), "-c", str(conf)], env=own, cwd=WORK)
        sim.wait_connected(len(procs), 60)
        time.sleep(2)
        handles = {name: psutil.Process(p.pid) for name, p in procs.items()}
        cpu0 = {name: sum(h.cpu_times()[:2]) for name, h in handles.items()}
        end = time.monotonic() + plan.idle_s
        scrapes = 0
        while True:
            scrape(port, how)
            scrapes += 1
            if time.monotonic() + SCRAPE_EVERY_S >= end:
                break
            time.sleep(SCRAPE_EVERY_S)
        time.sleep(max(0.0, end - time.monotonic()))
        worker_pid = json.loads(status_file.read_text())["child_pid"]
        is_worker = {
            "watchdog": lambda p: p.pid == worker_pid,
            "supervisord": lambda p: any("qqworker" in part for part in p.cmdline()),
        }
        result: dict[str, Any] = {"watchdog_idle_scrapes": scrapes}
        for name, handle in handles.items():
            result[f"{name}_idle_cpu_s"] = sum(handle.cpu_times()[:2]) - cpu0[name]
            result[f"{name}_idle_rss_mb"] = handle.memory_info().rss / 2**20
            result[f"{name}_idle_rss_total_mb"] = supervisor_side_mb(handle, is_worker[name])
            result[f"{name}_idle_pss_total_mb"] = supervisor_side_mb(handle, is_worker[name], "pss")
            children = handle.children(recursive=True)
            result[f"{name}_children"] = len(children)
        # After the idle window (so it does not count there): what one request costs the watchdog's loop.
        for path in ("/readyz", "/metrics"):
            cost = request_cost(port, handles["watchdog"], path)
            key = path.strip("/")
            result[f"watchdog_{key}_cpu_ms"] = cost["cpu_ms"]
            result[f"watchdog_{key}_median_ms"] = cost["median_ms"]
    finally:
        for proc in procs.values():
            proc.stop(30)
        sim.stop()
    return result
