# Sourced by run.sh and test.sh: one place that knows how the project's .venv is made.
# ensure_venv [extra]: create $ROOT/.venv on first use and (re)install the project whenever
# pyproject.toml changed since the last install, so a pull never runs stale dependencies.
VENV="${QQW_VENV:-$ROOT/.venv}"

ensure_venv() {
    local extra="${1:-}" spec="$ROOT" stamp
    [ -n "$extra" ] && spec="$ROOT[$extra]"
    stamp="$VENV/.qqwatchdog-installed${extra:+-$extra}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "qqwatchdog: creating $VENV (first run)" >&2
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        echo "qqwatchdog: installing the project into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
        touch "$stamp"
    fi
}
