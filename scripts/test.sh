#!/usr/bin/env bash
# Creates .venv when missing (or when pyproject.toml changed), installs the project with its
# test extra, then runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv test
cd "$ROOT"
"$VENV/bin/ruff" check qqworker watchdog scripts tests
exec "$VENV/bin/python" -m pytest "$@"
