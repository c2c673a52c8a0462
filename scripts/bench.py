#!/usr/bin/env python3
"""Benchmarks, side by side in one run on this machine:

* dispatch throughput from the simulator into the worker's listen loop with a no-op handler, into a bare
  `websockets` receive loop with `json.loads`, and into the official SDK (qq-botpy) with a no-op handler;
* the worker's RSS before and after 100,000 events;
* recovery: a frozen child (SIGSTOP) until a new child is connected, and the gateway reachable again
  until connected, with the longest log silence during a 60 s outage;
* recovery over a real link (network namespaces, root; bench/netrecovery.py), production defaults and
  Hello 41250 ms: a dead link until noticed, and the network back after 60 s "unreachable" (5 runs)
  or a 60 s black hole until connected, then qq-botpy through the same faults (one run each, its dead
  link waited for up to 180 s) (`--only recovery` runs just the recovery figures);
* the watchdog against supervisord, both supervising the same worker over the same 60 s idle: RSS, CPU;
* the `multiprocess` start methods (python -m watchdog.start_methods);
* a pyinstrument profile of the worker's hot path (full run, or --profile).

    .venv/bin/python scripts/bench.py [--json] [--quick] [--no-peers] [--[no-]profile] [--update-readme]
    .venv/bin/python scripts/bench.py --only recovery [--json] [--quick]

First use creates .bench/venv (git-ignored) with qq-botpy, supervisor and pyinstrument from PyPI.
Every figure is printed with the settings it was measured with; --json ends with one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import env as bench_env  # noqa: E402
from bench import netrecovery  # noqa: E402
from bench.botpy_netrecovery import BACK_CAP_S  # noqa: E402
from bench.procs import Proc  # noqa: E402

PY = sys.executable
WORK = ROOT / ".bench" / "run"
RESULTS = ROOT / "docs" / "bench-results.json"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN generated:bench (scripts/bench.py --update-readme) -->"
END = "<!-- END generated:bench -->"
EVENT = "C2C_MESSAGE_CREATE"
START_METHODS = ("spawn", "forkserver", "forkserver_preload", "fork")


@dataclass(frozen=True)
class Plan:
    events: int  # per throughput round
    rounds: int
    growth_events: int
    idle_s: float
    outage_s: float
    freeze_flags: tuple[str, ...]  # the watchdog's timings for the freeze and outage runs
    peers: bool
    profile: bool


FULL = Plan(20_000, 5, 100_000, 60.0, 60.0, (), True, True)
QUICK = Plan(2_000, 1, 10_000, 3.0, 3.0, (
    "--heartbeat-interval", "0.2", "--heartbeat-timeout", "1", "--retry-initial", "0.2", "--retry-max", "1",
    "--stop-timeout", "2", "--respawn-initial", "0.1",
), True, False)  # fmt: skip


def say(text: str) -> None:
    print(text, file=sys.stderr if ARGS.json else sys.stdout, flush=True)


# The simulator and its clients -----------------------------------------------------------------


class Simulator:
    def __init__(self, *extra: str) -> None:
        self.proc = Proc([PY, "-m", "qqworker.simulator", "--port", "0", *extra])
        deadline = time.monotonic() + 30
        while not (self.proc.lines and self.proc.lines[0].record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not (self.proc.lines and self.proc.lines[0].record):
            raise RuntimeError("the simulator did not start: " + "\n".join(ln.text for ln in self.proc.lines))
        self.info: dict[str, Any] = self.proc.lines[0].record
        self.control_url: str = self.info["control_url"]

    def control(self, path: str, body: dict[str, Any] | None = None, timeout: float = 120) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.control_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def connected(self) -> int:
        return sum(1 for s in self.control("/_sim/state")["sessions"] if s["connected"])

    def wait_connected(self, n: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.connected() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} client(s) did not connect to the simulator within {timeout}s")
            time.sleep(0.05)

    def events(self, count: int) -> None:
        for start in range(0, count, 50_000):
            self.control("/_sim/events", {"type": EVENT, "count": min(50_000, count - start)})

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_", "BENCH_"))}
        env.update(
            QQ_APP_ID=self.info["app_id"], QQ_APP_SECRET=self.info["app_secret"],
            QQ_API_BASE=self.info["api_base"], QQ_TOKEN_URL=self.info["token_url"],
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra,
        )  # fmt: skip
        return env

    def stop(self) -> None:
        self.proc.stop(10)


def read_marks(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_mark(path: Path, count: int, timeout: float, proc: Proc) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for mark in read_marks(path):
            if mark["count"] >= count:
                return mark
        if time.monotonic() > deadline or proc.popen.poll() is not None:
            tail = "\n".join(ln.text for ln in proc.lines[-10:])
            raise RuntimeError(f"{count} events were not handled within {timeout}s; client output:\n{tail}")
        time.sleep(0.01)


CLIENTS: dict[str, Callable[[Path], list[str]]] = {
    "worker": lambda bench_py: [
        PY,
        "-m",
        "qqworker",
        "--handler",
        "bench.noop:handle",
        "--max-attempts",
        "0",
    ],
    "websockets": lambda bench_py: [PY, str(ROOT / "bench" / "ws_loop.py")],
    "aiohttp": lambda bench_py: [PY, str(ROOT / "bench" / "aiohttp_loop.py")],
    "botpy": lambda bench_py: [str(bench_py), str(ROOT / "bench" / "botpy_client.py")],
}


def throughput(kind: str, plan: Plan, bench_py: Path | None, growth: bool = False) -> dict[str, Any]:
    """Events per second (median of the rounds) from the POST that dispatches a batch until the client's
    handler has seen its last event, and the client's CPU time per event."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"marks-{kind}.jsonl"
    out.unlink(missing_ok=True)
    sim = Simulator()
    env = sim.env(BENCH_TARGET=str(plan.events), BENCH_OUT=str(out))
    client = Proc(CLIENTS[kind](bench_py or Path(PY)), env=env, cwd=WORK)
    result: dict[str, Any] = {}
    try:
        sim.wait_connected()
        proc = psutil.Process(client.pid)
        rates, cpu = [], []
        for round_no in range(1, plan.rounds + 1):
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.time()
            sim.events(plan.events)
            mark = wait_mark(out, round_no * plan.events, 300, client)
            rates.append(plan.events / (mark["t"] - t0))
            cpu.append((sum(proc.cpu_times()[:2]) - cpu0) / plan.events * 1e6)
        result = {"events_per_s": statistics.median(rates), "cpu_us_per_event": statistics.median(cpu),
                  "rounds": [round(r) for r in rates]}  # fmt: skip
        if growth:
            result.update(rss_growth(sim, client, proc, out, plan))
    finally:
        client.stop()
        sim.stop()
    return result


