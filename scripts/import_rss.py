"""What an import costs in resident memory: VmRSS of a fresh interpreter before and after it.

`.venv/bin/python scripts/import_rss.py [--after MODULES] MODULES...`: each argument (comma-separated
modules) is imported in its own fresh interpreter, after the `--after` modules (default: what the
watchdog has loaded before its first /metrics scrape), and the VmRSS increase is printed. The figures
in the README's "Footprint" paragraph come from this.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

WATCHDOG = "watchdog.supervisor,watchdog.cli,watchdog.endpoints"

CHILD = """
import importlib, sys
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))
for name in filter(None, sys.argv[1].split(",")):
    importlib.import_module(name)
before = rss_mb()
for name in filter(None, sys.argv[2].split(",")):
    importlib.import_module(name)
print(f"{before:.1f} {rss_mb():.1f}")
"""


def measure(after: str, modules: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, after, modules], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--after", default=WATCHDOG, help=f"imported first, not counted (default {WATCHDOG}; '' for none)"
    )
    parser.add_argument("modules", nargs="+", help="comma-separated modules, one measurement each")
    args = parser.parse_args()
    for modules in args.modules:
        before, after = measure(args.after, modules)
        print(f"{after - before:+5.1f} MB  ({before:.1f} -> {after:.1f})  {modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
