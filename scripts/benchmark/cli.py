"""Benchmarks, side by side in one run on this machine:

* dispatch throughput from the simulator into the worker's listen loop with a no-op handler, into a bare
  `websockets` receive loop with `json.loads`, and into the official SDK (qq-botpy) with a no-op handler;
* the worker's RSS before and after 100,000 events;
* recovery: a frozen child (SIGSTOP) until a new child is connected, and the gateway reachable again
  until connected, with the longest log silence during a 60 s outage;
* recovery over a real link (network namespaces, root; benchmark/netrecovery.py), production defaults
  and Hello 41250 ms: a dead link until noticed, and the network back after 60 s "unreachable" (5 runs)
  or a 60 s black hole until connected, then qq-botpy through the same faults (one run each, its dead
  link waited for up to 180 s) (`--only recovery` runs just the recovery figures);
* the watchdog against supervisord, both supervising the same worker over the same 60 s idle: RSS, CPU;
* the `multiprocess` start methods (scripts/benchmark/start_methods.py);
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
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark import env as bench_env
from benchmark import netrecovery, table
from benchmark.idle import SCRAPE_AS, SCRAPE_EVERY_S, SCRAPED, idle
from benchmark.plan import EVENT, FULL, QUICK, WORK, Plan
from benchmark.profile import profile
from benchmark.recovery import recovery
from benchmark.start_methods import start_methods
from benchmark.throughput import throughput

__all__ = ["main", "parse_args"]

Say = Callable[[str], None]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (small counts, short timings)"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip qq-botpy and supervisord (no .bench venv)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the worker (default in the full run)")
    parser.add_argument(
        "--check-readme", action="store_true", help="README table == scripts/benchmark/results.json"
    )
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
        "--update-readme",
        action="store_true",
        help="write scripts/benchmark/results.json and the README table",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.check_readme:
        return table.check_readme()

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    plan = the_plan(args)
    started = time.monotonic()
    bench_py = bench_env.ensure(say) if (plan.peers or plan.profile) else None
    settings = plan_settings(plan, args.scrape)
    if args.only == "recovery":
        return only_recovery(plan, settings, bench_py, say, args.json)
    if args.only == "idle":
        return only_idle(plan, settings, bench_py, say, args.json, args.scrape)
    figures = full_run(plan, settings, bench_py, say, args.scrape)

    prof: dict[str, Any] | None = None
    if plan.profile and bench_py is not None:
        say(f"bench: profiling the worker under pyinstrument ({plan.growth_events:,} events)")
        prof = profile(bench_py, plan.growth_events)
        for name, part in prof["parts"].items():
            say(f"  {table.pct(part['pct']):>7}  {part['s']:6.3f} s  {name}")
        say(f"  full report: {prof['report']}")

    meta = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "command": " ".join([".venv/bin/python scripts/bench.py", *(["--quick"] if args.quick else []),
                             *(["--no-peers"] if args.no_peers else [])]),
        "duration_s": time.monotonic() - started,
    }  # fmt: skip
    text = table.table(figures, settings, meta, prof)
    say("")
    say(text)
    if args.update_readme:
        table.save(text, {"meta": meta, "settings": settings, "figures": figures, "profile": prof})
        say(f"bench: wrote {table.RESULTS.relative_to(table.readme_blocks.README.parent)} and the README's "
            "Benchmarks table")  # fmt: skip
    if args.json:
        print_json(figures)
    return 0


def the_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.no_peers:
        plan = replace(plan, peers=False)
    if args.profile or args.no_profile:
        plan = replace(plan, profile=args.profile and not args.no_profile)
    if args.only is not None:
        plan = replace(plan, profile=False)
    return plan


def plan_settings(plan: Plan, scrape: str) -> dict[str, str]:
    """What each figure was measured with, as the table shows it."""
    return {
        "throughput": f"{plan.rounds} × {plan.events:,} {EVENT} events, median; simulator and client in "
                      "separate processes; worker defaults, handler benchmark.clients.noop:handle",
        "warmup": f"{plan.rounds} × {plan.events:,} events of warm-up",
        "growth": f"{plan.growth_events:,}",
        "recovery": "watchdog " + (" ".join(plan.freeze_flags) or "defaults (heartbeat 1 s / timeout 5 s, "
                                   "retry 2–60 s, stop timeout 10 s, respawn from 1 s)"),
        "netrecovery": f"production defaults, Hello {netrecovery.HELLO_MS} ms, network namespaces; "
                       f"{plan.net_outage_s:g} s outages, {plan.net_runs} unreachable runs",
        "netrecovery_botpy": f"qq-botpy 1.2.1 after the worker, same namespaces and faults; one run each, "
                             f"{plan.net_outage_s:g} s outages; dead link waited for up to "
                             f"{plan.net_botpy_cap_s:g} s",
        "outage": f"{plan.outage_s:g} s",
        "idle": f"{plan.idle_s:g} s idle, both supervising `python -m qqworker` connected to one simulator; "
                f"watchdog with --http, {SCRAPED[scrape]} scraped every {SCRAPE_EVERY_S:g} s"
                f"{SCRAPE_AS[scrape]}; "
                "supervisor process alone",
    }  # fmt: skip


def full_run(
    plan: Plan, settings: dict[str, str], bench_py: Path | None, say: Say, scrape: str
) -> dict[str, Any]:
    """Every figure but the profile, in the table's order of measurement."""
    figures: dict[str, Any] = {}
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

    if plan.quick:  # about a minute more: the smoke run leaves it to `--only recovery --quick`
        figures.update(dict.fromkeys(netrecovery.KEYS))
    else:
        say(f"bench: recovery over a real link ({settings['netrecovery']})")
        figures.update(net_figures(plan, bench_py, say))

    figures.update(idle_figures(plan, bench_py, say, scrape))

    say("bench: multiprocess start methods")
    try:
        methods = start_methods(plan.start_method_runs)
        figures.update({f"start_{m.replace('+', '_')}_ms": v["median_ms"] for m, v in methods.items()})
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        say(f"  start methods not measured: {exc}")
    return figures


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def net_figures(plan: Plan, bench_py: Path | None, say: Say) -> dict[str, Any]:
    """The real-link figures; qq-botpy's only with the peers (the bench venv)."""
    botpy = bench_py if plan.peers else None
    return netrecovery.measure(WORK, plan.net_runs, plan.net_outage_s, say, botpy, plan.net_botpy_cap_s)