def rss_growth(sim: Simulator, client: Proc, proc: psutil.Process, out: Path, plan: Plan) -> dict[str, Any]:
    """The worker's RSS after the warm-up rounds, then after `growth_events` more."""
    done = max((m["count"] for m in read_marks(out)), default=0)
    time.sleep(0.5)
    before = proc.memory_info().rss
    sim.events(plan.growth_events)
    wait_mark(out, done + plan.growth_events, 600, client)
    time.sleep(0.5)
    after = proc.memory_info().rss
    return {"rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
            "rss_growth_pct": (after - before) / before * 100}  # fmt: skip


# Recovery ----------------------------------------------------------------------------------------


def watchdog_args(status: Path, flags: tuple[str, ...]) -> list[str]:
    return [PY, "-m", "watchdog", "run", "--status-file", str(status), *flags]


def recovery(plan: Plan) -> dict[str, Any]:
    """One watchdog + worker: a gateway outage (connections refused) for outage_s, then a frozen child."""
    WORK.mkdir(parents=True, exist_ok=True)
    sim = Simulator()
    run = Proc(watchdog_args(WORK / "recovery.status.json", plan.freeze_flags), env=sim.env(), cwd=WORK)
    try:
        run.wait_for("gateway.connected", 60)
        time.sleep(1)
        # The outage: the simulator stops listening (and drops the connection) until told otherwise.
        start = run.mark()
        t_down = time.monotonic()
        sim.control("/_sim/outage", {"mode": "refuse", "seconds": plan.outage_s + 600})
        run.wait_for("gateway.closed", 30, after=start)
        time.sleep(max(0.0, plan.outage_s - (time.monotonic() - t_down)))
        before_up = run.mark()
        t_up = time.monotonic()
        sim.control("/_sim/outage", {"mode": "refuse", "seconds": 0})
        back, line = run.wait_for("gateway.connected", 600, after=before_up)
        delays = [ln.record["delay_s"] for ln in run.lines[start:back]
                  if ln.record and ln.record.get("event") == "reconnect.scheduled"]  # fmt: skip
        outage = {
            "longest_silence_s": run.longest_gap(start, back + 1),  # until connected again
            "network_back_to_connected_s": line.t - t_up,
            "outage_attempts": len(delays),
            "retry_delay_max_s": max(delays, default=0.0),
            "last_retry_delay_s": delays[-1] if delays else 0.0,
        }
        time.sleep(1)
        # The freeze: SIGSTOP the child; the watchdog must notice, kill it and connect a new one.
        spawned = [ln.record for ln in run.lines if ln.record and ln.record.get("event") == "child.spawned"]
        child = int(spawned[-1]["child_pid"])
        mark = run.mark()
        t_freeze = time.monotonic()
        os.kill(child, signal.SIGSTOP)
        _, line = run.wait_for("gateway.connected", 300, after=mark)
        outage["freeze_to_connected_s"] = line.t - t_freeze
    finally:
        run.stop(30)
        sim.stop()
    return outage


