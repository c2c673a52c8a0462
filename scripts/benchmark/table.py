"""The README's Benchmarks table: the rows of a run's figures, the table text, and `results.json` (the
last full run, beside this module) that the README's block is rendered from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import readme_blocks  # scripts/ is the import root of `benchmark` too

from benchmark.botpy_netrecovery import BACK_CAP_S
from benchmark.plan import START_METHODS

__all__ = ["RESULTS", "check_readme", "pct", "rows", "save", "table"]

RESULTS = Path(__file__).resolve().parent / "results.json"
BLOCK = "bench"
HOW = "scripts/bench.py --update-readme"
SECTION = "## Benchmarks"


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
         "scripts/benchmark/start_methods.py, median"),
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


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def check_readme() -> int:
    """0 when the README's table is results.json rendered, else 1."""
    saved = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = table(saved["figures"], saved["settings"], saved["meta"], saved.get("profile"))
    if not readme_blocks.check(readme_blocks.README.read_text(encoding="utf-8"), BLOCK, text):
        shown = RESULTS.relative_to(readme_blocks.README.parent)
        print(f"README's Benchmarks table is not {shown} rendered: rerun with --update-readme")
        return 1
    return 0


def save(text: str, saved: dict[str, Any]) -> None:
    """Writes results.json and the README's block (`--update-readme`)."""
    RESULTS.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = readme_blocks.README.read_text(encoding="utf-8")
    new = readme_blocks.replace(readme, BLOCK, text, how=HOW, section=SECTION)
    readme_blocks.README.write_text(new, encoding="utf-8")