def idle_figures(plan: Plan, bench_py: Path | None, say: Say, scrape: str) -> dict[str, Any]:
    say(f"bench: supervisors idle for {plan.idle_s:g} s")
    figures: dict[str, Any] = {"supervisord_idle_rss_mb": None, "supervisord_idle_cpu_s": None,
                               "supervisord_idle_rss_total_mb": None,
                               "supervisord_idle_pss_total_mb": None}  # fmt: skip
    figures.update(idle(plan, bench_py if plan.peers else None, scrape))
    say(
        f"  watchdog {figures['watchdog_idle_rss_mb']:.1f} MB "
        f"({figures['watchdog_idle_rss_total_mb']:.1f} MB with its helpers), "
        f"{figures['watchdog_idle_cpu_s']:.2f} s CPU; "
        f"supervisord {figures['supervisord_idle_rss_mb'] or 0:.1f} MB "
        f"({figures['supervisord_idle_rss_total_mb'] or 0:.1f} MB), "
        f"{figures['supervisord_idle_cpu_s'] or 0:.2f} s CPU"
    )
    return figures


def only_recovery(
    plan: Plan, settings: dict[str, str], bench_py: Path | None, say: Say, as_json: bool
) -> int:
    """Just the recovery figures (the freeze and refuse outage, then the real-link ones)."""
    figures: dict[str, Any] = {}
    say(f"bench: recovery ({settings['recovery']}), {plan.outage_s:g} s outage then a frozen child")
    figures.update(recovery(plan))
    say(f"  network back → connected {figures['network_back_to_connected_s']:.2f} s; "
        f"freeze → connected {figures['freeze_to_connected_s']:.2f} s")  # fmt: skip
    say(f"bench: recovery over a real link ({settings['netrecovery']})")
    figures.update(net_figures(plan, bench_py, say))
    for label, value, how in table.rows(figures, settings):
        if label.startswith(("frozen", "dead link", "network back", "gateway reachable", "longest")):
            say(f"  {label}: {value}  ({how})")
    if as_json:
        print_json(figures)
    return 0


def only_idle(
    plan: Plan, settings: dict[str, str], bench_py: Path | None, say: Say, as_json: bool, scrape: str
) -> int:
    """`--only idle`: the supervisors' idle figures alone (never written to the README or the results)."""
    figures = idle_figures(plan, bench_py, say, scrape)
    for label, measured, setting in table.rows(figures, settings):
        if label.startswith(("idle", "one request")):
            say(f"  {label}: {measured} ({setting})")
    if as_json:
        print_json(figures)
    return 0


def print_json(figures: dict[str, Any]) -> None:
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