# Supervisors at idle -----------------------------------------------------------------------------

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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> None:
    """What a Prometheus and a readiness probe ask, every SCRAPE_EVERY_S: /readyz and /metrics with
    Prometheus's Accept header (`--scrape text`: with none, so the text format; `--scrape probes`: /healthz
    and /readyz only, as Kubernetes probes or an Uptime Kuma HTTP monitor)."""
    headers = {"Accept": PROMETHEUS_ACCEPT} if ARGS.scrape == "metrics" else {}
    for path in SCRAPED[ARGS.scrape].split(" + "):
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


def idle(plan: Plan, bench_py: Path | None) -> dict[str, Any]:
    """The watchdog and supervisord, each supervising `python -m qqworker` connected to the same simulator,
    measured over the same idle seconds: the supervisor process alone (RSS at the end, CPU in the window)
    and every supervisor-side process in total. The watchdog serves its HTTP endpoints, scraped
    (/readyz + /metrics) every SCRAPE_EVERY_S as Prometheus and a readiness probe would."""
    WORK.mkdir(parents=True, exist_ok=True)
    sim = Simulator()
    procs: dict[str, Proc] = {}
    port = free_port()
    status_file = WORK / "idle.status.json"
    try:
        http = ("--http", f"127.0.0.1:{port}")
        procs["watchdog"] = Proc(watchdog_args(status_file, http), env=sim.env(), cwd=WORK)
        if bench_py is not None:
            env = sim.env()
            names = ("QQ_APP_ID", "QQ_APP_SECRET", "QQ_API_BASE", "QQ_TOKEN_URL", "PYTHONPATH")
            environment = ",".join(f'{k}="{env[k]}"' for k in names)
            conf = WORK / "supervisord.conf"
            conf.write_text(SUPERVISORD_CONF.format(work=WORK, python=PY, root=ROOT, environment=environment))
            supervisord = bench_py.parent / "supervisord"
            procs["supervisord"] = Proc([str(supervisord), "-c", str(conf)], env=sim.env(), cwd=WORK)
        sim.wait_connected(len(procs), 60)
        time.sleep(2)
        handles = {name: psutil.Process(p.pid) for name, p in procs.items()}
        cpu0 = {name: sum(h.cpu_times()[:2]) for name, h in handles.items()}
        end = time.monotonic() + plan.idle_s
        scrapes = 0
        while True:
            scrape(port)
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


# Start methods and profile -----------------------------------------------------------------------


