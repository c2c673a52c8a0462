#!/usr/bin/env python3
"""The benchmark's entry: `python scripts/bench.py [--json] [--quick] [--only idle|recovery] ...`
(`--help` lists every flag). The benchmark itself is the package scripts/benchmark/."""

from __future__ import annotations

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
