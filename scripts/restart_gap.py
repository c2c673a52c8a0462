"""How long `scripts/run.sh restart` leaves the bot disconnected, against the local simulator.

    .venv/bin/python scripts/restart_gap.py [--restarts N]

Starts the simulator and the background watchdog (default timings, a temporary QQW_RUN_DIR and state
file), restarts it N times (default 5) with `scripts/run.sh restart`, and prints each restart's report
line, then the stop times and the gaps (the stop's start to the worker connected again) as min / median /
max. Every restart must have resumed the session; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qqworker.simulator.client_env import client_env

ROOT = Path(__file__).resolve().parent.parent
RUN = str(ROOT / "scripts" / "run.sh")
STOPPED = re.compile(r"restart: stopped pid \d+ in ([0-9.]+)s")
GAP = re.compile(r"restart: connected again ([0-9.]+)s after the stop began")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restart_gap.py", description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=5, metavar="N")
    args = parser.parse_args(argv)
    sim = subprocess.Popen(
        [sys.executable, "-m", "qqworker.simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryDirectory(prefix="qqw-restart-gap-") as tmp:
        run_dir = Path(tmp) / "run"
        env: dict[str, str] = {}

        def sh(*command: str) -> str:
            done = subprocess.run(
                ["bash", RUN, *command], env=env, capture_output=True, text=True, timeout=120
            )
            return done.stdout + done.stderr

        try:
            assert sim.stdout is not None
            info = json.loads(sim.stdout.readline())
            env = client_env(
                info,
                QQW_RUN_DIR=str(run_dir),
                QQW_STATUS_FILE=str(run_dir / "status.json"),
                QQW_STATE_FILE=str(run_dir / "session.json"),
            )
            env.pop("NOTIFY_SOCKET", None)
            sh("--background")
            time.sleep(2)  # connected and settled
            stops, gaps, resumed = [], [], 0
            for _ in range(args.restarts):
                out = sh("restart")
                lines = [line for line in out.splitlines() if "restart:" in line]
                print("\n".join(lines))
                if (stop := STOPPED.search(out)) and (gap := GAP.search(out)):
                    stops.append(float(stop.group(1)))
                    gaps.append(float(gap.group(1)))
                resumed += "resumed the session" in out
                time.sleep(1)
        finally:
            if env:
                sh("stop")
            sim.terminate()
            sim.wait(10)
    if not gaps:
        print("no restart was measured", file=sys.stderr)
        return 1
    for name, values in (("stopped in", stops), ("connected again after", gaps)):
        print(
            f"{name}: min {min(values):.3f}s, median {statistics.median(values):.3f}s, max {max(values):.3f}s"
        )
    print(f"{resumed}/{args.restarts} restarts resumed the session")
    return 0 if resumed == args.restarts == len(gaps) else 1


if __name__ == "__main__":
    sys.exit(main())