def start_methods(runs: int) -> dict[str, Any]:
    out = subprocess.run([PY, "-m", "watchdog.start_methods", "--runs", str(runs), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


_DISPATCH = "handler dispatch: queue, runner tasks, Reply objects"
_RECEIVE = "receive path: link.py transport callbacks, gateway.py, worker callbacks"
_LOOP = "asyncio event loop and socket transport"
PROFILE_BUCKETS = (  # (path fragment, what it is), first match wins; self time of each frame
    ("/websockets/", "websockets sans-I/O protocol: frame parsing"),
    ("qqworker/protocol.py", "qqworker protocol: orjson parse (C, counted here), seq, dedupe, event objects"),
    ("qqworker/handlers.py", _DISPATCH),
    ("qqworker/link.py", _RECEIVE),
    ("qqworker/gateway.py", _RECEIVE),
    ("qqworker/worker.py", _RECEIVE),
    ("bench/noop.py", "the no-op handler itself"),
    ("/asyncio/", _LOOP),
    ("selectors.py", _LOOP),
)


OTHER = "everything else: start-up, imports, token, connect (not in the shares)"


def profile_buckets(tree: dict[str, Any]) -> dict[str, float]:
    """Self time per bucket (seconds) from pyinstrument's JSON tree."""
    buckets: dict[str, float] = {}

    def walk(node: dict[str, Any]) -> None:
        children = node.get("children", [])
        own = node["time"] - sum(c["time"] for c in children)
        path = node.get("file_path") or ""
        name = next((label for frag, label in PROFILE_BUCKETS if frag in path), OTHER)
        buckets[name] = buckets.get(name, 0.0) + max(0.0, own)
        for child in children:
            walk(child)

    walk(tree)
    return dict(sorted(buckets.items(), key=lambda kv: -kv[1]))


def profile(bench_py: Path, events: int) -> dict[str, Any]:
    """pyinstrument over the worker while it takes `events` events: the text report in build/bench/, and
    the self time per part of the hot path."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "marks-profile.jsonl"
    reports = ROOT / "build" / "bench"
    session = reports / "profile.pyisession"
    out.unlink(missing_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    sim = Simulator()
    args = [str(bench_py), "-m", "pyinstrument", "-r", "pyisession", "-o", str(session),
            "-m", "qqworker", "--handler", "bench.noop:handle"]  # fmt: skip
    client = Proc(args, env=sim.env(BENCH_TARGET=str(events // 10), BENCH_OUT=str(out)), cwd=WORK)
    try:
        sim.wait_connected()
        sim.events(events)
        wait_mark(out, events, 600, client)
    finally:
        client.stop(60)
        sim.stop()
    load = [str(bench_py), "-m", "pyinstrument", f"--load={session}"]
    text = reports / "profile.txt"
    subprocess.run([*load, "-r", "text", "--show-all", "-o", str(text)], check=True, timeout=120)
    tree = json.loads(subprocess.run([*load, "-r", "json"], check=True, timeout=120, capture_output=True,
                                     text=True).stdout)  # fmt: skip
    buckets = profile_buckets(tree["root_frame"])
    other = buckets.pop(OTHER, 0.0)
    total = sum(buckets.values())
    parts = {name: {"s": round(t, 3), "pct": round(100 * t / total, 1)} for name, t in buckets.items()}
    parts[OTHER] = {"s": round(other, 3), "pct": None}  # start-up: not part of the per-event shares
    return {
        "report": str(text.relative_to(ROOT)),
        "events": events,
        "cpu_s": tree.get("cpu_time"),
        "parts": parts,
    }


# Output ------------------------------------------------------------------------------------------


def rows(figures: dict[str, Any], settings: dict[str, str]) -> list[tuple[str, str, str]]:
    f = figures

    def num(key: str, fmt: str = "{:,.0f}") -> str:
        value = f.get(key)
        return "—" if value is None else fmt.format(value)

    def back(key: str) -> str:  # a botpy figure that has a cap: None there means "not within it"
        return num(key, "{:.2f} s") if f.get(key) is not None else f"not connected within {BACK_CAP_S:g} s"

    # Results saved before the real-link figures existed render as they were.
    net = [
        ("dead link (established connection's packets dropped) → noticed (goal ≤ 15 s)",
         num("dead_link_detect_s", "{:.2f} s"), f"evidence {f.get('dead_link_evidence') or '—'}; "
         f"{settings.get('netrecovery', '')}"),
        ("network back after \"unreachable\" → connected (goal ≤ 2 s, p95)",
         num("network_back_unreachable_s", "{:.2f} s"),
         f"median {num('network_back_unreachable_median_s', '{:.2f}')} s; {settings.get('netrecovery', '')}"),
        ("network back after a black hole → connected (goal ≤ 5 s)",
         num("network_back_blackhole_s", "{:.2f} s"), settings.get("netrecovery", "")),
    ] if "dead_link_detect_s" in f else []  # fmt: skip
    if f.get("dead_link_botpy_cap_s") is not None:  # qq-botpy measured: each after the worker's same fault
        botpy = settings.get("netrecovery_botpy", "")
        cap = num("dead_link_botpy_cap_s", "{:g}")
        net[1:1] = [
            (
                "dead link → noticed: qq-botpy 1.2.1",
                num("dead_link_detect_s_botpy", "{:.2f} s")
                if f.get("dead_link_detect_s_botpy") is not None
                else f"not noticed within {cap} s",
                f"it checks no heartbeat ACK and sends no ping; {botpy}",
            )
        ]
        net[3:3] = [
            (
                'network back after "unreachable" → connected: qq-botpy 1.2.1',
                back("network_back_unreachable_s_botpy"),
                f"via {f.get('network_back_unreachable_botpy_via') or '—'}; the fault is a route rule on the "
                "client's own packets: events from the gateway still reach a connection botpy never dropped; "
                f"{botpy}",
            )
        ]
        net.append(
            (
                "network back after a black hole → connected: qq-botpy 1.2.1",
                back("network_back_blackhole_s_botpy"),
                f"via {f.get('network_back_blackhole_botpy_via') or '—'}; {botpy}",
            )
        )
    return [
        ("dispatch events/s: worker (listen loop → no-op handler)", num("events_per_s"),
         settings["throughput"]),
        ("dispatch events/s: bare websockets loop + json.loads", num("events_per_s_websockets"),
         "same stream"),
        ("dispatch events/s: qq-botpy 1.2.1, no-op handler", num("events_per_s_botpy"), "same stream"),
        ("dispatch events/s: bare aiohttp loop + json.loads (reference)", num("events_per_s_aiohttp"),
         "same stream; the transport qq-botpy uses"),
        ("ratio worker / bare websockets (goal ≥ 0.7)", num("ratio_vs_websockets", "{:.2f}"), ""),
        ("ratio worker / qq-botpy (goal ≥ 2)", num("ratio_vs_botpy", "{:.2f}"), ""),
        ("CPU µs per event: worker / websockets / botpy / aiohttp",
         " / ".join(num(k, "{:.1f}") for k in ("cpu_us_per_event", "cpu_us_per_event_websockets",
                                               "cpu_us_per_event_botpy", "cpu_us_per_event_aiohttp")),
         "client process, user + system"),
        (f"worker RSS growth over {settings['growth']} events", num("worker_rss_growth_pct", "{:+.1f} %"),
         f"{num('worker_rss_before_mb', '{:.1f}')} → {num('worker_rss_after_mb', '{:.1f}')} MB, "
         f"after {settings['warmup']}"),
        ("frozen child (SIGSTOP) → new child connected", num("freeze_to_connected_s", "{:.2f} s"),
         settings["recovery"]),
        *net,
        ("gateway reachable again → connected", num("network_back_to_connected_s", "{:.2f} s"),
         f"retry delay in effect {num('last_retry_delay_s', '{:.1f}')} s; {settings['recovery']}"),
        (f"longest log silence, {settings['outage']} outage until connected again",
         num("longest_silence_s", "{:.2f} s"),
         f"largest retry delay {num('retry_delay_max_s', '{:.1f}')} s, "
         f"{num('outage_attempts')} attempts"),
        ("idle RSS: watchdog / supervisord", f"{num('watchdog_idle_rss_mb', '{:.1f}')} / "
         f"{num('supervisord_idle_rss_mb', '{:.1f}')} MB", settings["idle"]),
        ("idle CPU: watchdog / supervisord", f"{num('watchdog_idle_cpu_s', '{:.2f}')} / "
         f"{num('supervisord_idle_cpu_s', '{:.2f}')} s", settings["idle"]),
        *([("idle RSS, every supervisor-side process: watchdog / supervisord",
            f"{num('watchdog_idle_rss_total_mb', '{:.1f}')} / "
            f"{num('supervisord_idle_rss_total_mb', '{:.1f}')} MB",
            "the supervisor and any helper it starts (a resource tracker...), not the worker")]
          if "watchdog_idle_rss_total_mb" in f else []),
        *([("idle PSS, every supervisor-side process: watchdog / supervisord",
            f"{num('watchdog_idle_pss_total_mb', '{:.1f}')} / "
            f"{num('supervisord_idle_pss_total_mb', '{:.1f}')} MB",
            "proportional set size: pages shared with the worker (libpython, libcrypto) split between them")]
          if "watchdog_idle_pss_total_mb" in f else []),
        *([("one request to the watchdog: /readyz / /metrics",
            f"{num('watchdog_readyz_cpu_ms', '{:.2f}')} / {num('watchdog_metrics_cpu_ms', '{:.2f}')} ms CPU",
            "its CPU per request, 200 requests each; median latency "
            f"{num('watchdog_readyz_median_ms', '{:.2f}')} / "
            f"{num('watchdog_metrics_median_ms', '{:.2f}')} ms")]
          if "watchdog_metrics_cpu_ms" in f else []),
        ("start → child answered: spawn / forkserver / forkserver+preload / fork",
         " / ".join(num(f"start_{m}_ms", "{:.0f}") for m in START_METHODS) + " ms",
         "python -m watchdog.start_methods, median"),
    ]  # fmt: skip


def table(
    figures: dict[str, Any], settings: dict[str, str], meta: dict[str, Any], prof: dict[str, Any] | None
) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['machine']} with `{meta['command']}` "
        f"({meta['duration_s']:.0f} s).",
        "",
        "| figure | measured | settings |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(figures, settings)]
    if prof:
        lines += [
            "",
            f"Where the worker's CPU time goes (pyinstrument, self time, {prof['events']:,} events, "
            f"`--profile`; full tree in `{prof['report']}`):",
            "",
            "| part of the hot path | share | seconds |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {name} | {pct(p['pct'])} | {p['s']:.2f} |" for name, p in prof["parts"].items()]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        readme = head + block + rest.split(END, 1)[1]
    elif "## Benchmarks" in readme:
        head, tail = readme.split("## Benchmarks", 1)
        first, _, body = tail.partition("\n")
        readme = f"{head}## Benchmarks{first}\n\n{block}\n{body}"
    else:
        readme = readme.rstrip("\n") + f"\n\n## Benchmarks\n\n{block}\n"
    README.write_text(readme, encoding="utf-8")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def readme_block() -> str | None:
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        return None
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def check_readme() -> int:
    """0 when the README's table is docs/bench-results.json rendered, else 1."""
    saved = json.loads(RESULTS.read_text(encoding="utf-8"))
    if readme_block() != table(saved["figures"], saved["settings"], saved["meta"], saved.get("profile")):
        print("README's Benchmarks table is not docs/bench-results.json rendered: rerun with --update-readme")
        return 1
    return 0


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def net_runs(plan: Plan) -> int:
    return 2 if ARGS.quick else 5


def net_outage_s(plan: Plan) -> float:
    return 20.0 if ARGS.quick else 60.0  # longer than the dead-link detection (~12 s) either way


def net_botpy_cap_s(plan: Plan) -> float:
    return 60.0 if ARGS.quick else 180.0  # botpy checks no ACK: its dead link may go unnoticed for minutes


def net_botpy(plan: Plan, bench_py: Path | None) -> dict[str, Any]:
    """netrecovery.measure's arguments for qq-botpy's rounds: only with the peers (the bench venv)."""
    return {"botpy": bench_py if plan.peers else None, "botpy_cap_s": net_botpy_cap_s(plan)}


def only_recovery(plan: Plan, settings: dict[str, str], bench_py: Path | None) -> int:
    """Just the recovery figures (the freeze and refuse outage, then the real-link ones)."""
    figures: dict[str, Any] = {}
    say(f"bench: recovery ({settings['recovery']}), {plan.outage_s:g} s outage then a frozen child")
    figures.update(recovery(plan))
    say(f"  network back → connected {figures['network_back_to_connected_s']:.2f} s; "
        f"freeze → connected {figures['freeze_to_connected_s']:.2f} s")  # fmt: skip
    say(f"bench: recovery over a real link ({settings['netrecovery']})")
    figures.update(
        netrecovery.measure(WORK, net_runs(plan), net_outage_s(plan), say, **net_botpy(plan, bench_py))
    )
    for label, value, how in rows(figures, settings):
        if label.startswith(("frozen", "dead link", "network back", "gateway reachable", "longest")):
            say(f"  {label}: {value}  ({how})")
    if ARGS.json:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
    return 0


def main() -> int:
    if ARGS.check_readme:
        return check_readme()
    plan = QUICK if ARGS.quick else FULL
    if ARGS.no_peers:
        plan = Plan(**{**asdict(plan), "peers": False})
    if ARGS.profile or ARGS.no_profile:
        plan = Plan(**{**asdict(plan), "profile": ARGS.profile and not ARGS.no_profile})
    started = time.monotonic()
    if ARGS.only is not None:
        plan = Plan(**{**asdict(plan), "profile": False})
    bench_py = bench_env.ensure(say) if (plan.peers or plan.profile) else None
    figures: dict[str, Any] = {}
    settings = {
        "throughput": f"{plan.rounds} × {plan.events:,} {EVENT} events, median; simulator and client in "
                      "separate processes; worker defaults, handler bench.noop:handle",
        "warmup": f"{plan.rounds} × {plan.events:,} events of warm-up",
        "growth": f"{plan.growth_events:,}",
        "recovery": "watchdog " + (" ".join(plan.freeze_flags) or "defaults (heartbeat 1 s / timeout 5 s, "
                                   "retry 2–60 s, stop timeout 10 s, respawn from 1 s)"),
        "netrecovery": f"production defaults, Hello {netrecovery.HELLO_MS} ms, network namespaces; "
                       f"{net_outage_s(plan):g} s outages, {net_runs(plan)} unreachable runs",
        "netrecovery_botpy": f"qq-botpy 1.2.1 after the worker, same namespaces and faults; one run each, "
                             f"{net_outage_s(plan):g} s outages; dead link waited for up to "
                             f"{net_botpy_cap_s(plan):g} s",
        "outage": f"{plan.outage_s:g} s",
        "idle": f"{plan.idle_s:g} s idle, both supervising `python -m qqworker` connected to one simulator; "
                f"watchdog with --http, {SCRAPED[ARGS.scrape]} scraped every {SCRAPE_EVERY_S:g} s"
                f"{SCRAPE_AS[ARGS.scrape]}; "
                "supervisor process alone",
    }  # fmt: skip
    if ARGS.only == "recovery":
        return only_recovery(plan, settings, bench_py)
    if ARGS.only == "idle":
        return only_idle(plan, bench_py, settings)
    say(f"bench: throughput, {plan.rounds} × {plan.events:,} events per client")
    worker = throughput("worker", plan, bench_py, growth=True)
    figures.update(events_per_s=worker["events_per_s"], cpu_us_per_event=worker["cpu_us_per_event"],
                   worker_rss_before_mb=worker["rss_before_mb"], worker_rss_after_mb=worker["rss_after_mb"],
                   worker_rss_growth_pct=worker["rss_growth_pct"])  # fmt: skip
    say(f"  worker: {worker['events_per_s']:,.0f} events/s {worker['rounds']}, "
        f"{worker['cpu_us_per_event']:.1f} µs CPU/event; RSS {worker['rss_before_mb']:.1f} → "
        f"{worker['rss_after_mb']:.1f} MB over {plan.growth_events:,} events")  # fmt: skip
    ws = throughput("websockets", plan, bench_py)
    figures.update(
        events_per_s_websockets=ws["events_per_s"], cpu_us_per_event_websockets=ws["cpu_us_per_event"]
    )
    say(f"  bare websockets: {ws['events_per_s']:,.0f} events/s {ws['rounds']}")
    aio = throughput("aiohttp", plan, bench_py)
    figures.update(events_per_s_aiohttp=aio["events_per_s"], cpu_us_per_event_aiohttp=aio["cpu_us_per_event"])
    say(f"  bare aiohttp: {aio['events_per_s']:,.0f} events/s {aio['rounds']}")
    figures["events_per_s_botpy"] = figures["cpu_us_per_event_botpy"] = None
    if plan.peers and bench_py is not None:
        bp = throughput("botpy", plan, bench_py)
        figures.update(events_per_s_botpy=bp["events_per_s"], cpu_us_per_event_botpy=bp["cpu_us_per_event"])
        say(f"  qq-botpy: {bp['events_per_s']:,.0f} events/s {bp['rounds']}")
    figures["ratio_vs_websockets"] = ratio(figures["events_per_s"], figures["events_per_s_websockets"])
    figures["ratio_vs_botpy"] = ratio(figures["events_per_s"], figures["events_per_s_botpy"])

    say(f"bench: recovery ({settings['recovery']}), {plan.outage_s:g} s outage then a frozen child")
    figures.update(recovery(plan))
    say(
        f"  longest silence {figures['longest_silence_s']:.2f} s; network back → connected "
        f"{figures['network_back_to_connected_s']:.2f} s; "
        f"freeze → connected {figures['freeze_to_connected_s']:.2f} s"
    )

    if ARGS.quick:  # about a minute more: the smoke run leaves it to `--only recovery --quick`
        figures.update(dict.fromkeys(netrecovery.KEYS))
    else:
        say(f"bench: recovery over a real link ({settings['netrecovery']})")
        figures.update(
            netrecovery.measure(WORK, net_runs(plan), net_outage_s(plan), say, **net_botpy(plan, bench_py))
        )

    figures.update(idle_figures(plan, bench_py))

    say("bench: multiprocess start methods")
    try:
        methods = start_methods(3 if plan is QUICK else 5)
        figures.update({f"start_{m.replace('+', '_')}_ms": v["median_ms"] for m, v in methods.items()})
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        say(f"  start methods not measured: {exc}")

    prof: dict[str, Any] | None = None
    if plan.profile and bench_py is not None:
        say(f"bench: profiling the worker under pyinstrument ({plan.growth_events:,} events)")
        prof = profile(bench_py, plan.growth_events)
        for name, part in prof["parts"].items():
            say(f"  {pct(part['pct']):>7}  {part['s']:6.3f} s  {name}")
        say(f"  full report: {prof['report']}")

    meta = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "command": " ".join([".venv/bin/python scripts/bench.py", *(["--quick"] if ARGS.quick else []),
                             *(["--no-peers"] if ARGS.no_peers else [])]),
        "duration_s": time.monotonic() - started,
    }  # fmt: skip
    text = table(figures, settings, meta, prof)
    say("")
    say(text)
    if ARGS.update_readme:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        saved = {"meta": meta, "settings": settings, "figures": figures, "profile": prof}
        RESULTS.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        update_readme(text)
        say(f"bench: wrote {RESULTS.relative_to(ROOT)} and the README's Benchmarks table")
    if ARGS.json:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
    return 0


def idle_figures(plan: Plan, bench_py: Path | None) -> dict[str, Any]:
    say(f"bench: supervisors idle for {plan.idle_s:g} s")
    figures: dict[str, Any] = {"supervisord_idle_rss_mb": None, "supervisord_idle_cpu_s": None,
                               "supervisord_idle_rss_total_mb": None,
                               "supervisord_idle_pss_total_mb": None}  # fmt: skip
    figures.update(idle(plan, bench_py if plan.peers else None))
    say(
        f"  watchdog {figures['watchdog_idle_rss_mb']:.1f} MB "
        f"({figures['watchdog_idle_rss_total_mb']:.1f} MB with its helpers), "
        f"{figures['watchdog_idle_cpu_s']:.2f} s CPU; "
        f"supervisord {figures['supervisord_idle_rss_mb'] or 0:.1f} MB "
        f"({figures['supervisord_idle_rss_total_mb'] or 0:.1f} MB), "
        f"{figures['supervisord_idle_cpu_s'] or 0:.2f} s CPU"
    )
    return figures


def only_idle(plan: Plan, bench_py: Path | None, settings: dict[str, str]) -> int:
    """`--only idle`: the supervisors' idle figures alone (never written to the README or the results)."""
    figures = idle_figures(plan, bench_py)
    for label, measured, setting in rows(figures, settings):
        if label.startswith(("idle", "one request")):
            say(f"  {label}: {measured} ({setting})")
    if ARGS.json:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (small counts, short timings)"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip qq-botpy and supervisord (no .bench venv)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the worker (default in the full run)")
    parser.add_argument("--check-readme", action="store_true", help="README table == docs/bench-results.json")
    parser.add_argument(
        "--scrape", choices=["metrics", "text", "probes"], default="metrics",
        help="what the idle watchdog is asked every 15 s: /readyz + /metrics as Prometheus asks (default), "
             "the same with no Accept header (the text format), or /healthz + /readyz",
    )  # fmt: skip
    parser.add_argument(
        "--only",
        choices=("idle", "recovery"),
        help="measure only this part, never writing the README or the results (idle: the supervisors' RSS "
        "and CPU at idle; recovery: freeze, outage and the real-link figures)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profile")
    parser.add_argument(
        "--update-readme", action="store_true", help="write docs/bench-results.json and the README table"
    )
    return parser.parse_args(argv)


ARGS = parse_args([])

if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
