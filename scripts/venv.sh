# Sourced by run.sh and test.sh (which set ROOT): the one place that knows how the project's .venv is made.
# ensure_venv [extra]: create $VENV on first use and (re)install the project whenever pyproject.toml changed
# since the last install, so a pull never runs stale dependencies. Messages go to stderr, so a caller's
# stdout stays pure JSON lines.
VENV="${QQW_VENV:-$ROOT/.venv}"

# The first Python >= 3.10 among $PYTHON, python3 and python3.1x (an old WSL distro's python3 may be 3.8).
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "qqwatchdog: Python 3.10 or newer is needed (found: $(python3 --version 2>&1 || echo none));" \
        "install it, e.g. 'sudo apt install python3', or set PYTHON=/path/to/python3.11" >&2
    return 1
}

ensure_venv() {
    local extra="${1:-}" spec="$ROOT" stamp python
    [ -n "$extra" ] && spec="$ROOT[$extra]"
    stamp="$VENV/.qqwatchdog-installed${extra:+-$extra}"
    if _venv_current "$stamp" "$extra"; then
        return 0
    fi
    # Two first runs at once (run.sh and test.sh) must not build the same venv together: hold a lock on
    # pyproject.toml itself (no extra file), then look again.
    exec 9<"$ROOT/pyproject.toml"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
    if ! _venv_current "$stamp" "$extra"; then
        if [ ! -x "$VENV/bin/python" ]; then
            python="$(find_python)" || { exec 9<&-; return 1; }
            echo "qqwatchdog: creating $VENV with $python (first run)" >&2
            if ! "$python" -m venv "$VENV" >&2; then
                rm -rf "$VENV"
                echo "qqwatchdog: could not create $VENV; on Debian/Ubuntu/WSL install the venv module:" \
                    "sudo apt install python3-venv" >&2
                exec 9<&-
                return 1
            fi
        fi
        echo "qqwatchdog: installing the project into $VENV${extra:+ (with [$extra])}" >&2
        # The venv's own pip (>= 21.3 for Python >= 3.10) installs pyproject projects in editable mode.
        if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2; then
            echo "qqwatchdog: installing the project failed (see pip's message above)" >&2
            exec 9<&-
            return 1
        fi
        touch "$stamp"
    fi
    exec 9<&-
}

# True when the venv exists and was installed (with this extra, or for the base install with any extra)
# after pyproject.toml last changed.
_venv_current() {
    local stamp="$1" extra="$2" candidate
    [ -x "$VENV/bin/python" ] || return 1
    if [ -z "$extra" ]; then
        for candidate in "$VENV"/.qqwatchdog-installed*; do
            [ -f "$candidate" ] && [ ! "$ROOT/pyproject.toml" -nt "$candidate" ] && return 0
        done
        return 1
    fi
    [ -f "$stamp" ] && [ ! "$ROOT/pyproject.toml" -nt "$stamp" ]
}
